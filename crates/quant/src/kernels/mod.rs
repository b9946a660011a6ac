//! The kernel table: instruction-set selection once, at startup, and the
//! validated public entry points the model calls.
//!
//! [`Kernels`] is a small `Copy` struct of function pointers, filled for one
//! [`Isa`] by [`Kernels::detect`] (best available) or [`Kernels::with_isa`]
//! (forced; an error if the CPU lacks it). Every public method validates its
//! arguments once and then calls through the table; the kernels behind it
//! assume validated shapes. SIMD entries are `#[target_feature]` functions,
//! stored as `unsafe fn` pointers: the only proof that calling them is sound is
//! that the table was built for an ISA the CPU reported, which is what the
//! constructors check. No `target-cpu=native` is needed or used.
//!
//! Per-type entries come from [`with_block!`]: the runtime type picks a block
//! type once, and each ISA module supplies that type's entries through its
//! `*Block` trait (generic code underneath).
//!
//! How the matmuls are organised (all ISAs): weight rows are the outer loop
//! and activation rows are processed in tiles (up to 4 tokens with AVX2, 8
//! with AVX-512) while a decoded weight block sits in registers, so each
//! weight byte comes from memory once per call and batches cost little more
//! than one token while the matmul is bandwidth bound.
//! - Q8_0, Q4_0, MXFP4 (× Q8_0): blocks decode to 32 signed bytes; AVX2 uses
//!   ggml's sign trick (`maddubs(|w|, ±a)`), AVX-512 VNNI one `dpbusd` per
//!   block and token pair on `a + 128` codes with a per-block correction,
//!   with the same bits as AVX2.
//! - Q2_K, Q4_K, Q6_K, IQ2_XXS (× Q8_K): up to 4 tokens use fused per-type
//!   kernels that decode each 32-element chunk into registers (decode, n = 1);
//!   more tokens first unpack a group of rows into a common L1/L2-resident form
//!   ([`unpack`]: unsigned codes, pre-broadcast sub-block scales, bias/min
//!   multipliers) and run one integer kernel over it (batched decode and
//!   prefill), so the unpacking is paid once per row, not once per token.
//! - F32, F16, BF16 (× f32): conversion on load (F16C, shifts), two weight
//!   rows per pass when there are several tokens.
//! - Packed Q8_0 ([`packed`], AVX-512 VNNI): sixteen rows interleaved by
//!   four-code groups, one row per lane, the reference's bits for every
//!   batch size; the model keeps packed copies of its Q8_0 matrices.
//!
//! The integer block sums are exact in every variant; only the f32
//! accumulation order differs from the scalar reference.

use std::fmt;
use std::ops::Range;

use dsv4_gguf::GgmlType;

use crate::act::{ActBuf, ActType, ActView, act_type_for};
use crate::blocks::{WEIGHT_TYPES, slot_of, with_block};
use crate::error::QuantError;
use crate::out::OutCols;
use crate::rows::RowSet;

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512;
#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
mod neon;
mod packed;
#[cfg(target_arch = "x86_64")]
mod panel;
mod scalar;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod unpack;

pub use packed::{PACK_ROWS, PackedMatrix};

/// An instruction set the kernels can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable scalar code (the reference).
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL (plus VNNI where the CPU has it), with AVX2/FMA/F16C.
    Avx512,
    /// AArch64 Advanced SIMD.
    Neon,
}

impl Isa {
    /// Every ISA, best first.
    pub const ALL: [Isa; 4] = [Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Scalar];

    /// Lower-case name (`"avx2"`), as accepted by [`Isa::from_name`].
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses a name written by [`Isa::name`] (case-insensitive).
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(name))
    }

    /// Whether this CPU can run the ISA's kernels.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => x86_has_avx2(),
            Isa::Avx512 => x86_has_avx512(),
            Isa::Neon => arm_has_neon(),
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn x86_has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

