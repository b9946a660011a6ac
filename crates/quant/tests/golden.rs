//! Golden parity with gguf-py 0.19.0 and with ggml's C code at llama.cpp
//! `0c1e57098` (fixtures from `tools/quant-golden/gen.py`, see
//! `fixtures/README.md`).
//!
//! Dequantization must be bit-identical to gguf-py for every weight type, with
//! the scalar reference and with every kernel table the host supports;
//! quantizers must produce the same bytes as gguf-py where it has one (Q8_0,
//! Q4_0, MXFP4, F16, BF16) and as ggml's `quantize_row_*_ref` for Q4_K, Q2_K
//! and Q8_K; activation quantization must match ggml's on every kernel table;
//! and every table's matmul must equal ggml's portable `vec_dot` up to f32
//! re-association.

// Test helpers report failures by panicking, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use dsv4_gguf::GgmlType;
use dsv4_quant::blocks::{
    self, Bf16Elem, BlockMxfp4, BlockQ4_0, BlockQ8_0, F16Elem, QuantBlock, dequantize_blocks_ref,
};
use dsv4_quant::{ActBuf, ActType, Kernels};

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

struct Case {
    ty: GgmlType,
    blocks: &'static [u8],
    dequant: &'static [u8],
}

macro_rules! case {
    ($ty:ident, $name:literal) => {
        Case {
            ty: GgmlType::$ty,
            blocks: include_bytes!(concat!("fixtures/", $name, ".blocks.bin")),
            dequant: include_bytes!(concat!("fixtures/", $name, ".dequant.f32")),
        }
    };
}

fn cases() -> Vec<Case> {
    vec![
        case!(F32, "f32"),
        case!(F16, "f16"),
        case!(BF16, "bf16"),
        case!(Q8_0, "q8_0"),
        case!(Q4_0, "q4_0"),
        case!(MXFP4, "mxfp4"),
        case!(Q2_K, "q2_k"),
        case!(Q4_K, "q4_k"),
        case!(Q6_K, "q6_k"),
        case!(IQ2_XXS, "iq2_xxs"),
    ]
}

fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "{what}: element {i}: got {g:e}, gguf-py {w:e}"
        );
    }
}

fn ref_dequant<B: QuantBlock>(bytes: &[u8]) -> Vec<f32> {
    let blocks: &[B] = blocks::as_blocks(bytes).expect("whole blocks");
    let mut out = vec![0.0f32; blocks.len() * B::ELEMS];
    dequantize_blocks_ref(blocks, &mut out);
    out
}

#[test]
fn reference_dequantization_matches_gguf_py_bit_for_bit() {
    for c in cases() {
        let want = f32s(c.dequant);
        let got = match c.ty {
            GgmlType::F32 => ref_dequant::<blocks::F32Elem>(c.blocks),
            GgmlType::F16 => ref_dequant::<F16Elem>(c.blocks),
            GgmlType::BF16 => ref_dequant::<Bf16Elem>(c.blocks),
            GgmlType::Q8_0 => ref_dequant::<BlockQ8_0>(c.blocks),
            GgmlType::Q4_0 => ref_dequant::<BlockQ4_0>(c.blocks),
            GgmlType::MXFP4 => ref_dequant::<BlockMxfp4>(c.blocks),
            GgmlType::Q2_K => ref_dequant::<blocks::BlockQ2K>(c.blocks),
            GgmlType::Q4_K => ref_dequant::<blocks::BlockQ4K>(c.blocks),
            GgmlType::Q6_K => ref_dequant::<blocks::BlockQ6K>(c.blocks),
            GgmlType::IQ2_XXS => ref_dequant::<blocks::BlockIq2Xxs>(c.blocks),
            other => panic!("no case for {other}"),
        };
        assert_bits_eq(&format!("{} reference", c.ty), &got, &want);
    }
}

