//! Batch node hashing: many `keccak256(left || right)` at once, for walking a tree level by
//! level.
//!
//! On x86_64 the batch runs 8 hashes per AVX-512F permutation or 4 per AVX2 permutation,
//! chosen at run time; other CPUs use the scalar [`hash_pair`]. Every path gives the same
//! digests.

use crate::hash::{hash_pair, Hash};

/// Bytes of one (left, right) pair.
const PAIR_BYTES: usize = 64;

/// Parents of consecutive pairs: `out[i] = hash_pair(&input[2 * i], &input[2 * i + 1])`.
///
/// # Panics
/// If `input.len() != 2 * out.len()` (a caller bug, not a data condition).
pub fn hash_pairs(input: &[Hash], out: &mut [Hash]) {
    assert_eq!(input.len(), 2 * out.len(), "hash_pairs: input must hold exactly two nodes per output");
    hash_pair_bytes(Backend::detect(), input.as_flattened(), out);
}

/// One tree level up: the parents of `level` (of even length) as a new vector.
///
/// # Panics
/// If `level.len()` is odd.
pub fn hash_level(level: &[Hash]) -> Vec<Hash> {
    assert!(level.len().is_multiple_of(2), "hash_level: odd node count {}", level.len());
    let mut out = vec![[0u8; 32]; level.len() / 2];
    hash_pairs(level, &mut out);
    out
}

/// An implementation of the batch hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// One [`hash_pair`] at a time.
    Scalar,
    /// 4 hashes per permutation (x86_64 with AVX2).
    Avx2,
    /// 8 hashes per permutation (x86_64 with AVX-512F).
    Avx512,
}

impl Backend {
    /// The fastest backend this CPU supports.
    pub(crate) fn detect() -> Backend {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Backend::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Backend::Avx2;
            }
        }
        Backend::Scalar
    }

    /// Whether this CPU can run the backend.
    pub(crate) fn available(self) -> bool {
        match self {
            Backend::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            Backend::Avx2 | Backend::Avx512 => false,
        }
    }

    /// Hashes per SIMD call (1 for scalar).
    fn width(self) -> usize {
        match self {
            Backend::Scalar => 1,
            Backend::Avx2 => 4,
            Backend::Avx512 => 8,
        }
    }
}

/// The batch hash on a given backend. A backend the CPU lacks falls back to scalar.
///
/// # Panics
/// If `input.len() != 64 * out.len()`.
pub(crate) fn hash_pair_bytes(backend: Backend, input: &[u8], out: &mut [Hash]) {
    assert_eq!(input.len(), PAIR_BYTES * out.len(), "hash_pair_bytes: input must hold 64 bytes per output");
    let backend = if backend.available() { backend } else { Backend::Scalar };
    let width = backend.width();
    let full = out.len() / width * width;
    let (in_main, in_tail) = input.split_at(full * PAIR_BYTES);
    let (out_main, out_tail) = out.split_at_mut(full);
    if backend != Backend::Scalar {
        for (inp, o) in in_main.chunks_exact(width * PAIR_BYTES).zip(out_main.chunks_exact_mut(width)) {
            // SAFETY: the backend is supported (checked above) and the chunks have exactly
            // the sizes the kernel reads and writes.
            unsafe { simd_kernel(backend, inp, o) };
        }
    } else {
        scalar(in_main, out_main);
    }
    if out_tail.is_empty() {
        return;
    }
    if backend == Backend::Scalar {
        scalar(in_tail, out_tail);
        return;
    }
    // A partial batch: run one full-width kernel on a zero-padded copy.
    let mut in_buf = [0u8; 8 * PAIR_BYTES];
    let mut out_buf = [[0u8; 32]; 8];
    in_buf[..in_tail.len()].copy_from_slice(in_tail);
    // SAFETY: as above; the buffers hold a full batch of 8 >= width.
    unsafe { simd_kernel(backend, &in_buf[..width * PAIR_BYTES], &mut out_buf[..width]) };
    let n = out_tail.len();
    out_tail.copy_from_slice(&out_buf[..n]);
}

