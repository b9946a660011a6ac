//! Writer → reader round trips and validation errors on hand-made bad files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dsv4_gguf::{Array, ErrorKind, GgmlType, GgufFile, GgufWriter, Value, ValueType};

fn sample_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.set_str("general.architecture", "deepseek4");
    w.set_u32("deepseek4.block_count", 4);
    w.set_f32("deepseek4.attention.layer_norm_rms_epsilon", 1e-6);
    w.set_bool("deepseek4.expert_weights_norm", true);
    w.set("u8", Value::U8(200));
    w.set("i8", Value::I8(-3));
    w.set("u16", Value::U16(65535));
    w.set("i16", Value::I16(-32768));
    w.set("i32", Value::I32(-7));
    w.set("u64", Value::U64(u64::MAX));
    w.set("i64", Value::I64(i64::MIN));
    w.set("f64", Value::F64(0.1));
    w.set_array(
        "deepseek4.attention.compress_ratios",
        Array::i32s([0, 4, 128, 4]),
    );
    w.set_array("tokenizer.ggml.tokens", Array::strings(["a", "b", "ｄ▁"]));
    let nested = Array::new(
        ValueType::Array,
        vec![
            Value::Array(Array::u32s([1, 2])),
            Value::Array(Array::u32s([])),
        ],
    )
    .unwrap();
    w.set_array("nested", nested);
    w.add_f32(
        "a.weight",
        &[4, 2],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    )
    .unwrap();
    w.add_i32("b.weight", &[3], &[1, -2, 3]).unwrap();
    w.add_tensor("c.weight", &[64, 2], GgmlType::Q8_0, vec![7u8; 4 * 34])
        .unwrap();
    w.add_tensor("d.weight", &[256], GgmlType::IQ2_XXS, vec![9u8; 66])
        .unwrap();
    w.add_tensor_stream(
        "e.weight",
        &[32, 1, 2],
        GgmlType::MXFP4,
        Box::new(|out| out.write_all(&[5u8; 34])),
    )
    .unwrap();
    w
}

#[test]
fn roundtrip_every_value_type_and_tensor() {
    let w = sample_writer();
    let expected_size = w.file_size();
    let bytes = w.into_bytes().unwrap();
    assert_eq!(bytes.len() as u64, expected_size);
    let f = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(f.version(), 3);
    let md = f.metadata();
    assert_eq!(md.string("general.architecture").unwrap(), "deepseek4");
    assert_eq!(md.u32("deepseek4.block_count").unwrap(), 4);
    assert!(
        (md.f64("deepseek4.attention.layer_norm_rms_epsilon")
            .unwrap()
            - 1e-6)
            .abs()
            < 1e-12
    );
    assert!(md.bool("deepseek4.expert_weights_norm").unwrap());
    assert_eq!(md.get("u8"), Some(&Value::U8(200)));
    assert_eq!(md.get("i16"), Some(&Value::I16(-32768)));
    assert_eq!(md.get("u64"), Some(&Value::U64(u64::MAX)));
    assert_eq!(md.get("i64"), Some(&Value::I64(i64::MIN)));
    assert_eq!(md.get("f64"), Some(&Value::F64(0.1)));
    assert_eq!(
        md.ints("deepseek4.attention.compress_ratios").unwrap(),
        vec![0, 4, 128, 4]
    );
    assert_eq!(
        md.strings("tokenizer.ggml.tokens").unwrap(),
        vec!["a", "b", "ｄ▁"]
    );
    let nested = md.array("nested").unwrap();
    assert_eq!(nested.values.len(), 2);
    assert_eq!(f.tensors().len(), 5);
    let a = f.tensor("a.weight").unwrap();
    assert_eq!(
        a.as_f32().unwrap(),
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    );
    assert_eq!(a.info.n_rows(), 2);
    assert_eq!(f.tensor("b.weight").unwrap().as_i32().unwrap(), &[1, -2, 3]);
    let c = f.tensor("c.weight").unwrap();
    assert_eq!(c.data.len(), 136);
    assert!(c.data.iter().all(|&b| b == 7));
    assert_eq!(c.row(1).unwrap().len(), 68);
    assert!(c.row(2).is_none());
    assert_eq!(f.tensor("e.weight").unwrap().data, &[5u8; 34][..]);
    for t in f.tensors() {
        assert_eq!(
            (f.data_offset() + t.offset) % 32,
            0,
            "{} misaligned",
            t.name
        );
    }
}

