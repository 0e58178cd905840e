// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {OptimisticML, IOpmlConsumer} from "../src/OptimisticML.sol";
import {Cheats} from "./utils/Cheats.sol";
import {GameFixture} from "./utils/GameFixture.sol";

/// Records the results it is given.
contract RecordingConsumer is IOpmlConsumer {
    uint256 public calls;
    uint256 public requestId;
    uint256 public claimId;
    bytes32 public outputCommitment;
    bytes public output;

    function opmlResult(uint256 requestId_, uint256 claimId_, bytes32 outputCommitment_, bytes calldata output_)
        external
    {
        calls++;
        requestId = requestId_;
        claimId = claimId_;
        outputCommitment = outputCommitment_;
        output = output_;
    }
}

/// Burns all the gas it is given, or re-enters the game.
contract HostileConsumer is IOpmlConsumer {
    OptimisticML internal immutable game;
    bool internal immutable reenter;

    constructor(OptimisticML game_, bool reenter_) {
        game = game_;
        reenter = reenter_;
    }

    function opmlResult(uint256, uint256 claimId, bytes32, bytes calldata) external {
        if (reenter) {
            game.finalize(claimId); // reverts Reentrancy; the game ignores the failure
            return;
        }
        while (true) {}
    }
}

/// The paths where the honest side wins: an unchallenged claim finalizes (fee, callback,
/// result), an honest submitter defends a challenged claim through every phase of the game
/// (open, graph dissection, handover, step dissection, leaf), and an honest challenger
/// defeats a lying submitter at the leaf. Expected values come from the fixture's own
/// builders (graph states, split points, pre-state, the fixed step vector), never from the
/// game's views.
contract GameHappyTest is GameFixture {
    /// 9 nodes (16 slots, two graph rounds at arity 4), 2^8 VM steps (four step rounds).
    uint32 internal constant NODES = 9;
    uint64 internal constant ARITY = 4;
    uint64 internal constant DEPTH = 8;
    /// The node both sides disagree on, and the step within it.
    uint256 internal constant NODE = 5;
    uint256 internal constant FEE = 0.3 ether;

    function setUp() public {
        setUpGame(ARITY, DEPTH, NODES);
    }

    // ------------------------------------------------------------------ helpers

    function requestFor(address callback) internal returns (uint256 id) {
        vm.prank(REQUESTER);
        id = game.request{value: FEE}(modelId, inputCommitments, callback);
    }

    function withdrawAll(address who) internal returns (uint256 paid) {
        uint256 b = who.balance;
        vm.prank(who);
        game.withdraw();
        paid = who.balance - b;
    }

    /// The data of the first recorded log with topic0 `sig` emitted by the game.
    function logData(Cheats.Log[] memory logs, string memory sig) internal view returns (bytes memory) {
        for (uint256 i = 0; i < logs.length; i++) {
            if (logs[i].emitter == address(game) && logs[i].topics[0] == keccak256(bytes(sig))) return logs[i].data;
        }
        revert AssertionFailed(string.concat("no event ", sig));
    }

    /// The game's dissection views agree with the fixture's split rule for the current interval.
    function assertPointsMatch(uint256 gameId) internal view {
        G memory g = gv(gameId);
        uint256[] memory want = splitPoints(g.lo, g.hi);
        uint64[] memory got = game.points(gameId);
        assertEqUint(game.parts(gameId), want.length - 1, "parts");
        assertEqUint(got.length, want.length, "point count");
        for (uint256 j = 0; j < want.length; j++) {
            assertEqUint(got[j], want[j], "point");
        }
    }

    // ------------------------------------------------------------------ no challenge

    /// request -> claim -> no challenge -> finalize: the submitter gets its bond and the fee,
    /// the consumer gets the result once, result() serves it, and the books balance.
    function test_unchallengedClaimFinalizesWithFeeAndCallback() public {
        RecordingConsumer consumer = new RecordingConsumer();
        uint256 requestId = requestFor(address(consumer));
        (
            bytes32 rModel,
            bytes32 rInputs,
            address requester,,
            OptimisticML.RequestStatus status,
            address cb,
            uint96 fee
        ) = game.requests(requestId);
        assertEq(rModel, modelId, "request model");
        assertEq(rInputs, keccak256(abi.encodePacked(inputCommitments)), "request inputs");
        assertTrue(requester == REQUESTER && cb == address(consumer), "request parties");
        assertTrue(status == OptimisticML.RequestStatus.Open, "request open");
        assertEqUint(fee, FEE, "fee");

        uint256 claimId = postClaimFor(requestId, outputBytes, outputCommitment);
        OptimisticML.ClaimView memory c = game.claimOf(claimId);
        assertEq(c.inputState, graphState(honestOuts(), 0), "S_0 = slot vector of the inputs");
        assertEqUint(c.deadline, T0 + cfg.challengeWindow, "deadline");
        (bool finalized,,,,,) = game.result(claimId);
        assertTrue(!finalized, "not final during the window");

        vm.warp(T0 + cfg.challengeWindow - 1);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.WindowOpen.selector, T0 + cfg.challengeWindow));
        game.finalize(claimId);
        vm.warp(T0 + cfg.challengeWindow);
        vm.prank(ANYONE);
        game.finalize(claimId);

        assertEqUint(consumer.calls(), 1, "one callback");
        assertEqUint(consumer.requestId(), requestId, "callback request id");
        assertEqUint(consumer.claimId(), claimId, "callback claim id");
        assertEq(consumer.outputCommitment(), outputCommitment, "callback commitment");
        assertEq(keccak256(consumer.output()), keccak256(outputBytes), "callback output");
        bytes32 commitment;
        bytes memory out;
        (finalized,,,, commitment, out) = game.result(claimId);
        assertTrue(finalized, "final");
        assertEq(commitment, outputCommitment, "result commitment");
        assertEq(keccak256(out), keccak256(outputBytes), "result output");
        (,,,, status,,) = game.requests(requestId);
        assertTrue(status == OptimisticML.RequestStatus.Fulfilled, "request fulfilled");

        vm.expectRevert(abi.encodeWithSelector(OptimisticML.AlreadyFinalized.selector, claimId));
        game.finalize(claimId);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.AlreadyFinalized.selector, claimId));
        challengeAs(CHALLENGER, claimId);
        vm.warp(T0 + cfg.requestTimeout);
        vm.prank(REQUESTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.RequestClosed.selector, requestId));
        game.cancelRequest(requestId);

        assertConserved();
        assertEqUint(withdrawAll(SUBMITTER), uint256(cfg.submitterBond) + FEE, "bond and fee paid");
        assertEqUint(address(game).balance, 0, "nothing left");
        assertConserved();
        vm.prank(SUBMITTER);
        vm.expectRevert(OptimisticML.NothingToWithdraw.selector);
        game.withdraw();
    }

    /// A consumer that burns its gas or re-enters cannot block finalize; a caller that sends
    /// too little gas to forward callbackGas is refused.
    function test_hostileConsumersCannotBlockFinalize() public {
        for (uint256 k = 0; k < 2; k++) {
            HostileConsumer consumer = new HostileConsumer(game, k == 1);
            uint256 requestId = requestFor(address(consumer));
            uint256 claimId = postClaimFor(requestId, outputBytes, outputCommitment);
            vm.warp(block.timestamp + cfg.challengeWindow);
            vm.expectRevert(OptimisticML.InsufficientGas.selector);
            game.finalize{gas: 150_000}(claimId);
            game.finalize(claimId);
            assertTrue(claimFinalized(claimId), "finalized despite the consumer");
        }
        assertEqUint(credit(SUBMITTER), 2 * (uint256(cfg.submitterBond) + FEE), "bonds and fees");
        assertConserved();
    }

    /// An unfulfilled request can be cancelled by its requester after the timeout only; the
    /// fee is credited back and the request can no longer be claimed.
    function test_cancelRequestAfterTimeout() public {
        uint256 requestId = requestFor(address(0));
        vm.warp(T0 + cfg.requestTimeout - 1);
        vm.prank(REQUESTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.RequestNotExpired.selector, T0 + cfg.requestTimeout));
        game.cancelRequest(requestId);
        vm.warp(T0 + cfg.requestTimeout);
        vm.prank(ANYONE);
        vm.expectRevert(OptimisticML.NotRequester.selector);
        game.cancelRequest(requestId);
        vm.prank(REQUESTER);
        game.cancelRequest(requestId);
        assertEqUint(credit(REQUESTER), FEE, "fee back");
        vm.prank(SUBMITTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.RequestClosed.selector, requestId));
        game.postClaim{value: cfg.submitterBond}(
            modelId, requestId, inputCommitments, inputBytes, outputBytes, outputCommitment
        );
        assertEqUint(withdrawAll(REQUESTER), FEE, "fee withdrawn");
        assertConserved();
    }

    // ------------------------------------------------------------------ honest submitter

    /// A challenged honest claim: the submitter plays every phase and wins at the leaf, where
    /// the real step verifier re-executes the fixed vector's step to its post-state.
    function test_honestSubmitterWinsTheWholeGame() public {
        uint256 claimId = postHonestClaim();
        uint256 gameId = challengeAs(CHALLENGER, claimId);
        bytes32[] memory outs = honestOuts();
        checkStart(gameId, graphStates(outs));
        honestOpenAndGraph(gameId, outs);
        honestHandoverAndSteps(gameId, outs);
        uint256 t = defaultLeafStep();
        checkLeafResolution(gameId, t, OptimisticML.Side.Submitter);

        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Ended && g.winner == OptimisticML.Side.Submitter, "ended");
        assertTrue(!claimVoided(claimId), "claim stands");
        assertEqUint(game.claimOf(claimId).openGames, 0, "no open game");
        assertEqUint(credit(SUBMITTER), submitterPrize(), "challenger bond less burn");
        assertEqUint(credit(CHALLENGER), 0, "challenger lost");
        assertEqUint(address(0).balance, burnOf(cfg.challengerBond), "burnt");
        assertConserved();
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.WrongPhase.selector, OptimisticML.Phase.Ended));
        resolveLeaf(gameId);

        vm.warp(T0 + cfg.challengeWindow);
        game.finalize(claimId);
        assertEqUint(withdrawAll(SUBMITTER), submitterPrize() + cfg.submitterBond, "prize and bond");
        assertEqUint(address(game).balance, 0, "nothing left");
        assertConserved();
    }

    function checkStart(uint256 gameId, bytes32[] memory S) internal view {
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Open && g.turn == OptimisticML.Side.Submitter, "open, submitter");
        assertEq(g.hashLo, S[0], "S_0 computed on-chain");
        assertEqUint(g.submitterClock, cfg.clock, "submitter clock");
        assertEqUint(g.challengerClock, cfg.clock, "challenger clock");
    }

    /// open, then the graph dissection against a challenger that diverges from node NODE.
    function honestOpenAndGraph(uint256 gameId, bytes32[] memory outs) internal {
        bytes32[] memory S = graphStates(outs);
        openWith(gameId, outs);
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Graph, "graph phase");
        assertEqUint(g.hi, NODES, "interval [0, n]");
        assertEq(g.hashHi, S[NODES], "S_n");
        assertPointsMatch(gameId);
        bytes32[] memory chalS = graphStates(divergentOuts(NODE, keccak256("challenger lie"), keccak256("its output")));
        uint256 rounds;
        while (phaseOf(gameId) == OptimisticML.Phase.Graph) {
            bytes32[] memory states = graphStatesToPost(gameId, S);
            post(gameId, states);
            assertTrue(gv(gameId).turn == OptimisticML.Side.Challenger, "challenger picks");
            pickAs(CHALLENGER, gameId, firstDisagreement(states, graphStatesToPost(gameId, chalS), g.hashHi), states);
            g = gv(gameId);
            assertEq(g.hashLo, S[g.lo], "hashLo is S_lo after each pick");
            assertEq(g.hashHi, S[g.hi], "hashHi is S_hi after each pick");
            rounds++;
        }
        assertEqUint(rounds, 2, "two graph rounds");
        g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Handover, "handover");
        assertEqUint(g.lo, NODE, "isolated node");
        assertEq(g.hashLo, S[NODE], "agreed S_node");
        assertEq(g.hashHi, S[NODE + 1], "disputed S_node+1");
    }

    /// The handover of node NODE, then the step dissection down to the leaf.
    function honestHandoverAndSteps(uint256 gameId, bytes32[] memory outs) internal {
        OptimisticML.HandoverProof memory p = handoverProof(outs, NODE);
        handoverAs(gameId, p);
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Steps && g.turn == OptimisticML.Side.Submitter, "steps");
        assertEqUint(g.node, NODE, "node");
        assertEqUint(g.lo, 0, "step 0");
        assertEqUint(g.hi, 1 << DEPTH, "step 2^D");
        assertEq(g.hashLo, preStateOf(NODE, p.inputValues), "node pre-state");
        assertEq(g.hashHi, keccak256(p.finalState), "final VM state");
        assertPointsMatch(gameId);

        uint256 t = defaultLeafStep();
        StepView memory sub = honestStepView(outs, NODE, t);
        StepView memory chal = otherStepView(sub, keccak256("challenger step lie"), keccak256("challenger trace"));
        uint256 rounds;
        while (phaseOf(gameId) == OptimisticML.Phase.Steps) {
            bytes32[] memory states = stepStatesToPost(gameId, sub);
            post(gameId, states);
            pickAs(CHALLENGER, gameId, firstDisagreement(states, stepStatesToPost(gameId, chal), g.hashHi), states);
            g = gv(gameId);
            assertEq(g.hashLo, stepHash(sub, g.lo), "hashLo is the trace at lo after each pick");
            assertEq(g.hashHi, stepHash(sub, g.hi), "hashHi is the trace at hi after each pick");
            rounds++;
        }
        assertEqUint(rounds, DEPTH / 2, "log_4(2^D) step rounds");
        g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Leaf && g.turn == OptimisticML.Side.Challenger, "leaf");
        assertEqUint(g.lo, t, "disputed step");
        assertEqUint(g.hi, t + 1, "one step");
        assertEq(g.hashLo, keccak256(vecState), "agreed state is the vector's");
        assertEq(g.hashHi, vecPost, "submitter's post-state is the vector's");
    }

    /// resolveStep by a third party; the events name step t, the vector's post-state and
    /// the expected winner.
    function checkLeafResolution(uint256 gameId, uint256 t, OptimisticML.Side expected) internal {
        vm.recordLogs();
        resolveLeaf(gameId);
        Cheats.Log[] memory logs = vm.getRecordedLogs();
        (uint64 stepNo, bytes32 post) =
            abi.decode(logData(logs, "StepResolved(uint256,uint64,bytes32)"), (uint64, bytes32));
        assertEqUint(stepNo, t, "resolved step");
        assertEq(post, vecPost, "the verifier's post-state");
        (OptimisticML.Side winner, uint8 reason) =
            abi.decode(logData(logs, "GameEnded(uint256,uint8,uint8)"), (OptimisticML.Side, uint8));
        assertTrue(winner == expected && reason == 1, "winner by the step");
        if (expected == OptimisticML.Side.Challenger) {
            assertEqUint(abi.decode(logData(logs, "ClaimVoided(uint256,uint256)"), (uint256)), gameId, "voided");
        }
    }

    // ------------------------------------------------------------------ honest challenger

    /// A lying claim (wrong output): the submitter plays its lie consistently (graph states,
    /// a valid handover of its lying node, a step trace), and loses at the leaf, where its
    /// post-state is not the step verifier's. A second challenger's game is then abandoned.
    function test_honestChallengerWinsAtTheLeaf() public {
        bytes32 lieCommitment = merkleOfBytes(lyingOutput());
        uint256 claimId = postClaimFor(0, lyingOutput(), lieCommitment);
        uint256 gameId = challengeAs(CHALLENGER, claimId);
        uint256 otherGame = challengeAs(CHALLENGER2, claimId);
        assertEqUint(game.claimOf(claimId).openGames, 2, "two games");
        bytes32[] memory subOuts = divergentOuts(NODE, keccak256("submitter lie"), lieCommitment);
        lyingSubmitterToLeaf(gameId, subOuts);

        // resolveStep only accepts the agreed pre-state
        bytes memory other = bytes.concat(vecState);
        other[40] = bytes1(uint8(other[40]) ^ 1);
        vm.expectRevert(OptimisticML.StateMismatch.selector);
        game.resolveStep(gameId, other, vecProof);
        checkLeafResolution(gameId, defaultLeafStep(), OptimisticML.Side.Challenger);

        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Ended && g.winner == OptimisticML.Side.Challenger, "challenger won");
        assertTrue(claimVoided(claimId), "claim voided");
        assertEqUint(credit(CHALLENGER), voidingPrize(2), "bond back plus half the submitter bond less burn");
        assertEqUint(credit(SUBMITTER), 0, "submitter lost");
        assertEqUint(address(0).balance, burnOf(cfg.submitterBond), "burnt");
        assertConserved();

        abandonOther(claimId, otherGame, subOuts);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.ClaimVoidedError.selector, claimId));
        game.finalize(claimId);
        (bool finalized,,,,,) = game.result(claimId);
        assertTrue(!finalized, "never final");
        assertEqUint(withdrawAll(CHALLENGER), voidingPrize(2), "prize paid");
        assertEqUint(withdrawAll(CHALLENGER2), abandonPrize(2), "refund and share paid");
        assertEqUint(address(game).balance, 0, "nothing left");
        assertConserved();
    }

    /// The lying submitter plays its trace `subOuts` consistently down to the leaf against
    /// the honest challenger.
    function lyingSubmitterToLeaf(uint256 gameId, bytes32[] memory subOuts) internal {
        openWith(gameId, subOuts);
        playGraph(gameId, CHALLENGER, graphStates(subOuts), graphStates(honestOuts()));
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Handover, "handover");
        assertEqUint(g.lo, NODE, "the first lying node");
        OptimisticML.HandoverProof memory p = handoverProof(subOuts, NODE);
        handoverAs(gameId, p);
        StepView memory sub = stepView(
            preStateOf(NODE, p.inputValues),
            keccak256(p.finalState),
            defaultLeafStep(),
            keccak256("wrong post"),
            keccak256("sub")
        );
        StepView memory chal = otherStepView(sub, vecPost, keccak256("challenger trace"));
        playSteps(gameId, CHALLENGER, sub, chal);
        g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Leaf, "leaf");
        assertEq(g.hashLo, keccak256(vecState), "agreed state");
        assertEq(g.hashHi, keccak256("wrong post"), "submitter's wrong post-state");
    }

    /// Another game of the voided claim can only be abandoned: no loser, its challenger
    /// refunded in full plus its share of the voided bond.
    function abandonOther(uint256 claimId, uint256 otherGame, bytes32[] memory subOuts) internal {
        bytes32[] memory S = graphStates(subOuts);
        vm.prank(SUBMITTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.ClaimVoidedError.selector, claimId));
        game.open(otherGame, S[NODES], outputSiblings(subOuts));
        vm.warp(block.timestamp + cfg.clock + 1);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.ClaimVoidedError.selector, claimId));
        game.timeout(otherGame);
        vm.prank(ANYONE);
        game.abandon(otherGame);
        assertTrue(gv(otherGame).phase == OptimisticML.Phase.Ended, "abandoned");
        assertEqUint(credit(CHALLENGER2), abandonPrize(2), "refund and share");
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.WrongPhase.selector, OptimisticML.Phase.Ended));
        game.abandon(otherGame);
    }

    /// bytes_root of `b` by the padded-tree rule, computed here (not by Handover.bytesRoot).
    function merkleOfBytes(bytes memory b) internal pure returns (bytes32) {
        uint256 chunks = (b.length + 31) / 32;
        uint256 n = nextPow2(chunks == 0 ? 1 : chunks);
        bytes32[] memory leaves = new bytes32[](n);
        for (uint256 i = 0; i < b.length; i++) {
            leaves[i / 32] |= bytes32(b[i]) >> (8 * (i % 32));
        }
        return merkleRoot(leaves);
    }
}
