//! Tensor directory entries and zero-copy typed views of tensor data.
//!
//! Dimensions are in ggml order: `dims[0]` (ne0) is the innermost, contiguous
//! dimension, so a weight matrix `[out, in]` in PyTorch terms is stored with
//! `dims = [in, out]`, and each of its `out` rows holds `in` elements.

use crate::error::ErrorKind;
use crate::types::GgmlType;

/// One entry of the tensor directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q_a.weight`.
    pub name: String,
    /// Dimensions in ggml order (ne0 first).
    pub dims: Vec<u64>,
    /// Storage type.
    pub ty: GgmlType,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
    /// Number of elements.
    pub n_elements: u64,
    /// Size of the data in bytes.
    pub size_bytes: u64,
}

impl TensorInfo {
    /// Builds an entry, checking that the shape is representable: no overflow,
    /// and a first dimension that is a whole number of blocks.
    pub fn new(name: String, dims: Vec<u64>, ty: GgmlType, offset: u64) -> Result<Self, ErrorKind> {
        let bad = |reason: String| ErrorKind::BadTensorShape {
            tensor: name.clone(),
            reason,
        };
        if dims.len() > crate::reader::MAX_DIMS as usize {
            return Err(bad(format!(
                "{} dimensions (ggml allows at most 4)",
                dims.len()
            )));
        }
        let mut n: u64 = 1;
        for &d in &dims {
            n = n
                .checked_mul(d)
                .ok_or_else(|| bad(format!("shape {dims:?} overflows")))?;
        }
        let ne0 = dims.first().copied().unwrap_or(1);
        if !ne0.is_multiple_of(ty.block_elems()) {
            return Err(bad(format!(
                "first dimension {ne0} is not a multiple of the {ty} block size {}",
                ty.block_elems()
            )));
        }
        let size_bytes = (n / ty.block_elems())
            .checked_mul(ty.block_bytes())
            .ok_or_else(|| bad(format!("shape {dims:?} overflows")))?;
        Ok(TensorInfo {
            name,
            dims,
            ty,
            offset,
            n_elements: n,
            size_bytes,
        })
    }

    /// Elements per row (ne0).
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows (product of all dimensions but the first).
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> u64 {
        self.row_len() / self.ty.block_elems() * self.ty.block_bytes()
    }

    /// The shape in ggml order rendered like `[4096, 1024]`.
    pub fn shape_string(&self) -> String {
        let parts: Vec<String> = self.dims.iter().map(|d| d.to_string()).collect();
        format!("[{}]", parts.join(", "))
    }
}

/// A tensor's info together with its bytes.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    /// The directory entry.
    pub info: &'a TensorInfo,
    /// The raw data (exactly `info.size_bytes` long).
    pub data: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// The data as f32 values, if the tensor is F32 and the bytes are aligned.
    pub fn as_f32(&self) -> Option<&'a [f32]> {
        (self.info.ty == GgmlType::F32)
            .then(|| bytemuck::try_cast_slice(self.data).ok())
            .flatten()
    }

    /// The data as i32 values, if the tensor is I32 and the bytes are aligned.
    pub fn as_i32(&self) -> Option<&'a [i32]> {
        (self.info.ty == GgmlType::I32)
            .then(|| bytemuck::try_cast_slice(self.data).ok())
            .flatten()
    }

    /// The bytes of row `r` (rows as in [`TensorInfo::n_rows`]), if in range.
    pub fn row(&self, r: u64) -> Option<&'a [u8]> {
        let rb = self.info.row_bytes();
        let start = usize::try_from(r.checked_mul(rb)?).ok()?;
        let end = start.checked_add(usize::try_from(rb).ok()?)?;
        self.data.get(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_checks() {
        let t = TensorInfo::new("a".into(), vec![64, 3], GgmlType::Q8_0, 0).unwrap();
        assert_eq!(t.size_bytes, 3 * 2 * 34);
        assert_eq!(t.row_bytes(), 68);
        assert_eq!(t.n_rows(), 3);
        assert!(TensorInfo::new("b".into(), vec![33], GgmlType::Q8_0, 0).is_err());
        assert!(TensorInfo::new("c".into(), vec![u64::MAX, 2], GgmlType::F32, 0).is_err());
        let scalar = TensorInfo::new("d".into(), vec![], GgmlType::F32, 0).unwrap();
        assert_eq!(scalar.n_elements, 1);
    }
}