#[cfg(target_arch = "x86_64")]
fn x86_has_avx512() -> bool {
    x86_has_avx2()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
}

#[cfg(target_arch = "x86_64")]
fn x86_has_vnni() -> bool {
    is_x86_feature_detected!("avx512vnni")
}

#[cfg(target_arch = "x86_64")]
fn x86_has_vbmi() -> bool {
    is_x86_feature_detected!("avx512vbmi")
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_has_avx2() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_has_avx512() -> bool {
    false
}

#[cfg(target_arch = "aarch64")]
fn arm_has_neon() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}

#[cfg(not(target_arch = "aarch64"))]
fn arm_has_neon() -> bool {
    false
}

/// Batch invariance: a matmul with at most this many activation rows gives
/// every row exactly the bits a one-row call would (the same kernel and the
/// same order of floating-point operations per row), on every kernel table.
/// Batched decode of up to this many sessions therefore produces the same
/// tokens as each session alone; larger batches (prefill chunks, more
/// sessions) take the faster tokens-in-lanes kernels, whose results may
/// differ from the row kernels in the last bits.
pub const INVARIANT_ROWS: usize = 4;

/// A validated matmul over `nrows` weight rows (`w` holds exactly those rows).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatmulJob<'a> {
    /// Row-major weight bytes of the rows to compute.
    pub w: &'a [u8],
    /// Bytes per row.
    pub row_bytes: usize,
    /// Rows to compute.
    pub nrows: usize,
    /// Elements per row.
    pub k: usize,
    /// Activations, in the weight type's format, `k` per row.
    pub act: ActView<'a>,
}

/// A validated float-weight matmul with f32 activations `x: [n, x_stride]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FloatJob<'a> {
    /// Row-major weight bytes (F32, F16 or BF16) of the rows to compute.
    pub w: &'a [u8],
    /// Bytes per row.
    pub row_bytes: usize,
    /// Rows to compute.
    pub nrows: usize,
    /// Elements per row.
    pub k: usize,
    /// Activations.
    pub x: &'a [f32],
    /// Floats between consecutive activation rows.
    pub x_stride: usize,
    /// Activation rows.
    pub n: usize,
}

