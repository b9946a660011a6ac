//! AVX-512 VNNI fused kernel for IQ2_XXS × Q8_K against at most
//! [`INVARIANT_ROWS`](crate::kernels::INVARIANT_ROWS) activation rows (decode and small batches).
//!
//! Layout (ggml `block_iq2_xxs`, see [`crate::blocks`]): a 66-byte
//! super-block of 256 elements is an f16 `d` followed by eight 32-element
//! groups of 8 bytes: four indices into [`IQ2XXS_GRID`] (eight magnitudes in
//! {8, 25, 43} each) and a word `b` whose low 28 bits are four 7-bit sign
//! fields (the eighth sign of each 8 is their parity) and whose top 4 bits
//! are the group scale `s`. Element value: `d/8 · (2s + 1) · grid · sign`.
//!
//! The kernel works on pairs of groups (64 elements, one zmm). Per
//! super-block it decodes, without scalar table lookups:
//! - magnitudes: the 32 grid indices, as words, go through four
//!   two-register word permutes (`vpermt2w`, 64 entries each, picked by index
//!   bits 6 and 7) over [`LEVEL_MASKS`], which holds every grid entry as two
//!   8-bit masks (`m ≥ 25`, `m = 43`); a byte shuffle turns them into two
//!   64-bit masks per pair (element order), and two masked moves per pair
//!   rebuild the 64 magnitudes from the constants 8, 25 and 43;
//! - signs: the sign bytes of all eight groups come from one AVX2
//!   computation ([`iq2_sign_bytes`]), so each pair's 64 sign bits are one
//!   `__mmask64` with bit `i` for element `i`;
//! - scales: `2s + 1` of the pair's two groups in the low i16 half of the
//!   i32 lanes (first eight lanes: the even group, last eight: the odd one).
//!
//! With AVX-512 VBMI ([`Vbmi`]) the same masks come from byte permutes
//! instead: two `vpermi2b` per mask (128 table bytes each, picked by index
//! bit 7) over [`LEVEL_BYTES`], and the sign bytes from one
//! `vpmultishiftqb` (the four 7-bit fields of each word to four bytes) and
//! one `vpermi2b` over [`KSIGNS`] (the field plus its parity as bit 7):
//! about a fifth fewer instructions per super-block than [`Permw`].
//!
//! The masks reach mask registers through a small aligned buffer (loads, not
//! extracts: Zen 4 has two shuffle pipes), and the next super-block is
//! decoded before the current one is used, which hides that round trip.
//! Per token and pair, the 64 activation codes are negated where the sign
//! bit is set (`vpsubb` under the mask; Q8_K codes lie in −127..=127, so
//! negation never wraps), `vpdpbusd` sums four magnitude × code products
//! per i32 lane, and `vpdpwssd` adds `lane · (2s + 1)` to the super-block
//! sum: a lane's magnitude is at most 4 · 43 · 127 = 21 844, so it is its
//! own low i16 half, and the scale vector's high halves are zero.
//! (Measured on Zen 4 and rejected: `vpgatherqq` of the grid, about 9.5
//! cycles per eight entries, and scalar lookups with broadcasts and blends,
//! about four instructions per entry.)
//!
//! Every integer step is exact, so the per-super-block i32 sums equal the
//! reference's; each super-block then costs one conversion and one FMA per
//! token (`acc += f32(isum) · (d/8 · d_a)`), and the 16 float lanes are
//! reduced once per row. Tiles of 2..=4 tokens share the weight decode but
//! run every token through the same float operations in the same order as a
//! one-token call, which is what [`INVARIANT_ROWS`](crate::kernels::INVARIANT_ROWS) promises.
//!
//! Safety contract of every `unsafe fn` here: the CPU supports AVX-512
//! F/BW/VL/VNNI, AVX2, FMA and F16C (checked by the kernel table), `row`
//! holds `nsb` IQ2_XXS super-blocks and every token has `nsb` super-blocks
//! of Q8_K activations.

use std::arch::x86_64::*;

use crate::blocks::QK_K;
use crate::kernels::MatmulJob;
use crate::kernels::avx2::q8_0fam::f16_at;
use crate::kernels::avx2::q8k::Q8KTok;
use crate::kernels::avx2::q8k_fused::{iq2_b_words, iq2_sign_bytes};
use crate::kernels::avx2::q8k_row_tiles;
use crate::out::OutCols;
use crate::tables::{IQ2_LEVELS, IQ2XXS_GRID};

