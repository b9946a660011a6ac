//! Parsing a GGUF header (v2/v3): magic, version, metadata, tensor directory.
//!
//! The parser works on a byte slice (the memory map, or an in-memory buffer)
//! and never reads tensor data. Every count and length is checked against the
//! bytes that remain before anything is allocated, so a hostile header cannot
//! cause a huge allocation, and every failure is a typed error with an offset.
//! Layout reference: the GGUF specification (`docs/gguf.md` in ggml) and
//! gguf-py's `gguf_reader.py`.

use crate::error::{ErrorKind, GgufError};
use crate::tensor::TensorInfo;
use crate::types::GgmlType;
use crate::value::{Array, Metadata, Value, ValueType};

/// `GGUF` read as a little-endian u32.
pub(crate) const MAGIC: [u8; 4] = *b"GGUF";
/// The alignment used when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;
/// Deepest array nesting accepted.
const MAX_ARRAY_DEPTH: usize = 4;
/// Longest string accepted (tokenizer merges and chat templates stay far below).
const MAX_STRING: u64 = 64 << 20;
/// Longest tensor name accepted (ggml's limit is 64; be lenient but bounded).
const MAX_TENSOR_NAME: u64 = 1024;

/// The parsed header of a GGUF file.
#[derive(Debug, Clone)]
pub struct Header {
    /// GGUF version (2 or 3).
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Metadata,
    /// Tensor directory in file order.
    pub tensors: Vec<TensorInfo>,
    /// Data alignment.
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
}

/// A bounds-checked little-endian cursor.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    origin: &'a str,
}

impl<'a> Cursor<'a> {
    fn err(&self, kind: ErrorKind) -> GgufError {
        GgufError::new(self.origin, kind)
    }

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(self.err(ErrorKind::Truncated {
                what: what(),
                offset: self.pos as u64,
                needed: n,
                available: self.remaining(),
            }));
        }
        // `n <= remaining`, so the conversion and the slice are in bounds.
        let n = n as usize;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &dyn Fn() -> String, limit: u64) -> Result<String, GgufError> {
        let at = self.pos as u64;
        let len = self.u64(what)?;
        if len > limit || len > self.remaining() {
            return Err(self.err(ErrorKind::Implausible {
                what: format!("length of {}", what()),
                offset: at,
                value: len,
                limit: limit.min(self.remaining()),
            }));
        }
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            self.err(ErrorKind::InvalidUtf8 {
                what: what(),
                offset: at + 8,
            })
        })
    }

    /// Checks that `count` items of at least `min_size` bytes each can fit.
    fn check_count(&self, count: u64, min_size: u64, what: &str, at: u64) -> Result<(), GgufError> {
        let limit = self.remaining() / min_size.max(1);
        if count > limit {
            return Err(self.err(ErrorKind::Implausible {
                what: what.to_string(),
                offset: at,
                value: count,
                limit,
            }));
        }
        Ok(())
    }
}

/// Parses the header of a GGUF image. `origin` names the file in errors.
pub fn parse_header(buf: &[u8], origin: &str) -> Result<Header, GgufError> {
    let mut c = Cursor {
        buf,
        pos: 0,
        origin,
    };
    let magic: [u8; 4] = c.array(&|| "magic".to_string())?;
    if magic != MAGIC {
        return Err(c.err(ErrorKind::BadMagic { found: magic }));
    }
    let version = c.u32(&|| "version".to_string())?;
    if version != 2 && version != 3 {
        let hint = if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
            "; this looks like a big-endian GGUF, which is not supported"
        } else if version == 1 {
            "; version 1 files predate 64-bit counts: re-convert the model"
        } else {
            ""
        };
        return Err(c.err(ErrorKind::UnsupportedVersion { version, hint }));
    }
    let at = c.pos as u64;
    let n_tensors = c.u64(&|| "tensor count".to_string())?;
    let n_kv = c.u64(&|| "metadata count".to_string())?;
    // A key/value needs at least 8 (key length) + 4 (type) + 1 bytes; a tensor
    // info at least 8 + 4 + 4 + 8 bytes.
    c.check_count(n_kv, 13, "metadata count", at + 8)?;
    c.check_count(n_tensors, 24, "tensor count", at)?;

    let mut metadata = Metadata::new();
    for i in 0..n_kv {
        let key = c.string(&|| format!("key of metadata entry {i}"), MAX_STRING)?;
        let value = read_typed_value(&mut c, &key, 0)?;
        metadata
            .insert_new(key, value)
            .map_err(|key| c.err(ErrorKind::DuplicateKey { key }))?;
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => {
            let a = v.as_i128().unwrap_or(0);
            if a <= 0 || (a as u128).count_ones() != 1 || a > (1 << 30) {
                return Err(c.err(ErrorKind::BadAlignment {
                    value: a.max(0) as u64,
                }));
            }
            a as u64
        }
    };

    let mut tensors = Vec::with_capacity(n_tensors as usize);
    let mut names = std::collections::HashSet::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let info = read_tensor_info(&mut c, i)?;
        if !names.insert(info.name.clone()) {
            return Err(c.err(ErrorKind::DuplicateTensor { name: info.name }));
        }
        tensors.push(info);
    }

    let header_end = c.pos as u64;
    let data_offset = header_end.div_ceil(alignment) * alignment;
    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}

