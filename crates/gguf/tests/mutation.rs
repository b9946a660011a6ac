//! Thousands of seeded random mutations of a valid file must never panic:
//! each parse returns a file or a typed error. (The `cargo fuzz` target in
//! `fuzz/` explores the same property with coverage guidance.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dsv4_gguf::{Array, GgmlType, GgufFile, GgufWriter, Value};

/// xorshift64*: a tiny deterministic generator, so failures replay by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.set_str("general.architecture", "deepseek4");
    w.set_u32("deepseek4.block_count", 2);
    w.set_array(
        "tokenizer.ggml.tokens",
        Array::strings(["<s>", "a", "bc", "▁d"]),
    );
    w.set_array("deepseek4.attention.compress_ratios", Array::i32s([0, 4]));
    w.set("x", Value::F64(1.5));
    w.add_f32("t0", &[8, 2], &[0.5; 16]).unwrap();
    w.add_tensor("t1", &[32, 2], GgmlType::Q8_0, vec![1; 68])
        .unwrap();
    w.add_tensor("t2", &[256], GgmlType::Q2_K, vec![2; 84])
        .unwrap();
    w.into_bytes().unwrap()
}

fn mutate(rng: &mut Rng, src: &[u8]) -> Vec<u8> {
    let mut b = src.to_vec();
    let n_ops = 1 + rng.below(4);
    for _ in 0..n_ops {
        match rng.below(7) {
            0 => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            2 => {
                let cut = rng.below(b.len() + 1);
                b.truncate(cut);
            }
            3 => {
                // Overwrite 8 bytes with an extreme u64 (counts, lengths, dims, offsets).
                if b.len() >= 8 {
                    let i = rng.below(b.len() - 7);
                    let v = [u64::MAX, 1 << 63, 1 << 40, 0, 1, 0xFFFF_FFFF][rng.below(6)];
                    b[i..i + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
            4 => {
                let i = rng.below(b.len() + 1);
                let extra: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                b.splice(i..i, extra);
            }
            5 => {
                if !b.is_empty() {
                    let i = rng.below(b.len());
                    let j = (i + rng.below(16)).min(b.len());
                    b.drain(i..j);
                }
            }
            _ => {
                // 4-byte type/id fields.
                if b.len() >= 4 {
                    let i = rng.below(b.len() - 3);
                    b[i..i + 4].copy_from_slice(&(rng.next() as u32 % 64).to_le_bytes());
                }
            }
        }
        if b.is_empty() {
            break;
        }
    }
    b
}

#[test]
fn seeded_mutations_never_panic() {
    let src = valid_file();
    assert!(GgufFile::from_bytes(src.clone()).is_ok());
    let (mut ok, mut err) = (0, 0);
    for seed in 1..=5000u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let m = mutate(&mut rng, &src);
        match std::panic::catch_unwind(|| GgufFile::from_bytes(m)) {
            Ok(Ok(f)) => {
                ok += 1;
                // Touch everything a caller would: all views must be in bounds.
                for t in f.tensors() {
                    assert_eq!(f.data_of(t).len() as u64, t.size_bytes);
                }
            }
            Ok(Err(e)) => {
                err += 1;
                assert!(!e.to_string().is_empty());
            }
            Err(_) => panic!("seed {seed} panicked"),
        }
    }
    // The mutator must actually break files most of the time, and sometimes not.
    assert!(err > 2500, "only {err} of 5000 mutations were rejected");
    assert!(ok > 10, "only {ok} mutations stayed valid");
}
