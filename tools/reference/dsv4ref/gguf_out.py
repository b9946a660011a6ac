"""GGUF files in llama.cpp's `deepseek4` layout, written with PyPI gguf 0.19.0, and read back.

Owns: HF <-> GGUF tensor-name mapping, per-file tensor type choice, random-but-valid K-quant /
IQ2_XXS blocks (gguf-py has no quantizer for them), the metadata key set, and the read-back that
dequantizes every tensor with `gguf.quants.dequantize` into an HF state dict.

Layout facts (llama.cpp 0c1e57098, src/models/deepseek4.cpp `load_arch_tensors`,
gguf-py/gguf/constants.py `MODEL_TENSOR` names, conversion/deepseek.py): GGUF dims are ggml order
(ne0 = contiguous), i.e. the reverse of the numpy/PyTorch shape, and the bytes are identical.
"""

import hashlib
import re

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT
from gguf.quants import dequantize, quantize

ARCH = "deepseek4"

# HF suffix (after "model.layers.{i}.") -> GGUF suffix (after "blk.{i}.")
_LAYER_MAP = {
    "self_attn.sinks": "attn_sinks.weight",
    "self_attn.q_a_proj.weight": "attn_q_a.weight",
    "self_attn.q_a_norm.weight": "attn_q_a_norm.weight",
    "self_attn.q_b_proj.weight": "attn_q_b.weight",
    "self_attn.kv_proj.weight": "attn_kv.weight",
    "self_attn.kv_norm.weight": "attn_kv_a_norm.weight",
    "self_attn.o_a_proj.weight": "attn_output_a.weight",
    "self_attn.o_b_proj.weight": "attn_output_b.weight",
    "self_attn.compressor.position_bias": "attn_compressor_ape.weight",
    "self_attn.compressor.kv_proj.weight": "attn_compressor_kv.weight",
    "self_attn.compressor.gate_proj.weight": "attn_compressor_gate.weight",
    "self_attn.compressor.kv_norm.weight": "attn_compressor_norm.weight",
    "self_attn.compressor.indexer.position_bias": "indexer_compressor_ape.weight",
    "self_attn.compressor.indexer.kv_proj.weight": "indexer_compressor_kv.weight",
    "self_attn.compressor.indexer.gate_proj.weight": "indexer_compressor_gate.weight",
    "self_attn.compressor.indexer.kv_norm.weight": "indexer_compressor_norm.weight",
    "self_attn.compressor.indexer.q_b_proj.weight": "indexer.attn_q_b.weight",
    "self_attn.compressor.indexer.scorer.weights_proj.weight": "indexer.proj.weight",
    "mlp.gate.weight": "ffn_gate_inp.weight",
    "mlp.gate.tid2eid": "ffn_gate_tid2eid.weight",
    "mlp.gate.e_score_correction_bias": "exp_probs_b.bias",
    "mlp.shared_experts.gate_proj.weight": "ffn_gate_shexp.weight",
    "mlp.shared_experts.up_proj.weight": "ffn_up_shexp.weight",
    "mlp.shared_experts.down_proj.weight": "ffn_down_shexp.weight",
    "mlp.experts.down_proj": "ffn_down_exps.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "attn_hc.fn": "hc_attn_fn.weight",
    "attn_hc.base": "hc_attn_base.weight",
    "attn_hc.scale": "hc_attn_scale.weight",
    "ffn_hc.fn": "hc_ffn_fn.weight",
    "ffn_hc.base": "hc_ffn_base.weight",
    "ffn_hc.scale": "hc_ffn_scale.weight",
}
_TOP_MAP = {
    "model.embed_tokens.weight": "token_embd.weight",
    "lm_head.weight": "output.weight",
    "model.norm.weight": "output_norm.weight",
    "model.hc_head.hc_fn": "output_hc_fn.weight",
    "model.hc_head.hc_base": "output_hc_base.weight",
    "model.hc_head.hc_scale": "output_hc_scale.weight",
}


