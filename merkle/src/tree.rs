//! Dense subtree roots and the zero-subtree table.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::hash::{hash_pair, Hash};
use crate::LEAF_BYTES;

/// Highest subtree height the zero table covers (a 2^32-byte space of 32-byte leaves is 27).
pub const MAX_HEIGHT: usize = 40;

/// Root of an all-zero subtree of the given height (height 0 is one zero leaf).
///
/// # Panics
/// If `height > MAX_HEIGHT`.
pub fn zero_hash(height: usize) -> &'static Hash {
    static TABLE: OnceLock<[Hash; MAX_HEIGHT + 1]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [[0u8; 32]; MAX_HEIGHT + 1];
        for h in 1..=MAX_HEIGHT {
            t[h] = hash_pair(&t[h - 1], &t[h - 1]);
        }
        t
    });
    &table[height]
}

/// Number of leaves a byte string is padded to: the next power of two of its 32-byte chunk
/// count (at least 1).
pub fn padded_leaf_count(len_bytes: usize) -> usize {
    len_bytes.div_ceil(LEAF_BYTES).max(1).next_power_of_two()
}

/// Root of `bytes` zero-padded to [`padded_leaf_count`] leaves.
///
/// Large inputs are hashed in parallel with rayon; the result does not depend on the
/// thread count.
pub fn bytes_root(bytes: &[u8]) -> Hash {
    let leaves = padded_leaf_count(bytes.len());
    let height = leaves.trailing_zeros() as usize;
    subtree(bytes, height)
}

/// Root over a power-of-two slice of leaves.
///
/// # Panics
/// If `leaves.len()` is not a power of two.
pub fn leaves_root(leaves: &[Hash]) -> Hash {
    assert!(leaves.len().is_power_of_two(), "leaf count must be a power of two");
    let mut level: Vec<Hash> = leaves.to_vec();
    while level.len() > 1 {
        level = level.chunks_exact(2).map(|p| hash_pair(&p[0], &p[1])).collect();
    }
    level[0]
}

/// Bytes below which a subtree is hashed on one thread.
const PARALLEL_CUTOFF: usize = 256 * 1024;

fn subtree(bytes: &[u8], height: usize) -> Hash {
    let span = LEAF_BYTES << height;
    if bytes.is_empty() {
        return *zero_hash(height);
    }
    if height == 0 {
        let mut leaf = [0u8; 32];
        leaf[..bytes.len()].copy_from_slice(bytes);
        return leaf;
    }
    let half = span / 2;
    let (l, r) = bytes.split_at(bytes.len().min(half));
    let (lh, rh) = if bytes.len() > PARALLEL_CUTOFF {
        rayon::join(|| subtree(l, height - 1), || subtree(r, height - 1))
    } else {
        (subtree(l, height - 1), subtree(r, height - 1))
    };
    hash_pair(&lh, &rh)
}

/// Hash a page-sized (or any power-of-two-leaf) buffer level by level into `levels`.
///
/// Used by callers that keep every level of a small subtree cached; kept here so that the
/// tree rule lives in one crate.
pub fn dense_levels(bytes: &[u8]) -> Vec<Vec<Hash>> {
    let leaves = padded_leaf_count(bytes.len());
    let mut cur: Vec<Hash> = (0..leaves)
        .into_par_iter()
        .map(|i| {
            let mut leaf = [0u8; 32];
            let start = (i * LEAF_BYTES).min(bytes.len());
            let end = ((i + 1) * LEAF_BYTES).min(bytes.len());
            leaf[..end - start].copy_from_slice(&bytes[start..end]);
            leaf
        })
        .collect();
    let mut out = vec![cur.clone()];
    while cur.len() > 1 {
        cur = cur.chunks_exact(2).map(|p| hash_pair(&p[0], &p[1])).collect();
        out.push(cur.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keccak256;
    use proptest::prelude::*;

    /// Naive reference: pad, then hash pairs with the generic keccak.
    fn naive(bytes: &[u8]) -> Hash {
        let n = padded_leaf_count(bytes.len());
        let mut padded = bytes.to_vec();
        padded.resize(n * 32, 0);
        let mut level: Vec<Hash> = padded.chunks(32).map(|c| c.try_into().unwrap()).collect();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|p| {
                    let mut cat = p[0].to_vec();
                    cat.extend_from_slice(&p[1]);
                    keccak256(&cat)
                })
                .collect();
        }
        level[0]
    }

    #[test]
    fn zero_hash_one_is_keccak_of_64_zero_bytes() {
        assert_eq!(*zero_hash(1), keccak256(&[0u8; 64]));
    }

    #[test]
    fn one_leaf_root_is_the_raw_leaf() {
        let mut b = [0u8; 32];
        b[0] = 7;
        assert_eq!(bytes_root(&b[..5]), b);
    }

    proptest! {
        #[test]
        fn bytes_root_matches_naive(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            prop_assert_eq!(bytes_root(&bytes), naive(&bytes));
            let levels = dense_levels(&bytes);
            prop_assert_eq!(levels.last().unwrap()[0], naive(&bytes));
        }
    }

    #[test]
    fn parallel_root_matches_naive_on_large_input() {
        let bytes: Vec<u8> = (0..(PARALLEL_CUTOFF * 3 + 77)).map(|i| (i * 31 % 251) as u8).collect();
        assert_eq!(bytes_root(&bytes), naive(&bytes));
    }
}
