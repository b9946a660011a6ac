//! Row-interleaved ("packed") Q8_0 weights and their matmul entry.
//!
//! A decode step reads every dense weight once and multiplies it by one to
//! [`INVARIANT_ROWS`](crate::INVARIANT_ROWS) tokens. In ggml's row-major
//! Q8_0 layout a 32-byte block belongs to one row, so a SIMD dot product
//! leaves eight partial sums per block in eight lanes and has to scale
//! them lane by lane: most of the instructions of a batched decode are that
//! float epilogue, not the multiplies. [`PackedMatrix`] stores the same
//! bytes with [`PACK_ROWS`] rows interleaved in groups of four codes, so one
//! 512-bit load holds the same four codes of sixteen rows, one `vpdpbusd`
//! against four broadcast activation codes adds them into each row's own
//! lane, and each block's exact integer sum for sixteen rows is ready after
//! eight of them, with one scale step for all sixteen.
//!
//! Layout, per group of [`PACK_ROWS`] rows (`nb = k / 32` blocks; the last
//! group padded with zero rows; groups [`PackedMatrix::group_stride`] bytes
//! apart), one sequential stream of block pairs, [`PAIR_BYTES`] each (an odd
//! `nb` padded with a zero block):
//! - codes of block `b` at [`code_offset`]`(b)`, 512 bytes: line `g` (64
//!   bytes) holds, for row `i` of the group, codes `4g .. 4g + 4` at bytes
//!   `4i .. 4i + 4`, each stored as `q ^ 0x80` (= `q + 128`, unsigned, for
//!   `vpdpbusd`);
//! - the 16 rows' f16 scales of block `b` at [`scale_offset`]`(b)`, 32 bytes,
//!   unchanged.
//!
//! The size is that of the Q8_0 rows (34 bytes per 32 weights) plus padding.
//! Every packed kernel computes exactly [`crate::QuantBlock::dot_ref`] of Q8_0: per
//! block the exact integer sum, `sum += f32(sumi) · (d_w · d_a)` in block
//! order, so packed results are bit-identical to the scalar reference, for
//! every batch size.

use std::ops::Range;

use dsv4_gguf::GgmlType;

use crate::act::{ActBuf, ActType, ActView};
use crate::blocks::{BlockQ8_0, QK8_0};
use crate::error::QuantError;
use crate::kernels::{CHUNK_BYTES, Kernels, check_out, token_chunk};
use crate::out::OutCols;

/// Weight rows interleaved per group of a [`PackedMatrix`].
pub const PACK_ROWS: usize = 16;

/// Code bytes of one block of one group (16 rows × 32 codes).
const BLOCK_CODES: usize = PACK_ROWS * QK8_0;

/// Bytes of a pair of blocks of one group: both blocks' codes, then both
/// blocks' 16 f16 scales (17 cache lines).
pub(crate) const PAIR_BYTES: usize = 2 * BLOCK_CODES + 2 * PACK_ROWS * 2;

/// Offset of block `b`'s codes in its group.
#[inline(always)]
pub(crate) const fn code_offset(b: usize) -> usize {
    (b / 2) * PAIR_BYTES + (b % 2) * BLOCK_CODES
}

/// Offset of block `b`'s 16 scales in its group.
#[inline(always)]
pub(crate) const fn scale_offset(b: usize) -> usize {
    (b / 2) * PAIR_BYTES + 2 * BLOCK_CODES + (b % 2) * PACK_ROWS * 2
}

/// Bytes of one group of rows of `nb` blocks.
const fn group_bytes(nb: usize) -> usize {
    nb.div_ceil(2) * PAIR_BYTES
}

