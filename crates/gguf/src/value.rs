//! Metadata values: the twelve GGUF value types, arrays (nested), and the
//! ordered key/value store with typed accessors.
//!
//! Accessors are strict: a key of the wrong type is an error, never a silent
//! default. Integer accessors accept any integer type whose value fits, because
//! writers disagree on widths (`u32` vs `i32` vs `u64`) for the same key.

use std::collections::HashMap;
use std::fmt;

use crate::error::ErrorKind;

/// The type tag of a metadata value, with GGUF's numeric ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// id 0
    U8,
    /// id 1
    I8,
    /// id 2
    U16,
    /// id 3
    I16,
    /// id 4
    U32,
    /// id 5
    I32,
    /// id 6
    F32,
    /// id 7
    Bool,
    /// id 8
    String,
    /// id 9
    Array,
    /// id 10
    U64,
    /// id 11
    I64,
    /// id 12
    F64,
}

impl ValueType {
    /// Decodes a GGUF value type id.
    pub fn from_id(id: u32) -> Option<ValueType> {
        Some(match id {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    /// The GGUF id.
    pub fn id(self) -> u32 {
        match self {
            ValueType::U8 => 0,
            ValueType::I8 => 1,
            ValueType::U16 => 2,
            ValueType::I16 => 3,
            ValueType::U32 => 4,
            ValueType::I32 => 5,
            ValueType::F32 => 6,
            ValueType::Bool => 7,
            ValueType::String => 8,
            ValueType::Array => 9,
            ValueType::U64 => 10,
            ValueType::I64 => 11,
            ValueType::F64 => 12,
        }
    }

    /// Minimum encoded size in bytes of one value of this type (strings and
    /// arrays: their length prefix). Used to bound counts before allocating.
    pub(crate) fn min_size(self) -> u64 {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
            ValueType::Array => 12,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        };
        f.write_str(s)
    }
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// u8
    U8(u8),
    /// i8
    I8(i8),
    /// u16
    U16(u16),
    /// i16
    I16(i16),
    /// u32
    U32(u32),
    /// i32
    I32(i32),
    /// f32
    F32(f32),
    /// bool
    Bool(bool),
    /// UTF-8 string
    String(String),
    /// Homogeneous array
    Array(Array),
    /// u64
    U64(u64),
    /// i64
    I64(i64),
    /// f64
    F64(f64),
}

/// A homogeneous array: every element has `elem_type`.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The element type.
    pub elem_type: ValueType,
    /// The elements.
    pub values: Vec<Value>,
}

impl Array {
    /// Builds an array, checking that every element has the same type.
    /// Returns `None` for a mixed array.
    pub fn new(elem_type: ValueType, values: Vec<Value>) -> Option<Array> {
        values
            .iter()
            .all(|v| v.value_type() == elem_type)
            .then_some(Array { elem_type, values })
    }

    /// An array of strings.
    pub fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Array {
        Array {
            elem_type: ValueType::String,
            values: items.into_iter().map(|s| Value::String(s.into())).collect(),
        }
    }

    /// An array of i32.
    pub fn i32s(items: impl IntoIterator<Item = i32>) -> Array {
        Array {
            elem_type: ValueType::I32,
            values: items.into_iter().map(Value::I32).collect(),
        }
    }

    /// An array of u32.
    pub fn u32s(items: impl IntoIterator<Item = u32>) -> Array {
        Array {
            elem_type: ValueType::U32,
            values: items.into_iter().map(Value::U32).collect(),
        }
    }

