//! Helpers shared by the kernel test files.

/// Bit equality with a message naming the first differing element.
pub(crate) fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: element {i}: got {:e}, reference {:e}",
            got[i], want[i]
        );
    }
}