/// A Q8_0 weight matrix `[rows, k]` in the row-interleaved layout of the
/// module docs, made by [`Kernels::pack`] for the tables that have a
/// packed kernel, and multiplied with [`Kernels::matmul_packed`].
pub struct PackedMatrix {
    ty: GgmlType,
    rows: usize,
    k: usize,
    group_stride: usize,
    /// Anonymous memory advised for transparent huge pages before it is
    /// written: every decode step streams the whole copy, and with 4 KiB
    /// pages each 4 KiB of it needs its own TLB entry, while the row-major
    /// file mapping it replaces gets huge pages from the kernel where the
    /// filesystem allows (on the development VM both map with 2 MiB pages).
    data: memmap2::MmapMut,
    len: usize,
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedMatrix")
            .field("ty", &self.ty)
            .field("rows", &self.rows)
            .field("k", &self.k)
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl PackedMatrix {
    /// The weight type the rows came from.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Weight rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Elements per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Bytes held (including the padding of the last group).
    pub fn bytes(&self) -> usize {
        self.len
    }

    /// Bytes from one group to the next.
    pub(crate) fn group_stride(&self) -> usize {
        self.group_stride
    }

    /// The bytes of groups `g0 ..` to the end.
    pub(crate) fn groups_from(&self, g0: usize) -> &[u8] {
        self.data[..self.len]
            .get(g0 * self.group_stride..)
            .unwrap_or(&[])
    }

    /// Bytes a packed copy of `rows` rows of `k` Q8_0 elements holds
    /// (`k` a multiple of 32).
    pub(crate) fn bytes_for(rows: usize, k: usize) -> usize {
        rows.div_ceil(PACK_ROWS) * group_bytes(k / QK8_0)
    }

    /// Packs the row-major Q8_0 matrix `w: [rows, k]`.
    pub(crate) fn pack_q8_0(w: &[u8], rows: usize, k: usize) -> Result<PackedMatrix, QuantError> {
        let what = "packed Q8_0 matrix";
        if k == 0 || !k.is_multiple_of(QK8_0) {
            return Err(QuantError::RowNotBlockAligned {
                ty: GgmlType::Q8_0,
                k,
                block: QK8_0,
            });
        }
        let nb = k / QK8_0;
        let row_bytes = nb * std::mem::size_of::<BlockQ8_0>();
        let expected = rows
            .checked_mul(row_bytes)
            .ok_or_else(|| QuantError::BadShape {
                what,
                reason: format!("{rows} rows of {row_bytes} bytes overflow"),
            })?;
        if w.len() != expected {
            return Err(QuantError::BadLength {
                what,
                expected,
                got: w.len(),
                unit: "bytes",
            });
        }
        let group_stride = group_bytes(nb);
        let groups = rows.div_ceil(PACK_ROWS);
        let len = groups * group_stride;
        // One page at least: an empty anonymous mapping is an error.
        let mut data = memmap2::MmapMut::map_anon(len.max(1)).map_err(|e| QuantError::Alloc {
            what,
            bytes: len,
            reason: e.to_string(),
        })?;
        // Only a hint: without transparent huge pages the copy still works.
        #[cfg(target_os = "linux")]
        let _ = data.advise(memmap2::Advice::HugePage);
        let blocks: &[BlockQ8_0] = bytemuck::cast_slice(w);
        for (g, dst) in data[..len].chunks_exact_mut(group_stride).enumerate() {
            // Padding rows and blocks: code 0 (stored 0x80), scale 0.
            for b in 0..nb.next_multiple_of(2) {
                dst[code_offset(b)..code_offset(b) + BLOCK_CODES].fill(0x80);
            }
            for i in 0..PACK_ROWS.min(rows - g * PACK_ROWS) {
                let row = &blocks[(g * PACK_ROWS + i) * nb..(g * PACK_ROWS + i + 1) * nb];
                for (b, blk) in row.iter().enumerate() {
                    for (q, chunk) in blk.qs.chunks_exact(4).enumerate() {
                        let at = code_offset(b) + 64 * q + 4 * i;
                        for (d, &c) in dst[at..at + 4].iter_mut().zip(chunk) {
                            *d = (c as u8) ^ 0x80;
                        }
                    }
                    let at = scale_offset(b) + 2 * i;
                    dst[at..at + 2].copy_from_slice(&blk.d);
                }
            }
        }
        Ok(PackedMatrix {
            ty: GgmlType::Q8_0,
            rows,
            k,
            group_stride,
            data,
            len,
        })
    }
}

/// A validated packed matmul: groups from the first of the job's rows.
/// (Read only by the x86-64 kernel; other targets have no packed kernel.)
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct PackedJob<'a> {
    /// Group bytes, starting at the job's first group.
    pub groups: &'a [u8],
    /// Bytes from one group to the next.
    pub group_stride: usize,
    /// Rows to compute (from the first group's first row).
    pub nrows: usize,
    /// Elements per row.
    pub k: usize,
    /// Q8_0 activations.
    pub act: ActView<'a>,
}

pub(crate) type PackedFn = unsafe fn(&PackedJob<'_>, &mut OutCols<'_>);

// Calling through the table is calling `#[target_feature]` functions.
#[allow(unsafe_code)]
impl Kernels {
    /// Whether this table multiplies `ty` weights faster in the packed
    /// layout ([`Kernels::pack`] returns `None` otherwise).
    pub fn packs(&self, ty: GgmlType) -> bool {
        ty == GgmlType::Q8_0 && self.packed_q8_0.is_some()
    }

    /// The bytes [`Kernels::pack`] would hold for a `[rows, k]` matrix of
    /// `ty`, or `None` when this table does not pack `ty`.
    pub fn packed_bytes(&self, ty: GgmlType, rows: usize, k: usize) -> Option<usize> {
        self.packs(ty).then(|| PackedMatrix::bytes_for(rows, k))
    }

    /// The row-major matrix `w: [rows, k]` of type `ty` in this table's packed
    /// layout, or `None` when this table has no packed kernel for `ty` (use
    /// [`Kernels::matmul`] on the row-major bytes then).
    pub fn pack(
        &self,
        ty: GgmlType,
        w: &[u8],
        rows: usize,
        k: usize,
    ) -> Result<Option<PackedMatrix>, QuantError> {
        if !self.packs(ty) {
            return Ok(None);
        }
        PackedMatrix::pack_q8_0(w, rows, k).map(Some)
    }

