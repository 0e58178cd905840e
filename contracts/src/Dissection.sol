// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// @title k-ary dissection arithmetic of the dispute game (docs/spec/protocol.md §Dissection).
/// @notice An interval [lo, hi] (lo < hi) is cut into `parts = min(arity, hi - lo)` pieces at
/// the points p_j = lo + floor((hi - lo) * j / parts), j = 0..parts. Because
/// parts <= hi - lo, consecutive points differ by at least 1, so every piece is non-empty,
/// p_0 = lo and p_parts = hi.
library Dissection {
    /// Number of pieces of [lo, hi] for the given arity: min(arity, hi - lo).
    function parts(uint256 lo, uint256 hi, uint256 arity) internal pure returns (uint256) {
        uint256 width = hi - lo;
        return width < arity ? width : arity;
    }

    /// Point p_j of [lo, hi] cut into `n` pieces: lo + floor((hi - lo) * j / n).
    /// (hi - lo <= 2^48 and j <= 64 here, so the product cannot overflow.)
    function point(uint256 lo, uint256 hi, uint256 n, uint256 j) internal pure returns (uint256) {
        return lo + (hi - lo) * j / n;
    }
}