/// Bytes per IQ2_XXS super-block.
const SB_BYTES: usize = 66;

/// [`IQ2XXS_GRID`] as level masks: entry `i` holds, for its eight
/// magnitudes `m_j`, bit `j` = `m_j ≥ 25` in the low byte and bit `j` =
/// `m_j = 43` in the high byte (the levels are [`IQ2_LEVELS`] = 8, 25, 43).
/// Eight rows of 32 entries: the operands of four two-register word permutes.
#[repr(C, align(64))]
struct LevelMasks([[u16; 32]; 8]);

static LEVEL_MASKS: LevelMasks = LevelMasks(build_level_masks());

const fn build_level_masks() -> [[u16; 32]; 8] {
    let mut out = [[0u16; 32]; 8];
    let mut i = 0;
    while i < 256 {
        let e = IQ2XXS_GRID[i];
        let (mut lo, mut hi) = (0u16, 0u16);
        let mut j = 0;
        while j < 8 {
            let m = ((e >> (8 * j)) & 0xFF) as u8;
            // Evaluated at compile time (a static's initializer): a grid
            // with any other magnitude fails the build, not a run.
            assert!(m == IQ2_LEVELS[0] || m == IQ2_LEVELS[1] || m == IQ2_LEVELS[2]);
            if m != IQ2_LEVELS[0] {
                lo |= 1 << j;
            }
            if m == IQ2_LEVELS[2] {
                hi |= 1 << j;
            }
            j += 1;
        }
        out[i / 32][i % 32] = lo | (hi << 8);
        i += 1;
    }
    out
}

/// [`IQ2XXS_GRID`] as level-mask bytes for [`Vbmi`]: `[0][i]` has bit `j` set
/// where magnitude `j` of entry `i` is at least 25, `[1][i]` where it is 43
/// (the two bytes of [`LEVEL_MASKS`] entry `i`).
#[repr(C, align(64))]
struct LevelBytes([[u8; 256]; 2]);

static LEVEL_BYTES: LevelBytes = LevelBytes(build_level_bytes());

const fn build_level_bytes() -> [[u8; 256]; 2] {
    let words = build_level_masks();
    let mut out = [[0u8; 256]; 2];
    let mut i = 0;
    while i < 256 {
        let w = words[i / 32][i % 32];
        out[0][i] = (w & 0xFF) as u8;
        out[1][i] = (w >> 8) as u8;
        i += 1;
    }
    out
}

/// Sign bytes of the 128 seven-bit sign fields: the field, plus its parity
/// as bit 7 (the eighth sign, so every byte has an even number of bits set;
/// ggml's `ksigns_iq2xs`).
#[repr(C, align(64))]
struct KSigns([u8; 128]);

static KSIGNS: KSigns = KSigns(build_ksigns());

const fn build_ksigns() -> [u8; 128] {
    let mut out = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        out[i] = (i as u8) | (((i as u8).count_ones() as u8 & 1) << 7);
        i += 1;
    }
    out
}

/// `vpmultishiftqb` control taking, from each 64-bit lane (two sign words),
/// the 8 bits at the four 7-bit field offsets of each word: byte `4w + l` of
/// the lane starts at bit `32w + 7l`.
const SIGN_FIELDS: i64 = i64::from_le_bytes([0, 7, 14, 21, 32, 39, 46, 53]);

/// `pshufb` control gathering, in every 128-bit lane, the low bytes of the
/// eight words into the low qword and the high bytes into the high qword.
static SPLIT_WORDS: [u8; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15];

/// Dword permutation giving lanes 0..8 the scale of group `2·pair` and
/// lanes 8..16 that of group `2·pair + 1`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn pair_sel(pair: i32) -> __m512i {
    let (a, b) = (2 * pair, 2 * pair + 1);
    // Arguments run from lane 15 down to lane 0.
    _mm512_set_epi32(b, b, b, b, b, b, b, b, a, a, a, a, a, a, a, a)
}

/// Mask words of one decoded super-block: per group pair a low-level and
/// a high-level mask (64 bits each, element order) at the decoder's
/// [`SbDecode::LO`] and [`SbDecode::HI`] words, and the sign mask at
/// `8 + pair`.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Masks([u64; 12]);

