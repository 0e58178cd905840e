// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {OptimisticML, IOpmlConsumer} from "../src/OptimisticML.sol";
import {GameFixture} from "./utils/GameFixture.sol";

/// The consumer contract of docs/guides/contract-author.md §Consuming results, verbatim.
contract DigitReader is IOpmlConsumer {
    OptimisticML public immutable opml;
    mapping(uint256 => bytes) public answers; // requestId -> output bytes

    constructor(OptimisticML o) {
        opml = o;
    }

    function ask(bytes32 modelId, bytes32 inputCommitment) external payable returns (uint256) {
        bytes32[] memory inputs = new bytes32[](1);
        inputs[0] = inputCommitment;
        return opml.request{value: msg.value}(modelId, inputs, address(this)); // fee = msg.value
    }

    /// Called once by `finalize` of the first claim on the request that finalizes, with the
    /// deployment's `callbackGas`; a revert here is ignored (the result stays readable).
    function opmlResult(uint256 requestId, uint256, bytes32, bytes calldata output) external {
        require(msg.sender == address(opml), "only opml");
        answers[requestId] = output;
    }
}

/// The guide's consumer receives the finalized output through the callback, and `result`
/// shows it as final only after the window.
contract ConsumerExampleTest is GameFixture {
    function setUp() public {
        setUpGame(16, 32, 5);
    }

    function test_guide_consumer_gets_the_finalized_output() public {
        DigitReader reader = new DigitReader(game);
        vm.prank(REQUESTER);
        uint256 requestId = reader.ask{value: 0.01 ether}(modelId, inputCommitments[0]);
        uint256 claimId = postClaimFor(requestId, outputBytes, outputCommitment);
        (bool finalized, bytes32 commitment, bytes memory out) = game.result(claimId);
        assertTrue(!finalized, "final during the window");
        assertEq(commitment, outputCommitment, "commitment");
        vm.warp(block.timestamp + cfg.challengeWindow);
        vm.prank(ANYONE);
        game.finalize(claimId);
        (finalized,, out) = game.result(claimId);
        assertTrue(finalized, "not final after the window");
        assertEq(keccak256(out), keccak256(outputBytes), "result() output");
        assertEq(keccak256(reader.answers(requestId)), keccak256(outputBytes), "callback output");
        assertEqUint(game.credits(SUBMITTER), cfg.submitterBond + 0.01 ether, "bond + fee credited");
        assertConserved();
    }
}