#[test]
fn roundtrip_through_a_file_with_custom_alignment() {
    let dir = std::env::temp_dir().join(format!("dsv4-gguf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.gguf");
    let mut w = GgufWriter::new();
    w.set_alignment(64).unwrap();
    w.add_f32("x", &[3], &[1.0, 2.0, 3.0]).unwrap();
    w.add_f32("y", &[1], &[4.0]).unwrap();
    w.write_to_path(&path).unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.tensor_info("y").unwrap().offset, 64);
    assert_eq!(f.tensor("y").unwrap().as_f32().unwrap(), &[4.0]);
    assert!(f.path().is_some());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn kind(bytes: Vec<u8>) -> ErrorKind {
    GgufFile::from_bytes(bytes).unwrap_err().kind
}

#[test]
fn bad_magic_and_version() {
    let mut b = sample_writer().into_bytes().unwrap();
    b[0] = b'X';
    assert!(matches!(kind(b), ErrorKind::BadMagic { .. }));
    let mut b = sample_writer().into_bytes().unwrap();
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert!(matches!(
        kind(b),
        ErrorKind::UnsupportedVersion { version: 1, .. }
    ));
    let mut b = sample_writer().into_bytes().unwrap();
    b[4..8].copy_from_slice(&3u32.to_be_bytes());
    let e = GgufFile::from_bytes(b).unwrap_err().to_string();
    assert!(e.contains("big-endian"), "{e}");
}

#[test]
fn truncation_is_reported_with_offsets() {
    let b = sample_writer().into_bytes().unwrap();
    for cut in [3usize, 10, 30, 100, 400] {
        let e = GgufFile::from_bytes(b[..cut].to_vec()).unwrap_err();
        assert!(
            matches!(
                e.kind,
                ErrorKind::Truncated { .. } | ErrorKind::Implausible { .. }
            ),
            "cut {cut}: {e}"
        );
    }
    // Cutting into the data section is a data-bounds error naming a tensor.
    let e = GgufFile::from_bytes(b[..b.len() - 1].to_vec()).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::BadTensorData { ref tensor, .. } if tensor == "e.weight"),
        "{e}"
    );
}

/// Offset of a tensor-info's type field and data offset, found by scanning for its name.
fn tensor_info_pos(bytes: &[u8], name: &str) -> usize {
    let needle: Vec<u8> = [
        (name.len() as u64).to_le_bytes().as_slice(),
        name.as_bytes(),
    ]
    .concat();
    bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap()
        + needle.len()
}

#[test]
fn absurd_counts_do_not_allocate() {
    let mut b = sample_writer().into_bytes().unwrap();
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes()); // tensor count
    assert!(matches!(kind(b), ErrorKind::Implausible { .. }));
    let mut b = sample_writer().into_bytes().unwrap();
    b[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes()); // kv count
    assert!(matches!(kind(b), ErrorKind::Implausible { .. }));
    // A huge key length.
    let mut b = sample_writer().into_bytes().unwrap();
    b[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(matches!(kind(b), ErrorKind::Implausible { .. }));
}

#[test]
fn unknown_types_overlap_and_misalignment() {
    let base = sample_writer().into_bytes().unwrap();
    // Unknown tensor type id on a.weight: layout is n_dims u32, dims u64*n, type u32, offset u64.
    let mut b = base.clone();
    let p = tensor_info_pos(&b, "a.weight") + 4 + 16;
    b[p..p + 4].copy_from_slice(&4u32.to_le_bytes());
    assert!(matches!(
        kind(b),
        ErrorKind::UnknownTensorType { id: 4, .. }
    ));
    // Overlap: point b.weight at a.weight's data.
    let mut b = base.clone();
    let p = tensor_info_pos(&b, "b.weight") + 4 + 8 + 4;
    b[p..p + 8].copy_from_slice(&0u64.to_le_bytes());
    assert!(matches!(kind(b), ErrorKind::OverlappingTensors { .. }));
    // Misaligned offset.
    let mut b = base.clone();
    let p = tensor_info_pos(&b, "b.weight") + 4 + 8 + 4;
    b[p..p + 8].copy_from_slice(&33u64.to_le_bytes());
    assert!(matches!(kind(b), ErrorKind::BadTensorData { .. }));
    // Unknown metadata value type on the first key.
    let mut b = base;
    let klen = u64::from_le_bytes(b[24..32].try_into().unwrap()) as usize;
    let p = 32 + klen;
    b[p..p + 4].copy_from_slice(&99u32.to_le_bytes());
    assert!(matches!(
        kind(b),
        ErrorKind::UnknownValueType { id: 99, .. }
    ));
}

#[test]
fn writer_rejects_inconsistent_input() {
    let mut w = GgufWriter::new();
    assert!(
        w.add_tensor("x", &[32], GgmlType::Q8_0, vec![0; 33])
            .is_err()
    );
    assert!(
        w.add_tensor("x", &[31], GgmlType::Q8_0, vec![0; 34])
            .is_err()
    );
    w.add_f32("y", &[1], &[1.0]).unwrap();
    assert!(w.add_f32("y", &[1], &[1.0]).is_err());
    assert!(w.set_alignment(3).is_err());
    let mut w = GgufWriter::new();
    w.add_tensor_stream("z", &[4], GgmlType::F32, Box::new(|o| o.write_all(&[0; 3])))
        .unwrap();
    assert!(w.into_bytes().is_err());
}
