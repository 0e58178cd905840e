// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {OptimisticML, IOpmlConsumer} from "../src/OptimisticML.sol";
import {GameFixture} from "./utils/GameFixture.sol";

/// The consumer contract of docs/guides/contract-author.md §Consuming results, verbatim.
contract DigitReader is IOpmlConsumer {
    OptimisticML public immutable opml;
    bytes32 public immutable modelId; // the one model this reader trusts
    mapping(uint256 => bytes32) public askedInput; // requestId -> input commitment (own requests)
    mapping(bytes32 => bytes) public answers; // input commitment -> output bytes

    constructor(OptimisticML o, bytes32 model) {
        opml = o;
        modelId = model;
    }

    function ask(bytes32 inputCommitment) external payable returns (uint256 requestId) {
        bytes32[] memory inputs = new bytes32[](1);
        inputs[0] = inputCommitment;
        requestId = opml.request{value: msg.value}(modelId, inputs, address(this)); // fee = msg.value
        askedInput[requestId] = inputCommitment;
    }

    /// Push: called once by `finalize` of the first claim on the request that finalizes, with
    /// the deployment's `callbackGas`; a revert here is ignored (the result stays readable).
    /// Anyone can name this contract as the callback of a request about another model or
    /// input: only this reader's own requests are answers.
    /// A claim whose input bytes were not published could only be checked by whoever holds
    /// the input: this reader, which relies on third-party challengers, refuses it.
    function opmlResult(uint256 requestId, uint256 claimId, bytes32, bytes calldata output) external {
        require(msg.sender == address(opml), "only opml");
        bytes32 input = askedInput[requestId];
        require(input != 0, "not my request");
        (,,, bool published,,) = opml.result(claimId);
        require(published, "input not published");
        answers[input] = output;
    }

    /// Pull: anyone hands in a claim id; `finalized` alone is not enough, the claim must
    /// answer this reader's model on this input, and have published that input.
    function accept(uint256 claimId, bytes32 inputCommitment) external {
        (bool finalized, bytes32 model, bytes32 inputsHash, bool published,, bytes memory output) = opml.result(claimId);
        require(finalized, "not final");
        require(model == modelId, "another model");
        require(inputsHash == keccak256(abi.encodePacked(inputCommitment)), "another input");
        require(published, "input not published");
        answers[inputCommitment] = output;
    }
}

