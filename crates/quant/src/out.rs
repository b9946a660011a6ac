//! Output windows: the columns of a row-major `[n, stride]` f32 matrix that one
//! matmul call writes.
//!
//! A matmul over weight rows `r0..r1` produces `n × (r1 − r0)` values that land
//! in columns `col0 .. col0 + (r1 − r0)` of every token's output row. To let
//! several threads fill disjoint column ranges of one shared output matrix,
//! [`OutCols`] is a raw view that can only be created from an exclusive borrow
//! of the whole matrix and only be split into *disjoint* column windows
//! ([`OutCols::split_at`], [`OutCols::split_even`]); each window is `Send`.
//! This is the column-wise analogue of `slice::split_at_mut`, and the only
//! place outside the SIMD modules that needs `unsafe`.

#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::error::QuantError;

/// A window of columns of a row-major f32 matrix (see the module docs).
#[derive(Debug)]
pub struct OutCols<'a> {
    /// Points at element `[0, col0]` of the matrix.
    ptr: NonNull<f32>,
    n: usize,
    stride: usize,
    cols: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: an `OutCols` is an exclusive borrow of the cells `[t, col0 .. col0 +
// cols)` for all `t < n`; windows handed out by the splitting methods never
// overlap, so moving one to another thread cannot create aliasing `&mut`.
unsafe impl Send for OutCols<'_> {}

impl<'a> OutCols<'a> {
    /// The whole matrix `data: [n, stride]` as one window of `stride` columns.
    pub fn new(data: &'a mut [f32], n: usize, stride: usize) -> Result<Self, QuantError> {
        Self::window(data, n, stride, 0, stride)
    }

    /// Columns `col0 .. col0 + cols` of `data: [n, stride]`.
    pub fn window(
        data: &'a mut [f32],
        n: usize,
        stride: usize,
        col0: usize,
        cols: usize,
    ) -> Result<Self, QuantError> {
        let bad = || QuantError::BadOutView {
            n,
            stride,
            col0,
            col_end: col0.saturating_add(cols),
            len: data.len(),
        };
        let col_end = col0.checked_add(cols).ok_or_else(bad)?;
        if col_end > stride {
            return Err(bad());
        }
        let needed = if n == 0 {
            0
        } else {
            (n - 1).checked_mul(stride).ok_or_else(bad)? + col_end
        };
        if needed > data.len() {
            return Err(bad());
        }
        // `col0 <= data.len()` whenever `n > 0` (checked above); for `n == 0`
        // clamp so the pointer stays inside (or one past) the allocation.
        let offset = col0.min(data.len());
        let ptr = NonNull::from(&mut data[offset..]).cast::<f32>();
        Ok(OutCols {
            ptr,
            n,
            stride,
            cols,
            _borrow: PhantomData,
        })
    }

    /// Rows (tokens) in the window.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Columns in the window.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Splits into columns `[0, mid)` and `[mid, cols)`. `None` if `mid > cols`.
    pub fn split_at(self, mid: usize) -> Option<(OutCols<'a>, OutCols<'a>)> {
        if mid > self.cols {
            return None;
        }
        // SAFETY: `mid <= cols`, so the pointer stays inside (or one past) row
        // 0 of this window, which lies in the borrowed allocation.
        let right = unsafe { self.ptr.add(mid) };
        Some((
            OutCols {
                ptr: self.ptr,
                n: self.n,
                stride: self.stride,
                cols: mid,
                _borrow: PhantomData,
            },
            OutCols {
                ptr: right,
                n: self.n,
                stride: self.stride,
                cols: self.cols - mid,
                _borrow: PhantomData,
            },
        ))
    }

    /// Splits into `parts` disjoint windows of nearly equal width (the first
    /// `cols % parts` get one extra column), in column order. `parts == 0`
    /// yields no windows.
    pub fn split_even(self, parts: usize) -> Vec<OutCols<'a>> {
        let (base, extra) = match parts {
            0 => (0, 0),
            p => (self.cols / p, self.cols % p),
        };
        self.split_widths(parts, |i| base + usize::from(i < extra))
    }

    /// Splits off `parts` windows in column order, window `i` `width(i)`
    /// columns wide (clamped to what is left).
    fn split_widths(self, parts: usize, width: impl Fn(usize) -> usize) -> Vec<OutCols<'a>> {
        let mut out = Vec::with_capacity(parts);
        let mut rest = self;
        for i in 0..parts {
            let w = width(i).min(rest.cols);
            // `w <= rest.cols`, so the split exists.
            match rest.split_at(w) {
                Some((head, tail)) => {
                    out.push(head);
                    rest = tail;
                }
                None => break,
            }
        }
        out
    }

    /// Splits into at most `parts` disjoint windows, in column order, each
    /// starting at a multiple of `align` (`0` counts as 1) and spanning
    /// nearly equal numbers of `align`-column groups; only the last may end
    /// off a multiple. Fewer windows when there are fewer groups than parts.
    pub fn split_aligned(self, parts: usize, align: usize) -> Vec<OutCols<'a>> {
        let align = align.max(1);
        let groups = self.cols.div_ceil(align);
        let parts = parts.min(groups);
        if align == 1 || parts == 0 {
            return self.split_even(parts);
        }
        let (base, extra) = (groups / parts, groups % parts);
        self.split_widths(parts, |i| (base + usize::from(i < extra)) * align)
    }

    /// Reborrows columns `c0 .. c0 + cols` of this window (in bounds, checked by
    /// the caller).
    #[inline]
    pub(crate) fn sub_window(&mut self, c0: usize, cols: usize) -> OutCols<'_> {
        debug_assert!(c0 + cols <= self.cols);
        let (c0, cols) = (c0.min(self.cols), cols.min(self.cols - c0.min(self.cols)));
        // SAFETY: `c0 <= self.cols`, so the pointer stays inside (or one past)
        // row 0 of this window; the new window is a sub-range of this one and
        // borrows `self` mutably for its lifetime, so it cannot alias.
        let ptr = unsafe { self.ptr.add(c0) };
        OutCols {
            ptr,
            n: self.n,
            stride: self.stride,
            cols,
            _borrow: PhantomData,
        }
    }

    /// Reborrows token rows `t0 .. t0 + n` of this window (in bounds, checked
    /// by the caller).
    #[inline]
    pub(crate) fn sub_rows(&mut self, t0: usize, n: usize) -> OutCols<'_> {
        debug_assert!(t0 + n <= self.n);
        let t0 = t0.min(self.n);
        let n = n.min(self.n - t0);
        // With `n > 0`, row `t0 < self.n` exists; with `n == 0` the pointer is
        // never dereferenced, so stay at the start of the window.
        let start = if n == 0 { 0 } else { t0 * self.stride };
        // SAFETY: `start` addresses row `t0` of this window, inside the borrowed
        // allocation (checked when the window was created); the new window
        // is a sub-range and borrows `self` mutably, so it cannot alias.
        let ptr = unsafe { self.ptr.add(start) };
        OutCols {
            ptr,
            n,
            stride: self.stride,
            cols: self.cols,
            _borrow: PhantomData,
        }
    }

    /// The `cols` cells of token row `t` (`t < n`, checked by the caller).
    #[inline]
    pub(crate) fn row_mut(&mut self, t: usize) -> &mut [f32] {
        debug_assert!(t < self.n);
        // SAFETY: `window` checked that `(n − 1) · stride + col0 + cols` cells
        // exist after the matrix start, so row `t < n` of this window is in
        // bounds; windows are disjoint and `&mut self` is exclusive, so no
        // other reference to these cells exists while the slice lives.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(t * self.stride), self.cols) }
    }
}
