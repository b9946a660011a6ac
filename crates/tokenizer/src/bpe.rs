//! Byte-level BPE merging of one pre-token.
//!
//! Owns the merge table (pair of token ids → rank and merged id) and the merge
//! loop. Semantics are those of HF `tokenizers` `BPE` with `ignore_merges =
//! false` and no dropout: start from one token per byte, then repeatedly merge
//! the adjacent pair with the lowest rank, the leftmost one on ties, until no
//! adjacent pair has a merge. If a pair is listed twice, the later rank wins (HF
//! collects the list into a map). Short pieces use a linear scan over cached pair
//! ranks; long pieces (long whitespace or letter runs) a heap over a linked list,
//! so the cost stays O(n log n). The module never sees text, only bytes and ids.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

/// Pieces up to this many bytes use the linear-scan merge loop.
const SMALL_PIECE: usize = 48;

/// Sentinel for "no merge for this pair".
const NO_MERGE: u64 = u64::MAX;

/// The merge table of a byte-level BPE vocabulary.
#[derive(Debug)]
pub(crate) struct Bpe {
    byte_ids: [u32; 256],
    /// `(left << 32) | right` → `(rank << 32) | merged`.
    merges: FxHashMap<u64, u64>,
}

/// Reusable buffers for [`Bpe::encode`].
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    syms: Vec<u32>,
    ranks: Vec<u64>,
    nodes: Vec<Node>,
    heap: BinaryHeap<Reverse<(u32, u32)>>,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    id: u32,
    prev: u32,
    next: u32,
    alive: bool,
}

const NONE: u32 = u32::MAX;

impl Bpe {
    /// Builds the table. `merges[r] = (left, right, merged)` has rank `r`.
    pub(crate) fn new(byte_ids: [u32; 256], merges: &[(u32, u32, u32)]) -> Self {
        let mut map = FxHashMap::with_capacity_and_hasher(merges.len(), Default::default());
        for (rank, &(left, right, merged)) in merges.iter().enumerate() {
            let rank = u64::try_from(rank).unwrap_or(u64::from(u32::MAX));
            map.insert(pair_key(left, right), (rank << 32) | u64::from(merged));
        }
        Self {
            byte_ids,
            merges: map,
        }
    }

    #[inline(always)]
    fn lookup(&self, left: u32, right: u32) -> u64 {
        self.merges
            .get(&pair_key(left, right))
            .copied()
            .unwrap_or(NO_MERGE)
    }

    /// Appends the token ids of one pre-token (`piece` non-empty) to `out`.
    pub(crate) fn encode(&self, piece: &[u8], scratch: &mut Scratch, out: &mut Vec<u32>) {
        match piece.len() {
            0 => {}
            1 => out.push(self.byte_ids[usize::from(piece[0])]),
            n if n <= SMALL_PIECE => self.encode_small(piece, scratch, out),
            _ => self.encode_large(piece, scratch, out),
        }
    }

    fn encode_small(&self, piece: &[u8], scratch: &mut Scratch, out: &mut Vec<u32>) {
        let syms = &mut scratch.syms;
        let ranks = &mut scratch.ranks;
        syms.clear();
        syms.extend(piece.iter().map(|&b| self.byte_ids[usize::from(b)]));
        ranks.clear();
        ranks.extend(syms.windows(2).map(|w| self.lookup(w[0], w[1])));
        loop {
            // Lowest packed value = lowest rank; strict `<` keeps the leftmost.
            let mut best = NO_MERGE;
            let mut at = 0;
            for (k, &r) in ranks.iter().enumerate() {
                if r < best {
                    best = r;
                    at = k;
                }
            }
            if best == NO_MERGE {
                break;
            }
            syms[at] = best as u32; // low half: the merged id
            syms.remove(at + 1);
            ranks.remove(at);
            if at > 0 {
                ranks[at - 1] = self.lookup(syms[at - 1], syms[at]);
            }
            if at + 1 < syms.len() {
                ranks[at] = self.lookup(syms[at], syms[at + 1]);
            }
        }
        out.extend_from_slice(syms);
    }