/// The guide's consumer receives the finalized output through the callback or by a claim id
/// handed to it, and rejects finalized claims about another model or another input.
contract ConsumerExampleTest is GameFixture {
    DigitReader internal reader;
    bytes32 internal constant OTHER_INPUT = keccak256("another input");

    function setUp() public {
        setUpGame(16, 32, 5);
        reader = new DigitReader(game, modelId);
    }

    function test_guide_consumer_gets_the_finalized_output() public {
        vm.prank(REQUESTER);
        uint256 requestId = reader.ask{value: 0.01 ether}(inputCommitments[0]);
        uint256 claimId = postClaimFor(requestId, outputBytes, outputCommitment);
        (bool finalized, bytes32 model, bytes32 inputsHash, bool published, bytes32 commitment, bytes memory out) =
            game.result(claimId);
        assertTrue(!finalized, "final during the window");
        assertTrue(published, "the claim carries its input bytes");
        assertEq(model, modelId, "model");
        assertEq(inputsHash, keccak256(abi.encodePacked(inputCommitments)), "inputs hash");
        assertEq(commitment, outputCommitment, "commitment");
        vm.expectRevert(bytes("not final"));
        reader.accept(claimId, inputCommitments[0]);
        vm.warp(block.timestamp + cfg.challengeWindow);
        vm.prank(ANYONE);
        game.finalize(claimId);
        (finalized,,,,, out) = game.result(claimId);
        assertTrue(finalized, "not final after the window");
        assertEq(keccak256(out), keccak256(outputBytes), "result() output");
        assertEq(keccak256(reader.answers(inputCommitments[0])), keccak256(outputBytes), "callback output");
        assertEqUint(game.credits(SUBMITTER), cfg.submitterBond + 0.01 ether, "bond + fee credited");
        // the pull path accepts the same claim
        reader.accept(claimId, inputCommitments[0]);
        assertEq(keccak256(reader.answers(inputCommitments[0])), keccak256(outputBytes), "pulled output");
        assertConserved();
    }

    /// A finalized claim about another model, on the very input the reader asks about, with
    /// an output of the same length: `finalized` is true (the old rule accepted it), the
    /// reader rejects it by its model id.
    function test_guide_consumer_rejects_a_claim_about_another_model() public {
        bytes32 readerModel = modelId;
        buildModel(4); // another model (another root), same input and output lengths
        assertTrue(modelId != readerModel, "a second model");
        uint256 claimId = postHonestClaim();
        vm.warp(block.timestamp + cfg.challengeWindow);
        game.finalize(claimId);
        (bool finalized,, bytes32 inputsHash,,,) = game.result(claimId);
        assertTrue(finalized, "a true, finalized claim");
        assertEq(inputsHash, keccak256(abi.encodePacked(inputCommitments[0])), "on the reader's input");
        vm.expectRevert(bytes("another model"));
        reader.accept(claimId, inputCommitments[0]);
        assertEqUint(reader.answers(inputCommitments[0]).length, 0, "no answer taken");
    }

    /// A finalized claim about the reader's model on another input: rejected by its inputs
    /// hash; a request about that input naming the reader as its callback is ignored too.
    function test_guide_consumer_rejects_a_claim_about_another_input() public {
        bytes32[] memory other = new bytes32[](1);
        other[0] = OTHER_INPUT;
        vm.prank(REQUESTER);
        uint256 requestId = game.request(modelId, other, address(reader));
        vm.prank(SUBMITTER);
        uint256 claimId =
            game.postClaim{value: cfg.submitterBond}(modelId, requestId, other, "", outputBytes, outputCommitment);
        vm.warp(block.timestamp + cfg.challengeWindow);
        game.finalize(claimId);
        (bool finalized, bytes32 model,,,,) = game.result(claimId);
        assertTrue(finalized, "a finalized claim");
        assertEq(model, modelId, "about the reader's model");
        assertEqUint(reader.answers(OTHER_INPUT).length, 0, "callback of a foreign request ignored");
        vm.expectRevert(bytes("another input"));
        reader.accept(claimId, inputCommitments[0]);
        assertEqUint(reader.answers(inputCommitments[0]).length, 0, "no answer taken");
        assertConserved();
    }

    /// A true, finalized claim on the reader's model and input whose input bytes were not
    /// published: no third party could have checked it, so the reader refuses it on both paths.
    function test_guide_consumer_rejects_a_claim_whose_input_was_not_published() public {
        vm.prank(REQUESTER);
        uint256 requestId = reader.ask{value: 0.01 ether}(inputCommitments[0]);
        vm.prank(SUBMITTER);
        uint256 claimId = game.postClaim{value: cfg.submitterBond}(
            modelId, requestId, inputCommitments, "", outputBytes, outputCommitment
        );
        vm.warp(block.timestamp + cfg.challengeWindow);
        game.finalize(claimId);
        (bool finalized, bytes32 model, bytes32 inputsHash, bool published,,) = game.result(claimId);
        assertTrue(finalized, "a true, finalized claim");
        assertEq(model, modelId, "on the reader's model");
        assertEq(inputsHash, keccak256(abi.encodePacked(inputCommitments[0])), "on the reader's input");
        assertTrue(!published, "recognisable: its input was not published");
        assertEqUint(reader.answers(inputCommitments[0]).length, 0, "the callback refused it");
        vm.expectRevert(bytes("input not published"));
        reader.accept(claimId, inputCommitments[0]);
        assertConserved();
    }
}
