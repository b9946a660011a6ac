//! Single-threaded tokenizer benchmark, driven by `benchmarks/tokenizer/run.sh`.
//!
//! Usage: `bench_tokenize DOCS.jsonl [REPEAT]`, where each line of DOCS.jsonl is
//! a JSON object with a `text` field. Encodes every document with the builtin
//! DeepSeek V4 tokenizer `REPEAT` times (default 3) and prints one JSON line:
//! load time, bytes, tokens, best wall time and MB/s (1 MB = 10^6 bytes).
#![allow(clippy::print_stdout, clippy::expect_used, clippy::unwrap_used)]

use std::time::Instant;

use dsv4_tokenizer::Tokenizer;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: bench_tokenize DOCS.jsonl [REPEAT]");
    let repeat: usize = args
        .next()
        .map_or(3, |s| s.parse().expect("REPEAT is a number"));
    let docs: Vec<String> = std::fs::read_to_string(&path)
        .expect("read DOCS.jsonl")
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            v["text"].as_str().expect("text field").to_owned()
        })
        .collect();
    let bytes: usize = docs.iter().map(String::len).sum();

    let t0 = Instant::now();
    let tok = Tokenizer::builtin().expect("builtin vocabulary");
    let load_s = t0.elapsed().as_secs_f64();

    let mut best = f64::INFINITY;
    let mut tokens = 0;
    for _ in 0..repeat {
        let t = Instant::now();
        tokens = docs.iter().map(|d| tok.encode_text(d).len()).sum::<usize>();
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{{\"impl\": \"dsv4\", \"load_ms\": {:.1}, \"docs\": {}, \"bytes\": {bytes}, \"tokens\": {tokens}, \"seconds\": {best:.4}, \"mb_per_s\": {:.2}}}",
        load_s * 1e3,
        docs.len(),
        bytes as f64 / best / 1e6
    );
}
