//! Constant tables of the ggml formats, generated at compile time from their
//! compact forms.
//!
//! Sources (llama.cpp commit `0c1e57098`, MIT):
//! - `kgrid_2bit_256` is copied from `iq2xs_init_impl` in `ggml/src/ggml-quants.c`;
//!   it is the compact form of `iq2xxs_grid` (`ggml/src/ggml-common.h`): each
//!   u16 holds eight 2-bit codes (element `i` in bits `2i..2i+1`) mapped
//!   0 → 8, 1 → 25, 2 → 43 (code 3 never occurs). [`IQ2XXS_GRID`] is rebuilt
//!   from it, so the 256-entry u64 table is never typed in by hand.
//! - `ksigns_iq2xs` (`ggml-common.h`): entry `i` is `i` with bit 7 set to the
//!   parity of `popcount(i)`, so every sign pattern has an even number of
//!   negatives. [`KSIGNS_IQ2XS`] is computed that way; [`KSIGNS64`] expands each
//!   entry to eight 0x00/0xFF byte masks (ggml's `ksigns64`).
//! - `kvalues_mxfp4` (`ggml-common.h`): the E2M1 values **doubled**
//!   (0, 1, 2, 3, 4, 6, 8, 12, and negatives); ggml pairs them with a halved
//!   E8M0 scale ([`e8m0_to_f32_half`], `ggml_e8m0_to_fp32_half` in
//!   `ggml/src/ggml-impl.h`), so value = kvalue · 2^(e − 128) is the real
//!   OCP MX value 2^(e − 127) · E2M1.
//!
//! Nothing here allocates or fails; the tests check the generated tables'
//! defining properties, and the golden fixtures check them against gguf-py.

/// Compact form of the IQ2_XXS grid: 256 entries of eight 2-bit codes.
/// Copied verbatim from `kgrid_2bit_256` in ggml `ggml-quants.c` (`0c1e57098`).
pub const KGRID_2BIT_256: [u16; 256] = [
    0, 2, 5, 8, 10, 17, 20, 32, 34, 40, 42, 65, 68, 80, 88, 97, //
    100, 128, 130, 138, 162, 257, 260, 272, 277, 320, 388, 408, 512, 514, 546, 642, //
    1025, 1028, 1040, 1057, 1060, 1088, 1090, 1096, 1120, 1153, 1156, 1168, 1188, 1280, 1282,
    1288, //
    1312, 1350, 1385, 1408, 1425, 1545, 1552, 1600, 1668, 1700, 2048, 2053, 2056, 2068, 2088,
    2113, //
    2116, 2128, 2130, 2184, 2308, 2368, 2562, 2580, 4097, 4100, 4112, 4129, 4160, 4192, 4228,
    4240, //
    4245, 4352, 4360, 4384, 4432, 4442, 4480, 4644, 4677, 5120, 5128, 5152, 5157, 5193, 5248,
    5400, //
    5474, 5632, 5654, 6145, 6148, 6160, 6208, 6273, 6400, 6405, 6560, 6737, 8192, 8194, 8202,
    8260, //
    8289, 8320, 8322, 8489, 8520, 8704, 8706, 9217, 9220, 9232, 9280, 9302, 9472, 9537, 9572,
    9872, //
    10248, 10272, 10388, 10820, 16385, 16388, 16400, 16408, 16417, 16420, 16448, 16456, 16470,
    16480, 16513, 16516, //
    16528, 16640, 16672, 16737, 16768, 16773, 16897, 16912, 16968, 16982, 17000, 17408, 17416,
    17440, 17536, 17561, //
    17682, 17700, 17920, 18433, 18436, 18448, 18496, 18501, 18688, 18776, 18785, 18818, 19013,
    19088, 20480, 20488, //
    20497, 20505, 20512, 20608, 20616, 20740, 20802, 20900, 21137, 21648, 21650, 21770, 22017,
    22100, 22528, 22545, //
    22553, 22628, 22848, 23048, 24580, 24592, 24640, 24680, 24832, 24917, 25112, 25184, 25600,
    25605, 25872, 25874, //
    25988, 26690, 32768, 32770, 32778, 32833, 32898, 33028, 33048, 33088, 33297, 33793, 33796,
    33808, 33813, 33856, //
    33888, 34048, 34118, 34196, 34313, 34368, 34400, 34818, 35076, 35345, 36868, 36880, 36900,
    36928, 37025, 37142, //
    37248, 37445, 37888, 37922, 37956, 38225, 39041, 39200, 40962, 41040, 41093, 41225, 41472,
    42008, 43088, 43268,
];

/// The three magnitudes of the IQ2 lattice, indexed by 2-bit code.
pub const IQ2_LEVELS: [u8; 3] = [8, 25, 43];