fn scalar(input: &[u8], out: &mut [Hash]) {
    for (pair, o) in input.chunks_exact(PAIR_BYTES).zip(out.iter_mut()) {
        let (l, r) = pair.split_at(32);
        *o = hash_pair(l.try_into().expect("32 bytes"), r.try_into().expect("32 bytes"));
    }
}

/// # Safety
/// `backend` is a SIMD backend this CPU supports, `input.len() == 64 * width` and
/// `out.len() == width`.
#[allow(unused_variables)]
unsafe fn simd_kernel(backend: Backend, input: &[u8], out: &mut [Hash]) {
    debug_assert_eq!(out.len(), backend.width());
    debug_assert_eq!(input.len(), PAIR_BYTES * backend.width());
    #[cfg(target_arch = "x86_64")]
    match backend {
        // SAFETY: forwarded from the caller.
        Backend::Avx512 => unsafe { crate::keccak_x86::hash8_avx512(input.as_ptr(), out.as_mut_ptr().cast()) },
        // SAFETY: forwarded from the caller.
        Backend::Avx2 => unsafe { crate::keccak_x86::hash4_avx2(input.as_ptr(), out.as_mut_ptr().cast()) },
        Backend::Scalar => scalar(input, out),
    }
    #[cfg(not(target_arch = "x86_64"))]
    scalar(input, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(input: &[Hash]) -> Vec<Hash> {
        input.chunks_exact(2).map(|p| hash_pair(&p[0], &p[1])).collect()
    }

    fn check_all_backends(input: &[Hash]) -> Result<(), TestCaseError> {
        let want = reference(input);
        for backend in [Backend::Scalar, Backend::Avx2, Backend::Avx512] {
            if !backend.available() {
                continue;
            }
            let mut got = vec![[0xAAu8; 32]; want.len()];
            hash_pair_bytes(backend, input.as_flattened(), &mut got);
            prop_assert_eq!(&got, &want, "backend {:?}, {} pairs", backend, want.len());
        }
        let mut got = vec![[0x55u8; 32]; want.len()];
        hash_pairs(input, &mut got);
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(hash_level(input), want);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn every_backend_equals_scalar_hash_pair_for_every_length(seed in any::<[u8; 32]>()) {
            // Every batch length 0..=40 from one random seed (pseudo-random nodes).
            for pairs in 0..=40usize {
                let input: Vec<Hash> = (0..2 * pairs)
                    .map(|i| {
                        let mut h = seed;
                        h[0] ^= i as u8;
                        h[1] ^= (i >> 8) as u8;
                        crate::keccak256(&h)
                    })
                    .collect();
                check_all_backends(&input)?;
            }
        }

        #[test]
        fn every_backend_equals_scalar_on_arbitrary_nodes(
            nodes in proptest::collection::vec(any::<[u8; 32]>(), 0..=40).prop_map(|mut v| { v.truncate(v.len() / 2 * 2); v })
        ) {
            check_all_backends(&nodes)?;
        }
    }

    #[test]
    fn simd_backends_match_generic_keccak_on_fixed_pattern() {
        // Independent check against the generic sponge (sha3 crate), not hash_pair.
        let input: Vec<Hash> = (0..34u8).map(|i| [i.wrapping_mul(37); 32]).collect();
        let want: Vec<Hash> = input.chunks_exact(2).map(|p| crate::keccak256(&[p[0], p[1]].concat())).collect();
        for backend in [Backend::Scalar, Backend::Avx2, Backend::Avx512] {
            let mut got = vec![[0u8; 32]; want.len()];
            hash_pair_bytes(backend, input.as_flattened(), &mut got);
            assert_eq!(got, want, "{backend:?}");
        }
    }

    #[test]
    #[should_panic(expected = "two nodes per output")]
    fn mismatched_lengths_are_rejected() {
        let mut out = [[0u8; 32]; 2];
        hash_pairs(&[[0u8; 32]; 3], &mut out);
    }
}