impl<'a> FloatJob<'a> {
    /// The float job of a matmul whose activations are an F32 [`ActBuf`]
    /// (float weights): the buffer's rows are the f32 inputs.
    pub(crate) fn from_act(job: &MatmulJob<'a>) -> FloatJob<'a> {
        let (bytes, stride, _, _) = job.act.planes();
        FloatJob {
            w: job.w,
            row_bytes: job.row_bytes,
            nrows: job.nrows,
            k: job.k,
            x: bytemuck::cast_slice(bytes),
            x_stride: stride / 4,
            n: job.act.n(),
        }
    }
}

pub(crate) type MatmulFn = unsafe fn(&MatmulJob<'_>, &mut OutCols<'_>);
pub(crate) type DequantFn = unsafe fn(&[u8], &mut [f32]);
pub(crate) type FloatMmFn = unsafe fn(&FloatJob<'_>, &mut OutCols<'_>);
pub(crate) type QuantActFn = unsafe fn(&[f32], &mut ActBuf);
pub(crate) type DotFn = unsafe fn(&[f32], &[f32]) -> f32;
pub(crate) type AxpyFn = unsafe fn(f32, &[f32], &mut [f32]);
pub(crate) type ScaleFn = unsafe fn(f32, &mut [f32]);
/// `(p, ldp, rows, out)`: see [`Kernels::weighted_rows`]; shapes checked
/// by the caller.
pub(crate) type WeightedRowsFn = unsafe fn(&[f32], usize, RowSet<'_>, &mut [f32]);
/// `(q, rows, out, ldo, col0)`: see [`Kernels::scores`]; shapes checked by
/// the caller.
pub(crate) type ScoresFn = unsafe fn(&[f32], RowSet<'_>, &mut [f32], usize, usize);
pub(crate) type CvtFn = unsafe fn(&[u8], &mut [f32]);

const NSLOT: usize = WEIGHT_TYPES.len();

/// Entries of one ISA that do not depend on the weight type.
#[derive(Clone, Copy)]
pub(crate) struct CommonFns {
    /// F32 / F16 / BF16 weights × f32 activations.
    pub float_mm: [FloatMmFn; 3],
    /// Activation quantizers for F32 (copy), Q8_0, Q8_K.
    pub quant_act: [QuantActFn; 3],
    pub dot: DotFn,
    pub axpy: AxpyFn,
    pub weighted_rows: WeightedRowsFn,
    pub scores: ScoresFn,
    pub scale: ScaleFn,
    pub f16: CvtFn,
    pub bf16: CvtFn,
}

/// [`Kernels::weighted_rows`] as one `axpy` per row and output row, over
/// the columns `cols` only (the definition, and the tail of the tiled SIMD
/// versions). Shapes as checked by [`Kernels::weighted_rows`].
pub(crate) fn weighted_rows_by_axpy(
    axpy: impl Fn(f32, &[f32], &mut [f32]),
    p: &[f32],
    ldp: usize,
    rows: RowSet<'_>,
    cols: Range<usize>,
    out: &mut [f32],
) {
    for j in 0..rows.len() {
        let row = rows.row(j);
        for (h, o) in out.chunks_exact_mut(rows.hd()).enumerate() {
            axpy(p[h * ldp + j], &row[cols.clone()], &mut o[cols.clone()]);
        }
    }
}

/// Index of a float weight type in [`CommonFns::float_mm`].
fn float_index(ty: GgmlType) -> Option<usize> {
    match ty {
        GgmlType::F32 => Some(0),
        GgmlType::F16 => Some(1),
        GgmlType::BF16 => Some(2),
        _ => None,
    }
}

fn act_index(act: ActType) -> usize {
    match act {
        ActType::F32 => 0,
        ActType::Q8_0 => 1,
        ActType::Q8_K => 2,
    }
}

fn scalar_common() -> CommonFns {
    use crate::blocks::{Bf16Elem, F16Elem, F32Elem};
    CommonFns {
        float_mm: [
            scalar::float_matmul::<F32Elem>,
            scalar::float_matmul::<F16Elem>,
            scalar::float_matmul::<Bf16Elem>,
        ],
        quant_act: [scalar::quantize_act; 3],
        dot: scalar::dot,
        axpy: scalar::axpy,
        weighted_rows: scalar::weighted_rows,
        scores: scalar::scores,
        scale: scalar::scale,
        f16: scalar::f16_to_f32,
        bf16: scalar::bf16_to_f32,
    }
}

/// The (matmul, dequantize) entries of `ty` for `isa`. `isa` must be compiled
/// for this target (callers only pass available ISAs).
fn slot_entries(isa: Isa, ext: Ext, ty: GgmlType) -> (MatmulFn, DequantFn) {
    // `ext` only selects between AVX-512 variants.
    let _ = ext;
    // Every WEIGHT_TYPES entry has a block type, so the fallback arm below is
    // never taken; it keeps the table total without a panic.
    let scalar_f32: (MatmulFn, DequantFn) = (
        scalar::matmul::<crate::blocks::F32Elem>,
        scalar::dequant::<crate::blocks::F32Elem>,
    );
    with_block!(ty, B => match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => (<B as avx2::Avx2Block>::MATMUL, <B as avx2::Avx2Block>::DEQUANT),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => (
            avx512::matmul_entry::<B>(ext.vnni, ext.vbmi),
            <B as avx512::Avx512Block>::DEQUANT,
        ),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => (<B as neon::NeonBlock>::MATMUL, <B as neon::NeonBlock>::DEQUANT),
        _ => (scalar::matmul::<B> as MatmulFn, scalar::dequant::<B> as DequantFn),
    }, _ => scalar_f32)
}

/// AVX-512 extensions a table uses (both false for other ISAs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ext {
    /// VNNI (`vpdpbusd`).
    vnni: bool,
    /// VBMI (byte permutes), used only together with VNNI.
    vbmi: bool,
}

impl Ext {
    const NONE: Ext = Ext {
        vnni: false,
        vbmi: false,
    };
}

/// The kernel table for one instruction set (see the module docs).
#[derive(Clone, Copy)]
pub struct Kernels {
    isa: Isa,
    ext: Ext,
    matmul: [MatmulFn; NSLOT],
    dequant: [DequantFn; NSLOT],
    common: CommonFns,
    /// The packed Q8_0 kernel, where this table has one.
    packed_q8_0: Option<packed::PackedFn>,
}

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernels")
            .field("isa", &self.isa)
            .field("vnni", &self.ext.vnni)
            .field("vbmi", &self.ext.vbmi)
            .finish()
    }
}

