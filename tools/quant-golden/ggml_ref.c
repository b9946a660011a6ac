// Reference outputs from ggml's own C code for dsv4-quant's golden tests.
//
// Built and run by gen.py against llama.cpp commit 0c1e57098 (the tree vendored
// in the llama-cpp-python 0.3.36 sdist on PyPI): it calls ggml's reference
// quantizers (`quantize_row_*_ref`, ggml/src/ggml-quants.c) and the portable
// dot products (`ggml_vec_dot_*_generic`, ggml/src/ggml-cpu/quants.c). It is
// compiled with -ffp-contract=off so float expressions are evaluated as
// written, without fused multiply-adds.
//
// Usage: ggml_ref <fixtures-dir>
// Reads  quant_input.f32 (4096 floats), dot_act.f32 (NACT x K floats),
//        dot_w.<type>.bin (one row of K elements per type).
// Writes ggml_{q4_k,q2_k,q8_k}.quant.bin (quant_input quantized),
//        ggml_act.{q8_0,q8_k}.bin (dot_act rows quantized),
//        ggml_dot.f32 (NTYPES x NACT dot products, types in TYPES order).

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "ggml-common.h"
#include "ggml-impl.h"
#include "ggml-quants.h"
#include "quants.h"

// The f16 -> f32 table ggml-cpu.c normally owns (used by GGML_CPU_FP16_TO_FP32
// without F16C); filled in main() with ggml's exact scalar conversion.
float ggml_table_f32_f16[1 << 16];

#define K 1024
#define NACT 4
#define NQ 4096

// ggml-quants.c references these from ggml.c; the paths we call never use them.
void ggml_abort(const char * file, int line, const char * fmt, ...) {
    (void) fmt;
    fprintf(stderr, "ggml_abort at %s:%d\n", file, line);
    abort();
}
void ggml_log_internal(enum ggml_log_level level, const char * format, ...) {
    (void) level;
    (void) format;
}
size_t ggml_row_size(enum ggml_type type, int64_t ne) {
    (void) type;
    (void) ne;
    return 0;
}
size_t ggml_type_size(enum ggml_type type) {
    (void) type;
    return 0;
}
const char * ggml_type_name(enum ggml_type type) {
    (void) type;
    return "";
}

static const char * dir;

static void * slurp(const char * name, size_t expect) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE * f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); exit(1); }
    void * buf = malloc(expect);
    size_t got = fread(buf, 1, expect, f);
    fclose(f);
    if (got != expect) { fprintf(stderr, "%s: expected %zu bytes, got %zu\n", path, expect, got); exit(1); }
    return buf;
}

static void spill(const char * name, const void * data, size_t bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE * f = fopen(path, "wb");
    if (!f || fwrite(data, 1, bytes, f) != bytes) { fprintf(stderr, "cannot write %s\n", path); exit(1); }
    fclose(f);
}

typedef void (*vec_dot_fn)(int, float *, size_t, const void *, size_t, const void *, size_t, int);

struct wtype {
    const char * name;
    size_t row_bytes;
    int q8k;
    vec_dot_fn dot;
};

int main(int argc, char ** argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s <fixtures-dir>\n", argv[0]); return 2; }
    dir = argv[1];
    for (uint32_t i = 0; i < (1u << 16); i++) {
        ggml_table_f32_f16[i] = ggml_compute_fp16_to_fp32((ggml_fp16_t) i);
    }

    float * xq = slurp("quant_input.f32", NQ * sizeof(float));
    block_q4_K q4k[NQ / QK_K];
    block_q2_K q2k[NQ / QK_K];
    block_q8_K q8k[NQ / QK_K];
    quantize_row_q4_K_ref(xq, q4k, NQ);
    quantize_row_q2_K_ref(xq, q2k, NQ);
    quantize_row_q8_K_ref(xq, q8k, NQ);
    spill("ggml_q4_k.quant.bin", q4k, sizeof q4k);
    spill("ggml_q2_k.quant.bin", q2k, sizeof q2k);
    spill("ggml_q8_k.quant.bin", q8k, sizeof q8k);

    float * act = slurp("dot_act.f32", NACT * K * sizeof(float));
    block_q8_0 a80[NACT][K / QK8_0];
    block_q8_K a8k[NACT][K / QK_K];
    for (int t = 0; t < NACT; t++) {
        quantize_row_q8_0_ref(act + t * K, a80[t], K);
        quantize_row_q8_K_ref(act + t * K, a8k[t], K);
    }
    spill("ggml_act.q8_0.bin", a80, sizeof a80);
    spill("ggml_act.q8_k.bin", a8k, sizeof a8k);

    const struct wtype types[] = {
        { "q8_0", K / QK8_0 * sizeof(block_q8_0), 0, ggml_vec_dot_q8_0_q8_0_generic },
        { "q4_0", K / QK4_0 * sizeof(block_q4_0), 0, ggml_vec_dot_q4_0_q8_0_generic },
        { "mxfp4", K / QK_MXFP4 * sizeof(block_mxfp4), 0, ggml_vec_dot_mxfp4_q8_0_generic },
        { "q2_k", K / QK_K * sizeof(block_q2_K), 1, ggml_vec_dot_q2_K_q8_K_generic },
        { "q4_k", K / QK_K * sizeof(block_q4_K), 1, ggml_vec_dot_q4_K_q8_K_generic },
        { "q6_k", K / QK_K * sizeof(block_q6_K), 1, ggml_vec_dot_q6_K_q8_K_generic },
        { "iq2_xxs", K / QK_K * sizeof(block_iq2_xxs), 1, ggml_vec_dot_iq2_xxs_q8_K_generic },
    };
    const int ntypes = sizeof types / sizeof types[0];
    float dots[sizeof types / sizeof types[0]][NACT];
    for (int i = 0; i < ntypes; i++) {
        char name[64];
        snprintf(name, sizeof name, "dot_w.%s.bin", types[i].name);
        void * w = slurp(name, types[i].row_bytes);
        for (int t = 0; t < NACT; t++) {
            const void * a = types[i].q8k ? (const void *) a8k[t] : (const void *) a80[t];
            types[i].dot(K, &dots[i][t], 0, w, 0, a, 0, 1);
        }
        free(w);
    }
    spill("ggml_dot.f32", dots, sizeof dots);
    free(xq);
    free(act);
    return 0;
}
