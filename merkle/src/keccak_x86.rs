//! Multi-way Keccak-f[1600] for x86_64: 8 independent `keccak256(left || right)` at once
//! with AVX-512F, 4 at once with AVX2.
//!
//! Each 64-bit lane of the Keccak state is a vector whose element `k` belongs to the `k`-th
//! independent hash, so one vector instruction advances all the hashes by one step. The
//! round function is the textbook one (theta, rho and pi, chi, iota), written once as a
//! macro over the vector operations and instantiated for each instruction set.
//!
//! The kernels take raw pointers and are `unsafe`; [`crate::pairs`] checks lengths and CPU
//! features and is the only caller.

use std::arch::x86_64::*;

/// Rotation offsets of rho, in the order the pi permutation visits the lanes.
const RHO: [u32; 24] = [1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14, 27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44];

/// The lane each step of the rho-pi cycle moves to (starting from lane 1).
const PI: [usize; 24] = [10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4, 15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1];

/// Round constants of iota.
const RC: [u64; 24] = [
    0x0000000000000001,
    0x0000000000008082,
    0x800000000000808a,
    0x8000000080008000,
    0x000000000000808b,
    0x0000000080000001,
    0x8000000080008081,
    0x8000000000008009,
    0x000000000000008a,
    0x0000000000000088,
    0x0000000080008009,
    0x000000008000000a,
    0x000000008000808b,
    0x800000000000008b,
    0x8000000000008089,
    0x8000000000008003,
    0x8000000000008002,
    0x8000000000000080,
    0x000000000000800a,
    0x800000008000000a,
    0x8000000080008081,
    0x8000000000008080,
    0x0000000080000001,
    0x8000000080008008,
];

/// Padding word placed in lane 8 (right after the 64-byte message): Keccak's `0x01`.
const PAD_FIRST: u64 = 0x01;
/// Padding word placed in lane 16 (last lane of the 136-byte rate): Keccak's final `0x80`.
const PAD_LAST: u64 = 0x80 << 56;

macro_rules! unroll5 {
    ($v:ident, $body:block) => {{
        {
            const $v: usize = 0;
            $body
        }
        {
            const $v: usize = 1;
            $body
        }
        {
            const $v: usize = 2;
            $body
        }
        {
            const $v: usize = 3;
            $body
        }
        {
            const $v: usize = 4;
            $body
        }
    }};
}

macro_rules! unroll24 {
    ($v:ident, $body:block) => {{
        {
            const $v: usize = 0;
            $body
        }
        {
            const $v: usize = 1;
            $body
        }
        {
            const $v: usize = 2;
            $body
        }
        {
            const $v: usize = 3;
            $body
        }
        {
            const $v: usize = 4;
            $body
        }
        {
            const $v: usize = 5;
            $body
        }
        {
            const $v: usize = 6;
            $body
        }
        {
            const $v: usize = 7;
            $body
        }
        {
            const $v: usize = 8;
            $body
        }
        {
            const $v: usize = 9;
            $body
        }
        {
            const $v: usize = 10;
            $body
        }
        {
            const $v: usize = 11;
            $body
        }
        {
            const $v: usize = 12;
            $body
        }
        {
            const $v: usize = 13;
            $body
        }
        {
            const $v: usize = 14;
            $body
        }
        {
            const $v: usize = 15;
            $body
        }
        {
            const $v: usize = 16;
            $body
        }
        {
            const $v: usize = 17;
            $body
        }
        {
            const $v: usize = 18;
            $body
        }
        {
            const $v: usize = 19;
            $body
        }
        {
            const $v: usize = 20;
            $body
        }
        {
            const $v: usize = 21;
            $body
        }
        {
            const $v: usize = 22;
            $body
        }
        {
            const $v: usize = 23;
            $body
        }
    }};
}

/// The 24 rounds of Keccak-f[1600] over a `[V; 25]` state, given the vector operations as
/// macros: `$xor!(a, b)`, `$andn!(a, b)` = `!a & b`, `$rol!(a, n)` (n a constant
/// expression in 1..64) and `$splat!(u64)`.
macro_rules! keccak_f1600 {
    ($a:ident, $xor:ident, $andn:ident, $rol:ident, $splat:ident) => {
        for rc in RC {
            // theta
            let mut c = [$a[0]; 5];
            unroll5!(X, {
                c[X] = $xor!($xor!($xor!($a[X], $a[X + 5]), $xor!($a[X + 10], $a[X + 15])), $a[X + 20]);
            });
            unroll5!(X, {
                let d = $xor!(c[(X + 4) % 5], $rol!(c[(X + 1) % 5], 1));
                unroll5!(Y, {
                    $a[Y * 5 + X] = $xor!($a[Y * 5 + X], d);
                });
            });
            // rho and pi
            let mut last = $a[1];
            unroll24!(I, {
                let next = $a[PI[I]];
                $a[PI[I]] = $rol!(last, RHO[I]);
                last = next;
            });
            let _ = last;
            // chi
            unroll5!(Y, {
                let row = [$a[Y * 5], $a[Y * 5 + 1], $a[Y * 5 + 2], $a[Y * 5 + 3], $a[Y * 5 + 4]];
                unroll5!(X, {
                    $a[Y * 5 + X] = $xor!(row[X], $andn!(row[(X + 1) % 5], row[(X + 2) % 5]));
                });
            });
            // iota
            $a[0] = $xor!($a[0], $splat!(rc));
        }
    };
}

