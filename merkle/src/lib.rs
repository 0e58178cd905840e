//! The one hash and Merkle primitive of opml.
//!
//! Both the VM's memory tree and the DNN's tensor commitments use exactly this tree
//! (see `docs/spec/merkle.md`):
//!
//! * leaves are **raw** 32-byte chunks (a leaf is not hashed);
//! * an internal node is `keccak256(left || right)`;
//! * an absent subtree of height `h` hashes to [`zero_hash`]`(h)`, where
//!   `zero_hash(0)` is 32 zero bytes and `zero_hash(h + 1) = keccak256(zero_hash(h) || zero_hash(h))`.
//!
//! A byte string placed at an address aligned to its padded size therefore has the same
//! root as a standalone commitment to it ([`bytes_root`]), which is what lets a contract
//! connect a tensor commitment to a VM memory root by hashing alone.

mod hash;
#[cfg(target_arch = "x86_64")]
mod keccak_x86;
mod pairs;
mod path;
mod tree;

pub use hash::{hash_pair, keccak256, Hash};
pub use pairs::{hash_level, hash_pairs};
pub use path::{path_root, verify_path};
pub use tree::{bytes_root, dense_levels, leaves_root, padded_leaf_count, zero_hash, MAX_HEIGHT};

/// Bytes in one leaf.
pub const LEAF_BYTES: usize = 32;