/// One way of decoding a super-block's masks and scales.
trait SbDecode {
    /// Loop-invariant vectors.
    type C: Copy;
    /// Word of pair `p`'s low-level mask in [`Masks`].
    const LO: [usize; 4];
    /// Word of pair `p`'s high-level mask in [`Masks`].
    const HI: [usize; 4];
    /// Loads the loop-invariant vectors.
    unsafe fn consts() -> Self::C;
    /// Decodes the super-block at `p` (66 readable bytes): writes its masks
    /// to `m` and returns the scale vectors (`2s + 1` per i32 lane, high
    /// i16 half zero) of the four pairs and `d/8`.
    unsafe fn decode(p: *const u8, c: &Self::C, m: &mut Masks) -> ([__m512i; 4], f32);
}

/// The parts of a super-block both decoders share: `d`, the sign words `b`
/// of the eight groups (one per dword) and the 32 grid indices (byte
/// `4g + l`: index `l` of group `g`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn split_sb(p: *const u8) -> (f32, __m256i, __m256i) {
    // SAFETY: the super-block is 66 readable bytes (caller contract).
    let (d, q0, q1) = unsafe {
        (
            f16_at(p),
            _mm256_loadu_si256(p.add(2).cast()),
            _mm256_loadu_si256(p.add(34).cast()),
        )
    };
    let bw = iq2_b_words(q0, q1);
    // Index words of the eight groups (even dwords), in group order.
    let aw = _mm256_permute4x64_epi64::<0xD8>(_mm256_castps_si256(_mm256_shuffle_ps::<0x88>(
        _mm256_castsi256_ps(q0),
        _mm256_castsi256_ps(q1),
    )));
    (d, bw, aw)
}

/// `2s + 1` of each pair's two groups (see [`pair_sel`]).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn pair_scales(bw: __m256i, sel: &[__m512i; 4]) -> [__m512i; 4] {
    // 2s + 1 per group, one dword each.
    let ls = _mm256_or_si256(
        _mm256_slli_epi32::<1>(_mm256_srli_epi32::<28>(bw)),
        _mm256_set1_epi32(1),
    );
    let ls = _mm512_castsi256_si512(ls);
    sel.map(|s| _mm512_permutexvar_epi32(s, ls))
}

/// The scale selectors of [`pair_scales`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn pair_sels() -> [__m512i; 4] {
    [pair_sel(0), pair_sel(1), pair_sel(2), pair_sel(3)]
}

/// Grid lookups by word permutes over [`LEVEL_MASKS`] and sign bytes by
/// shifts and a parity fold (AVX-512 BW).
struct Permw;

/// Loop-invariant vectors of [`Permw`].
#[derive(Clone, Copy)]
struct PermwConsts {
    tab: [__m512i; 8],
    split: __m512i,
    sel: [__m512i; 4],
}

