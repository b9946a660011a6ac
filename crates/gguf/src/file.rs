//! An opened GGUF file: the validated header plus the bytes behind it.
//!
//! Files are memory-mapped read-only (memmap2), so opening an 80 GB model
//! reads only its header; tensor bytes are paged in by the OS when used.
//! In-memory buffers are supported for tests, fuzzing and generated models.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{ErrorKind, GgufError, io, origin_of};
use crate::reader::{Header, parse_header, validate_data};
use crate::tensor::{TensorInfo, TensorView};
use crate::value::Metadata;

/// Where the bytes of a file live.
#[derive(Debug)]
enum Source {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Source {
    fn bytes(&self) -> &[u8] {
        match self {
            Source::Mapped(m) => m,
            Source::Owned(v) => v,
        }
    }
}

/// A validated GGUF file.
#[derive(Debug)]
pub struct GgufFile {
    path: Option<PathBuf>,
    origin: String,
    source: Source,
    header: Header,
    index: std::collections::HashMap<String, usize>,
}

/// How the OS should expect a mapping to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    /// Pages will be read in order soon (read-ahead on).
    Sequential,
    /// Pages are read in no particular order (read-ahead off), e.g. routed experts.
    Random,
    /// Pages will be needed soon; start reading them.
    WillNeed,
    /// Back the range with transparent huge pages where the kernel allows it.
    HugePage,
}

impl GgufFile {
    /// Opens and validates a file. Reads only the header.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let origin = origin_of(path);
        let file = File::open(path).map_err(|e| GgufError::new(&origin, io("open", e)))?;
        let map = crate::mmap::map_read_only(&file)
            .map_err(|e| GgufError::new(&origin, io("mmap", e)))?;
        Self::build(Some(path.to_path_buf()), origin, Source::Mapped(map))
    }

    /// Parses and validates an in-memory image.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        Self::build(None, "<memory>".to_string(), Source::Owned(bytes))
    }

    fn build(path: Option<PathBuf>, origin: String, source: Source) -> Result<GgufFile, GgufError> {
        let bytes = source.bytes();
        let header = parse_header(bytes, &origin)?;
        validate_data(&header, bytes.len() as u64, &origin)?;
        let index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            path,
            origin,
            source,
            header,
            index,
        })
    }

    /// The path, when opened from a file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The whole file image (header and data). Tensor byte ranges in absolute
    /// offsets (`data_offset() + info.offset`) index into it.
    pub fn raw(&self) -> &[u8] {
        self.source.bytes()
    }

    /// The absolute byte range of a tensor's data within [`GgufFile::raw`].
    pub fn data_range(&self, info: &TensorInfo) -> std::ops::Range<usize> {
        let start = (self.header.data_offset + info.offset) as usize;
        start..start + info.size_bytes as usize
    }

    /// The file name used in messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// GGUF version.
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    /// Data alignment.
    pub fn alignment(&self) -> u64 {
        self.header.alignment
    }

    /// Absolute offset of the data section.
    pub fn data_offset(&self) -> u64 {
        self.header.data_offset
    }

    /// Total file size in bytes.
    pub fn file_size(&self) -> u64 {
        self.source.bytes().len() as u64
    }

    /// The tensor directory in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// Looks up a tensor's directory entry.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.header.tensors[i])
    }

    /// A zero-copy view of a tensor.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'_>> {
        let info = self.tensor_info(name)?;
        Some(TensorView {
            info,
            data: self.data_of(info),
        })
    }

    /// The bytes of a tensor of this file.
    pub fn data_of(&self, info: &TensorInfo) -> &[u8] {
        // `validate_data` proved offset + size lies inside the file, so the
        // range cannot be out of bounds; `get` keeps this panic-free anyway.
        let start = (self.header.data_offset + info.offset) as usize;
        self.source
            .bytes()
            .get(start..start + info.size_bytes as usize)
            .unwrap_or(&[])
    }

    /// The metadata as an error-context helper: maps a metadata error to a
    /// [`GgufError`] naming this file.
    pub fn meta_err(&self, kind: ErrorKind) -> GgufError {
        GgufError::new(&self.origin, kind)
    }

    /// Advises the OS about how a byte range of the file (e.g. one tensor) will be
    /// read. A no-op for in-memory files; failures are ignored (advice is a hint).
    pub fn advise(&self, info: &TensorInfo, advice: Advice) {
        if let Source::Mapped(m) = &self.source {
            let start = (self.header.data_offset + info.offset) as usize;
            crate::mmap::advise_range(m, start, info.size_bytes as usize, advice);
        }
    }

    /// Touches every page of a tensor so it is resident (used by `--warm`).
    /// Returns a checksum so the reads cannot be optimised away.
    pub fn touch(&self, info: &TensorInfo) -> u64 {
        let data = self.data_of(info);
        let mut acc = 0u64;
        for chunk in data.chunks(4096) {
            acc = acc.wrapping_add(u64::from(chunk[0]));
        }
        acc
    }
}
