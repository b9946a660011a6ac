//! The `dsv4` binary end to end: inspect on a file written by llama.cpp's
//! converter and on one written by our writer, logits as .npy, tokenize,
//! render, synth, run --demo, and the no-model message.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

fn dsv4(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dsv4"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/reference")
        .join(rel)
        .display()
        .to_string()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dsv4-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn inspect_reads_llama_cpp_and_our_own_files() {
    let (ok, out, err) = dsv4(&[
        "inspect",
        &fixture("llamacpp-convert/tiny-llamacpp-convert.gguf"),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("architecture:  deepseek4"), "{out}");
    assert!(out.contains("MXFP4"), "the converter writes MXFP4 experts");
    assert!(out.contains("OK: every tensor of the 4 layers"), "{out}");
    let synth = tmp("synth.gguf");
    let (ok, _, err) = dsv4(&[
        "synth",
        "--preset",
        "tiny",
        "--layers",
        "2",
        "--quant",
        "q2",
        "--out",
        synth.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = dsv4(&["inspect", synth.to_str().unwrap(), "--no-tensors"]);
    assert!(ok, "{err}");
    assert!(out.contains("OK: every tensor of the 2 layers"), "{out}");
    let (ok, _, err) = dsv4(&["inspect", "/nonexistent.gguf"]);
    assert!(!ok && err.contains("/nonexistent.gguf"), "{err}");
}

#[test]
fn logits_command_writes_reference_matching_npy() {
    let out = tmp("logits.npy");
    let (ok, _, err) = dsv4(&[
        "logits",
        "--model",
        &fixture("tiny/tiny-f32.gguf"),
        "--tokens",
        "0,5,9,300,17,2,44",
        "--out",
        out.to_str().unwrap(),
        "--exact",
        "--qat-sim",
        "off",
        "--chunk",
        "3",
    ]);
    assert!(ok, "{err}");
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(header.contains("'shape': (7, 512)"), "{header}");
    assert_eq!(bytes.len() - 10 - hlen, 7 * 512 * 4);
    let (ok, _, err) = dsv4(&[
        "logits",
        "--model",
        &fixture("tiny/tiny-f32.gguf"),
        "--tokens",
        "0,999",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("999") && err.contains("vocabulary"),
        "{err}"
    );
}

#[test]
fn tokenize_render_run_demo_and_no_model() {
    let (ok, out, _) = dsv4(&["tokenize", "--text", "Hello <｜User｜>", "--json"]);
    assert!(ok);
    assert!(
        !out.contains("128803"),
        "typed special strings stay plain text: {out}"
    );
    let (ok, out, err) = dsv4(&[
        "run",
        "--demo",
        "-p",
        "hi",
        "-n",
        "5",
        "--seed",
        "1",
        "--nothink",
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("5 generated"), "{err}");
    let _ = out;
    let (ok, _, err) = dsv4(&["run", "-p", "hi"]);
    assert!(
        !ok && err.contains("--demo") && err.contains("GGUF"),
        "{err}"
    );
}
