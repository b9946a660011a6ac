//! Identifiers and opaque tokens the APIs hand out.
//!
//! Ids are a prefix plus 24 random alphanumerics (`chatcmpl-…`, `call_…`,
//! `toolu_…`, `msg_…`, `resp_…`, `fc_…`, `rs_…`): unique and unguessable, so
//! tool-call ids stay stable keys when clients send them back. Thinking
//! signatures (Anthropic) and reasoning blobs (Responses `encrypted_content`)
//! are our own versioned formats: a signature is a keyed digest of the
//! thinking text (non-empty, the same text gives the same signature; never
//! required back), and a blob carries the exact reasoning text so a replayed
//! reasoning item restores it. Foreign or damaged blobs decode to `None` and
//! are ignored, never refused.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `prefix` + 24 random alphanumerics.
pub(crate) fn new_id(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut s = String::with_capacity(prefix.len() + 24);
    s.push_str(prefix);
    for _ in 0..24 {
        s.push(char::from(ALNUM[rng.random_range(0..ALNUM.len())]));
    }
    s
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// FNV-1a 64 over a domain tag and the text (a stable digest, not a MAC: the
/// signature only has to be non-empty, opaque and repeatable).
fn digest(tag: &[u8], text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in tag.iter().chain(text.as_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The signature of a thinking block.
pub(crate) fn thinking_signature(thinking: &str) -> String {
    let h = digest(b"dsv4-thinking-v1", thinking);
    STANDARD.encode(format!("dsv4-sig-v1:{h:016x}:{}", thinking.len()))
}

const BLOB_PREFIX: &str = "dsv4-reasoning-v1:";

/// Our `encrypted_content` for a reasoning item: the reasoning text, encoded.
pub(crate) fn reasoning_blob(reasoning: &str) -> String {
    STANDARD.encode(format!("{BLOB_PREFIX}{reasoning}"))
}

/// The reasoning text of one of our blobs; `None` for anything else.
pub(crate) fn reasoning_from_blob(blob: &str) -> Option<String> {
    let bytes = STANDARD.decode(blob.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix(BLOB_PREFIX).map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_signatures_blobs() {
        let a = new_id("call_");
        assert!(a.starts_with("call_") && a.len() == 29);
        assert_ne!(a, new_id("call_"));
        let s = thinking_signature("why");
        assert!(!s.is_empty());
        assert_eq!(s, thinking_signature("why"));
        assert_ne!(s, thinking_signature("why not"));
        assert!(!thinking_signature("").is_empty());
        let b = reasoning_blob("step 1\nstep 2 — ü");
        assert_eq!(
            reasoning_from_blob(&b).as_deref(),
            Some("step 1\nstep 2 — ü")
        );
        assert_eq!(reasoning_from_blob("gAAAAABforeign-openai-blob"), None);
        assert_eq!(reasoning_from_blob(&STANDARD.encode("other")), None);
    }
}
