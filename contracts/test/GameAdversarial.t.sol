// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Handover} from "../src/Handover.sol";
import {ModelRegistry} from "../src/ModelRegistry.sol";
import {OptimisticML, IOpmlConsumer} from "../src/OptimisticML.sol";
import {GameFixture} from "./utils/GameFixture.sol";
import {Cheats} from "./utils/Cheats.sol";

/// Ether-receiving actor whose receive() re-enters withdraw, finalize and challenge.
contract ReentrantActor {
    OptimisticML internal immutable game;
    uint256 public target;
    uint256 public received;
    uint256 public calls;
    uint256 public reentries;
    bytes4 public lastError;

    constructor(OptimisticML g) payable {
        game = g;
    }

    function setTarget(uint256 claimId) external {
        target = claimId;
    }

    function postClaim(bytes32 modelId, bytes32[] calldata inputs, bytes calldata output, bytes32 commitment)
        external
        payable
        returns (uint256)
    {
        return game.postClaim{value: msg.value}(modelId, 0, inputs, "", output, commitment);
    }

    function challenge(uint256 claimId) external payable returns (uint256) {
        return game.challenge{value: msg.value}(claimId);
    }

    function withdraw() external {
        game.withdraw();
    }

    function attack() internal {
        calls++;
        (bool ok, bytes memory err) = address(game).call(abi.encodeCall(OptimisticML.withdraw, ()));
        if (ok) reentries++;
        else lastError = selectorOf(err);
        (ok,) = address(game).call(abi.encodeCall(OptimisticML.finalize, (target)));
        if (ok) reentries++;
        uint256 bond = game.config().challengerBond;
        if (address(this).balance >= bond) {
            (ok,) = address(game).call{value: bond}(abi.encodeCall(OptimisticML.challenge, (target)));
            if (ok) reentries++;
        }
    }

    function selectorOf(bytes memory err) internal pure returns (bytes4 sel) {
        if (err.length < 4) return bytes4(0);
        assembly ("memory-safe") {
            sel := mload(add(err, 0x20))
        }
    }

    receive() external payable {
        received += msg.value;
        attack();
    }

    /// As a consumer too: the callback re-enters.
    function opmlResult(uint256, uint256, bytes32, bytes calldata) external {
        attack();
    }
}

/// A consumer that records the result it is given.
contract RecordingConsumer is IOpmlConsumer {
    uint256 public requestId;
    uint256 public claimId;
    bytes32 public commitment;
    bytes public output;
    uint256 public calls;

    function opmlResult(uint256 requestId_, uint256 claimId_, bytes32 commitment_, bytes calldata output_) external {
        requestId = requestId_;
        claimId = claimId_;
        commitment = commitment_;
        output = output_;
        calls++;
    }
}

/// A consumer that reverts, or burns all the gas it is given.
contract HostileConsumer is IOpmlConsumer {
    bool internal immutable loop;

    constructor(bool loop_) {
        loop = loop_;
    }

    function opmlResult(uint256, uint256, bytes32, bytes calldata) external view {
        if (!loop) revert("no");
        uint256 x;
        while (gasleft() > 0) x++;
    }
}

