//! Recycled f32 scratch for the CPU forward steps.
//!
//! The steps need temporaries whose size grows with the batch: queries
//! `[n, H, hd]` and attention outputs are 64 MiB each for a 512-token prefill
//! chunk on Flash. Fresh allocations of that size are new memory maps, and
//! the kernel then faults in and zeroes every page on first write, on every
//! layer of every chunk (several percent of a prefill). [`Buf::zeros`] takes
//! a previously released allocation of this thread instead, and dropping a
//! [`Buf`] gives its allocation back. A thread keeps at most [`KEEP`]
//! allocations, so what stays reserved is about one forward pass's peak of
//! temporaries (bounded by the prefill chunk).

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// Allocations kept per thread.
const KEEP: usize = 24;

thread_local! {
    static FREE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A zero-initialised f32 buffer whose allocation is recycled on drop.
#[derive(Debug, Default)]
pub(crate) struct Buf(Vec<f32>);

impl Buf {
    /// `len` zeros, in a released allocation of this thread when there is
    /// one (the smallest that fits, else the largest, which then grows).
    pub(crate) fn zeros(len: usize) -> Buf {
        let mut v = if len == 0 {
            Vec::new()
        } else {
            FREE.try_with(|free| {
                free.try_borrow_mut()
                    .ok()
                    .and_then(|mut f| take(&mut f, len))
            })
            .ok()
            .flatten()
            .unwrap_or_default()
        };
        v.clear();
        v.resize(len, 0.0);
        Buf(v)
    }
}

/// Removes the best allocation for `len` floats from `free`.
fn take(free: &mut Vec<Vec<f32>>, len: usize) -> Option<Vec<f32>> {
    let fits = (0..free.len())
        .filter(|&i| free[i].capacity() >= len)
        .min_by_key(|&i| free[i].capacity());
    let i = fits.or_else(|| (0..free.len()).max_by_key(|&i| free[i].capacity()))?;
    Some(free.swap_remove(i))
}

impl Drop for Buf {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        if v.capacity() == 0 {
            return;
        }
        // A thread being torn down, or a re-entrant drop, simply frees it.
        let _ = FREE.try_with(|free| {
            if let Ok(mut f) = free.try_borrow_mut() {
                if f.len() < KEEP {
                    f.push(v);
                } else if let Some(i) = (0..f.len()).min_by_key(|&i| f[i].capacity())
                    && f[i].capacity() < v.capacity()
                {
                    f[i] = v;
                }
            }
        });
    }
}

impl Deref for Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_buffers_are_zeroed_and_reuse_the_allocation() {
        let mut a = Buf::zeros(1000);
        a.fill(7.0);
        let ptr = a.as_ptr();
        drop(a);
        let b = Buf::zeros(900);
        assert_eq!(b.as_ptr(), ptr, "the released allocation is reused");
        assert_eq!(b.len(), 900);
        assert!(b.iter().all(|&v| v == 0.0));
        // A larger request grows the largest released allocation.
        drop(b);
        let c = Buf::zeros(5000);
        assert_eq!(c.len(), 5000);
        assert!(c.iter().all(|&v| v == 0.0));
        assert_eq!(Buf::zeros(0).len(), 0);
    }

    #[test]
    fn a_thread_keeps_a_bounded_number_of_allocations() {
        let bufs: Vec<Buf> = (1..=KEEP + 10).map(|i| Buf::zeros(i * 8)).collect();
        drop(bufs);
        let kept = FREE.with(|f| f.borrow().len());
        assert_eq!(kept, KEEP);
        // The largest were kept.
        let smallest = FREE.with(|f| f.borrow().iter().map(Vec::capacity).min());
        assert!(smallest >= Some(11 * 8), "{smallest:?}");
    }
}