// Calling through the table is calling `#[target_feature]` functions.
#[allow(unsafe_code)]
impl Kernels {
    /// The best instruction set this CPU supports.
    pub fn detect() -> Kernels {
        let isa = Isa::ALL
            .into_iter()
            .find(|i| i.is_available())
            .unwrap_or(Isa::Scalar);
        Self::build(isa)
    }

    /// The table for `isa`, or an error naming what is available if the CPU
    /// lacks it.
    pub fn with_isa(isa: Isa) -> Result<Kernels, QuantError> {
        if !isa.is_available() {
            let available = Self::available()
                .iter()
                .map(|i| i.name())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(QuantError::IsaUnavailable { isa, available });
        }
        Ok(Self::build(isa))
    }

    /// The instruction sets this CPU supports, best first.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// Every kernel table this CPU can run: one per available ISA, plus the
    /// AVX-512 tables with fewer extensions than the CPU has (VNNI without
    /// VBMI, neither), so tests and benchmarks cover every code path on one
    /// machine.
    pub fn all_variants() -> Vec<Kernels> {
        let mut out: Vec<Kernels> = Self::available().into_iter().map(Self::build).collect();
        if out.iter().any(|k| k.ext.vbmi) {
            let ext = Ext {
                vnni: true,
                vbmi: false,
            };
            out.push(Self::build_with(Isa::Avx512, ext));
        }
        if out.iter().any(|k| k.ext.vnni) {
            out.push(Self::build_with(Isa::Avx512, Ext::NONE));
        }
        out
    }

    fn build(isa: Isa) -> Kernels {
        #[cfg(target_arch = "x86_64")]
        let ext = {
            let vnni = isa == Isa::Avx512 && x86_has_vnni();
            Ext {
                vnni,
                vbmi: vnni && x86_has_vbmi(),
            }
        };
        #[cfg(not(target_arch = "x86_64"))]
        let ext = Ext::NONE;
        Self::build_with(isa, ext)
    }