#[test]
fn every_kernel_table_dequantizes_like_gguf_py() {
    for kernels in Kernels::all_variants() {
        let isa = kernels.describe();
        for c in cases() {
            let want = f32s(c.dequant);
            // Whole fixture at once, then one odd-sized row (a few blocks).
            let mut got = vec![f32::NAN; want.len()];
            kernels
                .dequantize_row(c.ty, c.blocks, &mut got)
                .expect("dequantize");
            assert_bits_eq(&format!("{} on {isa}", c.ty), &got, &want);

            let be = c.ty.block_elems() as usize;
            let bb = c.ty.block_bytes() as usize;
            let nblk = (3 * 256 / be).min(c.blocks.len() / bb);
            let (skip, take) = (bb, nblk * bb);
            let mut part = vec![0.0f32; nblk * be];
            kernels
                .dequantize_row(c.ty, &c.blocks[skip..skip + take], &mut part)
                .expect("row");
            assert_bits_eq(
                &format!("{} row on {isa}", c.ty),
                &part,
                &want[be..be + nblk * be],
            );
        }
    }
}

#[test]
fn quantizers_match_gguf_py_bytes() {
    let x = f32s(include_bytes!("fixtures/quant_input.f32"));

    let mut q8 = vec![
        BlockQ8_0 {
            d: [0; 2],
            qs: [0; 32]
        };
        x.len() / 32
    ];
    blocks::q8_0::quantize_row_q8_0(&x, &mut q8);
    assert_eq!(
        bytemuck::cast_slice::<BlockQ8_0, u8>(&q8),
        include_bytes!("fixtures/q8_0.quant.bin"),
        "Q8_0"
    );

    let mut q4 = vec![
        BlockQ4_0 {
            d: [0; 2],
            qs: [0; 16]
        };
        x.len() / 32
    ];
    blocks::q4_0::quantize_row_q4_0(&x, &mut q4);
    assert_eq!(
        bytemuck::cast_slice::<BlockQ4_0, u8>(&q4),
        include_bytes!("fixtures/q4_0.quant.bin"),
        "Q4_0"
    );

    let mut mx = vec![BlockMxfp4 { e: 0, qs: [0; 16] }; x.len() / 32];
    blocks::mxfp4::quantize_row_mxfp4(&x, &mut mx);
    assert_eq!(
        bytemuck::cast_slice::<BlockMxfp4, u8>(&mx),
        include_bytes!("fixtures/mxfp4.quant.bin"),
        "MXFP4"
    );

    let mut h = vec![F16Elem([0; 2]); x.len()];
    blocks::float::quantize_row_f16(&x, &mut h);
    assert_eq!(
        bytemuck::cast_slice::<F16Elem, u8>(&h),
        include_bytes!("fixtures/f16.quant.bin"),
        "F16"
    );

    let bits = f32s(include_bytes!("fixtures/quant_input_bits.f32"));
    let mut bf = vec![Bf16Elem([0; 2]); bits.len()];
    blocks::float::quantize_row_bf16(&bits, &mut bf);
    assert_eq!(
        bytemuck::cast_slice::<Bf16Elem, u8>(&bf),
        include_bytes!("fixtures/bf16.quant.bin"),
        "BF16"
    );
}

#[test]
fn q8_0_activation_quantizer_matches_gguf_py_on_every_isa() {
    let x = f32s(include_bytes!("fixtures/quant_input.f32"));
    let golden: &[BlockQ8_0] =
        blocks::as_blocks(include_bytes!("fixtures/q8_0.quant.bin")).expect("blocks");
    let (n, k) = (4, x.len() / 4);
    for kernels in Kernels::all_variants() {
        let isa = kernels.describe();
        let mut act = ActBuf::new();
        kernels
            .quantize_act(ActType::Q8_0, &x, n, k, &mut act)
            .expect("quantize");
        for t in 0..n {
            let row = act.row_q8_0(t).expect("q8_0 row");
            for b in 0..k / 32 {
                let g = &golden[t * k / 32 + b];
                assert_eq!(
                    &row.qs[32 * b..32 * b + 32],
                    &g.qs[..],
                    "{isa}: codes of block {b}"
                );
                assert_eq!(
                    row.d[b].to_bits(),
                    g.d().to_bits(),
                    "{isa}: scale of block {b}"
                );
            }
        }
    }
}