/// Honest and lying strategies of both sides: whoever lies loses (at the leaf, at the
/// handover or by timeout); every wrong move reverts with its named error; payouts are
/// conserved, the submitter bond is paid once, re-entrancy gets nothing.
contract GameAdversarialTest is GameFixture {
    function setUp() public {
        // arity 4, 2^6 VM steps, a chain of 5 nodes (8 slots); graph points 0, 1, 2, 3, 5
        setUpGame(4, 6, 5);
    }

    // ------------------------------------------------------------------ helpers

    function lieCommitment() internal view returns (bytes32) {
        return Handover.bytesRoot(lyingOutput());
    }

    /// The lying submitter's trace: honest before node `from`, its own after, and the lying
    /// output last.
    function lieOuts(uint256 from) internal view returns (bytes32[] memory) {
        return divergentOuts(from, keccak256("submitter lie"), lieCommitment());
    }

    function postLyingClaim() internal returns (uint256) {
        return postClaimFor(0, lyingOutput(), lieCommitment());
    }

    /// A lying claim whose trace diverges at `node`, challenged by an honest `challenger`,
    /// played to the handover of `node`.
    function lyingGameToHandover(address challenger, uint256 node)
        internal
        returns (uint256 claimId, uint256 gameId, bytes32[] memory outs)
    {
        claimId = postLyingClaim();
        gameId = challengeAs(challenger, claimId);
        outs = lieOuts(node);
        openWith(gameId, outs);
        playGraph(gameId, challenger, graphStates(outs), graphStates(honestOuts()));
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Handover, "handover");
        assertEqUint(g.lo, node, "first wrong node isolated");
    }

    /// Lying steps after an accepted handover: the submitter's trace has a wrong hash at
    /// t + 1, the honest challenger the real post-state.
    function lyingSteps(uint256 gameId, address challenger, bytes32[] memory outs, uint256 node, uint256 t) internal {
        OptimisticML.HandoverProof memory p = handoverProof(outs, node);
        StepView memory sub =
            stepView(preStateOf(node, p.inputValues), keccak256(p.finalState), t, keccak256("wrong post"), "sub");
        StepView memory chal = otherStepView(sub, vecPost, "honest");
        playSteps(gameId, challenger, sub, chal);
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Leaf, "leaf");
        assertEqUint(g.lo, t, "leaf at the lie");
        assertEq(g.hashLo, keccak256(vecState), "agreed pre-state at the leaf");
        assertEq(g.hashHi, keccak256("wrong post"), "disputed post-state");
    }

    function assertWinner(uint256 gameId, OptimisticML.Side side, string memory what) internal view {
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Ended, what);
        assertTrue(g.winner == side, what);
    }

    /// A rejected handover `p` reverts with `err`, and the submitter then loses by timeout.
    function handoverRejectedThenTimeout(
        uint256 claimId,
        uint256 gameId,
        OptimisticML.HandoverProof memory p,
        bytes memory err
    ) internal {
        vm.prank(SUBMITTER);
        vm.expectRevert(err);
        game.handover(gameId, p);
        assertTrue(phaseOf(gameId) == OptimisticML.Phase.Handover, "still handover");
        G memory g = gv(gameId);
        vm.warp(g.lastMove + g.submitterClock + 1);
        game.timeout(gameId);
        assertWinner(gameId, OptimisticML.Side.Challenger, "challenger wins by timeout");
        assertTrue(claimVoided(claimId), "claim voided");
        assertEqUint(credit(CHALLENGER), challengerPrize(), "challenger prize");
        assertConserved();
    }

    function callGame(address who, uint256 value, bytes memory data) internal returns (bool ok, bytes memory ret) {
        vm.prank(who);
        (ok, ret) = address(game).call{value: value}(data);
    }

    /// `who` calling `data` reverts with exactly `err`.
    function assertReverts(address who, bytes memory data, bytes memory err, string memory what) internal {
        (bool ok, bytes memory ret) = callGame(who, 0, data);
        assertTrue(!ok, what);
        assertEq(keccak256(ret), keccak256(err), what);
    }

    function wrongPhase(OptimisticML.Phase p) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(OptimisticML.WrongPhase.selector, p);
    }

    // ------------------------------------------------------------------ honest submitter

    /// At every node and at both ends of the step trace: the lying challenger loses at the
    /// leaf, the real step verifier deciding.
    function test_honestSubmitterBeatsLyingChallengerAtTheLeaf() public {
        uint256 claimId = postHonestClaim();
        uint256 games;
        for (uint256 node = 0; node < nodeCount; node++) {
            uint256[3] memory steps = [uint256(1), defaultLeafStep(), top() - 2];
            for (uint256 s = 0; s < 3; s++) {
                uint256 gameId = challengeAs(CHALLENGER, claimId);
                games++;
                playHonestSubmitterToLeaf(gameId, CHALLENGER, node, steps[s]);
                resolveLeaf(gameId);
                assertWinner(gameId, OptimisticML.Side.Submitter, "submitter wins the leaf");
                assertEqUint(credit(SUBMITTER), games * submitterPrize(), "submitter prize per game");
                assertTrue(!claimVoided(claimId), "claim stands");
            }
        }
        assertEqUint(credit(CHALLENGER), 0, "challenger gets nothing");
        assertConserved();
        vm.warp(T0 + cfg.challengeWindow);
        game.finalize(claimId);
        assertEqUint(credit(SUBMITTER), games * submitterPrize() + cfg.submitterBond, "bond back");
        assertEqUint(address(game).balance, credit(SUBMITTER), "all locked ether is the submitter's");
    }

    /// A challenger that picks parts it agrees with ends at node 0 and loses at the leaf.
    function test_wronglyPickingChallengerLosesAtTheLeaf() public {
        uint256 claimId = postHonestClaim();
        uint256 gameId = challengeAs(CHALLENGER, claimId);
        bytes32[] memory outs = honestOuts();
        openWith(gameId, outs);
        bytes32[] memory S = graphStates(outs);
        while (phaseOf(gameId) == OptimisticML.Phase.Graph) {
            bytes32[] memory states = graphStatesToPost(gameId, S);
            post(gameId, states);
            pickAs(CHALLENGER, gameId, 0, states);
        }
        assertEqUint(gv(gameId).lo, 0, "node 0");
        handoverChecked(gameId, outs, 0);
        StepView memory sub = honestStepView(outs, 0, defaultLeafStep());
        playSteps(gameId, CHALLENGER, sub, otherStepView(sub, keccak256("x"), "x"));
        resolveLeaf(gameId);
        assertWinner(gameId, OptimisticML.Side.Submitter, "submitter wins");
        assertConserved();
    }

    /// A challenger that disputes the last part everywhere reaches a leaf whose pre-state
    /// nobody can open; it cannot resolve it and loses by timeout.
    function test_wronglyPickingChallengerLosesByTimeout() public {
        uint256 claimId = postHonestClaim();
        uint256 gameId = challengeAs(CHALLENGER, claimId);
        bytes32[] memory outs = honestOuts();
        openWith(gameId, outs);
        playGraph(gameId, CHALLENGER, graphStates(outs), graphStates(divergentOuts(4, "c", "c")));
        handoverChecked(gameId, outs, 4);
        StepView memory sub = honestStepView(outs, 4, defaultLeafStep());
        while (phaseOf(gameId) == OptimisticML.Phase.Steps) {
            bytes32[] memory states = stepStatesToPost(gameId, sub);
            post(gameId, states);
            pickAs(CHALLENGER, gameId, states.length, states);
        }
        G memory g = gv(gameId);
        assertEqUint(g.lo, top() - 1, "last step");
        // the real vector's state is not the agreed one
        vm.expectRevert(OptimisticML.StateMismatch.selector);
        game.resolveStep(gameId, vecState, vecProof);
        vm.warp(g.lastMove + g.challengerClock + 1);
        game.timeout(gameId);
        assertWinner(gameId, OptimisticML.Side.Submitter, "submitter wins by timeout");
        assertTrue(!claimVoided(claimId), "claim stands");
        assertConserved();
    }

    // ------------------------------------------------------------------ lying submitter

    /// Opening with a final graph state that holds another output than the claimed one fails.
    function test_openWithProofForDifferentOutputFails() public {
        uint256 claimId = postHonestClaim();
        uint256 gameId = challengeAs(CHALLENGER, claimId);
        bytes32[] memory lie = lieOuts(4);
        bytes32 snLie = graphStates(lie)[nodeCount];
        bytes32[] memory sibLie = outputSiblings(lie);
        vm.prank(SUBMITTER);
        vm.expectRevert(OptimisticML.BadOutputProof.selector);
        game.open(gameId, snLie, sibLie);
        // the true S_n with the siblings of another slot
        bytes32[] memory outs = honestOuts();
        bytes32 sn = graphStates(outs)[nodeCount];
        bytes32[] memory sibOther = merkleSiblings(slotLeaves(outs, nodeCount), outputSlot - 1);
        vm.prank(SUBMITTER);
        vm.expectRevert(OptimisticML.BadOutputProof.selector);
        game.open(gameId, sn, sibOther);
        // one sibling too few
        bytes32[] memory sib = outputSiblings(outs);
        bytes32[] memory shortSib = new bytes32[](sib.length - 1);
        for (uint256 i = 0; i < shortSib.length; i++) {
            shortSib[i] = sib[i];
        }
        vm.prank(SUBMITTER);
        vm.expectRevert(OptimisticML.BadOutputProof.selector);
        game.open(gameId, sn, shortSib);

        // a lying claim cannot open with the true S_n either
        uint256 lyingClaim = postLyingClaim();
        uint256 lyingGame = challengeAs(CHALLENGER2, lyingClaim);
        vm.prank(SUBMITTER);
        vm.expectRevert(OptimisticML.BadOutputProof.selector);
        game.open(lyingGame, sn, sib);
        G memory g = gv(lyingGame);
        vm.warp(g.lastMove + g.submitterClock + 1);
        game.timeout(lyingGame);
        assertWinner(lyingGame, OptimisticML.Side.Challenger, "challenger wins");
        assertTrue(claimVoided(lyingClaim), "lying claim voided");
        assertEqUint(credit(CHALLENGER2), challengerPrize(), "prize");
        assertConserved();
    }

    /// A wrong output in S_n (only the last node lies) is isolated at the last node; the
    /// fabricated final state passes the handover, the lie inside the VM loses at the leaf.
    function test_lieInFinalOutputIsCaughtAtTheLeaf() public {
        uint256 last = nodeCount - 1;
        (uint256 claimId, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(CHALLENGER, last);
        handoverChecked(gameId, outs, last);
        lyingSteps(gameId, CHALLENGER, outs, last, defaultLeafStep());
        resolveLeaf(gameId);
        assertWinner(gameId, OptimisticML.Side.Challenger, "challenger wins the leaf");
        assertTrue(claimVoided(claimId), "claim voided");
        assertEqUint(credit(CHALLENGER), challengerPrize(), "prize");
        assertEqUint(credit(SUBMITTER), 0, "submitter nothing");
        assertConserved();
        vm.warp(T0 + cfg.challengeWindow + 1);
        vm.expectPartialRevert(OptimisticML.ClaimVoidedError.selector);
        game.finalize(claimId);
        (bool fin,,,,,) = game.result(claimId);
        assertTrue(!fin, "never final");
    }

    /// A lie inside the VM execution of a middle node, at an early and a late step.
    function test_lieInsideVmExecutionLosesAtTheLeaf() public {
        uint256[2] memory steps = [uint256(1), top() - 2];
        for (uint256 s = 0; s < 2; s++) {
            (uint256 claimId, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(CHALLENGER, 2);
            handoverChecked(gameId, outs, 2);
            lyingSteps(gameId, CHALLENGER, outs, 2, steps[s]);
            resolveLeaf(gameId);
            assertWinner(gameId, OptimisticML.Side.Challenger, "challenger wins the leaf");
            assertTrue(claimVoided(claimId), "claim voided");
        }
        assertEqUint(credit(CHALLENGER), 2 * challengerPrize(), "two prizes");
        assertConserved();
    }

    /// A garbage intermediate graph state (the claim itself is right) is isolated as the end
    /// of a node's step; no update proof reaches it, and the submitter loses by timeout.
    function test_lieInIntermediateGraphStateLosesByTimeout() public {
        uint256 claimId = postHonestClaim();
        uint256 gameId = challengeAs(CHALLENGER, claimId);
        bytes32[] memory outs = honestOuts();
        openWith(gameId, outs);
        bytes32[] memory subS = graphStates(outs);
        subS[2] = keccak256("garbage state");
        playGraph(gameId, CHALLENGER, subS, graphStates(outs));
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Handover, "handover");
        assertEqUint(g.lo, 1, "node 1");
        assertEq(g.hashHi, keccak256("garbage state"), "garbage isolated");
        handoverRejectedThenTimeout(
            claimId, gameId, handoverProof(outs, 1), abi.encodeWithSelector(OptimisticML.BadUpdateProof.selector)
        );
    }

    // ------------------------------------------------------------------ lying handovers

    function test_handoverWithWrongInputValueReverts() public {
        (uint256 claimId, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(CHALLENGER, 2);
        OptimisticML.HandoverProof memory p = handoverProof(outs, 2);
        p.inputValues[0] = keccak256("another input");
        handoverRejectedThenTimeout(claimId, gameId, p, abi.encodeWithSelector(OptimisticML.BadInputProof.selector, 0));
    }

    /// The proof of another slot (the model input, slot 0) for node 2's input (slot 2).
    function test_handoverWithProofForTheWrongInputSlotReverts() public {
        (uint256 claimId, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(CHALLENGER, 2);
        OptimisticML.HandoverProof memory p = handoverProof(outs, 2);
        bytes32[] memory pre = slotLeaves(outs, 2);
        p.inputValues[0] = pre[0];
        p.inputSiblings[0] = merkleSiblings(pre, 0);
        handoverRejectedThenTimeout(claimId, gameId, p, abi.encodeWithSelector(OptimisticML.BadInputProof.selector, 0));
    }

    function test_handoverWithWrongInputCountReverts() public {
        (uint256 claimId, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(CHALLENGER, 2);
        OptimisticML.HandoverProof memory p = handoverProof(outs, 2);
        bytes32[] memory values = new bytes32[](2);
        values[0] = p.inputValues[0];
        p.inputValues = values;
        handoverRejectedThenTimeout(
            claimId, gameId, p, abi.encodeWithSelector(OptimisticML.InputCountMismatch.selector, 1, 2, 1)
        );
    }

    /// A descriptor with another weight root is not under the model root.
    function test_handoverWithWrongWeightRootReverts() public {
        (uint256 claimId, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(CHALLENGER, 2);
        OptimisticML.HandoverProof memory p = handoverProof(outs, 2);
        NodeSpec memory s = nodeSpec(2);
        s.weightRoots[0] = keccak256("other weights");
        p.descriptor = encodeDescriptor(s);
        handoverRejectedThenTimeout(
            claimId, gameId, p, abi.encodeWithSelector(OptimisticML.BadDescriptorProof.selector)
        );
    }

    /// Another node's descriptor with its own (valid) siblings is not node 2's.
    function test_handoverWithAnotherNodesDescriptorReverts() public {
        (uint256 claimId, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(CHALLENGER, 2);
        OptimisticML.HandoverProof memory p = handoverProof(outs, 2);
        p.descriptor = descriptors[1];
        p.descriptorSiblings = descriptorSiblings(1);
        handoverRejectedThenTimeout(
            claimId, gameId, p, abi.encodeWithSelector(OptimisticML.BadDescriptorProof.selector)
        );
    }

    function test_handoverWithFinalStateNotHaltedReverts() public {
        (uint256 claimId, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(CHALLENGER, 2);
        OptimisticML.HandoverProof memory p = handoverProof(outs, 2);
        (p.finalState, p.outputRegionSiblings) = finalStateWith(outs[2], nodeSpec(2).outputLen, 0, 0);
        handoverRejectedThenTimeout(claimId, gameId, p, abi.encodeWithSelector(OptimisticML.BadFinalState.selector));
    }

    function test_handoverWithNonZeroExitCodeReverts() public {
        (uint256 claimId, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(CHALLENGER, 2);
        OptimisticML.HandoverProof memory p = handoverProof(outs, 2);
        (p.finalState, p.outputRegionSiblings) = finalStateWith(outs[2], nodeSpec(2).outputLen, 1, 1);
        handoverRejectedThenTimeout(claimId, gameId, p, abi.encodeWithSelector(OptimisticML.BadFinalState.selector));
    }

    /// The final state holds the true output, not the claimed (lying) one.
    function test_handoverWithFinalStateNotHoldingTheOutputReverts() public {
        (uint256 claimId, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(CHALLENGER, 2);
        OptimisticML.HandoverProof memory p = handoverProof(outs, 2);
        (p.finalState, p.outputRegionSiblings) = finalStateWith(honestOutputs[2], nodeSpec(2).outputLen, 1, 0);
        vm.prank(SUBMITTER);
        vm.expectRevert(OptimisticML.BadFinalState.selector);
        game.handover(gameId, p);
        // the region proof of another output length does not fit either
        (p.finalState, p.outputRegionSiblings) = finalStateWith(outs[2], 4096, 1, 0);
        handoverRejectedThenTimeout(claimId, gameId, p, abi.encodeWithSelector(OptimisticML.BadFinalState.selector));
    }

    /// The update proof of the next node's slot.
    function test_handoverWithUpdateProofForWrongSlotReverts() public {
        (uint256 claimId, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(CHALLENGER, 2);
        OptimisticML.HandoverProof memory p = handoverProof(outs, 2);
        p.updateSiblings = merkleSiblings(slotLeaves(outs, 2), inputCount + 3);
        handoverRejectedThenTimeout(claimId, gameId, p, abi.encodeWithSelector(OptimisticML.BadUpdateProof.selector));
    }

    /// Both players agree on an S_2 in which node 2's slot is already set; the update of that
    /// slot from its non-zero value is not a node step.
    function test_handoverUpdatingANonZeroSlotReverts() public {
        uint256 claimId = postHonestClaim();
        uint256 gameId = challengeAs(CHALLENGER, claimId);
        bytes32[] memory outs = honestOuts();
        openWith(gameId, outs);
        bytes32[] memory early = slotLeaves(outs, 3); // slots of nodes 0, 1, 2 set
        bytes32 x = keccak256("overwritten");
        bytes32[] memory later = slotLeaves(outs, 3);
        later[inputCount + 2] = x;
        bytes32[] memory subS = graphStates(outs);
        subS[2] = merkleRoot(early);
        subS[3] = merkleRoot(later);
        bytes32[] memory chalS = graphStates(outs);
        chalS[2] = subS[2];
        playGraph(gameId, CHALLENGER, subS, chalS);
        G memory g = gv(gameId);
        assertEqUint(g.lo, 2, "node 2");
        assertEq(g.hashLo, merkleRoot(early), "agreed S_2 with slot set");
        OptimisticML.HandoverProof memory p = handoverProof(outs, 2);
        p.output = x;
        p.updateSiblings = merkleSiblings(early, inputCount + 2);
        // the path is right for old = honest output, new = x, but old must be zero
        assertTrue(
            Handover.verifyUpdateProof(g.hashLo, g.hashHi, slotCount, inputCount + 2, outs[2], x, p.updateSiblings),
            "the update from the non-zero value is a valid path"
        );
        (p.finalState, p.outputRegionSiblings) = finalStateWith(x, nodeSpec(2).outputLen, 1, 0);
        handoverRejectedThenTimeout(claimId, gameId, p, abi.encodeWithSelector(OptimisticML.BadUpdateProof.selector));
    }

    /// A model whose node 2 descriptor names the wrong output slot (it is under the root):
    /// its handover is rejected with WrongOutputSlot.
    function test_handoverOfDescriptorWithWrongOutputSlotReverts() public {
        NodeSpec memory s = nodeSpec(2);
        s.outputSlot = 7;
        descriptors[2] = encodeDescriptor(s);
        descriptorRoots[2] = Handover.bytesRoot(descriptors[2]);
        modelRoot = merkleRoot(padded(descriptorRoots, nextPow2(nodeCount)));
        modelId = registry.register(modelRoot, nodeCount, inputLens(), slotCount, outputSlot, outputLen, "bad model");
        (uint256 claimId, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(CHALLENGER, 2);
        handoverRejectedThenTimeout(
            claimId,
            gameId,
            handoverProof(outs, 2),
            abi.encodeWithSelector(OptimisticML.WrongOutputSlot.selector, 7, inputCount + 2)
        );
    }

    // ------------------------------------------------------------------ several challengers

    /// Plays a lying challenger's game against the lying claim (trace diverging at node 3):
    /// the challenger disputes node 1, which the submitter computed honestly; it loses.
    function lyingChallengerLoses(uint256 gameId, address challenger, bytes32[] memory subOuts) internal {
        openWith(gameId, subOuts);
        bytes32[] memory chalOuts = divergentOuts(1, "challenger lie", "challenger out");
        playGraph(gameId, challenger, graphStates(subOuts), graphStates(chalOuts));
        assertEqUint(gv(gameId).lo, 1, "node 1");
        handoverChecked(gameId, subOuts, 1);
        StepView memory sub = honestStepView(subOuts, 1, defaultLeafStep());
        playSteps(gameId, challenger, sub, otherStepView(sub, keccak256("lie"), "lie"));
        resolveLeaf(gameId);
        assertWinner(gameId, OptimisticML.Side.Submitter, "lying challenger loses");
    }

    /// The honest challenger's game against the lying claim: it wins at the leaf.
    function honestChallengerWins(uint256 gameId, address challenger, bytes32[] memory subOuts) internal {
        openWith(gameId, subOuts);
        playGraph(gameId, challenger, graphStates(subOuts), graphStates(honestOuts()));
        assertEqUint(gv(gameId).lo, 3, "node 3");
        handoverChecked(gameId, subOuts, 3);
        lyingSteps(gameId, challenger, subOuts, 3, defaultLeafStep());
        resolveLeaf(gameId);
        assertWinner(gameId, OptimisticML.Side.Challenger, "honest challenger wins");
    }

    function test_twoChallengers_lyingLosesHonestWins() public {
        uint256 claimId = postLyingClaim();
        uint256 a = challengeAs(CHALLENGER, claimId);
        uint256 b = challengeAs(CHALLENGER2, claimId);
        assertEqUint(game.claimOf(claimId).openGames, 2, "two games");
        bytes32[] memory outs = lieOuts(3);
        lyingChallengerLoses(a, CHALLENGER, outs);
        assertEqUint(credit(SUBMITTER), submitterPrize(), "submitter wins game a");
        assertTrue(!claimVoided(claimId), "not voided yet");
        honestChallengerWins(b, CHALLENGER2, outs);
        assertTrue(claimVoided(claimId), "voided");
        assertEqUint(credit(CHALLENGER2), challengerPrize(), "honest challenger prize");
        assertEqUint(credit(CHALLENGER), 0, "lying challenger nothing");
        assertEqUint(credit(SUBMITTER), submitterPrize(), "submitter keeps game a's prize only");
        assertEqUint(game.claimOf(claimId).openGames, 0, "no game open");
        assertConserved();
        assertEqUint(address(game).balance, credit(SUBMITTER) + credit(CHALLENGER2), "locked ether == credits");
        vm.warp(T0 + cfg.challengeWindow);
        vm.expectPartialRevert(OptimisticML.ClaimVoidedError.selector);
        game.finalize(claimId);
    }

    /// Three challengers: the lying one loses, an honest one wins and voids the claim, the
    /// third (honest, mid-game) is refunded by abandon with its share of the voided bond: the
    /// submitter bond is paid out once, split between the two games open when it was voided.
    function test_threeChallengers_abandonRefundsTheRest() public {
        uint256 burnt0 = address(0).balance;
        uint256 claimId = postLyingClaim();
        uint256 a = challengeAs(CHALLENGER, claimId);
        uint256 b = challengeAs(CHALLENGER2, claimId);
        uint256 c = challengeAs(CHALLENGER3, claimId);
        bytes32[] memory outs = lieOuts(3);
        // game c: opened and one graph round played
        openWith(c, outs);
        bytes32[] memory states = graphStatesToPost(c, graphStates(outs));
        post(c, states);
        lyingChallengerLoses(a, CHALLENGER, outs);
        // abandon is only for voided claims
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.ClaimNotVoided.selector, claimId));
        game.abandon(c);
        honestChallengerWins(b, CHALLENGER2, outs);
        // game c can no longer be played or timed out, and pays no second submitter bond
        vm.prank(CHALLENGER3);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.ClaimVoidedError.selector, claimId));
        game.pick(c, 3, states);
        vm.warp(block.timestamp + cfg.clock + 1);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.ClaimVoidedError.selector, claimId));
        game.timeout(c);
        vm.prank(ANYONE);
        game.abandon(c);
        G memory g = gv(c);
        assertTrue(g.phase == OptimisticML.Phase.Ended, "abandoned");
        assertEqUint(credit(CHALLENGER2), voidingPrize(2), "voiding game: bond, share and dust");
        assertEqUint(credit(CHALLENGER3), abandonPrize(2), "bond refunded with a share, no burn");
        vm.expectRevert(wrongPhase(OptimisticML.Phase.Ended));
        game.abandon(c);
        assertEqUint(credit(CHALLENGER3), abandonPrize(2), "refunded once");
        // books: 1 submitter bond + 3 challenger bonds in; 2 burns out
        uint256 burnt = address(0).balance - burnt0;
        assertEqUint(burnt, burnOf(cfg.challengerBond) + burnOf(cfg.submitterBond), "two burns");
        assertEqUint(
            credit(SUBMITTER) + credit(CHALLENGER) + credit(CHALLENGER2) + credit(CHALLENGER3) + burnt,
            uint256(cfg.submitterBond) + 3 * cfg.challengerBond,
            "every wei accounted for"
        );
        assertEqUint(game.claimOf(claimId).openGames, 0, "no game open");
        assertConserved();
        // everyone withdraws; the game is empty
        address[3] memory who = [SUBMITTER, CHALLENGER2, CHALLENGER3];
        for (uint256 i = 0; i < 3; i++) {
            vm.prank(who[i]);
            game.withdraw();
        }
        assertEqUint(address(game).balance, 0, "empty");
        assertConserved();
    }

    /// Two honest challengers reach the leaf; the second one's leaf cannot pay the submitter
    /// bond again (the claim is voided), abandon refunds its bond with its share.
    function test_twoHonestChallengersNoDoublePayment() public {
        uint256 claimId = postLyingClaim();
        uint256 a = challengeAs(CHALLENGER, claimId);
        uint256 b = challengeAs(CHALLENGER2, claimId);
        bytes32[] memory outs = lieOuts(3);
        for (uint256 i = 0; i < 2; i++) {
            uint256 id = i == 0 ? a : b;
            address who = i == 0 ? CHALLENGER : CHALLENGER2;
            openWith(id, outs);
            playGraph(id, who, graphStates(outs), graphStates(honestOuts()));
            handoverChecked(id, outs, 3);
            lyingSteps(id, who, outs, 3, defaultLeafStep());
        }
        resolveLeaf(a);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.ClaimVoidedError.selector, claimId));
        game.resolveStep(b, vecState, vecProof);
        game.abandon(b);
        assertEqUint(credit(CHALLENGER), voidingPrize(2), "first prize");
        assertEqUint(credit(CHALLENGER2), abandonPrize(2), "second refunded with its share");
        assertEqUint(address(game).balance, challengerPrize() + cfg.challengerBond, "locked == credits");
        assertConserved();
    }

    /// Issue 11, item 4: a liar voiding its own claim. Once an honest challenge is open, the
    /// submitter challenges its own lying claim from a second address (LIAR2) and loses that
    /// game to itself in one block. The claim is voided and the honest game can only be
    /// abandoned. Before, the honest challenger got back its bond and nothing more and the liar
    /// lost only the burn; now the voided bond (less the burn) is shared by both games.
    function test_liarVoidingItsOwnClaimPaysTheHonestChallenger() public {
        address LIAR2 = CHALLENGER3; // the submitter's second address
        uint256 liarBefore = SUBMITTER.balance + LIAR2.balance;
        uint256 claimId = postLyingClaim();
        uint256 honest = challengeAs(CHALLENGER, claimId);
        uint256 t = block.timestamp;
        uint256 own = challengeAs(LIAR2, claimId);
        honestChallengerWins(own, LIAR2, lieOuts(3)); // the liar plays both sides of its own game
        assertEqUint(block.timestamp, t, "in one block");
        assertTrue(claimVoided(claimId), "voided by the liar's own game");
        vm.prank(ANYONE);
        game.abandon(honest);
        // the pool (submitter bond less the burn) is split between the two games open
        uint256 share = voidShare(2);
        assertEqUint(share, (uint256(cfg.submitterBond) - burnOf(cfg.submitterBond)) / 2, "half the pool");
        assertEqUint(credit(CHALLENGER), uint256(cfg.challengerBond) + share, "honest challenger paid a share");
        assertTrue(credit(CHALLENGER) > cfg.challengerBond, "honest challenger earns");
        assertEqUint(credit(LIAR2), voidingPrize(2), "liar's own game: bond and the other share");
        assertEqUint(credit(SUBMITTER), 0, "submitter bond lost");
        vm.prank(LIAR2);
        game.withdraw();
        vm.prank(CHALLENGER);
        game.withdraw();
        // the liar's net loss: the burn plus the honest game's share (was: the burn alone)
        uint256 liarLoss = liarBefore - SUBMITTER.balance - LIAR2.balance;
        assertEqUint(liarLoss, burnOf(cfg.submitterBond) + share, "liar loses the burn and a share");
        assertEqUint(address(game).balance, 0, "empty");
        assertConserved();
    }

    /// The bound that remains: a liar that opens `m` games of its own before voiding the claim
    /// dilutes the honest share to pool / (m + 1), but each game locks a challenger bond and
    /// the liar still loses the burn plus that share; the shares and the dust sum to the pool.
    function test_liarDilutingWithManyOwnGamesStillLosesTheBurnAndAShare() public {
        uint256 claimId = postLyingClaim();
        uint256 honest = challengeAs(CHALLENGER, claimId);
        uint256 a = challengeAs(CHALLENGER2, claimId); // both CHALLENGER2 and CHALLENGER3 are the liar's
        uint256 b = challengeAs(CHALLENGER3, claimId);
        honestChallengerWins(b, CHALLENGER3, lieOuts(3));
        game.abandon(a);
        game.abandon(honest);
        uint256 pool = uint256(cfg.submitterBond) - burnOf(cfg.submitterBond);
        assertEqUint(credit(CHALLENGER), abandonPrize(3), "honest: bond and a third of the pool");
        assertEqUint(credit(CHALLENGER2), abandonPrize(3), "liar's other game: bond and a third");
        assertEqUint(credit(CHALLENGER3), voidingPrize(3), "voiding game: bond, a third and the dust");
        assertEqUint(
            credit(CHALLENGER) + credit(CHALLENGER2) + credit(CHALLENGER3),
            3 * uint256(cfg.challengerBond) + pool,
            "pool"
        );
        uint256 liarBack = credit(CHALLENGER2) + credit(CHALLENGER3) - 2 * uint256(cfg.challengerBond);
        assertEqUint(cfg.submitterBond - liarBack, burnOf(cfg.submitterBond) + pool / 3, "liar's loss");
        assertConserved();
    }

    /// A zero burn share is rejected: with it, a liar voiding its own claim could lose nothing.
    function test_constructorRejectsZeroBurn() public {
        OptimisticML.Config memory c = defaultConfig(4, 8);
        c.burnBps = 0;
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.BadConfig.selector, "burnBps"));
        new OptimisticML(registry, stepVerifier, c);
        c.burnBps = 1;
        new OptimisticML(registry, stepVerifier, c);
    }

    // ------------------------------------------------------------------ following a game from its logs

    /// What a client knows of one game from the logs alone.
    struct Tracked {
        uint256 lo;
        uint256 hi;
        bytes32 hashLo;
        bytes32 hashHi;
        bytes32[] pending;
        uint256 picks;
        bool ended;
        uint8 winner;
        uint8 reason;
        bool voided;
        bytes32 stepPost;
    }

    /// Replays one log of the game into `t`, checking every Picked against the rule and the
    /// states posted before it.
    function follow(Tracked memory t, uint256 gameId, bytes32[] memory topics, bytes memory data) internal view {
        bytes32 sig = topics[0];
        if (sig == OptimisticML.ClaimVoided.selector) {
            (uint256 g) = abi.decode(data, (uint256));
            t.voided = g == gameId;
            return;
        }
        if (topics.length < 2 || uint256(topics[1]) != gameId) return;
        if (sig == OptimisticML.Challenged.selector) {
            (,, t.hashLo) = abi.decode(data, (uint256, address, bytes32));
        } else if (sig == OptimisticML.Opened.selector) {
            t.hashHi = abi.decode(data, (bytes32));
            t.lo = 0;
            t.hi = nodeCount;
        } else if (sig == OptimisticML.StatesPosted.selector) {
            (, uint64 lo, uint64 hi, bytes32[] memory states) =
                abi.decode(data, (OptimisticML.Phase, uint64, uint64, bytes32[]));
            assertEqUint(lo, t.lo, "posted for the interval's lo");
            assertEqUint(hi, t.hi, "posted for the interval's hi");
            t.pending = states;
        } else if (sig == OptimisticML.Picked.selector) {
            followPick(t, data);
        } else if (sig == OptimisticML.HandedOver.selector) {
            (,, bytes32 pre, bytes32 fin) = abi.decode(data, (uint32, bytes32, bytes32, bytes32));
            (t.lo, t.hi, t.hashLo, t.hashHi) = (0, top(), pre, fin);
        } else if (sig == OptimisticML.StepResolved.selector) {
            (uint64 stepNo, bytes32 post) = abi.decode(data, (uint64, bytes32));
            assertEqUint(stepNo, t.lo, "resolved step is the leaf");
            t.stepPost = post;
        } else if (sig == OptimisticML.GameEnded.selector) {
            (t.winner, t.reason) = abi.decode(data, (uint8, uint8));
            t.ended = true;
        }
    }

    function followPick(Tracked memory t, bytes memory data) internal view {
        (, uint256 index, uint64 lo, uint64 hi, bytes32 hashLo, bytes32 hashHi) =
            abi.decode(data, (OptimisticML.Phase, uint256, uint64, uint64, bytes32, bytes32));
        uint256[] memory p = splitPoints(t.lo, t.hi);
        assertEqUint(lo, p[index], "picked lo by the rule");
        assertEqUint(hi, p[index + 1], "picked hi by the rule");
        assertEq(hashLo, index == 0 ? t.hashLo : t.pending[index - 1], "picked hashLo from the posted states");
        assertEq(hashHi, index == p.length - 2 ? t.hashHi : t.pending[index], "picked hashHi from the posted states");
        (t.lo, t.hi, t.hashLo, t.hashHi) = (lo, hi, hashLo, hashHi);
        t.picks++;
    }

    /// A whole dispute (lying submitter, honest challenger) reconstructed from logs alone
    /// agrees with the game's state: the leaf, its hashes, the step's result, the winner.
    function test_disputeCanBeFollowedFromLogs() public {
        vm.recordLogs();
        (uint256 claimId, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(CHALLENGER, 2);
        handoverChecked(gameId, outs, 2);
        lyingSteps(gameId, CHALLENGER, outs, 2, defaultLeafStep());
        G memory leaf = gv(gameId);
        resolveLeaf(gameId);
        Cheats.Log[] memory logs = vm.getRecordedLogs();
        Tracked memory t;
        for (uint256 i = 0; i < logs.length; i++) {
            if (logs[i].emitter == address(game)) follow(t, gameId, logs[i].topics, logs[i].data);
        }
        assertTrue(t.picks > 2, "picks followed");
        assertEqUint(t.lo, leaf.lo, "leaf lo");
        assertEqUint(t.hi, leaf.lo + 1, "leaf hi");
        assertEq(t.hashLo, keccak256(vecState), "leaf pre-state");
        assertEq(t.hashHi, leaf.hashHi, "leaf post-state");
        assertEq(t.stepPost, vecPost, "step result");
        assertTrue(t.ended && t.winner == uint8(OptimisticML.Side.Challenger) && t.reason == 1, "ended at the step");
        assertTrue(t.voided && claimVoided(claimId), "claim voided");
    }

    // ------------------------------------------------------------------ wrong moves

    function test_movesOutOfTurnRevert() public {
        uint256 claimId = postHonestClaim();
        uint256 gameId = challengeAs(CHALLENGER, claimId);
        bytes32[] memory outs = honestOuts();
        openWith(gameId, outs);
        bytes32[] memory states = graphStatesToPost(gameId, graphStates(outs));
        // the challenger cannot pick before the states are posted
        assertReverts(
            CHALLENGER,
            abi.encodeCall(OptimisticML.pick, (gameId, 0, states)),
            abi.encodeWithSelector(OptimisticML.NotYourTurn.selector),
            "pick before post"
        );
        post(gameId, states);
        // the submitter cannot post twice
        assertReverts(
            SUBMITTER,
            abi.encodeCall(OptimisticML.postStates, (gameId, states)),
            abi.encodeWithSelector(OptimisticML.NotYourTurn.selector),
            "post twice"
        );
        // nor the challenger post
        assertReverts(
            CHALLENGER,
            abi.encodeCall(OptimisticML.postStates, (gameId, states)),
            abi.encodeWithSelector(OptimisticML.NotYourTurn.selector),
            "challenger posts"
        );
    }

    function test_movesByNonPartyRevert() public {
        uint256 claimId = postHonestClaim();
        uint256 gameId = challengeAs(CHALLENGER, claimId);
        uint256 other = challengeAs(CHALLENGER2, claimId);
        bytes32[] memory outs = honestOuts();
        bytes32 sn = graphStates(outs)[nodeCount];
        bytes32[] memory sib = outputSiblings(outs);
        bytes memory err = abi.encodeWithSelector(OptimisticML.NotParty.selector);
        assertReverts(ANYONE, abi.encodeCall(OptimisticML.open, (gameId, sn, sib)), err, "stranger opens");
        assertReverts(CHALLENGER, abi.encodeCall(OptimisticML.open, (gameId, sn, sib)), err, "challenger opens");
        openWith(gameId, outs);
        bytes32[] memory states = graphStatesToPost(gameId, graphStates(outs));
        assertReverts(ANYONE, abi.encodeCall(OptimisticML.postStates, (gameId, states)), err, "stranger posts");
        post(gameId, states);
        assertReverts(ANYONE, abi.encodeCall(OptimisticML.pick, (gameId, 0, states)), err, "stranger picks");
        assertReverts(SUBMITTER, abi.encodeCall(OptimisticML.pick, (gameId, 0, states)), err, "submitter picks");
        assertReverts(
            CHALLENGER2, abi.encodeCall(OptimisticML.pick, (gameId, 0, states)), err, "other game's challenger picks"
        );
        // and the other game is untouched
        assertTrue(phaseOf(other) == OptimisticML.Phase.Open, "other game still open");
    }

    function test_movesInWrongPhaseRevert() public {
        uint256 claimId = postHonestClaim();
        uint256 gameId = challengeAs(CHALLENGER, claimId);
        bytes32[] memory outs = honestOuts();
        bytes32[] memory none = new bytes32[](0);
        OptimisticML.HandoverProof memory p = handoverProof(outs, 2);
        // Open
        bytes memory err = wrongPhase(OptimisticML.Phase.Open);
        assertReverts(SUBMITTER, abi.encodeCall(OptimisticML.postStates, (gameId, none)), err, "post in Open");
        assertReverts(CHALLENGER, abi.encodeCall(OptimisticML.pick, (gameId, 0, none)), err, "pick in Open");
        assertReverts(SUBMITTER, abi.encodeCall(OptimisticML.handover, (gameId, p)), err, "handover in Open");
        assertReverts(
            ANYONE, abi.encodeCall(OptimisticML.resolveStep, (gameId, vecState, vecProof)), err, "resolve in Open"
        );
        // Graph
        openWith(gameId, outs);
        err = wrongPhase(OptimisticML.Phase.Graph);
        bytes32[] memory sib = outputSiblings(outs);
        bytes32 sn = graphStates(outs)[nodeCount];
        assertReverts(SUBMITTER, abi.encodeCall(OptimisticML.open, (gameId, sn, sib)), err, "open twice");
        assertReverts(SUBMITTER, abi.encodeCall(OptimisticML.handover, (gameId, p)), err, "handover in Graph");
        assertReverts(
            ANYONE, abi.encodeCall(OptimisticML.resolveStep, (gameId, vecState, vecProof)), err, "resolve in Graph"
        );
        // Handover
        playGraph(gameId, CHALLENGER, graphStates(outs), graphStates(divergentOuts(2, "c", "c")));
        err = wrongPhase(OptimisticML.Phase.Handover);
        assertReverts(SUBMITTER, abi.encodeCall(OptimisticML.postStates, (gameId, none)), err, "post in Handover");
        assertReverts(CHALLENGER, abi.encodeCall(OptimisticML.pick, (gameId, 0, none)), err, "pick in Handover");
        assertReverts(SUBMITTER, abi.encodeCall(OptimisticML.open, (gameId, sn, sib)), err, "open in Handover");
        // Steps
        handoverChecked(gameId, outs, 2);
        err = wrongPhase(OptimisticML.Phase.Steps);
        assertReverts(SUBMITTER, abi.encodeCall(OptimisticML.handover, (gameId, p)), err, "handover twice");
        assertReverts(
            ANYONE, abi.encodeCall(OptimisticML.resolveStep, (gameId, vecState, vecProof)), err, "resolve in Steps"
        );
        // Leaf
        StepView memory sub = honestStepView(outs, 2, defaultLeafStep());
        playSteps(gameId, CHALLENGER, sub, otherStepView(sub, "c", "c"));
        err = wrongPhase(OptimisticML.Phase.Leaf);
        assertReverts(SUBMITTER, abi.encodeCall(OptimisticML.postStates, (gameId, none)), err, "post in Leaf");
        assertReverts(CHALLENGER, abi.encodeCall(OptimisticML.pick, (gameId, 0, none)), err, "pick in Leaf");
        assertReverts(SUBMITTER, abi.encodeCall(OptimisticML.handover, (gameId, p)), err, "handover in Leaf");
        // a wrong leaf witness: another state, a tampered proof
        bytes memory otherState = bytes.concat(vecState);
        otherState[40] = bytes1(uint8(otherState[40]) ^ 1);
        assertReverts(
            ANYONE,
            abi.encodeCall(OptimisticML.resolveStep, (gameId, otherState, vecProof)),
            abi.encodeWithSelector(OptimisticML.StateMismatch.selector),
            "state not the agreed one"
        );
        bytes memory badProof = bytes.concat(vecProof);
        badProof[badProof.length - 1] = bytes1(uint8(badProof[badProof.length - 1]) ^ 1);
        (bool ok,) = callGame(ANYONE, 0, abi.encodeCall(OptimisticML.resolveStep, (gameId, vecState, badProof)));
        assertTrue(!ok, "tampered step proof reverts");
        assertTrue(phaseOf(gameId) == OptimisticML.Phase.Leaf, "still at the leaf");
        // Ended
        resolveLeaf(gameId);
        err = wrongPhase(OptimisticML.Phase.Ended);
        assertReverts(SUBMITTER, abi.encodeCall(OptimisticML.open, (gameId, sn, sib)), err, "open after end");
        assertReverts(SUBMITTER, abi.encodeCall(OptimisticML.postStates, (gameId, none)), err, "post after end");
        assertReverts(CHALLENGER, abi.encodeCall(OptimisticML.pick, (gameId, 0, none)), err, "pick after end");
        assertReverts(SUBMITTER, abi.encodeCall(OptimisticML.handover, (gameId, p)), err, "handover after end");
        assertReverts(
            ANYONE, abi.encodeCall(OptimisticML.resolveStep, (gameId, vecState, vecProof)), err, "resolve after end"
        );
        assertReverts(ANYONE, abi.encodeCall(OptimisticML.timeout, (gameId)), err, "timeout after end");
        assertReverts(
            ANYONE,
            abi.encodeCall(OptimisticML.open, (gameId + 7, sn, sib)),
            abi.encodeWithSelector(OptimisticML.UnknownGame.selector, gameId + 7),
            "unknown game"
        );
    }

    function test_pickWithTamperedStatesOrOutOfRangeReverts() public {
        uint256 gameId = challengeAs(CHALLENGER, postHonestClaim());
        bytes32[] memory outs = honestOuts();
        openWith(gameId, outs);
        bytes32[] memory states = graphStatesToPost(gameId, graphStates(outs));
        post(gameId, states);
        bytes memory mismatch = abi.encodeWithSelector(OptimisticML.StatesMismatch.selector);
        bytes32[] memory tampered = new bytes32[](states.length);
        for (uint256 i = 0; i < states.length; i++) {
            tampered[i] = states[i];
        }
        tampered[1] = keccak256("chosen by the challenger");
        assertReverts(CHALLENGER, abi.encodeCall(OptimisticML.pick, (gameId, 1, tampered)), mismatch, "tampered");
        bytes32[] memory shortStates = new bytes32[](states.length - 1);
        for (uint256 i = 0; i < shortStates.length; i++) {
            shortStates[i] = states[i];
        }
        assertReverts(CHALLENGER, abi.encodeCall(OptimisticML.pick, (gameId, 0, shortStates)), mismatch, "short");
        assertReverts(
            CHALLENGER,
            abi.encodeCall(OptimisticML.pick, (gameId, 4, states)),
            abi.encodeWithSelector(OptimisticML.PickOutOfRange.selector, 4, 4),
            "index == parts"
        );
        // the right pick still works: [3, 5]
        pickAs(CHALLENGER, gameId, 3, states);
        G memory g = gv(gameId);
        assertEqUint(g.lo, 3, "lo");
        assertEqUint(g.hi, 5, "hi");
        assertEq(g.hashLo, states[2], "hashLo = states[index - 1]");
        assertEq(g.hashHi, graphStates(outs)[nodeCount], "hashHi kept (last part)");
    }

    /// Every index of a four-part step interval: both ends come from the posted states (or
    /// the interval's own ends for the first and last part).
    function test_pickSetsBothEndsFromThePostedStates() public {
        for (uint256 index = 0; index < 4; index++) {
            uint256 gameId = challengeAs(CHALLENGER, postHonestClaim());
            bytes32[] memory outs = honestOuts();
            openWith(gameId, outs);
            playGraph(gameId, CHALLENGER, graphStates(outs), graphStates(divergentOuts(2, "c", "c")));
            handoverChecked(gameId, outs, 2);
            G memory before = gv(gameId);
            bytes32[] memory states = stepStatesToPost(gameId, honestStepView(outs, 2, defaultLeafStep()));
            post(gameId, states);
            pickAs(CHALLENGER, gameId, index, states);
            G memory g = gv(gameId);
            // [0, 64] in four parts of 16
            assertEqUint(g.lo, 16 * index, "lo");
            assertEqUint(g.hi, 16 * (index + 1), "hi");
            assertEq(g.hashLo, index == 0 ? before.hashLo : states[index - 1], "hashLo");
            assertEq(g.hashHi, index == 3 ? before.hashHi : states[index], "hashHi");
            assertTrue(g.phase == OptimisticML.Phase.Steps && g.turn == OptimisticML.Side.Submitter, "next round");
        }
    }

    function test_postStatesWithWrongLengthReverts() public {
        uint256 gameId = challengeAs(CHALLENGER, postHonestClaim());
        bytes32[] memory outs = honestOuts();
        openWith(gameId, outs);
        for (uint256 len = 0; len < 6; len++) {
            if (len == 3) continue;
            bytes32[] memory s = new bytes32[](len);
            assertReverts(
                SUBMITTER,
                abi.encodeCall(OptimisticML.postStates, (gameId, s)),
                abi.encodeWithSelector(OptimisticML.BadStates.selector, len),
                "k - 1 = 3 states on [0, 5]"
            );
        }
        bytes32[] memory states = graphStatesToPost(gameId, graphStates(outs));
        post(gameId, states);
        pickAs(CHALLENGER, gameId, 3, states);
        // [3, 5]: two parts, one state
        assertEqUint(game.parts(gameId), 2, "two parts");
        bytes32[] memory three = new bytes32[](3);
        assertReverts(
            SUBMITTER,
            abi.encodeCall(OptimisticML.postStates, (gameId, three)),
            abi.encodeWithSelector(OptimisticML.BadStates.selector, 3),
            "one state on [3, 5]"
        );
    }

    // ------------------------------------------------------------------ re-entrancy

    /// A submitter contract re-enters withdraw, finalize and challenge from receive():
    /// every re-entry fails with Reentrancy and it is paid exactly its credit.
    function test_reentrancyOnWithdrawGetsNothingExtra() public {
        ReentrantActor actor = new ReentrantActor{value: 10 ether}(game);
        uint256 mine =
            actor.postClaim{value: cfg.submitterBond}(modelId, inputCommitments, outputBytes, outputCommitment);
        uint256 other = postHonestClaim();
        actor.setTarget(other);
        vm.warp(T0 + cfg.challengeWindow);
        game.finalize(mine);
        assertEqUint(credit(address(actor)), cfg.submitterBond, "credit");
        uint256 before = address(actor).balance;
        actor.withdraw();
        assertEqUint(actor.calls(), 1, "receive ran once");
        assertEqUint(actor.reentries(), 0, "no re-entry succeeded");
        assertTrue(actor.lastError() == OptimisticML.Reentrancy.selector, "blocked by the guard");
        assertEqUint(address(actor).balance - before, cfg.submitterBond, "paid exactly the credit");
        assertEqUint(credit(address(actor)), 0, "credit zeroed");
        assertTrue(!claimFinalized(other), "other claim not finalized by the re-entry");
        assertEqUint(game.claimOf(other).openGames, 0, "no challenge by the re-entry");
        vm.expectRevert(OptimisticML.NothingToWithdraw.selector);
        actor.withdraw();
        assertEqUint(address(game).balance, cfg.submitterBond, "other claim's bond still there");
        assertConserved();
    }

    /// A challenger contract that wins re-enters on its payout: nothing extra.
    function test_reentrancyOfWinningChallenger() public {
        ReentrantActor actor = new ReentrantActor{value: 10 ether}(game);
        uint256 claimId = postLyingClaim();
        uint256 other = postHonestClaim();
        uint256 gameId = actor.challenge{value: cfg.challengerBond}(claimId);
        actor.setTarget(other);
        vm.warp(T0 + cfg.clock + 1);
        game.timeout(gameId);
        assertEqUint(credit(address(actor)), challengerPrize(), "prize");
        uint256 before = address(actor).balance;
        actor.withdraw();
        assertEqUint(actor.reentries(), 0, "no re-entry succeeded");
        assertEqUint(address(actor).balance - before, challengerPrize(), "paid exactly the prize");
        assertEqUint(address(game).balance, cfg.submitterBond, "other claim's bond still there");
        assertConserved();
    }

    /// A consumer whose callback re-enters gets nothing; finalize still completes.
    function test_reentrantConsumerCannotReenter() public {
        ReentrantActor actor = new ReentrantActor{value: 10 ether}(game);
        vm.prank(REQUESTER);
        uint256 requestId = game.request{value: 0.1 ether}(modelId, inputCommitments, address(actor));
        uint256 claimId = postClaimFor(requestId, outputBytes, outputCommitment);
        uint256 other = postHonestClaim();
        actor.setTarget(other);
        vm.warp(T0 + cfg.challengeWindow);
        game.finalize(claimId);
        assertEqUint(actor.calls(), 1, "callback ran");
        assertEqUint(actor.reentries(), 0, "no re-entry succeeded");
        assertTrue(actor.lastError() == OptimisticML.Reentrancy.selector, "blocked by the guard");
        assertTrue(claimFinalized(claimId), "finalized");
        assertTrue(!claimFinalized(other), "other not finalized");
        assertEqUint(credit(SUBMITTER), cfg.submitterBond + 0.1 ether, "bond and fee");
        assertConserved();
    }

    // ------------------------------------------------------------------ windows

    function test_challengeAndFinalizeWindows() public {
        uint256 claimId = postHonestClaim();
        uint256 deadline = T0 + cfg.challengeWindow;
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.WindowOpen.selector, deadline));
        game.finalize(claimId);
        vm.warp(deadline - 1);
        uint256 gameId = challengeAs(CHALLENGER, claimId);
        vm.warp(deadline);
        vm.prank(CHALLENGER2);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.WindowClosed.selector, deadline));
        game.challenge{value: cfg.challengerBond}(claimId);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.GamesOpen.selector, 1));
        game.finalize(claimId);
        // the submitter defends: challenger times out on its pick
        openWith(gameId, honestOuts());
        post(gameId, graphStatesToPost(gameId, graphStates(honestOuts())));
        vm.warp(deadline + cfg.clock + 1);
        game.timeout(gameId);
        game.finalize(claimId);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.AlreadyFinalized.selector, claimId));
        game.finalize(claimId);
        vm.prank(CHALLENGER2);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.AlreadyFinalized.selector, claimId));
        game.challenge{value: cfg.challengerBond}(claimId);
        vm.prank(CHALLENGER2);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.UnknownClaim.selector, 99));
        game.challenge{value: cfg.challengerBond}(99);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.UnknownClaim.selector, 99));
        game.finalize(99);
        assertConserved();
    }

    function test_challengeOfVoidedClaimAndWrongBondRevert() public {
        uint256 claimId = postLyingClaim();
        vm.prank(CHALLENGER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.WrongValue.selector, cfg.challengerBond - 1));
        game.challenge{value: cfg.challengerBond - 1}(claimId);
        vm.prank(CHALLENGER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.WrongValue.selector, 0));
        game.challenge(claimId);
        uint256 gameId = challengeAs(CHALLENGER, claimId);
        vm.warp(T0 + cfg.clock + 1);
        game.timeout(gameId);
        vm.warp(T0 + 10);
        vm.prank(CHALLENGER2);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.ClaimVoidedError.selector, claimId));
        game.challenge{value: cfg.challengerBond}(claimId);
        assertConserved();
    }

    // ------------------------------------------------------------------ postClaim checks

    function test_postClaimRejectsBadClaims() public {
        bytes32[] memory ins = inputCommitments;
        uint256 bond = cfg.submitterBond;
        uint256 in0 = game.totalIn();
        // bond
        vm.startPrank(SUBMITTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.WrongValue.selector, bond - 1));
        game.postClaim{value: bond - 1}(modelId, 0, ins, inputBytes, outputBytes, outputCommitment);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.WrongValue.selector, bond + 1));
        game.postClaim{value: bond + 1}(modelId, 0, ins, inputBytes, outputBytes, outputCommitment);
        // model
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, bytes32(uint256(1))));
        game.postClaim{value: bond}(bytes32(uint256(1)), 0, ins, inputBytes, outputBytes, outputCommitment);
        // input count
        bytes32[] memory two = new bytes32[](2);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.WrongInputCount.selector, 2, 1));
        game.postClaim{value: bond}(modelId, 0, two, "", outputBytes, outputCommitment);
        // input bytes not the committed input
        bytes memory badInput = bytes.concat(inputBytes);
        badInput[0] = 0xFF;
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.BadInputBytes.selector, 0));
        game.postClaim{value: bond}(modelId, 0, ins, badInput, outputBytes, outputCommitment);
        // output length and commitment
        bytes memory longOut = bytes.concat(outputBytes, bytes1(0));
        vm.expectRevert(OptimisticML.BadOutput.selector);
        game.postClaim{value: bond}(modelId, 0, ins, inputBytes, longOut, Handover.bytesRoot(longOut));
        vm.expectRevert(OptimisticML.BadOutput.selector);
        game.postClaim{value: bond}(modelId, 0, ins, inputBytes, outputBytes, lieCommitment());
        vm.expectRevert(OptimisticML.BadOutput.selector);
        game.postClaim{value: bond}(modelId, 0, ins, inputBytes, lyingOutput(), outputCommitment);
        // requests
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.UnknownRequest.selector, 5));
        game.postClaim{value: bond}(modelId, 5, ins, inputBytes, outputBytes, outputCommitment);
        vm.stopPrank();
        bytes32[] memory otherIns = new bytes32[](1);
        otherIns[0] = keccak256("other input");
        vm.prank(REQUESTER);
        uint256 r = game.request(modelId, otherIns, address(0));
        vm.prank(SUBMITTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.RequestMismatch.selector, r));
        game.postClaim{value: bond}(modelId, r, ins, inputBytes, outputBytes, outputCommitment);
        assertEqUint(game.totalIn(), in0, "nothing accepted");
        // the good claim (with and without input bytes) goes through
        postHonestClaim();
        vm.prank(SUBMITTER);
        game.postClaim{value: bond}(modelId, 0, ins, "", outputBytes, outputCommitment);
        assertEqUint(game.totalIn(), in0 + 2 * bond, "two bonds");
        assertConserved();
    }

    // ------------------------------------------------------------------ requests

    /// Two claims answer one request: the fee goes to the first finalized one only, and the
    /// consumer hears once, with the right result.
    function test_requestFeePaidExactlyOnce() public {
        RecordingConsumer consumer = new RecordingConsumer();
        uint256 fee = 0.25 ether;
        vm.prank(REQUESTER);
        uint256 r = game.request{value: fee}(modelId, inputCommitments, address(consumer));
        assertEqUint(r, 1, "ids start at 1");
        uint256 c1 = postClaimFor(r, outputBytes, outputCommitment);
        vm.prank(ANYONE);
        uint256 c2 =
            game.postClaim{value: cfg.submitterBond}(modelId, r, inputCommitments, "", outputBytes, outputCommitment);
        vm.warp(T0 + cfg.challengeWindow);
        game.finalize(c2);
        assertEqUint(credit(ANYONE), cfg.submitterBond + fee, "first finalized: bond + fee");
        assertEqUint(consumer.calls(), 1, "consumer called");
        assertEqUint(consumer.requestId(), r, "request id");
        assertEqUint(consumer.claimId(), c2, "claim id");
        assertEq(consumer.commitment(), outputCommitment, "commitment");
        assertEq(keccak256(consumer.output()), keccak256(outputBytes), "output bytes");
        game.finalize(c1);
        assertEqUint(credit(SUBMITTER), cfg.submitterBond, "second: bond only");
        assertEqUint(consumer.calls(), 1, "consumer called once");
        // the request is closed to new claims and cannot be cancelled
        vm.prank(SUBMITTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.RequestClosed.selector, r));
        game.postClaim{value: cfg.submitterBond}(modelId, r, inputCommitments, "", outputBytes, outputCommitment);
        vm.warp(T0 + cfg.requestTimeout + 1);
        vm.prank(REQUESTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.RequestClosed.selector, r));
        game.cancelRequest(r);
        assertEqUint(address(game).balance, 2 * cfg.submitterBond + fee, "locked == credits");
        assertConserved();
    }

    function test_cancelRequestRules() public {
        uint256 fee = 0.3 ether;
        vm.prank(REQUESTER);
        uint256 r = game.request{value: fee}(modelId, inputCommitments, address(0));
        // a claim on the request before the cancellation
        uint256 c = postClaimFor(r, outputBytes, outputCommitment);
        // only the requester, only after the timeout
        vm.prank(ANYONE);
        vm.expectRevert(OptimisticML.NotRequester.selector);
        game.cancelRequest(r);
        // the timeout runs from the claim's deadline plus both clocks
        uint256 expiry = T0 + cfg.challengeWindow + 2 * uint256(cfg.clock) + cfg.requestTimeout;
        vm.warp(expiry - 1);
        vm.prank(REQUESTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.RequestNotExpired.selector, expiry));
        game.cancelRequest(r);
        vm.warp(expiry);
        vm.prank(REQUESTER);
        game.cancelRequest(r);
        assertEqUint(credit(REQUESTER), fee, "fee credited back");
        vm.prank(REQUESTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.RequestClosed.selector, r));
        game.cancelRequest(r);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.UnknownRequest.selector, r + 1));
        game.cancelRequest(r + 1);
        // the claim finalizes without the fee; new claims cannot use the request
        game.finalize(c);
        assertEqUint(credit(SUBMITTER), cfg.submitterBond, "no fee after cancellation");
        assertEqUint(credit(REQUESTER), fee, "fee paid once");
        vm.prank(SUBMITTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.RequestClosed.selector, r));
        game.postClaim{value: cfg.submitterBond}(modelId, r, inputCommitments, "", outputBytes, outputCommitment);
        uint256 b = REQUESTER.balance;
        vm.prank(REQUESTER);
        game.withdraw();
        assertEqUint(REQUESTER.balance - b, fee, "refund withdrawn");
        assertConserved();
    }

    /// A consumer that reverts or burns all its gas does not block finalize.
    function test_hostileConsumersDoNotBlockFinalize() public {
        for (uint256 i = 0; i < 2; i++) {
            HostileConsumer consumer = new HostileConsumer(i == 1);
            vm.prank(REQUESTER);
            uint256 r = game.request{value: 1 wei}(modelId, inputCommitments, address(consumer));
            uint256 c = postClaimFor(r, outputBytes, outputCommitment);
            vm.warp(block.timestamp + cfg.challengeWindow);
            game.finalize{gas: 1_000_000}(c);
            assertTrue(claimFinalized(c), "finalized");
        }
        assertEqUint(credit(SUBMITTER), 2 * cfg.submitterBond + 2, "bonds and fees");
        assertConserved();
    }
}