    /// Builds the table for an available `isa`; extensions only that the
    /// CPU has.
    fn build_with(isa: Isa, ext: Ext) -> Kernels {
        let mut matmul = [scalar::matmul::<crate::blocks::F32Elem> as MatmulFn; NSLOT];
        let mut dequant = [scalar::dequant::<crate::blocks::F32Elem> as DequantFn; NSLOT];
        for (i, &ty) in WEIGHT_TYPES.iter().enumerate() {
            (matmul[i], dequant[i]) = slot_entries(isa, ext, ty);
        }
        let common = match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => avx2::common(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => avx512::common(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::common(),
            _ => scalar_common(),
        };
        #[cfg(target_arch = "x86_64")]
        let packed_q8_0 = (isa == Isa::Avx512 && ext.vnni)
            .then_some(avx512::packed::matmul_q8_0_packed as packed::PackedFn);
        #[cfg(not(target_arch = "x86_64"))]
        let packed_q8_0 = None;
        Kernels {
            isa,
            ext,
            matmul,
            dequant,
            common,
            packed_q8_0,
        }
    }

    /// The instruction set of this table.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// A one-line description for logs and `--kernels` listings, e.g.
    /// `"avx512 (+vnni +vbmi)"`.
    pub fn describe(&self) -> String {
        match (self.ext.vnni, self.ext.vbmi) {
            (true, true) => format!("{} (+vnni +vbmi)", self.isa),
            (true, false) => format!("{} (+vnni)", self.isa),
            _ => self.isa.to_string(),
        }
    }

    /// Quantizes `x: [n, k]` (row-major) into `out` in format `act`. The
    /// buffer's allocation is reused when large enough.
    pub fn quantize_act(
        &self,
        act: ActType,
        x: &[f32],
        n: usize,
        k: usize,
        out: &mut ActBuf,
    ) -> Result<(), QuantError> {
        let block = act.block_elems();
        if k == 0 || !k.is_multiple_of(block) {
            let ty = match act {
                ActType::F32 => GgmlType::F32,
                ActType::Q8_0 => GgmlType::Q8_0,
                ActType::Q8_K => GgmlType::Q8_K,
            };
            return Err(QuantError::RowNotBlockAligned { ty, k, block });
        }
        check_len("activations x", n.saturating_mul(k), x.len(), "floats")?;
        out.prepare(act, n, k);
        // SAFETY: the table was built for an ISA this CPU supports; `out` was
        // prepared for `n` rows of `k` in format `act`, and `x` holds `n · k`.
        unsafe { (self.common.quant_act[act_index(act)])(x, out) };
        Ok(())
    }

    /// `out[t, r − rows.start] = dot(W[r, :], act[t, :])` for every activation
    /// row `t` and weight row `r` in `rows`.
    ///
    /// `w` is the whole row-major weight matrix of type `ty` (row stride
    /// `ty.row_bytes(k)`); `act` must hold `act_type_for(ty)` rows of length
    /// `k`; `out` must be a window of `act.n()` rows and `rows.len()` columns.
    /// Each weight block is read from memory once per call and used for all
    /// activation rows. Threads may run disjoint row ranges into disjoint
    /// windows of one output (see [`OutCols::split_even`]).
    pub fn matmul(
        &self,
        ty: GgmlType,
        w: &[u8],
        k: usize,
        rows: Range<usize>,
        act: &ActBuf,
        out: &mut OutCols<'_>,
    ) -> Result<(), QuantError> {
        let slot = slot_of(ty)?;
        let expected = act_type_for(ty)?;
        let (w, row_bytes) = check_weights(ty, w, k, &rows)?;
        if act.act_type() != expected || act.k() != k {
            return Err(QuantError::ActMismatch {
                ty,
                k,
                expected,
                got: act.act_type(),
                got_k: act.k(),
            });
        }
        check_out(act.n(), rows.len(), out)?;
        if act.n() == 0 || rows.is_empty() {
            return Ok(());
        }
        let chunk = match expected {
            ActType::F32 => token_chunk(k, 4, CHUNK_BYTES),
            ActType::Q8_0 => token_chunk(k, 1, CHUNK_BYTES),
            // The Q8_K-family rows are unpacked once per chunk: a longer
            // chunk spreads that over more tokens.
            ActType::Q8_K => token_chunk(k, 1, 2 * CHUNK_BYTES),
        };
        for t0 in (0..act.n()).step_by(chunk) {
            let nt = chunk.min(act.n() - t0);
            let job = MatmulJob {
                w,
                row_bytes,
                nrows: rows.len(),
                k,
                act: act.view(t0..t0 + nt),
            };
            let mut sub = out.sub_rows(t0, nt);
            // SAFETY: ISA availability was checked when the table was built;
            // the job's shapes were validated above (weights hold `nrows` rows
            // of `row_bytes`, activations are `nt × k` in the paired format,
            // the output window is `nt × nrows`).
            unsafe { (self.matmul[slot])(&job, &mut sub) };
        }
        Ok(())
    }

    /// The same product as [`Kernels::matmul`] computed in f32 from
    /// dequantized weights and unquantized activations `x: [n, k]`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_f32(
        &self,
        ty: GgmlType,
        w: &[u8],
        k: usize,
        rows: Range<usize>,
        x: &[f32],
        n: usize,
        out: &mut OutCols<'_>,
    ) -> Result<(), QuantError> {
        let slot = slot_of(ty)?;
        let (w, row_bytes) = check_weights(ty, w, k, &rows)?;
        check_len("activations x", n.saturating_mul(k), x.len(), "floats")?;
        check_out(n, rows.len(), out)?;
        if n == 0 || rows.is_empty() {
            return Ok(());
        }
        let nrows = rows.len();
        if let Some(fi) = float_index(ty) {
            let chunk = token_chunk(k, 4, CHUNK_BYTES);
            for t0 in (0..n).step_by(chunk) {
                let nt = chunk.min(n - t0);
                let xs = &x[t0 * k..(t0 + nt) * k];
                let job = FloatJob {
                    w,
                    row_bytes,
                    nrows,
                    k,
                    x: xs,
                    x_stride: k,
                    n: nt,
                };
                let mut sub = out.sub_rows(t0, nt);
                // SAFETY: ISA checked at construction; shapes validated above.
                unsafe { (self.common.float_mm[fi])(&job, &mut sub) };
            }
            return Ok(());
        }
        // Dequantize a few rows at a time into f32 and run the F32 kernel.
        const CHUNK: usize = 8;
        let mut scratch = vec![0.0f32; CHUNK.min(nrows) * k];
        for r0 in (0..nrows).step_by(CHUNK) {
            let rb = CHUNK.min(nrows - r0);
            for i in 0..rb {
                let src = &w[(r0 + i) * row_bytes..(r0 + i + 1) * row_bytes];
                // SAFETY: ISA checked at construction; `src` is one whole row
                // of `ty` and the destination holds its `k` values.
                unsafe { (self.dequant[slot])(src, &mut scratch[i * k..(i + 1) * k]) };
            }
            let job = FloatJob {
                w: bytemuck::cast_slice(&scratch[..rb * k]),
                row_bytes: 4 * k,
                nrows: rb,
                k,
                x,
                x_stride: k,
                n,
            };
            let mut sub = out.sub_window(r0, rb);
            // SAFETY: as above; the scratch holds `rb` F32 rows of `k`.
            unsafe { (self.common.float_mm[0])(&job, &mut sub) };
        }
        Ok(())
    }

