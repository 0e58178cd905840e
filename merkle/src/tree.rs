//! Dense subtree roots and the zero-subtree table.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::hash::{hash_pair, Hash};
use crate::pairs::{hash_pair_bytes, Backend};
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
/// The leaves are cut into chunks of 64 KiB (2048 leaves); each chunk is reduced to its subtree
/// root level by level with the batch hasher ([`crate::hash_pairs`]), chunks in parallel
/// with rayon for large inputs, then the chunk roots are reduced to the root. The result
/// does not depend on the thread count or the CPU's vector extensions.
pub fn bytes_root(bytes: &[u8]) -> Hash {
    let height = padded_leaf_count(bytes.len()).trailing_zeros() as usize;
    if bytes.is_empty() {
        return *zero_hash(height);
    }
    let backend = Backend::detect();
    let chunk_height = height.min(CHUNK_HEIGHT);
    let chunk_root = |c: &[u8]| bytes_subtree_root(backend, c, chunk_height);
    let chunk_bytes = LEAF_BYTES << chunk_height;
    let roots: Vec<Hash> = if bytes.len() > PARALLEL_CUTOFF {
        bytes.par_chunks(chunk_bytes).map(chunk_root).collect()
    } else {
        bytes.chunks(chunk_bytes).map(chunk_root).collect()
    };
    reduce_to(backend, roots, chunk_height, height)
}

/// Root over a power-of-two slice of leaves.
///
/// # Panics
/// If `leaves.len()` is not a power of two.
pub fn leaves_root(leaves: &[Hash]) -> Hash {
    assert!(leaves.len().is_power_of_two(), "leaf count must be a power of two");
    let height = leaves.len().trailing_zeros() as usize;
    let backend = Backend::detect();
    let chunk_height = height.min(CHUNK_HEIGHT);
    let chunk_root = |c: &[Hash]| nodes_subtree_root(backend, c, 0, chunk_height);
    let roots: Vec<Hash> = if leaves.len() * LEAF_BYTES > PARALLEL_CUTOFF {
        leaves.par_chunks(1 << chunk_height).map(chunk_root).collect()
    } else {
        leaves.chunks(1 << chunk_height).map(chunk_root).collect()
    };
    reduce_to(backend, roots, chunk_height, height)
}

/// Bytes below which a tree is hashed on one thread.
const PARALLEL_CUTOFF: usize = 256 * 1024;

/// Height of the subtrees hashed as one unit of work (2048 leaves).
const CHUNK_HEIGHT: usize = 11;

/// Root of the subtree of height `height` whose leaves are `bytes` (at most
/// `32 << height` of them) followed by zeros.
fn bytes_subtree_root(backend: Backend, bytes: &[u8], height: usize) -> Hash {
    debug_assert!(bytes.len() <= LEAF_BYTES << height);
    if bytes.is_empty() {
        return *zero_hash(height);
    }
    if height == 0 {
        let mut leaf = [0u8; 32];
        leaf[..bytes.len()].copy_from_slice(bytes);
        return leaf;
    }
    let (full, rest) = bytes.split_at(bytes.len() / 64 * 64);
    let mut level = vec![[0u8; 32]; full.len() / 64];
    hash_pair_bytes(backend, full, &mut level);
    if !rest.is_empty() {
        let mut pair = [0u8; 64];
        pair[..rest.len()].copy_from_slice(rest);
        let (l, r) = pair.split_at(32);
        level.push(hash_pair(l.try_into().expect("32 bytes"), r.try_into().expect("32 bytes")));
    }
    reduce_to(backend, level, 1, height)
}

/// Root of the subtree of height `target` whose nodes at height `h` are `nodes` followed by
/// zero subtrees.
fn nodes_subtree_root(backend: Backend, nodes: &[Hash], h: usize, target: usize) -> Hash {
    if nodes.is_empty() || h == target {
        return reduce_to(backend, nodes.to_vec(), h, target);
    }
    let pairs = nodes.len() / 2;
    let mut level = vec![[0u8; 32]; pairs];
    hash_pair_bytes(backend, nodes[..2 * pairs].as_flattened(), &mut level);
    if nodes.len() % 2 == 1 {
        level.push(hash_pair(&nodes[nodes.len() - 1], zero_hash(h)));
    }
    reduce_to(backend, level, h + 1, target)
}