/// `iq2xxs_grid`: 256 entries whose 8 bytes are the magnitudes of 8
/// consecutive elements (byte `i` = element `i`).
pub const IQ2XXS_GRID: [u64; 256] = build_iq2xxs_grid();

const fn build_iq2xxs_grid() -> [u64; 256] {
    let mut out = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let packed = KGRID_2BIT_256[i];
        let mut v = 0u64;
        let mut j = 0;
        while j < 8 {
            let code = ((packed >> (2 * j)) & 3) as usize;
            // Code 3 never occurs in the compact table (checked by a test); map
            // it to the top level rather than index out of bounds.
            let level = if code < 3 {
                IQ2_LEVELS[code]
            } else {
                IQ2_LEVELS[2]
            };
            v |= (level as u64) << (8 * j);
            j += 1;
        }
        out[i] = v;
        i += 1;
    }
    out
}

/// `ksigns_iq2xs`: 7 stored sign bits plus an 8th parity bit.
pub const KSIGNS_IQ2XS: [u8; 128] = build_ksigns();

const fn build_ksigns() -> [u8; 128] {
    let mut out = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        let parity = (i as u8).count_ones() & 1;
        out[i] = (i as u8) | ((parity as u8) << 7);
        i += 1;
    }
    out
}

/// `ksigns64`: byte `j` of entry `i` is 0xFF when bit `j` of `KSIGNS_IQ2XS[i]`
/// is set (element `j` negative), else 0x00.
pub const KSIGNS64: [u64; 128] = build_ksigns64();

const fn build_ksigns64() -> [u64; 128] {
    let mut out = [0u64; 128];
    let mut i = 0;
    while i < 128 {
        let s = KSIGNS_IQ2XS[i];
        let mut v = 0u64;
        let mut j = 0;
        while j < 8 {
            if (s >> j) & 1 == 1 {
                v |= 0xFFu64 << (8 * j);
            }
            j += 1;
        }
        out[i] = v;
        i += 1;
    }
    out
}

/// `kvalues_mxfp4`: E2M1 code → value × 2 (ggml's doubled convention).
pub const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// Half the value of an E8M0 exponent byte: 2^(e − 128), with ggml's handling of
/// `e < 2` as the f32 denormals 2^-128 and 2^-127 (`ggml_e8m0_to_fp32_half`).
/// `e = 255` (NaN in OCP MX) is not special-cased, exactly like ggml.
#[inline]
pub const fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits: u32 = if e < 2 {
        0x0020_0000u32 << e
    } else {
        ((e as u32) - 1) << 23
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_codes_are_valid_and_entries_distinct() {
        for &packed in &KGRID_2BIT_256 {
            for j in 0..8 {
                assert_ne!((packed >> (2 * j)) & 3, 3, "code 3 in {packed}");
            }
        }
        let mut sorted = IQ2XXS_GRID.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 256);
        for g in IQ2XXS_GRID {
            for b in g.to_le_bytes() {
                assert!(IQ2_LEVELS.contains(&b), "byte {b:#x} not a lattice level");
            }
        }
        // The compact list is strictly increasing, as printed in ggml.
        assert!(KGRID_2BIT_256.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn grid_spot_checks_against_ggml_common_h() {
        // Entries 0, 1, 3 and 21 of `iq2xxs_grid` as printed in ggml-common.h.
        assert_eq!(IQ2XXS_GRID[0], 0x0808080808080808);
        assert_eq!(IQ2XXS_GRID[1], 0x080808080808082b);
        assert_eq!(IQ2XXS_GRID[3], 0x0808080808082b08);
        assert_eq!(IQ2XXS_GRID[21], 0x0808081908080819);
    }

    #[test]
    fn signs_have_even_parity_and_match_ggml() {
        for (i, &s) in KSIGNS_IQ2XS.iter().enumerate() {
            assert_eq!(s.count_ones() % 2, 0);
            assert_eq!(usize::from(s & 0x7F), i);
        }
        // Spot checks from ggml-common.h.
        assert_eq!(&KSIGNS_IQ2XS[..8], &[0, 129, 130, 3, 132, 5, 6, 135]);
        assert_eq!(KSIGNS_IQ2XS[127], 255);
        assert_eq!(KSIGNS64[1], 0xff000000000000ff);
        assert_eq!(KSIGNS64[7], 0xff00000000ffffff);
    }

    #[test]
    fn e8m0_half_is_a_power_of_two() {
        for e in 0u8..=254 {
            let v = e8m0_to_f32_half(e);
            assert_eq!(f64::from(v), 2f64.powi(i32::from(e) - 128), "e = {e}");
        }
    }
}