def hf_to_gguf_tensors(state: dict) -> dict:
    """HF state dict (numpy) -> {gguf name: numpy array in PyTorch layout}; experts split."""
    out = {}
    for name, v in state.items():
        if name in _TOP_MAP:
            out[_TOP_MAP[name]] = v
            continue
        m = re.match(r"model\.layers\.(\d+)\.(.+)$", name)
        if not m:
            raise KeyError(name)
        i, rest = int(m.group(1)), m.group(2)
        if rest == "mlp.experts.gate_up_proj":
            half = v.shape[1] // 2
            out[f"blk.{i}.ffn_gate_exps.weight"] = v[:, :half]
            out[f"blk.{i}.ffn_up_exps.weight"] = v[:, half:]
        elif rest == "mlp.gate.tid2eid":
            out[f"blk.{i}.ffn_gate_tid2eid.weight"] = v.astype(np.int32)
        else:
            out[f"blk.{i}.{_LAYER_MAP[rest]}"] = v
    return out


def gguf_to_hf_state(tensors: dict) -> dict:
    """Inverse of hf_to_gguf_tensors (f32 arrays, tid2eid as int64)."""
    inv_layer = {v: k for k, v in _LAYER_MAP.items()}
    inv_top = {v: k for k, v in _TOP_MAP.items()}
    out = {}
    for name, v in tensors.items():
        if name in inv_top:
            out[inv_top[name]] = v
            continue
        m = re.match(r"blk\.(\d+)\.(.+)$", name)
        i, rest = int(m.group(1)), m.group(2)
        if rest in ("ffn_gate_exps.weight", "ffn_up_exps.weight"):
            continue
        hf = f"model.layers.{i}.{inv_layer[rest]}"
        out[hf] = v.astype(np.int64) if rest == "ffn_gate_tid2eid.weight" else v
    for name in tensors:
        m = re.match(r"blk\.(\d+)\.ffn_gate_exps\.weight$", name)
        if m:
            i = int(m.group(1))
            out[f"model.layers.{i}.mlp.experts.gate_up_proj"] = np.concatenate(
                [tensors[name], tensors[f"blk.{i}.ffn_up_exps.weight"]], axis=1)
    return out


# --------------------------------------------------------------------------------------------
# Per-file tensor types


def _is_norm(n):
    return n.endswith(("_norm.weight", "attn_norm.weight", "ffn_norm.weight", "output_norm.weight"))


def _kind(n):
    """Role of a GGUF tensor in the ds4 / llama.cpp quantization mixes."""
    if n.endswith("ffn_gate_tid2eid.weight"):
        return "i32"
    if _is_norm(n) or n.endswith(("attn_sinks.weight", "exp_probs_b.bias", "_base.weight", "_scale.weight")):
        return "f32"
    if re.search(r"(hc_attn_fn|hc_ffn_fn|output_hc_fn)\.weight$", n):
        return "hc_fn"
    if n.endswith("_ape.weight"):
        return "ape"
    if re.search(r"ffn_(gate|up)_exps", n):
        return "exp_gate_up"
    if "ffn_down_exps" in n:
        return "exp_down"
    if "_shexp" in n:
        return "shared"
    if re.search(r"attn_(q_a|q_b|kv|output_a|output_b)\.weight$", n):
        return "attn"
    if re.search(r"(attn_compressor_(kv|gate)|indexer_compressor_(kv|gate)|indexer\.attn_q_b|indexer\.proj)\.weight$", n):
        return "compressor"
    if n.endswith("ffn_gate_inp.weight"):
        return "router"
    if n == "token_embd.weight":
        return "embd"
    if n == "output.weight":
        return "output"
    raise KeyError(n)


# file kind -> {role: type}; roles absent fall back to F32
MIXES = {
    "F32": {},
    "BF16": {r: QT.BF16 for r in ("exp_gate_up", "exp_down", "shared", "attn", "compressor", "router",
                                   "embd", "output")},
    "F16": {r: QT.F16 for r in ("exp_gate_up", "exp_down", "shared", "attn", "compressor", "router",
                                 "embd", "output")},
    "Q8_0": {r: QT.Q8_0 for r in ("exp_gate_up", "exp_down", "shared", "attn", "compressor", "embd",
                                   "output")},
    # ds4's published q2 / q4 mixes (ds4-reference.md §4.7, §5.2) and an MXFP4-expert mix
    "Q2MIX": {"exp_gate_up": QT.IQ2_XXS, "exp_down": QT.Q2_K, "shared": QT.Q8_0, "attn": QT.Q8_0,
              "output": QT.Q8_0, "embd": QT.F16, "compressor": QT.F16, "router": QT.F16,
              "hc_fn": QT.F16, "ape": QT.F16},
    "Q4MIX": {"exp_gate_up": QT.Q4_K, "exp_down": QT.Q4_K, "shared": QT.Q8_0, "attn": QT.Q8_0,
              "output": QT.Q8_0, "embd": QT.F16, "compressor": QT.F16, "router": QT.F16,
              "hc_fn": QT.F16, "ape": QT.F16},
    "MXFP4MIX": {"exp_gate_up": QT.MXFP4, "exp_down": QT.MXFP4, "shared": QT.Q8_0, "attn": QT.Q8_0,
                 "output": QT.Q8_0, "embd": QT.F16, "compressor": QT.F16, "router": QT.F16,
                 "hc_fn": QT.F16, "ape": QT.F16},
}