    /// Dequantizes one row (or any whole number of blocks) of type `ty` into
    /// `dst` (`dst.len()` elements). I32 rows are converted value by value.
    pub fn dequantize_row(
        &self,
        ty: GgmlType,
        src: &[u8],
        dst: &mut [f32],
    ) -> Result<(), QuantError> {
        if ty == GgmlType::I32 {
            check_len("I32 row bytes", dst.len() * 4, src.len(), "bytes")?;
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as f32;
            }
            return Ok(());
        }
        let slot = slot_of(ty)?;
        let block = ty.block_elems() as usize;
        if !dst.len().is_multiple_of(block) {
            return Err(QuantError::RowNotBlockAligned {
                ty,
                k: dst.len(),
                block,
            });
        }
        let bytes = dst.len() / block * ty.block_bytes() as usize;
        check_len("quantized row bytes", bytes, src.len(), "bytes")?;
        // SAFETY: ISA checked at construction; `src` holds exactly the blocks
        // whose values fill `dst`.
        unsafe { (self.dequant[slot])(src, dst) };
        Ok(())
    }

    /// `Σ a_i · b_i` over the common length (callers pass equal lengths).
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        let n = a.len().min(b.len());
        // SAFETY: ISA checked at construction; equal-length slices.
        unsafe { (self.common.dot)(&a[..n], &b[..n]) }
    }

    /// `y[i] += a · x[i]` over the common length.
    pub fn axpy(&self, a: f32, x: &[f32], y: &mut [f32]) {
        debug_assert_eq!(x.len(), y.len());
        let n = x.len().min(y.len());
        // SAFETY: ISA checked at construction; equal-length slices.
        unsafe { (self.common.axpy)(a, &x[..n], &mut y[..n]) }
    }

    /// Weighted sums of rows: `out[h] += Σ_j p[h · ldp + j] · rows[j]` for
    /// every output row `h` of `out: [nh, hd]`, with `m = rows.len()` rows
    /// of `hd = rows.hd()` floats and the weights of row `h` at
    /// `p[h · ldp .. h · ldp + m]` (attention's probabilities times values).
    /// Each element is updated exactly as [`Kernels::axpy`] calls for `j =
    /// 0, 1, …` would update it (the same operations in the same order, so
    /// the same bits); the SIMD tables keep a tile of `out` in registers
    /// across all `j` instead of reading and writing it once per row.
    pub fn weighted_rows(
        &self,
        p: &[f32],
        ldp: usize,
        rows: RowSet<'_>,
        out: &mut [f32],
    ) -> Result<(), QuantError> {
        let nh = whole_rows("weighted rows", "output", out.len(), rows.hd())?;
        let m = rows.len();
        if m == 0 || nh == 0 {
            return Ok(());
        }
        check_strided("weighted rows", "weight", nh, ldp, 0, m, p.len())?;
        // SAFETY: ISA checked at construction; shapes checked above.
        unsafe { (self.common.weighted_rows)(p, ldp, rows, out) };
        Ok(())
    }

    /// Scores of query rows against a set of rows: `out[h · ldo + col0 + j]
    /// = Σ_d q[h · hd + d] · rows[j][d]` for every query row `h` of `q:
    /// [nh, hd]` and row `j` of `rows` (attention's `q · kᵀ`, before any
    /// scaling). Every table computes each score the same way, so all give
    /// the same bits: per block of [`SCORE_BLOCK`] elements one fused
    /// multiply-add per element in order from zero, then the blocks' sums
    /// added in order (short chains: the rounding error grows with the
    /// block, not the row length). The SIMD tables put query rows in lanes
    /// and broadcast the key elements, so there is no horizontal sum.
    pub fn scores(
        &self,
        q: &[f32],
        rows: RowSet<'_>,
        out: &mut [f32],
        ldo: usize,
        col0: usize,
    ) -> Result<(), QuantError> {
        let nh = whole_rows("scores", "queries", q.len(), rows.hd())?;
        let m = rows.len();
        if m == 0 || nh == 0 {
            return Ok(());
        }
        check_strided("scores", "output", nh, ldo, col0, m, out.len())?;
        // SAFETY: ISA checked at construction; shapes checked above.
        unsafe { (self.common.scores)(q, rows, out, ldo, col0) };
        Ok(())
    }

    /// `x[i] *= a`.
    pub fn scale(&self, a: f32, x: &mut [f32]) {
        // SAFETY: ISA checked at construction.
        unsafe { (self.common.scale)(a, x) }
    }

    /// Converts little-endian IEEE half bytes (`2 · dst.len()`) to f32.
    pub fn f16_to_f32(&self, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
        check_len("F16 bytes", dst.len() * 2, src.len(), "bytes")?;
        // SAFETY: ISA checked at construction; lengths checked above.
        unsafe { (self.common.f16)(src, dst) };
        Ok(())
    }

    /// Converts little-endian bfloat16 bytes (`2 · dst.len()`) to f32.
    pub fn bf16_to_f32(&self, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
        check_len("BF16 bytes", dst.len() * 2, src.len(), "bytes")?;
        // SAFETY: ISA checked at construction; lengths checked above.
        unsafe { (self.common.bf16)(src, dst) };
        Ok(())
    }
}

