//! keccak256 and the two-to-one node hash.

use sha3::{Digest, Keccak256};

/// A 32-byte node of the tree (a raw leaf or a keccak256 digest).
pub type Hash = [u8; 32];

/// keccak256 of arbitrary bytes (Ethereum's hash, not SHA3-256).
pub fn keccak256(data: &[u8]) -> Hash {
    Keccak256::digest(data).into()
}

/// `keccak256(left || right)`, computed with a single Keccak-f[1600] permutation.
///
/// 64 bytes fit in one 136-byte block, so the sponge is absorbed and padded by hand;
/// this is about twice as fast as going through the generic hasher.
#[inline]
pub fn hash_pair(left: &Hash, right: &Hash) -> Hash {
    let mut state = [0u64; 25];
    for i in 0..4 {
        state[i] = u64::from_le_bytes(left[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        state[4 + i] = u64::from_le_bytes(right[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    }
    // Keccak (not SHA-3) padding: 0x01 after the message, 0x80 in the last byte of the rate.
    state[8] = 0x01;
    state[16] = 0x80 << 56;
    keccak::f1600(&mut state);
    let mut out = [0u8; 32];
    for i in 0..4 {
        out[i * 8..i * 8 + 8].copy_from_slice(&state[i].to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_of_empty_string_is_the_known_constant() {
        // keccak256("") as published for Ethereum.
        assert_eq!(hex(&keccak256(b"")), "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
    }

    #[test]
    fn hash_pair_equals_generic_keccak_of_the_concatenation() {
        let mut l = [0u8; 32];
        let mut r = [0u8; 32];
        for i in 0..32 {
            l[i] = i as u8;
            r[i] = 255 - i as u8;
        }
        let mut cat = l.to_vec();
        cat.extend_from_slice(&r);
        assert_eq!(hash_pair(&l, &r), keccak256(&cat));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