fn read_typed_value(c: &mut Cursor<'_>, key: &str, depth: usize) -> Result<Value, GgufError> {
    let at = c.pos as u64;
    let id = c.u32(&|| format!("value type of {key:?}"))?;
    let ty = ValueType::from_id(id).ok_or_else(|| {
        c.err(ErrorKind::UnknownValueType {
            key: key.to_string(),
            offset: at,
            id,
        })
    })?;
    read_value(c, key, ty, depth)
}

fn read_value(
    c: &mut Cursor<'_>,
    key: &str,
    ty: ValueType,
    depth: usize,
) -> Result<Value, GgufError> {
    let what = || format!("value of {key:?}");
    Ok(match ty {
        ValueType::U8 => Value::U8(c.array::<1>(&what)?[0]),
        ValueType::I8 => Value::I8(i8::from_le_bytes(c.array(&what)?)),
        ValueType::U16 => Value::U16(u16::from_le_bytes(c.array(&what)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(c.array(&what)?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(c.array(&what)?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(c.array(&what)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(c.array(&what)?)),
        ValueType::U64 => Value::U64(u64::from_le_bytes(c.array(&what)?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(c.array(&what)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(c.array(&what)?)),
        ValueType::Bool => {
            let at = c.pos as u64;
            match c.array::<1>(&what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(c.err(ErrorKind::Implausible {
                        what: format!("bool value of {key:?}"),
                        offset: at,
                        value: b.into(),
                        limit: 1,
                    }));
                }
            }
        }
        ValueType::String => Value::String(c.string(&what, MAX_STRING)?),
        ValueType::Array => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(c.err(ErrorKind::TooDeep {
                    key: key.to_string(),
                    limit: MAX_ARRAY_DEPTH,
                }));
            }
            let at = c.pos as u64;
            let elem_id = c.u32(&|| format!("array element type of {key:?}"))?;
            let elem_type = ValueType::from_id(elem_id).ok_or_else(|| {
                c.err(ErrorKind::UnknownValueType {
                    key: key.to_string(),
                    offset: at,
                    id: elem_id,
                })
            })?;
            let n_at = c.pos as u64;
            let n = c.u64(&|| format!("array length of {key:?}"))?;
            c.check_count(
                n,
                elem_type.min_size(),
                &format!("array length of {key:?}"),
                n_at,
            )?;
            let mut values = Vec::with_capacity(n as usize);
            for _ in 0..n {
                values.push(read_value(c, key, elem_type, depth + 1)?);
            }
            Value::Array(Array { elem_type, values })
        }
    })
}

fn read_tensor_info(c: &mut Cursor<'_>, i: u64) -> Result<TensorInfo, GgufError> {
    let name = c.string(&|| format!("name of tensor {i}"), MAX_TENSOR_NAME)?;
    let at = c.pos as u64;
    let n_dims = c.u32(&|| format!("dimension count of {name:?}"))?;
    if n_dims > MAX_DIMS {
        return Err(c.err(ErrorKind::Implausible {
            what: format!("dimension count of tensor {name:?}"),
            offset: at,
            value: n_dims.into(),
            limit: MAX_DIMS.into(),
        }));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        dims.push(c.u64(&|| format!("dimension {d} of {name:?}"))?);
    }
    let type_id = c.u32(&|| format!("type of {name:?}"))?;
    let offset = c.u64(&|| format!("data offset of {name:?}"))?;
    let ty = GgmlType::from_id(type_id).ok_or_else(|| {
        c.err(ErrorKind::UnknownTensorType {
            tensor: name.clone(),
            id: type_id,
        })
    })?;
    TensorInfo::new(name, dims, ty, offset).map_err(|kind| c.err(kind))
}

/// Checks every tensor's data lies inside `data_len` bytes after the data
/// section start, is aligned, and does not overlap another tensor.
pub(crate) fn validate_data(header: &Header, file_len: u64, origin: &str) -> Result<(), GgufError> {
    let err = |kind| GgufError::new(origin, kind);
    let data_len = file_len.checked_sub(header.data_offset).ok_or_else(|| {
        err(ErrorKind::Truncated {
            what: "data section".to_string(),
            offset: header.data_offset,
            needed: 0,
            available: 0,
        })
    })?;
    let mut spans: Vec<(u64, u64, &str)> = Vec::with_capacity(header.tensors.len());
    for t in &header.tensors {
        if t.offset % header.alignment != 0 {
            return Err(err(ErrorKind::BadTensorData {
                tensor: t.name.clone(),
                reason: format!(
                    "data offset {} is not a multiple of the alignment {}",
                    t.offset, header.alignment
                ),
            }));
        }
        let end = t.offset.checked_add(t.size_bytes);
        match end {
            Some(end) if end <= data_len => spans.push((t.offset, end, &t.name)),
            _ => {
                return Err(err(ErrorKind::BadTensorData {
                    tensor: t.name.clone(),
                    reason: format!(
                        "data [{}, +{}) runs past the end of the file (data section is {} bytes); \
                         the file is truncated or corrupt — re-download it",
                        t.offset, t.size_bytes, data_len
                    ),
                }));
            }
        }
    }
    spans.sort_unstable();
    // Sweep in offset order, remembering the non-empty span reaching furthest.
    let mut reach: Option<(u64, &str)> = None;
    for &(start, end, name) in &spans {
        if end == start {
            continue;
        }
        if let Some((far, other)) = reach
            && start < far
        {
            return Err(err(ErrorKind::OverlappingTensors {
                a: other.to_string(),
                b: name.to_string(),
            }));
        }
        if reach.is_none_or(|(far, _)| end > far) {
            reach = Some((end, name));
        }
    }
    Ok(())
}