/// Elements per fused multiply-add chain of [`Kernels::scores`].
pub(crate) const SCORE_BLOCK: usize = 32;

/// Activation bytes of one pass over the weights (see [`token_chunk`]).
pub(crate) const CHUNK_BYTES: usize = 256 << 10;

/// Tokens processed per pass over the weights when a batch is long: enough
/// that the activations of one pass (`tokens · k · elem_bytes`) stay within
/// about `budget` bytes of L2 while every weight row streams over them.
/// Short batches (the usual decode case) are one pass, so each weight byte is
/// read from memory once; long prefill batches read the weights once per
/// chunk, which costs little because they are compute bound.
pub(crate) fn token_chunk(k: usize, elem_bytes: usize, budget: usize) -> usize {
    let fit = budget / (k * elem_bytes).max(1);
    (fit / 8 * 8).max(16)
}

/// The number of `hd`-float rows in a buffer of `len` floats, which must be
/// whole rows (`hd > 0` is a [`RowSet`] invariant).
fn whole_rows(
    what: &'static str,
    buffer: &str,
    len: usize,
    hd: usize,
) -> Result<usize, QuantError> {
    if !len.is_multiple_of(hd) {
        return Err(QuantError::BadShape {
            what,
            reason: format!("row length {hd} must divide the {buffer} ({len} floats)"),
        });
    }
    Ok(len / hd)
}

