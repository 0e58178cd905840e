// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Handover} from "../src/Handover.sol";
import {OptimisticML} from "../src/OptimisticML.sol";
import {GameFixture} from "./utils/GameFixture.sol";

/// A timeout at every phase for each side: before the side's chess clock runs out
/// `timeout` reverts, one second after it the other side wins, with the right credits, burn
/// and claim status. Clocks are chess clocks: time spent over several moves adds up.
contract GameTimeoutsTest is GameFixture {
    /// Disputed node of the games that reach the handover (the lying challenger diverges here).
    uint256 internal constant NODE = 2;

    function setUp() public {
        // arity 4, 2^6 VM steps, a chain of 5 nodes (8 slots)
        setUpGame(4, 6, 5);
    }

    // ------------------------------------------------------------------ helpers

    function startGame() internal returns (uint256 claimId, uint256 gameId) {
        claimId = postHonestClaim();
        gameId = challengeAs(CHALLENGER, claimId);
    }

    /// `timeout` reverts at `deadline` (the clock is exactly used up, not overrun) and
    /// succeeds one second later, called by a third party.
    function timeoutAt(uint256 gameId, uint256 deadline) internal {
        vm.warp(deadline);
        vm.prank(ANYONE);
        vm.expectPartialRevert(OptimisticML.ClockNotRunOut.selector);
        game.timeout(gameId);
        vm.warp(deadline - 1);
        vm.prank(ANYONE);
        vm.expectPartialRevert(OptimisticML.ClockNotRunOut.selector);
        game.timeout(gameId);
        vm.warp(deadline + 1);
        vm.prank(ANYONE);
        game.timeout(gameId);
    }

    /// The submitter's clock ran out: the challenger wins its bond back plus the submitter
    /// bond less the burn, the claim is voided and can never finalize.
    function assertChallengerWon(uint256 claimId, uint256 gameId, uint256 burnt0) internal {
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Ended, "game ended");
        assertTrue(g.winner == OptimisticML.Side.Challenger, "challenger won");
        assertTrue(claimVoided(claimId), "claim voided");
        assertEqUint(credit(CHALLENGER), challengerPrize(), "challenger credit");
        assertEqUint(credit(SUBMITTER), 0, "submitter credit");
        assertEqUint(address(0).balance - burnt0, burnOf(cfg.submitterBond), "submitter bond burn");
        assertConserved();
        vm.expectPartialRevert(OptimisticML.ClaimVoidedError.selector);
        game.finalize(claimId);
        // the payout is real ether
        uint256 b = CHALLENGER.balance;
        vm.prank(CHALLENGER);
        game.withdraw();
        assertEqUint(CHALLENGER.balance - b, challengerPrize(), "challenger withdrawal");
        assertEqUint(credit(CHALLENGER), 0, "credit zeroed");
        assertEqUint(address(game).balance, 0, "nothing left locked");
        assertConserved();
    }

    /// The challenger's clock ran out: the submitter earns the challenger bond less the burn;
    /// the claim stands and finalizes, returning the submitter bond.
    function assertSubmitterWon(uint256 claimId, uint256 gameId, uint256 burnt0) internal {
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Ended, "game ended");
        assertTrue(g.winner == OptimisticML.Side.Submitter, "submitter won");
        assertTrue(!claimVoided(claimId), "claim stands");
        assertEqUint(credit(SUBMITTER), submitterPrize(), "submitter credit");
        assertEqUint(credit(CHALLENGER), 0, "challenger credit");
        assertEqUint(address(0).balance - burnt0, burnOf(cfg.challengerBond), "challenger bond burn");
        assertEqUint(address(game).balance, uint256(cfg.submitterBond) + submitterPrize(), "bond locked until finalize");
        assertConserved();
        game.finalize(claimId);
        assertTrue(claimFinalized(claimId), "finalized");
        assertEqUint(credit(SUBMITTER), submitterPrize() + cfg.submitterBond, "bond back at finalize");
        (bool fin, bytes32 m, bytes32 inputs, bool published, bytes32 c, bytes memory out) = game.result(claimId);
        assertEq(m, modelId, "result model");
        assertTrue(published, "the claim carried its input bytes");
        assertEq(inputs, keccak256(abi.encodePacked(inputCommitments)), "result inputs hash");
        assertTrue(fin, "result final");
        assertEq(c, outputCommitment, "result commitment");
        assertEq(keccak256(out), keccak256(outputBytes), "result bytes");
        uint256 b = SUBMITTER.balance;
        vm.prank(SUBMITTER);
        game.withdraw();
        assertEqUint(SUBMITTER.balance - b, submitterPrize() + cfg.submitterBond, "submitter withdrawal");
        assertEqUint(address(game).balance, 0, "nothing left locked");
        assertConserved();
    }

    /// Opens honestly and plays the graph phase against a challenger lying from NODE on.
    function toHandover(uint256 gameId) internal {
        bytes32[] memory outs = honestOuts();
        openWith(gameId, outs);
        playGraph(gameId, CHALLENGER, graphStates(outs), graphStates(divergentOuts(NODE, "lie", "lie out")));
        assertTrue(phaseOf(gameId) == OptimisticML.Phase.Handover, "handover phase");
    }

    function stepViews() internal view returns (StepView memory sub, StepView memory chal) {
        sub = honestStepView(honestOuts(), NODE, defaultLeafStep());
        chal = otherStepView(sub, keccak256("chal step lie"), "chal");
    }

    // ------------------------------------------------------------------ submitter's clock

    function test_submitterFailsToOpen() public {
        uint256 burnt0 = address(0).balance;
        (uint256 claimId, uint256 gameId) = startGame();
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Open, "open phase");
        assertTrue(g.turn == OptimisticML.Side.Submitter, "submitter's turn");
        assertEqUint(g.submitterClock, cfg.clock, "full clock");
        timeoutAt(gameId, T0 + cfg.clock);
        assertChallengerWon(claimId, gameId, burnt0);
    }

    function test_openAfterClockRanOutReverts() public {
        (, uint256 gameId) = startGame();
        vm.warp(T0 + cfg.clock + 1);
        bytes32[] memory outs = honestOuts();
        bytes32 sn = graphStates(outs)[nodeCount];
        bytes32[] memory sib = outputSiblings(outs);
        vm.prank(SUBMITTER);
        vm.expectPartialRevert(OptimisticML.ClockRunOut.selector);
        game.open(gameId, sn, sib);
    }

    function test_submitterFailsToPostGraphStates() public {
        uint256 burnt0 = address(0).balance;
        (uint256 claimId, uint256 gameId) = startGame();
        vm.warp(T0 + 100);
        openWith(gameId, honestOuts());
        assertTrue(phaseOf(gameId) == OptimisticML.Phase.Graph, "graph phase");
        // after one exchange, too: the submitter's turn again
        bytes32[] memory S = graphStates(honestOuts());
        bytes32[] memory states = graphStatesToPost(gameId, S);
        vm.warp(T0 + 300);
        post(gameId, states);
        vm.warp(T0 + 400);
        // points 0, 1, 2, 3, 5: the last part [3, 5] still has two nodes
        pickAs(CHALLENGER, gameId, 3, states);
        assertTrue(phaseOf(gameId) == OptimisticML.Phase.Graph, "still graph phase");
        assertTrue(gv(gameId).turn == OptimisticML.Side.Submitter, "submitter's turn");
        // submitter used 100 + 200 seconds
        timeoutAt(gameId, T0 + 400 + cfg.clock - 300);
        assertChallengerWon(claimId, gameId, burnt0);
    }

    function test_submitterFailsToPostStepStates() public {
        uint256 burnt0 = address(0).balance;
        (uint256 claimId, uint256 gameId) = startGame();
        toHandover(gameId);
        vm.warp(T0 + 50);
        handoverAs(gameId, handoverProof(honestOuts(), NODE));
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Steps, "steps phase");
        assertTrue(g.turn == OptimisticML.Side.Submitter, "submitter's turn");
        assertEqUint(g.submitterClock, cfg.clock - 50, "50 s used");
        timeoutAt(gameId, T0 + 50 + cfg.clock - 50);
        assertChallengerWon(claimId, gameId, burnt0);
    }

    function test_submitterFailsToPostStepStatesAfterARound() public {
        uint256 burnt0 = address(0).balance;
        (uint256 claimId, uint256 gameId) = startGame();
        toHandover(gameId);
        handoverAs(gameId, handoverProof(honestOuts(), NODE));
        (StepView memory sub,) = stepViews();
        bytes32[] memory states = stepStatesToPost(gameId, sub);
        vm.warp(T0 + 1000);
        post(gameId, states);
        vm.warp(T0 + 1500);
        pickAs(CHALLENGER, gameId, 0, states);
        assertTrue(phaseOf(gameId) == OptimisticML.Phase.Steps, "still steps");
        timeoutAt(gameId, T0 + 1500 + cfg.clock - 1000);
        assertChallengerWon(claimId, gameId, burnt0);
    }

    function test_submitterFailsTheHandover() public {
        uint256 burnt0 = address(0).balance;
        (uint256 claimId, uint256 gameId) = startGame();
        toHandover(gameId);
        G memory g = gv(gameId);
        assertTrue(g.turn == OptimisticML.Side.Submitter, "submitter's turn");
        timeoutAt(gameId, g.lastMove + g.submitterClock);
        assertChallengerWon(claimId, gameId, burnt0);
    }

    function test_submitterFailsTheHandoverAfterARejectedAttempt() public {
        uint256 burnt0 = address(0).balance;
        (uint256 claimId, uint256 gameId) = startGame();
        toHandover(gameId);
        G memory g = gv(gameId);
        // a handover of the wrong node's output is rejected, and the clock keeps running
        OptimisticML.HandoverProof memory p = handoverProof(honestOuts(), NODE);
        p.output = keccak256("not the output");
        vm.warp(g.lastMove + 1000);
        vm.prank(SUBMITTER);
        vm.expectPartialRevert(OptimisticML.BadUpdateProof.selector);
        game.handover(gameId, p);
        assertTrue(phaseOf(gameId) == OptimisticML.Phase.Handover, "still handover");
        timeoutAt(gameId, g.lastMove + g.submitterClock);
        // the correct proof is too late now
        vm.prank(SUBMITTER);
        vm.expectRevert();
        game.handover(gameId, handoverProof(honestOuts(), NODE));
        assertChallengerWon(claimId, gameId, burnt0);
    }

    function test_handoverAfterClockRanOutReverts() public {
        (, uint256 gameId) = startGame();
        toHandover(gameId);
        G memory g = gv(gameId);
        vm.warp(g.lastMove + g.submitterClock + 1);
        OptimisticML.HandoverProof memory p = handoverProof(honestOuts(), NODE);
        vm.prank(SUBMITTER);
        vm.expectPartialRevert(OptimisticML.ClockRunOut.selector);
        game.handover(gameId, p);
    }

    // ------------------------------------------------------------------ challenger's clock

    function test_challengerFailsToPickInGraphPhase() public {
        uint256 burnt0 = address(0).balance;
        (uint256 claimId, uint256 gameId) = startGame();
        openWith(gameId, honestOuts());
        vm.warp(T0 + 10);
        post(gameId, graphStatesToPost(gameId, graphStates(honestOuts())));
        G memory g = gv(gameId);
        assertTrue(g.turn == OptimisticML.Side.Challenger, "challenger's turn");
        assertEqUint(g.challengerClock, cfg.clock, "challenger clock untouched");
        timeoutAt(gameId, T0 + 10 + cfg.clock);
        assertSubmitterWon(claimId, gameId, burnt0);
    }

    function test_pickAfterClockRanOutReverts() public {
        (, uint256 gameId) = startGame();
        openWith(gameId, honestOuts());
        bytes32[] memory states = graphStatesToPost(gameId, graphStates(honestOuts()));
        post(gameId, states);
        vm.warp(T0 + cfg.clock + 1);
        vm.prank(CHALLENGER);
        vm.expectPartialRevert(OptimisticML.ClockRunOut.selector);
        game.pick(gameId, 0, states);
    }

    function test_challengerFailsToPickInStepPhase() public {
        uint256 burnt0 = address(0).balance;
        (uint256 claimId, uint256 gameId) = startGame();
        toHandover(gameId);
        handoverAs(gameId, handoverProof(honestOuts(), NODE));
        (StepView memory sub,) = stepViews();
        bytes32[] memory states = stepStatesToPost(gameId, sub);
        vm.warp(T0 + 77);
        post(gameId, states);
        vm.warp(T0 + 177);
        pickAs(CHALLENGER, gameId, 2, states);
        vm.warp(T0 + 277);
        post(gameId, stepStatesToPost(gameId, sub));
        // challenger used 100 s on its first pick
        assertEqUint(gv(gameId).challengerClock, cfg.clock - 100, "challenger used 100 s");
        timeoutAt(gameId, T0 + 277 + cfg.clock - 100);
        assertSubmitterWon(claimId, gameId, burnt0);
    }

    function test_nobodyResolvesTheLeaf() public {
        uint256 burnt0 = address(0).balance;
        (uint256 claimId, uint256 gameId) = startGame();
        toHandover(gameId);
        handoverAs(gameId, handoverProof(honestOuts(), NODE));
        (StepView memory sub, StepView memory chal) = stepViews();
        playSteps(gameId, CHALLENGER, sub, chal);
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Leaf, "leaf");
        assertTrue(g.turn == OptimisticML.Side.Challenger, "the leaf is on the challenger's clock");
        assertEqUint(g.lo, defaultLeafStep(), "leaf at the disputed step");
        timeoutAt(gameId, g.lastMove + g.challengerClock);
        assertSubmitterWon(claimId, gameId, burnt0);
        // the leaf cannot be resolved after the game ended
        vm.expectPartialRevert(OptimisticML.WrongPhase.selector);
        game.resolveStep(gameId, vecState, vecProof);
    }

    /// Once the challenger's clock has run out at the leaf, the leaf can no longer be resolved
    /// (not even in the challenger's favour): the submitter wins by timeout.
    function test_leafCannotBeResolvedAfterTheChallengersClock() public {
        uint256 burnt0 = address(0).balance;
        uint256 claimId = postClaimFor(0, lyingOutput(), Handover.bytesRoot(lyingOutput()));
        uint256 gameId = challengeAs(CHALLENGER, claimId);
        bytes32[] memory outs = divergentOuts(NODE, "lie", Handover.bytesRoot(lyingOutput()));
        openWith(gameId, outs);
        playGraph(gameId, CHALLENGER, graphStates(outs), graphStates(honestOuts()));
        handoverAs(gameId, handoverProof(outs, NODE));
        OptimisticML.HandoverProof memory p = handoverProof(outs, NODE);
        StepView memory sub = stepView(
            preStateOf(NODE, p.inputValues), keccak256(p.finalState), defaultLeafStep(), keccak256("wrong post"), "s"
        );
        playSteps(gameId, CHALLENGER, sub, otherStepView(sub, vecPost, "honest"));
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Leaf, "leaf");
        vm.warp(g.lastMove + g.challengerClock + 1);
        vm.expectRevert(OptimisticML.ClockRunOut.selector);
        game.resolveStep(gameId, vecState, vecProof);
        game.timeout(gameId);
        // the claim was a lie, but the challenger did not finish in time
        assertWinner(gameId, OptimisticML.Side.Submitter);
        assertEqUint(address(0).balance - burnt0, burnOf(cfg.challengerBond), "challenger bond burn");
        assertEqUint(credit(SUBMITTER), submitterPrize(), "submitter prize");
        assertConserved();
    }

    function assertWinner(uint256 gameId, OptimisticML.Side side) internal view {
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Ended && g.winner == side, "winner");
    }

    // ------------------------------------------------------------------ chess clocks

    /// The submitter spends 40% of its clock opening and 40% posting; the challenger's quick
    /// pick does not refill it, so 20% is left for the next post.
    function test_submitterTimeAddsUpAcrossMoves() public {
        uint256 burnt0 = address(0).balance;
        (uint256 claimId, uint256 gameId) = startGame();
        uint256 c = cfg.clock;
        vm.warp(T0 + (c * 4) / 10);
        openWith(gameId, honestOuts());
        bytes32[] memory states = graphStatesToPost(gameId, graphStates(honestOuts()));
        vm.warp(T0 + (c * 8) / 10);
        post(gameId, states);
        uint256 pickedAt = T0 + (c * 8) / 10 + 5;
        vm.warp(pickedAt);
        pickAs(CHALLENGER, gameId, 0, states);
        G memory g = gv(gameId);
        assertEqUint(g.submitterClock, c - (c * 8) / 10, "submitter: 80% used");
        assertEqUint(g.challengerClock, c - 5, "challenger: 5 s used");
        assertEqUint(g.lastMove, pickedAt, "last move");
        // a full clock from the last move would be wrong: 20% + 1 s is already too late
        timeoutAt(gameId, pickedAt + c - (c * 8) / 10);
        assertChallengerWon(claimId, gameId, burnt0);
    }

    /// The challenger spends 60% on its first pick; 40% later on its second pick it is out.
    function test_challengerTimeAddsUpAcrossMoves() public {
        uint256 burnt0 = address(0).balance;
        (uint256 claimId, uint256 gameId) = startGame();
        uint256 c = cfg.clock;
        toHandover(gameId);
        handoverAs(gameId, handoverProof(honestOuts(), NODE));
        (StepView memory sub, StepView memory chal) = stepViews();
        uint256 used0 = cfg.clock - gv(gameId).challengerClock;
        uint256 t = gv(gameId).lastMove;
        bytes32[] memory states = stepStatesToPost(gameId, sub);
        post(gameId, states);
        vm.warp(t + (c * 6) / 10);
        bytes32[] memory belief = stepStatesToPost(gameId, chal);
        pickAs(CHALLENGER, gameId, firstDisagreement(states, belief, bytes32(0)), states);
        t = t + (c * 6) / 10;
        post(gameId, stepStatesToPost(gameId, sub));
        assertEqUint(gv(gameId).challengerClock, c - used0 - (c * 6) / 10, "challenger clock adds up");
        timeoutAt(gameId, t + c - used0 - (c * 6) / 10);
        assertSubmitterWon(claimId, gameId, burnt0);
    }

    /// Timeout cannot be called on a game that is over or does not exist.
    function test_timeoutAfterEndAndUnknownGame() public {
        (, uint256 gameId) = startGame();
        vm.warp(T0 + cfg.clock + 1);
        game.timeout(gameId);
        vm.expectPartialRevert(OptimisticML.WrongPhase.selector);
        game.timeout(gameId);
        vm.expectPartialRevert(OptimisticML.UnknownGame.selector);
        game.timeout(gameId + 1);
    }
}
