//! Fuzz target: the GGUF reader must return a file or a typed error for any
//! input, never panic, and every tensor view of an accepted file must be in
//! bounds. Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run gguf_reader` (see README).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = dsv4_gguf::GgufFile::from_bytes(data.to_vec()) {
        for t in f.tensors() {
            assert_eq!(f.data_of(t).len() as u64, t.size_bytes);
        }
        for (_, v) in f.metadata().iter() {
            let _ = v.summary(4);
        }
    }
});
