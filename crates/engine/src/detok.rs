//! Incremental detokenization for streaming: token bytes are accumulated and
//! only complete UTF-8 is released; invalid sequences become U+FFFD.

/// The byte assembler.
#[derive(Debug, Default, Clone)]
pub struct Utf8Assembler {
    pending: Vec<u8>,
}

impl Utf8Assembler {
    /// Adds bytes; returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    // `good` bytes are valid UTF-8 by the error's contract.
                    out.push_str(&String::from_utf8_lossy(&self.pending[..good]));
                    match e.error_len() {
                        None => {
                            self.pending.drain(..good);
                            return out;
                        }
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..good + bad);
                        }
                    }
                }
            }
        }
    }

    /// Releases whatever is left (an incomplete tail becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_multibyte_sequences() {
        let mut a = Utf8Assembler::default();
        let bytes = "héllo🙂".as_bytes();
        let mut out = String::new();
        for b in bytes {
            out.push_str(&a.push(&[*b]));
        }
        assert_eq!(out, "héllo🙂");
        assert_eq!(a.push(&[0xff, b'a']), "\u{FFFD}a");
        assert_eq!(a.push(&[0xe2, 0x82]), "");
        assert_eq!(a.finish(), "\u{FFFD}");
    }
}
