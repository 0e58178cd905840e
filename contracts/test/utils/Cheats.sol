// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// The few forge cheatcodes these tests use. (The `forge-std` package on npm ships a Test.sol
/// that imports a `ds-test` it does not contain, so the tests declare the cheatcodes they
/// need themselves; forge recognises them by selector at the cheatcode address.)
interface Cheats {
    /// One log of `getRecordedLogs`.
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    // files and JSON
    function readFile(string calldata path) external view returns (string memory);
    function projectRoot() external view returns (string memory);
    function parseJsonUint(string calldata json, string calldata key) external pure returns (uint256);
    function parseJsonBytes(string calldata json, string calldata key) external pure returns (bytes memory);
    function parseJsonBytes32(string calldata json, string calldata key) external pure returns (bytes32);
    function parseJsonString(string calldata json, string calldata key) external pure returns (string memory);
    function toString(uint256 value) external pure returns (string memory);

    // expected reverts (full revert data, or only the selector of an error with arguments)
    function expectRevert(bytes4 revertData) external;
    function expectRevert(bytes calldata revertData) external;
    function expectRevert() external;
    function expectPartialRevert(bytes4 selector) external;

    // environment
    function warp(uint256 timestamp) external;
    function deal(address account, uint256 balance) external;
    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function assume(bool condition) external pure;
    function label(address account, string calldata name) external;
    /// Marks an account and its storage slots cold (gas figures of separate transactions).
    function cool(address target) external;
    /// Saves the whole state; `revertToState` returns to it (for trying a call several ways).
    function snapshotState() external returns (uint256 snapshotId);
    function revertToState(uint256 snapshotId) external returns (bool success);

    // logs
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory);
}

/// Base of the forge tests: the cheatcode handle and plain assertions (a failing assertion
/// reverts, which fails the test).
abstract contract TestBase {
    Cheats internal constant vm = Cheats(address(uint160(uint256(keccak256("hevm cheat code")))));

    error AssertionFailed(string what);
    error AssertionFailedUint(string what, uint256 got, uint256 want);

    function assertEq(bytes32 a, bytes32 b, string memory what) internal pure {
        if (a != b) revert AssertionFailed(what);
    }

    function assertTrue(bool c, string memory what) internal pure {
        if (!c) revert AssertionFailed(what);
    }

    function assertEqUint(uint256 got, uint256 want, string memory what) internal pure {
        if (got != want) revert AssertionFailedUint(what, got, want);
    }
}
