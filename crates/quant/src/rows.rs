//! [`RowSet`]: the f32 rows an attention kernel reads, either every row of a
//! row-major block in order or a selection of them by index, so that sparse
//! attention can score and sum the rows a query selected where they lie
//! instead of first copying them into a block of their own.

use crate::error::QuantError;

/// Rows of `hd` floats: row `j` is row `j` of `data` ([`RowSet::all`]) or row
/// `sel[j]` of it ([`RowSet::selected`]). Every index was checked against
/// `data` when the set was made.
#[derive(Debug, Clone, Copy)]
pub struct RowSet<'a> {
    data: &'a [f32],
    hd: usize,
    sel: Option<&'a [u32]>,
}

impl<'a> RowSet<'a> {
    /// Every row of `data` (`[m, hd]`, row-major), in order.
    pub fn all(data: &'a [f32], hd: usize) -> Result<Self, QuantError> {
        check_block(data, hd)?;
        Ok(RowSet {
            data,
            hd,
            sel: None,
        })
    }

    /// Rows `sel[0], sel[1], …` of `data` (`[n, hd]`, row-major), in that
    /// order; every index must be below `n`.
    pub fn selected(data: &'a [f32], hd: usize, sel: &'a [u32]) -> Result<Self, QuantError> {
        check_block(data, hd)?;
        let n = data.len() / hd;
        if let Some(&bad) = sel.iter().find(|&&s| s as usize >= n) {
            return Err(QuantError::BadShape {
                what: "row selection",
                reason: format!("row index {bad} is past the {n} rows of the block"),
            });
        }
        Ok(RowSet {
            data,
            hd,
            sel: Some(sel),
        })
    }

    /// Row length.
    pub fn hd(&self) -> usize {
        self.hd
    }

    /// Number of rows in the set.
    pub fn len(&self) -> usize {
        match self.sel {
            Some(s) => s.len(),
            None => self.data.len() / self.hd,
        }
    }

    /// Whether the set has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `j` of the set (`j < len()`).
    pub fn row(&self, j: usize) -> &'a [f32] {
        let r = self.source_row(j);
        &self.data[r * self.hd..(r + 1) * self.hd]
    }

    /// Pointer to the first element of row `j` (`j < len()`; the `hd`
    /// elements after it are readable).
    #[cfg_attr(not(any(target_arch = "x86_64", test)), allow(dead_code))]
    pub(crate) fn row_ptr(&self, j: usize) -> *const f32 {
        self.row(j).as_ptr()
    }

    fn source_row(&self, j: usize) -> usize {
        match self.sel {
            Some(s) => s[j] as usize,
            None => j,
        }
    }
}

fn check_block(data: &[f32], hd: usize) -> Result<(), QuantError> {
    if hd == 0 || !data.len().is_multiple_of(hd) {
        return Err(QuantError::BadShape {
            what: "row block",
            reason: format!(
                "row length {hd} must be positive and divide the block's {} floats",
                data.len()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_index_the_block_and_bad_indices_are_errors() {
        let data: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let all = RowSet::all(&data, 4).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all.row(2), &[8.0, 9.0, 10.0, 11.0]);
        let sel = [2u32, 0];
        let s = RowSet::selected(&data, 4, &sel).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.row(0), &[8.0, 9.0, 10.0, 11.0]);
        assert_eq!(s.row(1), &[0.0, 1.0, 2.0, 3.0]);
        assert!(RowSet::selected(&data, 4, &[3]).is_err());
        assert!(RowSet::all(&data, 5).is_err());
        assert!(RowSet::all(&data, 0).is_err());
    }
}