impl SbDecode for Permw {
    type C = PermwConsts;
    const LO: [usize; 4] = [0, 2, 4, 6];
    const HI: [usize; 4] = [1, 3, 5, 7];

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn consts() -> PermwConsts {
        // SAFETY: `LEVEL_MASKS` is 512 readable bytes, 64-byte aligned, and
        // `SPLIT_WORDS` 16 readable bytes.
        unsafe {
            let t = LEVEL_MASKS.0.as_ptr().cast::<__m512i>();
            PermwConsts {
                tab: std::array::from_fn(|i| _mm512_load_si512(t.add(i))),
                split: _mm512_broadcast_i32x4(_mm_loadu_si128(SPLIT_WORDS.as_ptr().cast())),
                sel: pair_sels(),
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn decode(p: *const u8, c: &PermwConsts, m: &mut Masks) -> ([__m512i; 4], f32) {
        // SAFETY: forwarded contract.
        let (d, bw, aw) = unsafe { split_sb(p) };
        let idx = _mm512_cvtepu8_epi16(aw);
        // Four 64-entry lookups (index bits 0..5), selected by bits 6 and 7.
        let r0 = _mm512_permutex2var_epi16(c.tab[0], idx, c.tab[1]);
        let r1 = _mm512_permutex2var_epi16(c.tab[2], idx, c.tab[3]);
        let r2 = _mm512_permutex2var_epi16(c.tab[4], idx, c.tab[5]);
        let r3 = _mm512_permutex2var_epi16(c.tab[6], idx, c.tab[7]);
        let k6 = _mm512_test_epi16_mask(idx, _mm512_set1_epi16(0x40));
        let k7 = _mm512_test_epi16_mask(idx, _mm512_set1_epi16(0x80));
        let lv = _mm512_mask_blend_epi16(
            k7,
            _mm512_mask_blend_epi16(k6, r0, r1),
            _mm512_mask_blend_epi16(k6, r2, r3),
        );
        // SAFETY: `m` is 96 writable, 64-byte aligned bytes: lane `pair` of
        // the split (low-level then high-level mask bytes) goes to words
        // `2·pair`, `2·pair + 1`, the sign bytes to words 8..12.
        unsafe {
            let w = m.0.as_mut_ptr();
            _mm512_store_si512(w.cast(), _mm512_shuffle_epi8(lv, c.split));
            _mm256_store_si256(w.add(8).cast(), iq2_sign_bytes(bw));
        }
        (pair_scales(bw, &c.sel), d * 0.125)
    }
}

/// Grid lookups and sign bytes by byte permutes (AVX-512 VBMI, see the
/// module docs).
struct Vbmi;

/// Loop-invariant vectors of [`Vbmi`].
#[derive(Clone, Copy)]
struct VbmiConsts {
    /// [`LEVEL_BYTES`]: low-level bytes of entries 0..128, 128..256, then
    /// the high-level ones.
    tab: [__m512i; 8],
    signs: [__m512i; 2],
    fields: __m256i,
    sel: [__m512i; 4],
}

impl SbDecode for Vbmi {
    type C = VbmiConsts;
    const LO: [usize; 4] = [0, 1, 2, 3];
    const HI: [usize; 4] = [4, 5, 6, 7];

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
    unsafe fn consts() -> VbmiConsts {
        // SAFETY: `LEVEL_BYTES` is 512 and `KSIGNS` 128 readable bytes, both
        // 64-byte aligned.
        unsafe {
            let t = LEVEL_BYTES.0.as_ptr().cast::<__m512i>();
            let k = KSIGNS.0.as_ptr().cast::<__m512i>();
            VbmiConsts {
                tab: std::array::from_fn(|i| _mm512_load_si512(t.add(i))),
                signs: [_mm512_load_si512(k), _mm512_load_si512(k.add(1))],
                fields: _mm256_set1_epi64x(SIGN_FIELDS),
                sel: pair_sels(),
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
    unsafe fn decode(p: *const u8, c: &VbmiConsts, m: &mut Masks) -> ([__m512i; 4], f32) {
        // SAFETY: forwarded contract.
        let (d, bw, aw) = unsafe { split_sb(p) };
        // Byte permutes read index bits 0..6; bit 7 picks the table half.
        let idx = _mm512_zextsi256_si512(aw);
        let top = _mm512_movepi8_mask(idx);
        let look = |a: __m512i, b: __m512i, c2: __m512i, d2: __m512i| {
            _mm512_mask_blend_epi8(
                top,
                _mm512_permutex2var_epi8(a, idx, b),
                _mm512_permutex2var_epi8(c2, idx, d2),
            )
        };
        let lo = look(c.tab[0], c.tab[1], c.tab[2], c.tab[3]);
        let hi = look(c.tab[4], c.tab[5], c.tab[6], c.tab[7]);
        // Each word's four 7-bit sign fields to four bytes (bit 7 of each
        // byte is the next field's bit, ignored by the permute).
        let fields = _mm512_zextsi256_si512(_mm256_multishift_epi64_epi8(c.fields, bw));
        let signs = _mm512_permutex2var_epi8(c.signs[0], fields, c.signs[1]);
        // SAFETY: `m` is 96 writable, 64-byte aligned bytes: the low 32
        // bytes of each vector hold byte `8·pair + i` for entry `i` of the
        // pair, so pair `p`'s masks land in words `p`, `4 + p` and `8 + p`.
        unsafe {
            let w = m.0.as_mut_ptr();
            _mm256_store_si256(w.cast(), _mm512_castsi512_si256(lo));
            _mm256_store_si256(w.add(4).cast(), _mm512_castsi512_si256(hi));
            _mm256_store_si256(w.add(8).cast(), _mm512_castsi512_si256(signs));
        }
        (pair_scales(bw, &c.sel), d * 0.125)
    }
}

/// IQ2_XXS row × `T` tokens (see the module docs). The next super-block is
/// decoded before the current one is used, so the decode's long dependency
/// chains (through memory into mask registers) overlap the dot products.
/// Inlined into entry points whose target features cover `D`'s.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile<D: SbDecode, const T: usize>(
    row: *const u8,
    nsb: usize,
    toks: &[Q8KTok; T],
) -> [f32; T] {
    if nsb == 0 {
        return [0.0; T];
    }
    // SAFETY: the entry point checked `D`'s CPU features.
    let c = unsafe { D::consts() };
    let zero = _mm512_setzero_si512();
    let (l0, l1, l2) = (
        _mm512_set1_epi8(IQ2_LEVELS[0] as i8),
        _mm512_set1_epi8(IQ2_LEVELS[1] as i8),
        _mm512_set1_epi8(IQ2_LEVELS[2] as i8),
    );
    let mut acc = [_mm512_setzero_ps(); T];
    let mut masks = [Masks([0; 12]); 2];
    // SAFETY: super-block 0 exists (nsb > 0).
    let (mut scv, mut d) = unsafe { D::decode(row, &c, &mut masks[0]) };
    for sb in 0..nsb {
        let (cur, nxt) = if sb % 2 == 0 {
            let (a, b) = masks.split_at_mut(1);
            (&a[0], &mut b[0])
        } else {
            let (a, b) = masks.split_at_mut(1);
            (&b[0], &mut a[0])
        };
        // The last iteration decodes its own super-block again (unused).
        // SAFETY: `min(sb + 1, nsb − 1) < nsb`.
        let (scv_n, d_n) = unsafe { D::decode(row.add(SB_BYTES * (sb + 1).min(nsb - 1)), &c, nxt) };
        let mut isum = [[zero; 2]; T];
        for pair in 0..4 {
            // Volatile reads: real loads into mask registers, not extracts.
            // SAFETY: in-bounds reads of initialized words.
            let (lo, hi, neg) = unsafe {
                (
                    std::ptr::read_volatile(&cur.0[D::LO[pair]]),
                    std::ptr::read_volatile(&cur.0[D::HI[pair]]),
                    std::ptr::read_volatile(&cur.0[8 + pair]),
                )
            };
            let mag = _mm512_mask_mov_epi8(_mm512_mask_mov_epi8(l0, lo, l1), hi, l2);
            for t in 0..T {
                // SAFETY: codes `256·sb + 64·pair .. + 64` exist for every
                // token (module contract).
                let a = unsafe { _mm512_loadu_si512(toks[t].qs.add(QK_K * sb + 64 * pair).cast()) };
                let a = _mm512_mask_sub_epi8(a, neg, zero, a);
                let dp = _mm512_dpbusd_epi32(zero, mag, a);
                isum[t][pair & 1] = _mm512_dpwssd_epi32(isum[t][pair & 1], dp, scv[pair]);
            }
        }
        for t in 0..T {
            // SAFETY: every token has one scale per super-block.
            let da = unsafe { *toks[t].d.add(sb) };
            let s = _mm512_add_epi32(isum[t][0], isum[t][1]);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(d * da), acc[t]);
        }
        (scv, d) = (scv_n, d_n);
    }
    let mut out = [0.0f32; T];
    for t in 0..T {
        out[t] = _mm512_reduce_add_ps(acc[t]);
    }
    out
}

/// IQ2_XXS × Q8_K matmul, one weight row at a time against token tiles of
/// up to four (the kernel table sends it at most [`INVARIANT_ROWS`](crate::kernels::INVARIANT_ROWS) tokens),
/// decoding with word permutes ([`Permw`]).
///
/// # Safety
/// The CPU supports AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C; the job is
/// validated and holds IQ2_XXS weights.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn matmul_iq2xxs_rows(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    // SAFETY: `nsb` super-blocks per row and per token (validated job).
    q8k_row_tiles!(job, out, |row, nsb, tk| unsafe {
        tile::<Permw, T>(row, nsb, &tk)
    });
}

/// As [`matmul_iq2xxs_rows`], decoding with byte permutes ([`Vbmi`]).
///
/// # Safety
/// As [`matmul_iq2xxs_rows`], and the CPU supports AVX-512 VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn matmul_iq2xxs_rows_vbmi(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    // SAFETY: `nsb` super-blocks per row and per token (validated job); the
    // CPU has VBMI (caller contract).
    q8k_row_tiles!(job, out, |row, nsb, tk| unsafe {
        tile::<Vbmi, T>(row, nsb, &tk)
    });
}