    fn encode_large(&self, piece: &[u8], scratch: &mut Scratch, out: &mut Vec<u32>) {
        let n = piece.len();
        let nodes = &mut scratch.nodes;
        let heap = &mut scratch.heap;
        nodes.clear();
        heap.clear();
        // Piece lengths fit in u32: pieces come from one &str of at most isize::MAX
        // bytes, and a 4 GiB pre-token would exhaust memory long before.
        nodes.extend(piece.iter().enumerate().map(|(k, &b)| Node {
            id: self.byte_ids[usize::from(b)],
            prev: if k == 0 { NONE } else { k as u32 - 1 },
            next: if k + 1 == n { NONE } else { k as u32 + 1 },
            alive: true,
        }));
        for k in 0..n - 1 {
            let r = self.lookup(nodes[k].id, nodes[k + 1].id);
            if r != NO_MERGE {
                heap.push(Reverse(((r >> 32) as u32, k as u32)));
            }
        }
        while let Some(Reverse((rank, pos))) = heap.pop() {
            let left = nodes[pos as usize];
            if !left.alive || left.next == NONE {
                continue;
            }
            let right = nodes[left.next as usize];
            let r = self.lookup(left.id, right.id);
            if r == NO_MERGE || (r >> 32) as u32 != rank {
                continue; // stale entry
            }
            let merged = r as u32;
            nodes[pos as usize].id = merged;
            nodes[pos as usize].next = right.next;
            nodes[left.next as usize].alive = false;
            if right.next != NONE {
                nodes[right.next as usize].prev = pos;
                let r = self.lookup(merged, nodes[right.next as usize].id);
                if r != NO_MERGE {
                    heap.push(Reverse(((r >> 32) as u32, pos)));
                }
            }
            if left.prev != NONE {
                let r = self.lookup(nodes[left.prev as usize].id, merged);
                if r != NO_MERGE {
                    heap.push(Reverse(((r >> 32) as u32, left.prev)));
                }
            }
        }
        let mut k = 0;
        while k != NONE {
            let node = nodes[k as usize];
            out.push(node.id);
            k = node.next;
        }
    }
}

#[inline(always)]
fn pair_key(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes are ids 0..256; merges build ids from 256 up.
    fn toy(merges: &[(u32, u32)]) -> Bpe {
        let mut byte_ids = [0u32; 256];
        for (b, id) in byte_ids.iter_mut().enumerate() {
            *id = b as u32;
        }
        let list: Vec<_> = merges
            .iter()
            .enumerate()
            .map(|(r, &(l, rr))| (l, rr, 256 + r as u32))
            .collect();
        Bpe::new(byte_ids, &list)
    }

    fn both(bpe: &Bpe, piece: &[u8]) -> Vec<u32> {
        let mut s = Scratch::default();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        bpe.encode_small(piece, &mut s, &mut a);
        bpe.encode_large(piece, &mut s, &mut b);
        assert_eq!(a, b, "small and large paths disagree on {piece:?}");
        a
    }

    #[test]
    fn lowest_rank_then_leftmost() {
        let a = u32::from(b'a');
        let b = u32::from(b'b');
        // rank 0: "aa" (256), rank 1: "ab" (257), rank 2: "aa"+"aa" (258)
        let bpe = toy(&[(a, a), (a, b), (256, 256)]);
        assert_eq!(both(&bpe, b"aaa"), [256, a]);
        assert_eq!(both(&bpe, b"aaaa"), [258]);
        assert_eq!(both(&bpe, b"aab"), [256, b]);
        assert_eq!(both(&bpe, b"abaa"), [257, 256]);
        assert_eq!(both(&bpe, b"xyz"), [120, 121, 122]);
    }

    #[test]
    fn random_pieces_agree() {
        use rand::{Rng, SeedableRng};
        let mut merges = Vec::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let pick = |rng: &mut rand::rngs::StdRng, r: u32| {
            if r == 0 || rng.random_bool(0.5) {
                rng.random_range(0..4)
            } else {
                256 + rng.random_range(0..r)
            }
        };
        for r in 0..300u32 {
            let l = pick(&mut rng, r);
            let rr = pick(&mut rng, r);
            merges.push((l, rr));
        }
        let bpe = toy(&merges);
        for _ in 0..2000 {
            let n = rng.random_range(1..90);
            let piece: Vec<u8> = (0..n).map(|_| rng.random_range(0..4u8)).collect();
            both(&bpe, &piece);
        }
    }
}
