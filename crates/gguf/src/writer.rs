//! Writing GGUF v3 files.
//!
//! The writer takes metadata and tensors (raw bytes in any ggml type, or a
//! producer that streams them, so multi-GB synthetic models never sit in RAM
//! whole), lays the data out with the requested alignment and writes the file
//! atomically: to a temporary file beside the target, renamed into place only
//! when complete, so an interrupted write never leaves a half file under the
//! final name.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{ErrorKind, GgufError, io, origin_of};
use crate::reader::{DEFAULT_ALIGNMENT, MAGIC};
use crate::tensor::TensorInfo;
use crate::types::GgmlType;
use crate::value::{Array, Metadata, Value};

/// Streams a tensor's bytes into the file.
pub type Producer = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + Send>;

enum Payload {
    Bytes(Vec<u8>),
    Stream(Producer),
}

struct Pending {
    info: TensorInfo,
    payload: Payload,
}

/// Builds a GGUF file.
pub struct GgufWriter {
    metadata: Metadata,
    tensors: Vec<Pending>,
    alignment: u64,
    next_offset: u64,
}

impl std::fmt::Debug for GgufWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufWriter")
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .finish()
    }
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    /// A writer with the default 32-byte alignment.
    pub fn new() -> GgufWriter {
        GgufWriter {
            metadata: Metadata::new(),
            tensors: Vec::new(),
            alignment: DEFAULT_ALIGNMENT,
            next_offset: 0,
        }
    }

    /// Sets the data alignment (a power of two) and records `general.alignment`.
    pub fn set_alignment(&mut self, alignment: u32) -> Result<(), GgufError> {
        if alignment == 0 || !alignment.is_power_of_two() || !self.tensors.is_empty() {
            return Err(GgufError::new(
                "<writer>",
                ErrorKind::BadAlignment {
                    value: alignment.into(),
                },
            ));
        }
        self.alignment = alignment.into();
        self.metadata
            .set("general.alignment", Value::U32(alignment));
        Ok(())
    }

    /// Sets a metadata key (replacing an earlier value).
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        self.metadata.set(key, value);
    }

    /// Sets a string key.
    pub fn set_str(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.set(key, Value::String(value.into()));
    }

    /// Sets a u32 key.
    pub fn set_u32(&mut self, key: impl Into<String>, value: u32) {
        self.set(key, Value::U32(value));
    }

    /// Sets an f32 key.
    pub fn set_f32(&mut self, key: impl Into<String>, value: f32) {
        self.set(key, Value::F32(value));
    }

    /// Sets a bool key.
    pub fn set_bool(&mut self, key: impl Into<String>, value: bool) {
        self.set(key, Value::Bool(value));
    }

    /// Sets an array key.
    pub fn set_array(&mut self, key: impl Into<String>, value: Array) {
        self.set(key, Value::Array(value));
    }

    /// The metadata so far.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    fn push(
        &mut self,
        name: &str,
        dims: &[u64],
        ty: GgmlType,
        payload: Payload,
    ) -> Result<(), GgufError> {
        let werr = |reason: String| {
            GgufError::new(
                "<writer>",
                ErrorKind::WriterInput {
                    tensor: name.to_string(),
                    reason,
                },
            )
        };
        if self.tensors.iter().any(|t| t.info.name == name) {
            return Err(werr("a tensor with this name was already added".into()));
        }
        let info = TensorInfo::new(name.to_string(), dims.to_vec(), ty, self.next_offset)
            .map_err(|k| GgufError::new("<writer>", k))?;
        if let Payload::Bytes(b) = &payload
            && b.len() as u64 != info.size_bytes
        {
            return Err(werr(format!(
                "{} bytes given, but {ty} {dims:?} needs {}",
                b.len(),
                info.size_bytes
            )));
        }
        self.next_offset =
            (info.offset + info.size_bytes).div_ceil(self.alignment) * self.alignment;
        self.tensors.push(Pending { info, payload });
        Ok(())
    }

    /// Adds a tensor from its raw bytes. `dims` are in ggml order (ne0 first).
    pub fn add_tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        ty: GgmlType,
        data: Vec<u8>,
    ) -> Result<(), GgufError> {
        self.push(name, dims, ty, Payload::Bytes(data))
    }

    /// Adds an F32 tensor.
    pub fn add_f32(&mut self, name: &str, dims: &[u64], data: &[f32]) -> Result<(), GgufError> {
        self.add_tensor(
            name,
            dims,
            GgmlType::F32,
            bytemuck::cast_slice(data).to_vec(),
        )
    }

    /// Adds an I32 tensor.
    pub fn add_i32(&mut self, name: &str, dims: &[u64], data: &[i32]) -> Result<(), GgufError> {
        self.add_tensor(
            name,
            dims,
            GgmlType::I32,
            bytemuck::cast_slice(data).to_vec(),
        )
    }

    /// Adds a tensor whose bytes are produced while the file is written. The
    /// producer must write exactly the tensor's size; the writer checks it.
    pub fn add_tensor_stream(
        &mut self,
        name: &str,
        dims: &[u64],
        ty: GgmlType,
        producer: Producer,
    ) -> Result<(), GgufError> {
        self.push(name, dims, ty, Payload::Stream(producer))
    }

    /// Directory entries of the tensors added so far.
    pub fn tensor_infos(&self) -> impl Iterator<Item = &TensorInfo> {
        self.tensors.iter().map(|t| &t.info)
    }

    /// Total size the file will have.
    pub fn file_size(&self) -> u64 {
        let mut header = CountingWriter(0);
        // Writing the header to a counter cannot fail.
        let _ = self.write_header(&mut header);
        header.0.div_ceil(self.alignment) * self.alignment
            + self
                .tensors
                .last()
                .map_or(0, |t| t.info.offset + t.info.size_bytes)
    }

    fn write_header(&self, w: &mut dyn Write) -> std::io::Result<()> {
        w.write_all(&MAGIC)?;
        w.write_all(&3u32.to_le_bytes())?;
        w.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
        w.write_all(&(self.metadata.len() as u64).to_le_bytes())?;
        for (k, v) in self.metadata.iter() {
            write_string(w, k)?;
            w.write_all(&v.value_type().id().to_le_bytes())?;
            write_value(w, v)?;
        }
        for t in &self.tensors {
            write_string(w, &t.info.name)?;
            w.write_all(&(t.info.dims.len() as u32).to_le_bytes())?;
            for d in &t.info.dims {
                w.write_all(&d.to_le_bytes())?;
            }
            w.write_all(&t.info.ty.id().to_le_bytes())?;
            w.write_all(&t.info.offset.to_le_bytes())?;
        }
        Ok(())
    }

    /// Writes the whole file to any sink.
    pub fn write(self, w: &mut dyn Write) -> Result<u64, GgufError> {
        let e = |action, err| GgufError::new("<writer>", io(action, err));
        let mut cw = CountingWriter2 { inner: w, n: 0 };
        self.write_header(&mut cw)
            .map_err(|x| e("write header", x))?;
        pad_to(&mut cw, self.alignment).map_err(|x| e("write padding", x))?;
        let data_start = cw.n;
        for t in self.tensors {
            let want = data_start + t.info.offset;
            let pad = want - cw.n;
            cw.write_all(&vec![0u8; pad as usize])
                .map_err(|x| e("write padding", x))?;
            let before = cw.n;
            match t.payload {
                Payload::Bytes(b) => cw.write_all(&b).map_err(|x| e("write tensor", x))?,
                Payload::Stream(p) => p(&mut cw).map_err(|x| e("write tensor", x))?,
            }
            let written = cw.n - before;
            if written != t.info.size_bytes {
                return Err(GgufError::new(
                    "<writer>",
                    ErrorKind::WriterInput {
                        tensor: t.info.name.clone(),
                        reason: format!(
                            "producer wrote {written} bytes, expected {}",
                            t.info.size_bytes
                        ),
                    },
                ));
            }
        }
        cw.flush().map_err(|x| e("flush", x))?;
        Ok(cw.n)
    }

    /// Writes the file atomically (temporary file, then rename). Returns its size.
    pub fn write_to_path(self, path: impl AsRef<Path>) -> Result<u64, GgufError> {
        let path = path.as_ref();
        let origin = origin_of(path);
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{file_name}.partial-{}", std::process::id()));
        let result = (|| {
            let f = File::create(&tmp).map_err(|x| GgufError::new(&origin, io("create", x)))?;
            let mut bw = BufWriter::with_capacity(1 << 20, f);
            let n = self.write(&mut bw).map_err(|mut err| {
                err.origin = origin.clone();
                err
            })?;
            let f = bw
                .into_inner()
                .map_err(|x| GgufError::new(&origin, io("flush", x.into_error())))?;
            f.sync_all()
                .map_err(|x| GgufError::new(&origin, io("sync", x)))?;
            std::fs::rename(&tmp, path).map_err(|x| GgufError::new(&origin, io("rename", x)))?;
            Ok(n)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Writes the file into memory.
    pub fn into_bytes(self) -> Result<Vec<u8>, GgufError> {
        let mut v = Vec::new();
        self.write(&mut v)?;
        Ok(v)
    }
}

struct CountingWriter(u64);

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct CountingWriter2<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for CountingWriter2<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn pad_to(w: &mut CountingWriter2<'_>, alignment: u64) -> std::io::Result<()> {
    let target = w.n.div_ceil(alignment) * alignment;
    w.write_all(&vec![0u8; (target - w.n) as usize])
}

fn write_string(w: &mut dyn Write, s: &str) -> std::io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_value(w: &mut dyn Write, v: &Value) -> std::io::Result<()> {
    match v {
        Value::U8(x) => w.write_all(&x.to_le_bytes()),
        Value::I8(x) => w.write_all(&x.to_le_bytes()),
        Value::U16(x) => w.write_all(&x.to_le_bytes()),
        Value::I16(x) => w.write_all(&x.to_le_bytes()),
        Value::U32(x) => w.write_all(&x.to_le_bytes()),
        Value::I32(x) => w.write_all(&x.to_le_bytes()),
        Value::F32(x) => w.write_all(&x.to_le_bytes()),
        Value::U64(x) => w.write_all(&x.to_le_bytes()),
        Value::I64(x) => w.write_all(&x.to_le_bytes()),
        Value::F64(x) => w.write_all(&x.to_le_bytes()),
        Value::Bool(b) => w.write_all(&[u8::from(*b)]),
        Value::String(s) => write_string(w, s),
        Value::Array(a) => {
            w.write_all(&a.elem_type.id().to_le_bytes())?;
            w.write_all(&(a.values.len() as u64).to_le_bytes())?;
            for x in &a.values {
                write_value(w, x)?;
            }
            Ok(())
        }
    }
}
