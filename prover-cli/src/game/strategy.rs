//! The two players' moves in a dissection round, from their views.
//!
//! * Defender (the submitter): post its hashes at the inner points `p_1..p_{parts-1}`.
//! * Challenger: pick the first sub-interval whose right end differs from its own view;
//!   its left end then agrees (it is `hashLo`, which the challenger agrees with, or a posted
//!   hash that matched). If every posted hash matches, the last sub-interval (ending at
//!   `hashHi`, which the challenger disputes) is picked.

use opml_merkle::Hash;

use crate::game::bisect::{inner_points, parts};
use crate::game::{GameError, View};

/// The defender's hashes at the inner points of `[lo, hi]` for arity `k`.
pub fn defend(view: &mut impl View, lo: u64, hi: u64, k: u64) -> Result<Vec<Hash>, GameError> {
    if hi <= lo + 1 || k < 2 {
        return Err(GameError::Invalid(format!("no dissection of [{lo}, {hi}] with arity {k}")));
    }
    inner_points(lo, hi, k).into_iter().map(|p| view.hash_at(p)).collect()
}

/// The challenger's pick among the sub-intervals of `[lo, hi]` given the defender's
/// `states` (at the inner points).
pub fn pick(view: &mut impl View, lo: u64, hi: u64, k: u64, states: &[Hash]) -> Result<u64, GameError> {
    let n = parts(lo, hi, k);
    if n < 2 || states.len() as u64 != n - 1 {
        return Err(GameError::Invalid(format!(
            "{} states posted for [{lo}, {hi}] with arity {k} ({} expected)",
            states.len(),
            n.saturating_sub(1)
        )));
    }
    for (i, (p, s)) in inner_points(lo, hi, k).into_iter().zip(states).enumerate() {
        if view.hash_at(p)? != *s {
            return Ok(i as u64);
        }
    }
    Ok(n - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::bisect::narrow;

    /// A view that agrees with the truth (hash = point) up to `diverge` and differs after.
    struct Line {
        diverge: u64,
        liar: bool,
    }

    impl View for Line {
        fn hash_at(&mut self, p: u64) -> Result<Hash, GameError> {
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&p.to_be_bytes());
            if self.liar && p >= self.diverge {
                h[31] = 1;
            }
            Ok(h)
        }
    }

    /// Playing both strategies ends on `[diverge - 1, diverge]`, the first disagreement, for
    /// every arity and divergence point.
    #[test]
    fn dissection_finds_the_first_disagreement() {
        for k in [2u64, 3, 8, 16, 64] {
            for (len, diverge) in [(9u64, 1u64), (9, 9), (9, 5), (1 << 20, 777_777), (1 << 32, 1), (1 << 32, 1 << 32)] {
                let (mut def, mut ch) = (Line { diverge, liar: true }, Line { diverge, liar: false });
                let (mut lo, mut hi) = (0, len);
                let mut rounds = 0;
                while hi - lo > 1 {
                    let states = defend(&mut def, lo, hi, k).unwrap();
                    let i = pick(&mut ch, lo, hi, k, &states).unwrap();
                    (lo, hi) = narrow(lo, hi, k, i).unwrap();
                    rounds += 1;
                }
                assert_eq!((lo, hi), (diverge - 1, diverge), "k {k} len {len}");
                assert!(rounds <= crate::game::bisect::worst_case_rounds(0, len, k));
            }
        }
    }

    #[test]
    fn wrong_state_count_is_rejected() {
        let mut v = Line { diverge: 3, liar: false };
        assert!(pick(&mut v, 0, 10, 4, &[[0; 32]; 2]).is_err());
        assert!(defend(&mut v, 0, 1, 4).is_err());
    }
}