macro_rules! xor512 {
    ($x:expr, $y:expr) => {
        _mm512_xor_si512($x, $y)
    };
}
macro_rules! andn512 {
    ($x:expr, $y:expr) => {
        _mm512_andnot_si512($x, $y)
    };
}
macro_rules! rol512 {
    ($x:expr, $n:expr) => {
        _mm512_rol_epi64::<{ $n as i32 }>($x)
    };
}
macro_rules! splat512 {
    ($w:expr) => {
        _mm512_set1_epi64($w as i64)
    };
}

/// Hash 8 consecutive 64-byte pairs at `input` into 8 consecutive 32-byte digests at `out`.
///
/// # Safety
/// The CPU supports AVX-512F; `input` is readable for 512 bytes and `out` writable for
/// 256 bytes (no alignment needed).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn hash8_avx512(input: *const u8, out: *mut u8) {
    // Word j of pair k is the 64-bit word at index 8k + j; gather it for k = 0..8.
    let pair_stride = _mm512_setr_epi64(0, 8, 16, 24, 32, 40, 48, 56);
    let zero = _mm512_setzero_si512();
    let mut a = [zero; 25];
    let words = input as *const i64;
    for (j, lane) in a.iter_mut().take(8).enumerate() {
        // SAFETY: word j of each of the 8 pairs lies within the 512 readable bytes.
        *lane = unsafe { _mm512_i64gather_epi64::<8>(pair_stride, words.add(j)) };
    }
    a[8] = splat512!(PAD_FIRST);
    a[16] = splat512!(PAD_LAST);
    keccak_f1600!(a, xor512, andn512, rol512, splat512);
    // Digest k is words 0..4 of state k: scatter word j to index 4k + j of the output.
    let out_stride = _mm512_setr_epi64(0, 4, 8, 12, 16, 20, 24, 28);
    let out_words = out as *mut i64;
    for (j, lane) in a.iter().take(4).enumerate() {
        // SAFETY: word j of each of the 8 digests lies within the 256 writable bytes.
        unsafe { _mm512_i64scatter_epi64::<8>(out_words.add(j), out_stride, *lane) };
    }
}

macro_rules! xor256 {
    ($x:expr, $y:expr) => {
        _mm256_xor_si256($x, $y)
    };
}
macro_rules! andn256 {
    ($x:expr, $y:expr) => {
        _mm256_andnot_si256($x, $y)
    };
}
macro_rules! rol256 {
    ($x:expr, $n:expr) => {{
        let v = $x;
        _mm256_or_si256(_mm256_slli_epi64::<{ $n as i32 }>(v), _mm256_srli_epi64::<{ 64 - $n as i32 }>(v))
    }};
}
macro_rules! splat256 {
    ($w:expr) => {
        _mm256_set1_epi64x($w as i64)
    };
}

/// Hash 4 consecutive 64-byte pairs at `input` into 4 consecutive 32-byte digests at `out`.
///
/// # Safety
/// The CPU supports AVX2; `input` is readable for 256 bytes and `out` writable for
/// 128 bytes (no alignment needed).
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn hash4_avx2(input: *const u8, out: *mut u8) {
    let pair_stride = _mm256_setr_epi64x(0, 8, 16, 24);
    let zero = _mm256_setzero_si256();
    let mut a = [zero; 25];
    let words = input as *const i64;
    for (j, lane) in a.iter_mut().take(8).enumerate() {
        // SAFETY: word j of each of the 4 pairs lies within the 256 readable bytes.
        *lane = unsafe { _mm256_i64gather_epi64::<8>(words.add(j), pair_stride) };
    }
    a[8] = splat256!(PAD_FIRST);
    a[16] = splat256!(PAD_LAST);
    keccak_f1600!(a, xor256, andn256, rol256, splat256);
    // Transpose the 4x4 block of digest words back: lane j of digest k.
    let mut words_out = [[0u64; 4]; 4];
    for (j, lane) in a.iter().take(4).enumerate() {
        // SAFETY: `words_out[j]` is 32 writable bytes.
        unsafe { _mm256_storeu_si256(words_out[j].as_mut_ptr() as *mut __m256i, *lane) };
    }
    for k in 0..4 {
        for (j, w) in words_out.iter().enumerate() {
            let bytes = w[k].to_le_bytes();
            // SAFETY: digest k, word j lies within the 128 writable bytes.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.add(k * 32 + j * 8), 8) };
        }
    }
}