def tensor_type(mix: str, name: str):
    k = _kind(name)
    if k == "i32":
        return QT.I32
    return MIXES[mix].get(k, QT.F32)


# --------------------------------------------------------------------------------------------
# Random valid blocks for types gguf-py cannot quantize (Q2_K, Q4_K, IQ2_XXS)


def _f16(x):
    return np.asarray(x, dtype=np.float16)


def random_blocks(qtype, n_blocks: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """n_blocks structurally valid 256-element blocks whose dequantized values have roughly zero
    mean and standard deviation ~sigma. Layouts: peers-and-formats.md §2.4, §2.5, §2.7."""
    if qtype == QT.IQ2_XXS:
        # d: f16, qs: 32 x u16 = 8 groups of (u32 grid bytes a, u32 signs|scale b)
        d = _f16(sigma / 55.0 * rng.uniform(0.6, 1.4, n_blocks))
        a = rng.integers(0, 256, (n_blocks, 8, 4), dtype=np.uint8)
        signs = rng.integers(0, 1 << 28, (n_blocks, 8), dtype=np.uint32)
        scale = rng.integers(0, 16, (n_blocks, 8), dtype=np.uint32)
        b = (signs | (scale << 28)).astype("<u4").view(np.uint8).reshape(n_blocks, 8, 4)
        qs = np.concatenate([a, b], axis=2).reshape(n_blocks, 64)
        return np.concatenate([d.view(np.uint8).reshape(n_blocks, 2), qs], axis=1)
    if qtype == QT.Q2_K:
        # scales[16] (lo nibble scale, hi nibble min), qs[64], d f16, dmin f16
        sc = rng.integers(1, 11, (n_blocks, 16))
        mn = np.rint(sc * 1.5).astype(np.int64)  # centres each sub-block: d*sc*(q - 1.5)
        scales = (sc | (mn << 4)).astype(np.uint8)
        qs = rng.integers(0, 256, (n_blocks, 64), dtype=np.uint8)
        d = _f16(sigma / 6.0 * rng.uniform(0.6, 1.4, n_blocks))
        dm = d.copy()
        return np.concatenate([scales, qs, d.view(np.uint8).reshape(-1, 2), dm.view(np.uint8).reshape(-1, 2)], 1)
    if qtype == QT.Q4_K:
        # d f16, dmin f16, scales[12] (6-bit sc/m for 8 sub-blocks), qs[128]
        sc = rng.integers(1, 9, (n_blocks, 8))
        mn = np.rint(sc * 7.5).astype(np.int64)  # d*sc*(q - 7.5) with dmin = d
        s = np.zeros((n_blocks, 12), dtype=np.int64)
        for j in range(4):
            s[:, j] = sc[:, j] | ((sc[:, j + 4] >> 4) << 6)
            s[:, j + 4] = mn[:, j] | ((mn[:, j + 4] >> 4) << 6)
            s[:, j + 8] = (sc[:, j + 4] & 0xF) | ((mn[:, j + 4] & 0xF) << 4)
        d = _f16(sigma / 20.0 * rng.uniform(0.6, 1.4, n_blocks))
        qs = rng.integers(0, 256, (n_blocks, 128), dtype=np.uint8)
        return np.concatenate([d.view(np.uint8).reshape(-1, 2), d.view(np.uint8).reshape(-1, 2),
                               s.astype(np.uint8), qs], 1)
    raise ValueError(qtype)


def random_quant_tensor(qtype, shape: tuple, sigma: float, seed_name: str) -> np.ndarray:
    """Raw bytes [.., rows, bytes_per_row] for a numpy-layout shape whose last dim is a multiple
    of 256."""
    block, nbytes = gguf.GGML_QUANT_SIZES[qtype]
    assert shape[-1] % block == 0, f"{seed_name}: row {shape[-1]} not a multiple of {block}"
    n = int(np.prod(shape)) // block
    h = hashlib.sha256(seed_name.encode()).digest()
    rng = np.random.default_rng(int.from_bytes(h[:8], "little"))
    raw = random_blocks(qtype, n, sigma, rng)
    assert raw.shape == (n, nbytes)
    out = raw.reshape(*shape[:-1], shape[-1] // block * nbytes)
    vals = dequantize(out, qtype)
    if not np.isfinite(vals).all():
        raise AssertionError(f"{seed_name}: non-finite dequantized values")
    return out


def encode(arr: np.ndarray, qtype) -> np.ndarray:
    """numpy float array (PyTorch layout) -> array to hand to GGUFWriter.add_tensor."""
    if qtype == QT.F32:
        return np.ascontiguousarray(arr, dtype=np.float32)
    if qtype == QT.F16:
        return np.ascontiguousarray(arr, dtype=np.float16)
    if qtype == QT.I32:
        return np.ascontiguousarray(arr, dtype=np.int32)
    return quantize(np.ascontiguousarray(arr, dtype=np.float32), qtype)


# --------------------------------------------------------------------------------------------
# Writer / reader


def metadata(cfg, tok_vocab, name: str) -> list:
    """[(key, value, gguf value type)] written into every file (see README for the table)."""
    V = gguf.GGUFValueType
    L = cfg.num_hidden_layers
    ratios = [{"sliding_attention": 0, "compressed_sparse_attention": 4,
               "heavily_compressed_attention": 128}[t] for t in cfg.layer_types]
    n_hash = sum(1 for t in cfg.mlp_layer_types if t == "hash_moe")
    assert cfg.mlp_layer_types == ["hash_moe"] * n_hash + ["moe"] * (L - n_hash)
    a = ARCH
    tokens, types, merges = tok_vocab
    return [
        ("general.architecture", a, V.STRING),
        ("general.name", name, V.STRING),
        (f"{a}.block_count", L, V.UINT32),
        (f"{a}.context_length", cfg.max_position_embeddings, V.UINT32),
        (f"{a}.embedding_length", cfg.hidden_size, V.UINT32),
        (f"{a}.embedding_length_out", cfg.hidden_size * cfg.hc_mult, V.UINT32),
        (f"{a}.feed_forward_length", cfg.moe_intermediate_size, V.UINT32),
        (f"{a}.vocab_size", cfg.vocab_size, V.UINT32),
        (f"{a}.attention.head_count", cfg.num_attention_heads, V.UINT32),
        (f"{a}.attention.head_count_kv", 1, V.UINT32),
        (f"{a}.attention.key_length", cfg.head_dim, V.UINT32),
        (f"{a}.attention.value_length", cfg.head_dim, V.UINT32),
        (f"{a}.attention.layer_norm_rms_epsilon", cfg.rms_norm_eps, V.FLOAT32),
        (f"{a}.attention.q_lora_rank", cfg.q_lora_rank, V.UINT32),
        (f"{a}.attention.sliding_window", cfg.sliding_window, V.UINT32),
        (f"{a}.attention.output_group_count", cfg.o_groups, V.UINT32),
        (f"{a}.attention.output_lora_rank", cfg.o_lora_rank, V.UINT32),
        (f"{a}.attention.compress_ratios", ratios, V.ARRAY),
        (f"{a}.attention.compress_rope_freq_base", 160000.0, V.FLOAT32),
        (f"{a}.attention.indexer.head_count", cfg.index_n_heads, V.UINT32),
        (f"{a}.attention.indexer.key_length", cfg.index_head_dim, V.UINT32),
        (f"{a}.attention.indexer.top_k", cfg.index_topk, V.UINT32),
        (f"{a}.rope.dimension_count", cfg.qk_rope_head_dim, V.UINT32),
        (f"{a}.rope.freq_base", 10000.0, V.FLOAT32),
        (f"{a}.rope.scaling.type", "yarn", V.STRING),
        (f"{a}.rope.scaling.factor", 16.0, V.FLOAT32),
        (f"{a}.rope.scaling.original_context_length", 65536, V.UINT32),
        (f"{a}.rope.scaling.yarn_beta_fast", 32.0, V.FLOAT32),
        (f"{a}.rope.scaling.yarn_beta_slow", 1.0, V.FLOAT32),
        (f"{a}.expert_count", cfg.n_routed_experts, V.UINT32),
        (f"{a}.expert_used_count", cfg.num_experts_per_tok, V.UINT32),
        (f"{a}.expert_shared_count", 1, V.UINT32),
        (f"{a}.expert_feed_forward_length", cfg.moe_intermediate_size, V.UINT32),
        (f"{a}.expert_weights_scale", 1.5, V.FLOAT32),
        (f"{a}.expert_weights_norm", True, V.BOOL),
        (f"{a}.expert_gating_func", 4, V.UINT32),  # LLAMA_EXPERT_GATING_FUNC_TYPE_SQRT_SOFTPLUS
        (f"{a}.expert_group_count", 0, V.UINT32),
        (f"{a}.expert_group_used_count", 0, V.UINT32),
        (f"{a}.hash_layer_count", n_hash, V.UINT32),
        (f"{a}.swiglu_clamp_exp", [float(cfg.swiglu_limit)] * L, V.ARRAY),
        (f"{a}.swiglu_clamp_shexp", [float(cfg.swiglu_limit)] * L, V.ARRAY),
        (f"{a}.hyper_connection.count", cfg.hc_mult, V.UINT32),
        (f"{a}.hyper_connection.sinkhorn_iterations", cfg.hc_sinkhorn_iters, V.UINT32),
        (f"{a}.hyper_connection.epsilon", cfg.hc_eps, V.FLOAT32),
        ("tokenizer.ggml.model", "gpt2", V.STRING),
        ("tokenizer.ggml.pre", "joyai-llm", V.STRING),
        ("tokenizer.ggml.tokens", tokens, V.ARRAY),
        ("tokenizer.ggml.token_type", types, V.ARRAY),
        ("tokenizer.ggml.merges", merges, V.ARRAY),
        ("tokenizer.ggml.bos_token_id", 0, V.UINT32),
        ("tokenizer.ggml.eos_token_id", 1, V.UINT32),
        ("tokenizer.ggml.padding_token_id", 1, V.UINT32),
        ("tokenizer.ggml.add_bos_token", False, V.BOOL),
        ("tokenizer.ggml.add_eos_token", False, V.BOOL),
    ]


def write_gguf(path, meta: list, tensors: dict) -> None:
    """tensors: {name: (array, qtype)}; arrays already encoded (see `encode`)."""
    V = gguf.GGUFValueType
    w = gguf.GGUFWriter(str(path), arch=ARCH)
    for key, val, vt in meta:
        if key == "general.architecture":
            continue  # GGUFWriter writes it from `arch`
        if vt == V.ARRAY:
            w.add_array(key, list(val))  # element type inferred as the converter's add_array does
        else:
            w.add_key_value(key, val, vt)
    for name in sorted(tensors, key=_tensor_order):
        arr, qt = tensors[name]
        w.add_tensor(name, arr, raw_dtype=None if qt in (QT.F32, QT.F16, QT.I32) else qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _tensor_order(name):
    m = re.match(r"blk\.(\d+)\.(.+)$", name)
    return (1, int(m.group(1)), m.group(2)) if m else (0, 0, name)


def read_gguf(path):
    """(metadata {key: python value}, {tensor name: (f32/int array in PyTorch layout, type name,
    ggml shape list)})."""
    r = gguf.GGUFReader(str(path))
    meta = {}
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        meta[f.name] = f.contents()
    tensors = {}
    for t in r.tensors:
        qt = QT(t.tensor_type)
        if qt == QT.I32:
            arr = np.array(t.data, dtype=np.int32).reshape([int(x) for x in reversed(t.shape)])
        else:
            arr = dequantize(np.array(t.data), qt).astype(np.float32)
            arr = arr.reshape([int(x) for x in reversed(t.shape)])
        tensors[t.name] = (arr, qt.name, [int(x) for x in t.shape])
    return meta, tensors
