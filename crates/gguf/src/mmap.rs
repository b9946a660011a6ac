//! The one place this crate uses `unsafe`: creating a read-only memory map
//! and passing access-pattern advice to the OS.
#![allow(unsafe_code)]

use std::fs::File;

use memmap2::{Mmap, MmapOptions};

use crate::file::Advice;

/// Maps a whole file read-only.
pub(crate) fn map_read_only(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: the map is read-only. Undefined behaviour would need another
    // process to truncate or rewrite the model file while we hold the map;
    // model files are treated as immutable inputs (documented in the README),
    // the same contract every mmap-based inference engine relies on.
    unsafe { MmapOptions::new().map(file) }
}

/// Gives the kernel a hint for a byte range. Errors are ignored: advice never
/// changes results, only paging behaviour.
pub(crate) fn advise_range(map: &Mmap, start: usize, len: usize, advice: Advice) {
    if len == 0 || start.checked_add(len).is_none_or(|end| end > map.len()) {
        return;
    }
    #[cfg(unix)]
    {
        let a = match advice {
            Advice::Sequential => memmap2::Advice::Sequential,
            Advice::Random => memmap2::Advice::Random,
            Advice::WillNeed => memmap2::Advice::WillNeed,
            #[cfg(target_os = "linux")]
            Advice::HugePage => memmap2::Advice::HugePage,
            #[cfg(not(target_os = "linux"))]
            Advice::HugePage => return,
        };
        // madvise needs a page-aligned start: round down.
        let page = 4096usize;
        let aligned = start / page * page;
        let _ = map.advise_range(a, aligned, len + (start - aligned));
    }
    #[cfg(not(unix))]
    {
        let _ = (map, start, len, advice);
    }
}