    /// [`Kernels::matmul`] on a packed matrix: `out[t, r − rows.start] =
    /// dot(W[r, :], act[t, :])` for `r` in `rows`, bit-identical to the
    /// scalar reference. `rows.start` must be a multiple of [`PACK_ROWS`]
    /// (split work with [`OutCols::split_aligned`]).
    pub fn matmul_packed(
        &self,
        p: &PackedMatrix,
        rows: Range<usize>,
        act: &ActBuf,
        out: &mut OutCols<'_>,
    ) -> Result<(), QuantError> {
        let Some(kernel) = self.packed_entry(p.ty) else {
            return Err(QuantError::UnsupportedOp {
                op: "a packed matmul on this kernel table",
                ty: p.ty,
            });
        };
        if rows.start > rows.end || rows.end > p.rows {
            return Err(QuantError::RowsOutOfRange {
                start: rows.start,
                end: rows.end,
                rows: p.rows,
            });
        }
        if !rows.start.is_multiple_of(PACK_ROWS) {
            return Err(QuantError::BadShape {
                what: "packed matmul",
                reason: format!(
                    "row range {}..{} must start at a multiple of {PACK_ROWS}",
                    rows.start, rows.end
                ),
            });
        }
        if act.act_type() != ActType::Q8_0 || act.k() != p.k {
            return Err(QuantError::ActMismatch {
                ty: p.ty,
                k: p.k,
                expected: ActType::Q8_0,
                got: act.act_type(),
                got_k: act.k(),
            });
        }
        check_out(act.n(), rows.len(), out)?;
        if act.n() == 0 || rows.is_empty() {
            return Ok(());
        }
        // Tokens in chunks whose codes stay in L2 while every group of
        // weights passes over them.
        let chunk = token_chunk(p.k, 1, CHUNK_BYTES);
        for t0 in (0..act.n()).step_by(chunk) {
            let nt = chunk.min(act.n() - t0);
            let job = PackedJob {
                groups: p.groups_from(rows.start / PACK_ROWS),
                group_stride: p.group_stride(),
                nrows: rows.len(),
                k: p.k,
                act: act.view(t0..t0 + nt),
            };
            let mut sub = out.sub_rows(t0, nt);
            // SAFETY: the table was built for an ISA this CPU supports; the
            // job's groups cover `nrows` rows (`rows` lies inside the matrix
            // and starts on a group), the activations are `nt × k` Q8_0 rows
            // and the output window is `nt × nrows`.
            unsafe { kernel(&job, &mut sub) };
        }
        Ok(())
    }

    fn packed_entry(&self, ty: GgmlType) -> Option<PackedFn> {
        if ty == GgmlType::Q8_0 {
            self.packed_q8_0
        } else {
            None
        }
    }
}

/// Row `r` of a packed job restored to Q8_0 blocks (tests of the layout).
#[cfg(test)]
pub(crate) fn unpack_row(job: &PackedJob<'_>, r: usize) -> Vec<BlockQ8_0> {
    let nb = job.k / QK8_0;
    let g = &job.groups[(r / PACK_ROWS) * job.group_stride..];
    let i = r % PACK_ROWS;
    (0..nb)
        .map(|b| {
            let mut qs = [0i8; QK8_0];
            for (j, q) in qs.iter_mut().enumerate() {
                *q = (g[code_offset(b) + 64 * (j / 4) + 4 * i + j % 4] ^ 0x80) as i8;
            }
            let at = scale_offset(b) + 2 * i;
            BlockQ8_0 {
                d: [g[at], g[at + 1]],
                qs,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_keeps_every_row() {
        let (rows, k) = (37, 96);
        let nb = k / QK8_0;
        let blocks: Vec<BlockQ8_0> = (0..rows * nb)
            .map(|i| {
                let mut qs = [0i8; QK8_0];
                for (j, q) in qs.iter_mut().enumerate() {
                    *q = ((i * 31 + j * 7) % 256) as u8 as i8;
                }
                BlockQ8_0 {
                    d: [(i % 251) as u8, (i % 7) as u8],
                    qs,
                }
            })
            .collect();
        let w: &[u8] = bytemuck::cast_slice(&blocks);
        let p = PackedMatrix::pack_q8_0(w, rows, k).unwrap();
        assert_eq!(p.group_stride() % 64, 0);
        assert_eq!(PAIR_BYTES % 64, 0);
        assert_eq!(p.bytes(), PackedMatrix::bytes_for(rows, k));
        let act = ActBuf::new();
        let job = PackedJob {
            groups: p.groups_from(0),
            group_stride: p.group_stride(),
            nrows: rows,
            k,
            act: act.view(0..0),
        };
        for r in 0..rows {
            let got = unpack_row(&job, r);
            let want = &blocks[r * nb..(r + 1) * nb];
            assert_eq!(
                bytemuck::cast_slice::<_, u8>(&got),
                bytemuck::cast_slice::<_, u8>(want)
            );
        }
        // Padding rows of the last group are zero codes with zero scales.
        let pad = unpack_row(&job, rows);
        assert!(pad.iter().all(|b| b.qs == [0; QK8_0] && b.d == [0, 0]));
        assert!(PackedMatrix::pack_q8_0(&w[1..], rows, k).is_err());
        assert!(PackedMatrix::pack_q8_0(w, rows, k + 1).is_err());
    }
}
