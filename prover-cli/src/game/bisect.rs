//! The k-ary dissection arithmetic of the game contract (`OptimisticML.postStates` /
//! `pick`): the parts of an interval, its points, and the interval a pick selects.

/// Number of sub-intervals of `[lo, hi]` (`hi > lo`) for arity `k`: `min(k, hi - lo)`.
pub fn parts(lo: u64, hi: u64, k: u64) -> u64 {
    k.min(hi.saturating_sub(lo))
}

/// The points `p_0 = lo, ..., p_parts = hi` with `p_j = lo + (hi - lo) * j / parts` (floor),
/// exactly as the contract computes them. Empty if `hi <= lo` or `k == 0`.
pub fn points(lo: u64, hi: u64, k: u64) -> Vec<u64> {
    let n = parts(lo, hi, k);
    if n == 0 {
        return Vec::new();
    }
    let len = (hi - lo) as u128;
    (0..=n).map(|j| lo + (len * j as u128 / n as u128) as u64).collect()
}

/// The inner points `p_1 .. p_{parts-1}`: where the defender posts its hashes.
pub fn inner_points(lo: u64, hi: u64, k: u64) -> Vec<u64> {
    let p = points(lo, hi, k);
    if p.len() < 2 {
        return Vec::new();
    }
    p[1..p.len() - 1].to_vec()
}

/// The interval `[p_index, p_{index+1}]` a pick of `index` selects, or `None` if `index`
/// is out of range.
pub fn narrow(lo: u64, hi: u64, k: u64, index: u64) -> Option<(u64, u64)> {
    let p = points(lo, hi, k);
    let i = index as usize;
    (i + 1 < p.len()).then(|| (p[i], p[i + 1]))
}

/// Most picks needed to narrow `[lo, hi]` to one unit when every pick takes a longest
/// sub-interval (the worst case of a dispute).
pub fn worst_case_rounds(lo: u64, hi: u64, k: u64) -> u32 {
    let (mut lo, mut hi, mut rounds) = (lo, hi, 0);
    while hi > lo + 1 && k >= 2 {
        let p = points(lo, hi, k);
        let (a, b) = p.windows(2).map(|w| (w[0], w[1])).max_by_key(|(a, b)| b - a).expect("at least one part");
        (lo, hi) = (a, b);
        rounds += 1;
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hand_derived_points() {
        // [0, 9] in 2 parts: 0, floor(9/2) = 4, 9.
        assert_eq!(points(0, 9, 2), vec![0, 4, 9]);
        // [3, 5] with k = 8: only 2 parts.
        assert_eq!(points(3, 5, 8), vec![3, 4, 5]);
        // [0, 2^32] in 16 parts of 2^28.
        assert_eq!(points(0, 1 << 32, 16)[1], 1 << 28);
        assert_eq!(inner_points(0, 10, 4), vec![2, 5, 7]);
        assert_eq!(narrow(0, 10, 4, 3), Some((7, 10)));
        assert_eq!(narrow(0, 10, 4, 4), None);
        assert!(points(5, 5, 4).is_empty());
    }

    #[test]
    fn hand_derived_rounds() {
        // Binary search over 2^32 steps: 32 picks; over 9 nodes: ceil(log2 9) = 4.
        assert_eq!(worst_case_rounds(0, 1 << 32, 2), 32);
        assert_eq!(worst_case_rounds(0, 9, 2), 4);
        // 8^10 = 2^30 < 2^32 <= 8^11; 16^8 = 2^32.
        assert_eq!(worst_case_rounds(0, 1 << 32, 8), 11);
        assert_eq!(worst_case_rounds(0, 1 << 32, 16), 8);
        assert_eq!(worst_case_rounds(0, 1, 2), 0);
    }

    proptest! {
        #[test]
        fn points_partition_the_interval(lo in 0u64..1 << 40, len in 1u64..1 << 40, k in 2u64..=64) {
            let hi = lo + len;
            let p = points(lo, hi, k);
            prop_assert_eq!(p.len() as u64, k.min(len) + 1);
            prop_assert_eq!(p[0], lo);
            prop_assert_eq!(*p.last().unwrap(), hi);
            // Non-empty sub-intervals whose lengths differ by at most one.
            let lens: Vec<u64> = p.windows(2).map(|w| w[1] - w[0]).collect();
            prop_assert!(lens.iter().all(|&l| l >= 1));
            let (min, max) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
            prop_assert!(max - min <= 1);
        }
    }
}
