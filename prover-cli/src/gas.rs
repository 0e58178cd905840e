//! The gas limit a transaction is sent with.
//!
//! An estimate is exact for the state it ran on. A game move mined a second after its
//! estimate writes slots that the estimate found unchanged (the mover's clock, the time of
//! the last move: 2,900 gas instead of 100 each), so an exact limit can run out of gas.
//! Every sender (the chain client, the tests that play a side by hand) adds this margin.

/// The gas limit sent for a transaction estimated at `estimate`: 130% of it (as forge
/// script does), but no more than the larger of the estimate and 30 M gas (a block's limit
/// on a default dev node).
pub fn gas_with_margin(estimate: u64) -> u64 {
    let margin = u64::try_from(u128::from(estimate) * 13 / 10).unwrap_or(u64::MAX);
    margin.min(estimate.max(30_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_thirty_percent_below_a_block() {
        assert_eq!(gas_with_margin(100_000), 130_000);
        assert_eq!(gas_with_margin(29_000_000), 30_000_000);
        assert_eq!(gas_with_margin(40_000_000), 40_000_000);
        assert_eq!(gas_with_margin(u64::MAX), u64::MAX);
    }
}