// ---- ggml's own C code (tools/quant-golden/ggml_ref.c, llama.cpp 0c1e57098) ----

/// Our Q4_K, Q2_K and Q8_K quantizers are ggml's `quantize_row_*_ref`
/// algorithms: same bytes as the C code (built without FMA contraction).
#[test]
fn k_quantizers_match_ggml_c_bytes() {
    let x = f32s(include_bytes!("fixtures/quant_input.f32"));
    let q4: Vec<blocks::BlockQ4K> = x
        .chunks_exact(256)
        .map(blocks::q4_k::quantize_q4k_block)
        .collect();
    assert_eq!(
        bytemuck::cast_slice::<_, u8>(&q4),
        include_bytes!("fixtures/ggml_q4_k.quant.bin"),
        "Q4_K"
    );
    let q2: Vec<blocks::BlockQ2K> = x
        .chunks_exact(256)
        .map(blocks::q2_k::quantize_q2k_block)
        .collect();
    assert_eq!(
        bytemuck::cast_slice::<_, u8>(&q2),
        include_bytes!("fixtures/ggml_q2_k.quant.bin"),
        "Q2_K"
    );
    let mut q8 = vec![bytemuck::Zeroable::zeroed(); x.len() / 256];
    blocks::q8_k::quantize_row_q8k(&x, &mut q8);
    assert_eq!(
        bytemuck::cast_slice::<blocks::BlockQ8K, u8>(&q8),
        include_bytes!("fixtures/ggml_q8_k.quant.bin"),
        "Q8_K"
    );
}

const DOT_K: usize = 1024;
const DOT_N: usize = 4;

/// Every kernel table quantizes activations exactly like ggml's
/// `quantize_row_q8_0_ref` / `quantize_row_q8_K_ref`.
#[test]
fn activation_quantizers_match_ggml_on_every_isa() {
    let x = f32s(include_bytes!("fixtures/dot_act.f32"));
    let g80: &[BlockQ8_0] =
        blocks::as_blocks(include_bytes!("fixtures/ggml_act.q8_0.bin")).unwrap();
    let g8k_bytes: &[u8] = include_bytes!("fixtures/ggml_act.q8_k.bin");
    let g8k: Vec<blocks::BlockQ8K> = g8k_bytes
        .chunks_exact(292)
        .map(bytemuck::pod_read_unaligned::<blocks::BlockQ8K>)
        .collect();
    for kern in Kernels::all_variants() {
        let isa = kern.describe();
        let mut a = ActBuf::new();
        kern.quantize_act(ActType::Q8_0, &x, DOT_N, DOT_K, &mut a)
            .unwrap();
        for t in 0..DOT_N {
            let row = a.row_q8_0(t).unwrap();
            for b in 0..DOT_K / 32 {
                let g = &g80[t * DOT_K / 32 + b];
                assert_eq!(
                    &row.qs[32 * b..32 * b + 32],
                    &g.qs[..],
                    "{isa}: Q8_0 codes {t}/{b}"
                );
                assert_eq!(
                    row.d[b].to_bits(),
                    g.d().to_bits(),
                    "{isa}: Q8_0 scale {t}/{b}"
                );
            }
        }
        kern.quantize_act(ActType::Q8_K, &x, DOT_N, DOT_K, &mut a)
            .unwrap();
        for t in 0..DOT_N {
            let row = a.row_q8k(t).unwrap();
            for b in 0..DOT_K / 256 {
                let g = &g8k[t * DOT_K / 256 + b];
                assert_eq!(
                    &row.qs[256 * b..256 * b + 256],
                    &g.qs[..],
                    "{isa}: Q8_K codes {t}/{b}"
                );
                assert_eq!(
                    row.d[b].to_bits(),
                    g.d.to_bits(),
                    "{isa}: Q8_K scale {t}/{b}"
                );
                assert_eq!(
                    &row.bsums[16 * b..16 * b + 16],
                    &g.bsums[..],
                    "{isa}: Q8_K sums {t}/{b}"
                );
            }
        }
    }
}

