//! Packed copies of the weight matrices whose type the kernel table
//! multiplies faster in its own layout (Q8_0 on AVX-512 VNNI: rows
//! interleaved, see `dsv4_quant::PackedMatrix`).
//!
//! The store is built once per backend, on the first product (or an explicit
//! `Backend::prepare`), from every matrix and expert stack of the model,
//! in parallel on the backend's threads. A product looks its matrix up by
//! byte range; a row slice (a group of `attn_output_a`, one expert of a
//! stack) uses its parent's packed copy when it starts on a packed group.
//! Packed results are bit-identical to the row-major kernels' reference, so
//! packing changes speed and memory (the packed bytes are extra, anonymous
//! memory the size of the packed matrices), never results beyond the last
//! bits the row-major SIMD kernels already differ by.

use std::collections::BTreeMap;
use std::ops::Range;

use dsv4_quant::{Kernels, PACK_ROWS, PackedMatrix};

use super::CpuBackend;
use crate::error::{ModelError, Result};
use crate::model::Model;
use crate::weights::Matrix;

/// Packed matrices of one model, keyed by the byte offset of their rows in
/// the file image.
#[derive(Debug, Default)]
pub(crate) struct PackedStore {
    /// Address and length of the file image the store was built from.
    image: (usize, usize),
    by_start: BTreeMap<usize, (Matrix, PackedMatrix)>,
    bytes: usize,
}

impl PackedStore {
    /// The matrices of `model` that `kernels` packs: all but the token
    /// embedding (read by rows, not multiplied).
    fn candidates<'m>(kernels: &Kernels, model: &'m Model) -> Vec<&'m Matrix> {
        model
            .weights
            .matrices()
            .into_iter()
            .filter(|m| kernels.packs(m.ty) && m.rows > 0)
            .filter(|m| !std::ptr::eq(*m, &model.weights.token_embd))
            .collect()
    }

    /// The bytes [`PackedStore::build`] would hold.
    pub(crate) fn planned_bytes(kernels: &Kernels, model: &Model) -> u64 {
        Self::candidates(kernels, model)
            .iter()
            .filter_map(|m| kernels.packed_bytes(m.ty, m.rows, m.k))
            .map(|b| b as u64)
            .sum()
    }

    /// Packs every matrix of `model` that `kernels` packs.
    pub(crate) fn build(
        kernels: &Kernels,
        model: &Model,
        pool: &rayon::ThreadPool,
    ) -> Result<Self> {
        use rayon::prelude::*;
        let image = model.file().raw();
        let todo = Self::candidates(kernels, model);
        let packed: Vec<(Matrix, PackedMatrix)> = pool.install(|| {
            todo.par_iter()
                .filter_map(|m| match kernels.pack(m.ty, model.bytes(m), m.rows, m.k) {
                    Ok(Some(p)) => Some(Ok(((*m).clone(), p))),
                    Ok(None) => None,
                    Err(e) => Some(Err(ModelError::Kernel {
                        tensor: m.name.clone(),
                        reason: format!("cannot pack: {e}"),
                    })),
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let bytes = packed.iter().map(|(_, p)| p.bytes()).sum();
        Ok(PackedStore {
            image: (image.as_ptr() as usize, image.len()),
            by_start: packed
                .into_iter()
                .map(|(m, p)| (m.range.start, (m, p)))
                .collect(),
            bytes,
        })
    }

    /// The packed copy holding `m` and the rows of it `m` covers, if `m`
    /// (of `model`) is a packed matrix or a group-aligned row slice of one.
    pub(crate) fn find(&self, model: &Model, m: &Matrix) -> Option<(&PackedMatrix, Range<usize>)> {
        let image = model.file().raw();
        if self.image != (image.as_ptr() as usize, image.len()) {
            return None;
        }
        let (_, (parent, p)) = self.by_start.range(..=m.range.start).next_back()?;
        let rb = parent.row_bytes();
        let inside =
            m.ty == parent.ty && m.k == parent.k && m.range.end <= parent.range.end && rb > 0;
        let offset = m.range.start - parent.range.start;
        if !inside || !offset.is_multiple_of(rb) {
            return None;
        }
        let r0 = offset / rb;
        r0.is_multiple_of(PACK_ROWS).then_some((p, r0..r0 + m.rows))
    }

    /// Bytes held by the packed copies.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl CpuBackend {
    /// The packed store, built on first use; `None` in exact mode or with
    /// packing switched off.
    pub(crate) fn packed_store(&self, model: &Model) -> Result<Option<&PackedStore>> {
        if self.exact || !self.pack_weights {
            return Ok(None);
        }
        let built = self.packed.get_or_init(|| {
            PackedStore::build(&self.kernels, model, &self.pool).map_err(|e| e.to_string())
        });
        match built {
            Ok(store) => Ok(Some(store)),
            Err(reason) => Err(ModelError::Kernel {
                tensor: "packed weights".to_string(),
                reason: reason.clone(),
            }),
        }
    }
}