    /// An array of f32.
    pub fn f32s(items: impl IntoIterator<Item = f32>) -> Array {
        Array {
            elem_type: ValueType::F32,
            values: items.into_iter().map(Value::F32).collect(),
        }
    }
}

impl Value {
    /// The value's type tag.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The value as a signed integer, if it is any integer type.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value as f64, if it is a float or integer type.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_i128().map(|v| v as f64),
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A short human rendering (arrays abbreviated), for `inspect`.
    pub fn summary(&self, max_items: usize) -> String {
        match self {
            Value::String(s) => {
                let mut t: String = s.chars().take(120).collect();
                if t.len() < s.len() {
                    t.push('…');
                }
                format!("{t:?}")
            }
            Value::Array(a) => {
                let shown: Vec<String> = a
                    .values
                    .iter()
                    .take(max_items)
                    .map(|v| v.summary(max_items))
                    .collect();
                let more = if a.values.len() > max_items {
                    format!(", … ({} items)", a.values.len())
                } else {
                    String::new()
                };
                format!("[{}{}] ({}[])", shown.join(", "), more, a.elem_type)
            }
            Value::Bool(b) => b.to_string(),
            Value::F32(v) => format!("{v}"),
            Value::F64(v) => format!("{v}"),
            other => other.as_i128().map(|v| v.to_string()).unwrap_or_default(),
        }
    }
}

/// The metadata store: keys in file order, with lookup by name.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// An empty store.
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Inserts a key; returns the key back as an error if it already exists.
    pub(crate) fn insert_new(&mut self, key: String, value: Value) -> Result<(), String> {
        if self.index.contains_key(&key) {
            return Err(key);
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        Ok(())
    }

    /// Sets a key, replacing any previous value in place.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.index.get(&key) {
            Some(&i) => self.entries[i].1 = value,
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, value));
            }
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys and values in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The raw value of a key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    fn require(&self, key: &str) -> Result<&Value, ErrorKind> {
        self.get(key).ok_or_else(|| ErrorKind::MissingKey {
            key: key.to_string(),
        })
    }

    /// A string value.
    pub fn string(&self, key: &str) -> Result<&str, ErrorKind> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| wrong(key, "string", v))
    }

    /// An integer value that fits in `u64` (any integer width accepted).
    pub fn u64(&self, key: &str) -> Result<u64, ErrorKind> {
        let v = self.require(key)?;
        let i = v.as_i128().ok_or_else(|| wrong(key, "integer", v))?;
        u64::try_from(i).map_err(|_| bad(key, format!("{i} is not a non-negative integer")))
    }

    /// An integer value that fits in `u32`.
    pub fn u32(&self, key: &str) -> Result<u32, ErrorKind> {
        let v = self.u64(key)?;
        u32::try_from(v).map_err(|_| bad(key, format!("{v} does not fit in 32 bits")))
    }

    /// A float value (f32, f64, or an integer).
    pub fn f64(&self, key: &str) -> Result<f64, ErrorKind> {
        let v = self.require(key)?;
        v.as_f64().ok_or_else(|| wrong(key, "number", v))
    }

    /// A boolean value.
    pub fn bool(&self, key: &str) -> Result<bool, ErrorKind> {
        match self.require(key)? {
            Value::Bool(b) => Ok(*b),
            v => Err(wrong(key, "bool", v)),
        }
    }

    /// An array value.
    pub fn array(&self, key: &str) -> Result<&Array, ErrorKind> {
        match self.require(key)? {
            Value::Array(a) => Ok(a),
            v => Err(wrong(key, "array", v)),
        }
    }

    /// An array of strings.
    pub fn strings(&self, key: &str) -> Result<Vec<&str>, ErrorKind> {
        let a = self.array(key)?;
        a.values
            .iter()
            .map(|v| v.as_str().ok_or_else(|| wrong(key, "array of strings", v)))
            .collect()
    }

    /// An array of integers (any width), each fitting in i64.
    pub fn ints(&self, key: &str) -> Result<Vec<i64>, ErrorKind> {
        let a = self.array(key)?;
        a.values
            .iter()
            .map(|v| {
                let i = v
                    .as_i128()
                    .ok_or_else(|| wrong(key, "array of integers", v))?;
                i64::try_from(i).map_err(|_| bad(key, format!("element {i} out of range")))
            })
            .collect()
    }

    /// An array of numbers as f64.
    pub fn floats(&self, key: &str) -> Result<Vec<f64>, ErrorKind> {
        let a = self.array(key)?;
        a.values
            .iter()
            .map(|v| v.as_f64().ok_or_else(|| wrong(key, "array of numbers", v)))
            .collect()
    }
}

fn wrong(key: &str, expected: &'static str, v: &Value) -> ErrorKind {
    ErrorKind::WrongType {
        key: key.to_string(),
        expected,
        found: v.value_type(),
    }
}

fn bad(key: &str, reason: String) -> ErrorKind {
    ErrorKind::BadValue {
        key: key.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_accessors_are_strict_but_width_tolerant() {
        let mut md = Metadata::new();
        md.set("a", Value::I32(7));
        md.set("b", Value::String("x".into()));
        md.set("c", Value::I32(-1));
        md.set("d", Value::Array(Array::i32s([1, 2, 3])));
        assert_eq!(md.u32("a").unwrap(), 7);
        assert_eq!(md.u64("a").unwrap(), 7);
        assert!(matches!(md.u32("b"), Err(ErrorKind::WrongType { .. })));
        assert!(matches!(md.u32("c"), Err(ErrorKind::BadValue { .. })));
        assert!(matches!(md.u32("zz"), Err(ErrorKind::MissingKey { .. })));
        assert_eq!(md.ints("d").unwrap(), vec![1, 2, 3]);
        assert!(md.strings("d").is_err());
        md.set("a", Value::U8(9));
        assert_eq!(md.u32("a").unwrap(), 9);
        assert_eq!(md.len(), 4);
    }

    #[test]
    fn mixed_arrays_are_rejected() {
        assert!(Array::new(ValueType::I32, vec![Value::I32(1), Value::U8(2)]).is_none());
    }
}