/// Every kernel table's matmul equals ggml's `ggml_vec_dot_*_generic` up to
/// f32 re-association: the integer block sums are identical, only the order
/// of the float accumulation differs. Bound: `2⁻²⁰ · M`, with `M` the sum of
/// the magnitudes of the terms (scale part and, for Q2_K/Q4_K, min part).
#[test]
fn dot_products_match_ggml_on_every_isa() {
    let x = f32s(include_bytes!("fixtures/dot_act.f32"));
    let want = f32s(include_bytes!("fixtures/ggml_dot.f32"));
    let cases: [(GgmlType, &[u8]); 7] = [
        (GgmlType::Q8_0, include_bytes!("fixtures/dot_w.q8_0.bin")),
        (GgmlType::Q4_0, include_bytes!("fixtures/dot_w.q4_0.bin")),
        (GgmlType::MXFP4, include_bytes!("fixtures/dot_w.mxfp4.bin")),
        (GgmlType::Q2_K, include_bytes!("fixtures/dot_w.q2_k.bin")),
        (GgmlType::Q4_K, include_bytes!("fixtures/dot_w.q4_k.bin")),
        (GgmlType::Q6_K, include_bytes!("fixtures/dot_w.q6_k.bin")),
        (
            GgmlType::IQ2_XXS,
            include_bytes!("fixtures/dot_w.iq2_xxs.bin"),
        ),
    ];
    let scalar = Kernels::with_isa(dsv4_quant::Isa::Scalar).unwrap();
    for (i, (ty, w)) in cases.iter().enumerate() {
        let act_ty = dsv4_quant::act_type_for(*ty).unwrap();
        let mut deq = vec![0.0f32; DOT_K];
        scalar.dequantize_row(*ty, w, &mut deq).unwrap();
        let mut mins = vec![0.0f32; DOT_K];
        let code_bytes = match ty {
            GgmlType::Q2_K => Some(16..80),
            GgmlType::Q4_K => Some(16..144),
            _ => None,
        };
        if let Some(cr) = code_bytes {
            let mut z = w.to_vec();
            for blk in z.chunks_exact_mut(ty.block_bytes() as usize) {
                blk[cr.clone()].fill(0);
            }
            scalar.dequantize_row(*ty, &z, &mut mins).unwrap();
        }
        for kern in Kernels::all_variants() {
            let mut a = ActBuf::new();
            kern.quantize_act(act_ty, &x, DOT_N, DOT_K, &mut a).unwrap();
            let mut y = vec![0.0f32; DOT_N];
            let mut out = dsv4_quant::OutCols::new(&mut y, DOT_N, 1).unwrap();
            kern.matmul(*ty, w, DOT_K, 0..1, &a, &mut out).unwrap();
            for t in 0..DOT_N {
                let av: Vec<f64> = match act_ty {
                    ActType::Q8_0 => {
                        let r = a.row_q8_0(t).unwrap();
                        r.qs.iter()
                            .enumerate()
                            .map(|(j, &q)| f64::from(r.d[j / 32] * f32::from(q)))
                            .collect()
                    }
                    _ => {
                        let r = a.row_q8k(t).unwrap();
                        r.qs.iter()
                            .enumerate()
                            .map(|(j, &q)| f64::from(r.d[j / 256] * f32::from(q)))
                            .collect()
                    }
                };
                let m: f64 = (0..DOT_K)
                    .map(|j| (f64::from(deq[j]).abs() + f64::from(mins[j]).abs()) * av[j].abs())
                    .sum();
                let (g, e) = (y[t], want[i * DOT_N + t]);
                let tol = m * 2f64.powi(-20);
                assert!(
                    (f64::from(g) - f64::from(e)).abs() <= tol,
                    "{ty} on {}: token {t}: got {g:e}, ggml {e:e}, tolerance {tol:e}",
                    kern.describe()
                );
            }
        }
    }
}