/// Root of the subtree of height `target` whose nodes at height `h` are `level` (at most
/// `2^(target - h)` of them) followed by zero subtrees.
fn reduce_to(backend: Backend, mut level: Vec<Hash>, mut h: usize, target: usize) -> Hash {
    debug_assert!(h <= target && level.len() <= 1 << (target - h));
    if level.is_empty() {
        return *zero_hash(target);
    }
    let mut next: Vec<Hash> = Vec::with_capacity(level.len() / 2 + 1);
    while h < target {
        if level.len() % 2 == 1 {
            level.push(*zero_hash(h));
        }
        next.clear();
        next.resize(level.len() / 2, [0u8; 32]);
        hash_pair_bytes(backend, level.as_flattened(), &mut next);
        std::mem::swap(&mut level, &mut next);
        h += 1;
    }
    level[0]
}

/// Parents of an even-length level, in parallel with rayon when it is large.
fn parent_level(backend: Backend, level: &[Hash]) -> Vec<Hash> {
    let mut out = vec![[0u8; 32]; level.len() / 2];
    if level.len() * LEAF_BYTES > PARALLEL_CUTOFF {
        let per_task = 1 << CHUNK_HEIGHT;
        level.par_chunks(2 * per_task).zip(out.par_chunks_mut(per_task)).for_each(|(i, o)| {
            hash_pair_bytes(backend, i.as_flattened(), o);
        });
    } else {
        hash_pair_bytes(backend, level.as_flattened(), &mut out);
    }
    out
}

/// Hash a page-sized (or any power-of-two-leaf) buffer level by level into `levels`.
///
/// Used by callers that keep every level of a small subtree cached; kept here so that the
/// tree rule lives in one crate.
pub fn dense_levels(bytes: &[u8]) -> Vec<Vec<Hash>> {
    let leaves = padded_leaf_count(bytes.len());
    let mut cur: Vec<Hash> = vec![[0u8; 32]; leaves];
    for (leaf, chunk) in cur.iter_mut().zip(bytes.chunks(LEAF_BYTES)) {
        leaf[..chunk.len()].copy_from_slice(chunk);
    }
    let backend = Backend::detect();
    let mut out = Vec::with_capacity(leaves.trailing_zeros() as usize + 1);
    while cur.len() > 1 {
        let next = parent_level(backend, &cur);
        out.push(cur);
        cur = next;
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keccak256;
    use proptest::prelude::*;

    /// Bytes under one chunk subtree (64 KiB).
    const CHUNK_BYTES: usize = LEAF_BYTES << CHUNK_HEIGHT;

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

    /// Deterministic pseudo-random bytes (xorshift64*), so large cases are cheap to generate.
    fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }

    /// All levels, bottom first, computed with the generic keccak.
    fn naive_levels(leaves: Vec<Hash>) -> Vec<Vec<Hash>> {
        let mut levels = vec![leaves];
        while levels.last().unwrap().len() > 1 {
            let next = levels.last().unwrap().chunks(2).map(|p| keccak256(&[p[0], p[1]].concat())).collect();
            levels.push(next);
        }
        levels
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn bytes_root_matches_naive_across_many_chunks(seed in any::<u64>(), len in 0usize..(5 * CHUNK_BYTES + 1000)) {
            let bytes = pseudo_random_bytes(seed, len);
            prop_assert_eq!(bytes_root(&bytes), naive(&bytes));
        }
    }

    #[test]
    fn bytes_root_matches_naive_at_chunk_and_cutoff_boundaries() {
        for len in [
            CHUNK_BYTES - 1,
            CHUNK_BYTES,
            CHUNK_BYTES + 1,
            2 * CHUNK_BYTES,
            PARALLEL_CUTOFF,
            PARALLEL_CUTOFF + 1,
            PARALLEL_CUTOFF + CHUNK_BYTES + 33,
            9 * CHUNK_BYTES + 64,
        ] {
            let bytes = pseudo_random_bytes(len as u64, len);
            assert_eq!(bytes_root(&bytes), naive(&bytes), "len {len}");
        }
    }

    #[test]
    fn leaves_root_and_dense_levels_match_naive_on_large_trees() {
        // 2^14 leaves = 512 KiB: several chunks and above the parallel cutoff.
        for log in [0usize, 1, 3, 11, 12, 14] {
            let bytes = pseudo_random_bytes(log as u64 + 7, 32 << log);
            let leaves: Vec<Hash> = bytes.chunks(32).map(|c| c.try_into().unwrap()).collect();
            let want = naive_levels(leaves.clone());
            assert_eq!(leaves_root(&leaves), want.last().unwrap()[0], "2^{log} leaves");
            assert_eq!(dense_levels(&bytes), want, "2^{log} leaves");
        }
    }

    #[test]
    fn parallel_root_matches_naive_on_large_input() {
        let bytes: Vec<u8> = (0..(PARALLEL_CUTOFF * 3 + 77)).map(|i| (i * 31 % 251) as u8).collect();
        assert_eq!(bytes_root(&bytes), naive(&bytes));
    }
}
