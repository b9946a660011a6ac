//! Golden parity with gguf-py 0.19.0 (fixtures from `tools/quant-golden/gen.py`).
//!
//! Dequantization must be bit-identical to gguf-py for every weight type, with
//! the scalar reference and with every kernel table the host supports;
//! quantizers must produce the same bytes as gguf-py where it has one (Q8_0,
//! Q4_0, MXFP4, F16, BF16), and the Q8_0 activation quantizer must agree with
//! gguf-py's Q8_0 weight quantizer (same rule).

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