/// Checks that `nrows` rows (`nrows > 0`) of a strided buffer (`stride`
/// floats apart, each using columns `offset .. offset + width`) fit in
/// `len` floats.
fn check_strided(
    what: &'static str,
    buffer: &str,
    nrows: usize,
    stride: usize,
    offset: usize,
    width: usize,
    len: usize,
) -> Result<(), QuantError> {
    if offset + width > stride {
        return Err(QuantError::BadShape {
            what,
            reason: format!(
                "columns {offset}..{} do not fit the {buffer} stride {stride}",
                offset + width
            ),
        });
    }
    let need = (nrows - 1) * stride + offset + width;
    if len < need {
        return Err(QuantError::BadShape {
            what,
            reason: format!(
                "{nrows} rows of {buffer} stride {stride} need {need} floats, got {len}"
            ),
        });
    }
    Ok(())
}

fn check_len(
    what: &'static str,
    expected: usize,
    got: usize,
    unit: &'static str,
) -> Result<(), QuantError> {
    if expected != got {
        return Err(QuantError::BadLength {
            what,
            expected,
            got,
            unit,
        });
    }
    Ok(())
}

/// Validates a weight matrix and row range; returns the bytes of those rows
/// and the row stride.
fn check_weights<'w>(
    ty: GgmlType,
    w: &'w [u8],
    k: usize,
    rows: &Range<usize>,
) -> Result<(&'w [u8], usize), QuantError> {
    let block = ty.block_elems() as usize;
    if k == 0 || !k.is_multiple_of(block) {
        return Err(QuantError::RowNotBlockAligned { ty, k, block });
    }
    let row_bytes = k / block * ty.block_bytes() as usize;
    if !w.len().is_multiple_of(row_bytes) {
        return Err(QuantError::BadLength {
            what: "weight matrix (must be whole rows)",
            expected: w.len() / row_bytes * row_bytes,
            got: w.len(),
            unit: "bytes",
        });
    }
    let total = w.len() / row_bytes;
    if rows.start > rows.end || rows.end > total {
        return Err(QuantError::RowsOutOfRange {
            start: rows.start,
            end: rows.end,
            rows: total,
        });
    }
    Ok((&w[rows.start * row_bytes..rows.end * row_bytes], row_bytes))
}

pub(crate) fn check_out(n: usize, cols: usize, out: &OutCols<'_>) -> Result<(), QuantError> {
    if out.n() != n || out.cols() != cols {
        return Err(QuantError::OutMismatch {
            n,
            cols,
            out_n: out.n(),
            out_cols: out.cols(),
        });
    }
    Ok(())
}
