//! Merkle paths: recompute a root from a leaf and its siblings.

use crate::hash::{hash_pair, Hash};

/// Root reached from `leaf` at position `index` with `siblings[level]` the sibling at each
/// level, bottom first.
pub fn path_root(leaf: &Hash, index: u64, siblings: &[Hash]) -> Hash {
    let mut node = *leaf;
    for (level, sib) in siblings.iter().enumerate() {
        node = if (index >> level) & 1 == 0 { hash_pair(&node, sib) } else { hash_pair(sib, &node) };
    }
    node
}

/// Whether `leaf` sits at `index` under `root`.
pub fn verify_path(root: &Hash, leaf: &Hash, index: u64, siblings: &[Hash]) -> bool {
    path_root(leaf, index, siblings) == *root
}
