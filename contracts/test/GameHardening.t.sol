// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Handover} from "../src/Handover.sol";
import {ModelRegistry} from "../src/ModelRegistry.sol";
import {Step} from "../src/Step.sol";
import {OptimisticML, IOpmlConsumer} from "../src/OptimisticML.sol";
import {GameFixture} from "./utils/GameFixture.sol";

/// A consumer that records the gas it was called with.
contract GasProbe is IOpmlConsumer {
    uint256 public seen;

    function opmlResult(uint256, uint256, bytes32, bytes calldata) external {
        seen = gasleft();
    }
}

/// Issue 11 (review hardening), items 1, 2, 5 and 6: inputs are bound to their registered
/// lengths, and a claim whose inputs were not published is recognisable; the request fee of a
/// winning claim cannot be clawed back; the constructor rejects a configuration that freezes or disarms the game;
/// the behaviours that single-point mutants of the game showed no test pinned down (both
/// edges of the clock rule for moves and resolveStep, an overpaid bond, models with more than
/// one input, a one-node model, handovers with the wrong number of input or descriptor
/// siblings).
contract GameHardeningTest is GameFixture {
    /// Disputed node of the games that reach the handover.
    uint256 internal constant NODE = 2;
    /// Inputs 0..m-2 of a model built by buildModelWithInputs (8 bytes each: one padded leaf).
    bytes[] internal leadingInputs;

    function setUp() public {
        // arity 4, 2^6 VM steps, a chain of 5 nodes (8 slots)
        setUpGame(4, 6, 5);
    }

    // ------------------------------------------------------------------ helpers

    /// A lying claim (trace diverging at `node`) challenged by an honest CHALLENGER, played
    /// to the handover of `node`.
    function lyingGameToHandover(uint256 node)
        internal
        returns (uint256 claimId, uint256 gameId, bytes32[] memory outs)
    {
        bytes32 lie = Handover.bytesRoot(lyingOutput());
        claimId = postClaimFor(0, lyingOutput(), lie);
        gameId = challengeAs(CHALLENGER, claimId);
        outs = divergentOuts(node, keccak256("submitter lie"), lie);
        openWith(gameId, outs);
        playGraph(gameId, CHALLENGER, graphStates(outs), graphStates(honestOuts()));
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Handover, "handover");
        assertEqUint(g.lo, node, "first wrong node isolated");
    }

    /// A rejected handover `p` reverts with exactly `err`, and the game stays at the handover.
    function handoverReverts(uint256 gameId, OptimisticML.HandoverProof memory p, bytes memory err) internal {
        vm.prank(SUBMITTER);
        vm.expectRevert(err);
        game.handover(gameId, p);
        assertTrue(phaseOf(gameId) == OptimisticML.Phase.Handover, "still handover");
    }

    function deployExpectingRevert(OptimisticML.Config memory c, bytes memory err) internal {
        vm.expectRevert(err);
        new OptimisticML(registry, stepVerifier, c);
    }

    /// The model built by setUp (n nodes) re-derived with `m` model inputs (slots 0..m-1):
    /// inputs 0..m-2 of 8 bytes (`leadingInputs`), input m-1 of 64 (`inputBytes`), read by
    /// node 0; node i writes slot m + i. Registers it.
    function buildModelWithInputs(uint32 n, uint32 m) internal {
        assertEqUint(n, nodeCount, "the node count of setUp");
        inputCount = m;
        // forge-lint: disable-next-line(unsafe-typecast)
        slotCount = uint32(nextPow2(uint256(m) + n));
        outputSlot = m + n - 1;
        delete inputCommitments;
        delete leadingInputs;
        for (uint256 k = 0; k + 1 < m; k++) {
            leadingInputs.push(abi.encodePacked(uint64(0x1111111111111111 * (k + 1))));
            inputCommitments.push(Handover.bytesRoot(leadingInputs[k]));
        }
        // node 0 reads the last input: its bytes are `inputBytes` (length of the descriptor)
        inputCommitments.push(Handover.bytesRoot(inputBytes));
        delete descriptors;
        delete descriptorRoots;
        for (uint256 i = 0; i < n; i++) {
            NodeSpec memory s = nodeSpec(i);
            if (i == 0) s.inputSlots[0] = m - 1;
            bytes memory d = encodeDescriptor(s);
            descriptors.push(d);
            descriptorRoots.push(Handover.bytesRoot(d));
        }
        modelRoot = merkleRoot(padded(descriptorRoots, nextPow2(n)));
        modelId = registry.register(modelRoot, n, inputLens(), slotCount, outputSlot, outputLen, "test://multi-input");
    }

    /// The registered input lengths: 8 bytes for each leading input, then inputBytes'.
    function inputLens() internal view override returns (uint32[] memory lens) {
        lens = super.inputLens();
        for (uint256 k = 0; k + 1 < inputCount; k++) {
            // forge-lint: disable-next-line(unsafe-typecast)
            lens[k] = uint32(leadingInputs[k].length);
        }
    }

    /// Every input's bytes, one after the other (postClaim's inputBytes).
    function allInputBytes() internal view returns (bytes memory b) {
        for (uint256 k = 0; k + 1 < inputCount; k++) {
            b = bytes.concat(b, leadingInputs[k]);
        }
        b = bytes.concat(b, inputBytes);
    }

    /// The handover proof of node `node` of a model built by buildModelWithInputs (node 0
    /// reads slot inputCount - 1).
    function multiInputHandoverProof(bytes32[] memory outs, uint256 node)
        internal
        view
        returns (OptimisticML.HandoverProof memory p)
    {
        p = handoverProof(outs, node);
        if (node == 0) {
            bytes32[] memory pre = slotLeaves(outs, 0);
            p.inputValues[0] = pre[inputCount - 1];
            p.inputSiblings[0] = merkleSiblings(pre, inputCount - 1);
        }
    }

    // ------------------------------------------------------------------ item 2: request fee

    /// The review's attack: the requester, having seen the output in ClaimPosted, challenges
    /// the honest claim on its request just before the window closes, spends its own clock
    /// and cancels at the request timeout. Before the fix the fee came back to it (the
    /// submitter then finalized without a fee); now the timeout runs from the claim's deadline
    /// plus both clocks, by which time the submitter has won and finalized.
    function test_requesterCannotClawBackTheFeeByChallenging() public {
        OptimisticML.Config memory c = defaultConfig(4, 6);
        c.requestTimeout = 1 days; // no more than a clock: the old rule let the game outlast it
        deploy(c);
        buildModel(5);
        uint256 fee = 2 ether;
        vm.prank(REQUESTER);
        uint256 r = game.request{value: fee}(modelId, inputCommitments, address(0));
        uint256 claimId = postClaimFor(r, outputBytes, outputCommitment);
        // the requester challenges one second before the deadline
        vm.warp(T0 + c.challengeWindow - 1);
        uint256 gameId = challengeAs(REQUESTER, claimId);
        openWith(gameId, honestOuts());
        post(gameId, graphStatesToPost(gameId, graphStates(honestOuts())));
        // the requester sits on its pick past the request's creation + requestTimeout
        vm.warp(T0 + c.requestTimeout);
        uint256 expiry = T0 + c.challengeWindow + 2 * uint256(c.clock) + c.requestTimeout;
        vm.prank(REQUESTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.RequestNotExpired.selector, expiry));
        game.cancelRequest(r);
        // the honest submitter wins when the requester's clock runs out, and finalizes
        G memory g = gv(gameId);
        vm.warp(g.lastMove + g.challengerClock + 1);
        game.timeout(gameId);
        assertTrue(gv(gameId).winner == OptimisticML.Side.Submitter, "submitter won");
        game.finalize(claimId);
        assertEqUint(credit(SUBMITTER), cfg.submitterBond + fee + submitterPrize(), "bond, fee and prize");
        assertEqUint(credit(REQUESTER), 0, "no refund");
        vm.warp(expiry);
        vm.prank(REQUESTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.RequestClosed.selector, r));
        game.cancelRequest(r);
        assertConserved();
    }

    /// The worst case: a game that uses both clocks in full from the last second of the
    /// window can be ended by the deadline plus both clocks, one requestTimeout before the
    /// requester may cancel; a later claim on the request moves the timeout again; a voided
    /// claim leaves the request cancellable at that timeout.
    function test_requestTimeoutRunsFromTheLatestClaimsDeadlinePlusBothClocks() public {
        uint256 fee = 1 ether;
        vm.prank(REQUESTER);
        uint256 r = game.request{value: fee}(modelId, inputCommitments, address(0));
        vm.warp(T0 + 100);
        uint256 liar = postClaimFor(r, lyingOutput(), Handover.bytesRoot(lyingOutput()));
        vm.warp(T0 + 200);
        uint256 liar2 = postClaimFor(r, lyingOutput(), Handover.bytesRoot(lyingOutput()));
        uint256 g1 = challengeAs(CHALLENGER, liar);
        uint256 endable = T0 + 200 + cfg.challengeWindow + 2 * uint256(cfg.clock);
        uint256 expiry = endable + cfg.requestTimeout;
        vm.warp(T0 + 200 + cfg.challengeWindow - 1);
        uint256 g2 = challengeAs(CHALLENGER2, liar2);
        // the liar stalls its first move for its whole clock, then the challenger its pick
        vm.warp(gv(g2).lastMove + cfg.clock);
        bytes32[] memory outs = divergentOuts(0, "lie", Handover.bytesRoot(lyingOutput()));
        openWith(g2, outs);
        post(g2, graphStatesToPost(g2, graphStates(outs)));
        G memory g = gv(g2);
        assertEqUint(g.lastMove + g.challengerClock + 1, endable, "endable at deadline + 2 clocks");
        vm.warp(endable - 1);
        vm.expectRevert(OptimisticML.ClockNotRunOut.selector);
        game.timeout(g2);
        vm.warp(endable);
        game.timeout(g2); // the lying submitter wins this one: the challenger timed out
        game.timeout(g1); // and loses that one
        assertTrue(claimVoided(liar), "liar voided");
        vm.warp(expiry - 1);
        vm.prank(REQUESTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.RequestNotExpired.selector, expiry));
        game.cancelRequest(r);
        // liar2 is final (it won its only game): it takes the fee before the timeout
        game.finalize(liar2);
        assertEqUint(credit(SUBMITTER), cfg.submitterBond + fee + submitterPrize(), "liar2 fee");
        vm.warp(expiry);
        vm.prank(REQUESTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.RequestClosed.selector, r));
        game.cancelRequest(r);

        // a request whose only claim is voided can be cancelled at that claim's timeout
        vm.prank(REQUESTER);
        uint256 r2 = game.request{value: fee}(modelId, inputCommitments, address(0));
        uint256 c3 = postClaimFor(r2, lyingOutput(), Handover.bytesRoot(lyingOutput()));
        uint256 g3 = challengeAs(CHALLENGER, c3);
        vm.warp(gv(g3).lastMove + cfg.clock + 1);
        game.timeout(g3);
        assertTrue(claimVoided(c3), "voided");
        uint256 expiry2 = expiry + cfg.challengeWindow + 2 * uint256(cfg.clock) + cfg.requestTimeout;
        vm.warp(expiry2 - 1);
        vm.prank(REQUESTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.RequestNotExpired.selector, expiry2));
        game.cancelRequest(r2);
        vm.warp(expiry2);
        vm.prank(REQUESTER);
        game.cancelRequest(r2);
        assertEqUint(credit(REQUESTER), fee, "refund of the request without a final claim");
        assertConserved();
    }

    // ------------------------------------------------------------------ item 5: configuration

    /// Each disarming configuration reverts with its named error; the edges are accepted.
    function test_constructorRejectsDisarmingConfigurations() public {
        OptimisticML.Config memory c = defaultConfig(4, 6);
        c.challengeWindow = 0; // claims would finalize at once, never challengeable
        deployExpectingRevert(c, abi.encodeWithSelector(OptimisticML.ZeroChallengeWindow.selector));
        c = defaultConfig(4, 6);
        c.clock = 0; // no move could be made: every submitter loses its first move
        deployExpectingRevert(c, abi.encodeWithSelector(OptimisticML.ZeroClock.selector));
        c = defaultConfig(4, 6);
        c.submitterBond = 0;
        deployExpectingRevert(c, abi.encodeWithSelector(OptimisticML.ZeroBond.selector));
        c = defaultConfig(4, 6);
        c.challengerBond = 0;
        deployExpectingRevert(c, abi.encodeWithSelector(OptimisticML.ZeroBond.selector));
        c = defaultConfig(4, 6);
        c.callbackGas = 30_000_000; // finalize of a request with a callback would not fit a block
        deployExpectingRevert(
            c, abi.encodeWithSelector(OptimisticML.CallbackGasTooHigh.selector, 30_000_000, 10_000_000)
        );
        c.callbackGas = 10_000_001;
        deployExpectingRevert(
            c, abi.encodeWithSelector(OptimisticML.CallbackGasTooHigh.selector, 10_000_001, 10_000_000)
        );
        // the edges: a one-second window and clock, 1-wei bonds, the largest callback gas
        c = defaultConfig(4, 6);
        c.challengeWindow = 1;
        c.clock = 1;
        c.submitterBond = 1;
        c.challengerBond = 1;
        c.callbackGas = 10_000_000;
        OptimisticML g = new OptimisticML(registry, stepVerifier, c);
        assertEqUint(g.config().callbackGas, 10_000_000, "largest callback gas");
        assertEqUint(g.config().challengeWindow, 1, "one-second window");
    }

    /// Both edges of every BadConfig rule: the last accepted and the first rejected value.
    function test_constructorBadConfigEdges() public {
        bytes memory duration = abi.encodeWithSelector(OptimisticML.BadConfig.selector, "duration");
        OptimisticML.Config memory c = defaultConfig(64, 48);
        c.burnBps = 10_000;
        c.challengeWindow = type(uint32).max;
        c.clock = type(uint32).max;
        c.requestTimeout = type(uint32).max;
        OptimisticML g = new OptimisticML(registry, stepVerifier, c);
        assertEqUint(g.config().arity, 64, "arity 64");
        assertEqUint(g.config().vmDepth, 48, "depth 48");
        g = new OptimisticML(registry, stepVerifier, defaultConfig(2, 1));
        assertEqUint(g.config().arity, 2, "arity 2");
        deployExpectingRevert(defaultConfig(65, 6), abi.encodeWithSelector(OptimisticML.BadConfig.selector, "arity"));
        deployExpectingRevert(defaultConfig(1, 6), abi.encodeWithSelector(OptimisticML.BadConfig.selector, "arity"));
        deployExpectingRevert(defaultConfig(4, 49), abi.encodeWithSelector(OptimisticML.BadConfig.selector, "vmDepth"));
        deployExpectingRevert(defaultConfig(4, 0), abi.encodeWithSelector(OptimisticML.BadConfig.selector, "vmDepth"));
        c = defaultConfig(4, 6);
        c.burnBps = 10_001;
        deployExpectingRevert(c, abi.encodeWithSelector(OptimisticML.BadConfig.selector, "burnBps"));
        c = defaultConfig(4, 6);
        c.challengeWindow = uint64(type(uint32).max) + 1;
        deployExpectingRevert(c, duration);
        c = defaultConfig(4, 6);
        c.clock = uint64(type(uint32).max) + 1;
        deployExpectingRevert(c, duration);
        c = defaultConfig(4, 6);
        c.requestTimeout = uint64(type(uint32).max) + 1;
        deployExpectingRevert(c, duration);
    }

    /// With the largest accepted callbackGas, finalize of a request with a callback fits
    /// in a 30M-gas block.
    function test_finalizeWithTheLargestCallbackGasFitsABlock() public {
        OptimisticML.Config memory c = defaultConfig(4, 6);
        c.callbackGas = 10_000_000;
        deploy(c);
        buildModel(5);
        GasBurner burner = new GasBurner();
        vm.prank(REQUESTER);
        uint256 r = game.request{value: 1}(modelId, inputCommitments, address(burner));
        uint256 claimId = postClaimFor(r, outputBytes, outputCommitment);
        vm.warp(T0 + c.challengeWindow);
        uint256 before = gasleft();
        game.finalize{gas: 15_000_000}(claimId);
        uint256 used = before - gasleft();
        assertTrue(used < 30_000_000 && used > 10_000_000, "finalize spends the callback gas and fits a block");
        assertTrue(claimFinalized(claimId), "final");
    }

    // ------------------------------------------------------------------ item 6: clock edges

    /// A submitter move made with exactly its remaining clock spent is accepted (the clock is
    /// then 0); one second later it reverts ClockRunOut.
    function test_moveWithExactlyTheRemainingClock() public {
        uint256 claimId = postHonestClaim();
        uint256 gameId = challengeAs(CHALLENGER, claimId);
        bytes32[] memory outs = honestOuts();
        bytes32[] memory S = graphStates(outs);
        vm.warp(T0 + cfg.clock + 1);
        vm.prank(SUBMITTER);
        vm.expectRevert(OptimisticML.ClockRunOut.selector);
        game.open(gameId, S[nodeCount], outputSiblings(outs));
        vm.warp(T0 + cfg.clock);
        openWith(gameId, outs);
        G memory g = gv(gameId);
        assertEqUint(g.submitterClock, 0, "submitter clock used up");
        assertEqUint(g.lastMove, T0 + cfg.clock, "last move");
        // the challenger's pick: exactly its clock, then one second more
        post(gameId, graphStatesToPost(gameId, S)); // no time spent: allowed at clock 0
        bytes32[] memory states = graphStatesToPost(gameId, S);
        vm.warp(T0 + 2 * uint256(cfg.clock) + 1);
        vm.prank(CHALLENGER);
        vm.expectRevert(OptimisticML.ClockRunOut.selector);
        game.pick(gameId, 0, states);
        vm.warp(T0 + 2 * uint256(cfg.clock));
        pickAs(CHALLENGER, gameId, 0, states);
        assertEqUint(gv(gameId).challengerClock, 0, "challenger clock used up");
        // the submitter, at 0, cannot spend another second
        vm.warp(T0 + 2 * uint256(cfg.clock) + 1);
        game.timeout(gameId);
        assertTrue(gv(gameId).winner == OptimisticML.Side.Challenger, "submitter out of time");
    }

    /// resolveStep with exactly the challenger's remaining clock spent settles the leaf; one
    /// second later it reverts ClockRunOut.
    function test_resolveStepWithExactlyTheRemainingClock() public {
        (uint256 claimId, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(NODE);
        handoverAs(gameId, handoverProof(outs, NODE));
        OptimisticML.HandoverProof memory p = handoverProof(outs, NODE);
        StepView memory sub = stepView(
            preStateOf(NODE, p.inputValues), keccak256(p.finalState), defaultLeafStep(), keccak256("wrong post"), "s"
        );
        playSteps(gameId, CHALLENGER, sub, otherStepView(sub, vecPost, "honest"));
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Leaf, "leaf");
        vm.warp(g.lastMove + g.challengerClock + 1);
        vm.prank(ANYONE);
        vm.expectRevert(OptimisticML.ClockRunOut.selector);
        game.resolveStep(gameId, vecState, vecProof);
        vm.warp(g.lastMove + g.challengerClock);
        resolveLeaf(gameId);
        assertTrue(gv(gameId).winner == OptimisticML.Side.Challenger, "the lie loses at the leaf");
        assertTrue(claimVoided(claimId), "voided");
    }

    // ------------------------------------------------------------------ item 6: bonds

    /// A challenge must pay exactly the challenger bond: more and less revert WrongValue.
    function test_challengeWithOverpaidOrUnderpaidBondReverts() public {
        uint256 claimId = postHonestClaim();
        uint256 bond = cfg.challengerBond;
        vm.prank(CHALLENGER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.WrongValue.selector, bond + 1));
        game.challenge{value: bond + 1}(claimId);
        vm.prank(CHALLENGER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.WrongValue.selector, bond - 1));
        game.challenge{value: bond - 1}(claimId);
        vm.prank(SUBMITTER);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.WrongValue.selector, cfg.submitterBond + 1));
        game.postClaim{value: cfg.submitterBond + 1}(modelId, 0, inputCommitments, "", outputBytes, outputCommitment);
        assertEqUint(game.gameCount(), 0, "no game");
        assertConserved();
    }

    // ------------------------------------------------------------------ item 6: multi-input models

    /// The input bytes of a model with several inputs are every input's bytes in slot order,
    /// each at its registered length; the claim is then marked as published.
    function test_inputBytesOfEveryInputAreCheckedAtTheirRegisteredLengths() public {
        buildModelWithInputs(5, 3);
        bytes memory all = allInputBytes();
        assertEqUint(all.length, 8 + 8 + 64, "two 8-byte inputs and a 64-byte one");
        vm.startPrank(SUBMITTER);
        // the old single-input form (only the input node 0 reads) is refused
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.WrongInputLength.selector, 64, 80));
        game.postClaim{value: cfg.submitterBond}(
            modelId, 0, inputCommitments, inputBytes, outputBytes, outputCommitment
        );
        // one byte short or one too many
        bytes memory short = new bytes(all.length - 1);
        for (uint256 i = 0; i < short.length; i++) {
            short[i] = all[i];
        }
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.WrongInputLength.selector, 79, 80));
        game.postClaim{value: cfg.submitterBond}(modelId, 0, inputCommitments, short, outputBytes, outputCommitment);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.WrongInputLength.selector, 81, 80));
        game.postClaim{value: cfg.submitterBond}(
            modelId, 0, inputCommitments, bytes.concat(all, bytes1(0)), outputBytes, outputCommitment
        );
        // the right length, the inputs in the wrong order: input 0 is checked first
        bytes memory swapped = bytes.concat(leadingInputs[1], leadingInputs[0], inputBytes);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.BadInputBytes.selector, 0));
        game.postClaim{value: cfg.submitterBond}(modelId, 0, inputCommitments, swapped, outputBytes, outputCommitment);
        // a wrong byte in the last input
        bytes memory bad = bytes.concat(all);
        bad[79] = bytes1(uint8(bad[79]) ^ 1);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.BadInputBytes.selector, 2));
        game.postClaim{value: cfg.submitterBond}(modelId, 0, inputCommitments, bad, outputBytes, outputCommitment);
        uint256 published =
            game.postClaim{value: cfg.submitterBond}(modelId, 0, inputCommitments, all, outputBytes, outputCommitment);
        uint256 unpublished =
            game.postClaim{value: cfg.submitterBond}(modelId, 0, inputCommitments, "", outputBytes, outputCommitment);
        vm.stopPrank();
        assertTrue(game.claimOf(published).inputsPublished, "bytes given: published");
        assertTrue(!game.claimOf(unpublished).inputsPublished, "no bytes: not published");
        assertEq(game.claimOf(published).inputState, graphState(honestOuts(), 0), "S_0 of three inputs");
        assertConserved();
    }

    /// The review's attack, with bytes: the model's input has 64 bytes, the claim gives 16
    /// (which commit as one raw leaf). Before the fix they were accepted, and node 0's
    /// pre-state read that leaf as the root of a 64-byte region nobody knows the contents
    /// of: no witness of the first input load could exist and the claim could not be
    /// challenged. Now the bytes must have the registered length.
    function test_inputBytesShorterThanTheRegisteredInputAreRefused() public {
        bytes memory short = new bytes(16);
        for (uint256 i = 0; i < 16; i++) {
            short[i] = inputBytes[i];
        }
        bytes32[] memory ins = new bytes32[](1);
        ins[0] = Handover.bytesRoot(short);
        vm.prank(SUBMITTER);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.WrongInputLength.selector, 16, 64));
        game.postClaim{value: cfg.submitterBond}(modelId, 0, ins, short, outputBytes, outputCommitment);
        assertEqUint(game.claimCount(), 0, "no claim");
    }

    /// The attack without bytes: a commitment that no input of the registered length has.
    /// An input of at most 32 bytes commits as its one zero-padded leaf, so a commitment
    /// that is not zero past the input's length is refused by postClaim and request; a
    /// longer input's commitment cannot be checked without its bytes, so the claim is
    /// accepted but marked as not published (see ConsumerExample.t.sol for a consumer).
    function test_aCommitmentNoInputOfTheRegisteredLengthHasIsRefused() public {
        buildModelWithInputs(5, 2); // input 0 has 8 bytes
        bytes32[] memory ins = inputCommitments;
        ins[0] = keccak256("not an 8-byte input");
        vm.prank(SUBMITTER);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.BadInputCommitment.selector, 0));
        game.postClaim{value: cfg.submitterBond}(modelId, 0, ins, "", outputBytes, outputCommitment);
        vm.prank(REQUESTER);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.BadInputCommitment.selector, 0));
        game.request(modelId, ins, address(0));
        // one byte past the length set is enough to refuse it
        ins[0] = inputCommitments[0] | bytes32(uint256(1) << (8 * (32 - 9)));
        vm.prank(SUBMITTER);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.BadInputCommitment.selector, 0));
        game.postClaim{value: cfg.submitterBond}(modelId, 0, ins, "", outputBytes, outputCommitment);
        // the true commitments pass; the 64-byte input's commitment is taken unchecked
        ins[0] = inputCommitments[0];
        ins[1] = keccak256("any 64-byte root");
        vm.prank(REQUESTER);
        game.request(modelId, ins, address(0));
        vm.prank(SUBMITTER);
        uint256 claimId = game.postClaim{value: cfg.submitterBond}(modelId, 0, ins, "", outputBytes, outputCommitment);
        (,,, bool published,,) = game.result(claimId);
        assertTrue(!published, "recognisable as not checkable by third parties");
        assertConserved();
    }

    /// A whole game on a 3-input model: node k writes slot inputCount + k (the handovers of
    /// node 0 and node 2 check it), and the lie loses at the leaf.
    function test_gameOnAModelWithThreeInputs() public {
        buildModelWithInputs(5, 3);
        assertEqUint(slotCount, 8, "3 inputs + 5 nodes");
        for (uint256 node = 0; node < 3; node += 2) {
            bytes32 lie = Handover.bytesRoot(lyingOutput());
            vm.prank(SUBMITTER);
            uint256 claimId =
                game.postClaim{value: cfg.submitterBond}(modelId, 0, inputCommitments, "", lyingOutput(), lie);
            assertEq(game.claimOf(claimId).inputState, graphState(honestOuts(), 0), "S_0 of three inputs");
            uint256 gameId = challengeAs(CHALLENGER, claimId);
            bytes32[] memory outs = divergentOuts(node, keccak256("submitter lie"), lie);
            openWith(gameId, outs);
            playGraph(gameId, CHALLENGER, graphStates(outs), graphStates(honestOuts()));
            assertEqUint(gv(gameId).lo, node, "isolated node");
            OptimisticML.HandoverProof memory p = multiInputHandoverProof(outs, node);
            handoverAs(gameId, p);
            G memory g = gv(gameId);
            assertTrue(g.phase == OptimisticML.Phase.Steps, "steps");
            assertEq(g.hashLo, preStateOf(node, p.inputValues), "pre-state from the node's input slot");
            StepView memory sub = stepView(g.hashLo, g.hashHi, defaultLeafStep(), keccak256("wrong post"), "s");
            playSteps(gameId, CHALLENGER, sub, otherStepView(sub, vecPost, "honest"));
            resolveLeaf(gameId);
            assertTrue(claimVoided(claimId), "the lie loses");
        }
        assertConserved();
    }

    // ------------------------------------------------------------------ item 6: views of unknown ids

    /// The views refuse ids that name nothing, rather than answering zeros a consumer could
    /// read as an unfinalized claim of model 0 (a survivor of the mutation run: no test read
    /// `result` of an unknown claim).
    function test_viewsOfUnknownIdsRevert() public {
        uint256 claimId = postHonestClaim();
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.UnknownClaim.selector, claimId + 1));
        game.result(claimId + 1);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.UnknownClaim.selector, claimId + 1));
        game.claimOf(claimId + 1);
        vm.expectRevert(abi.encodeWithSelector(OptimisticML.UnknownGame.selector, 1));
        game.gameOf(1);
        (bool finalized, bytes32 model,,,,) = game.result(claimId);
        assertTrue(!finalized && model == modelId, "the known claim answers");
    }

    /// `finalize` refuses to run unless it can forward the whole callbackGas (EIP-150 keeps
    /// 1/64 of what is left): at the least gas finalize accepts, found by bisection, the
    /// consumer is called with exactly the gas it gets when finalize has plenty (a survivor of
    /// the mutation run: `gasleft() + gasleft() / 64` in the check went unnoticed).
    function test_finalizeAtTheLeastGasItAcceptsForwardsTheWholeCallbackGas() public {
        GasProbe probe = new GasProbe();
        vm.prank(REQUESTER);
        uint256 requestId = game.request(modelId, inputCommitments, address(probe));
        uint256 claimId = postClaimFor(requestId, outputBytes, outputCommitment);
        vm.warp(block.timestamp + cfg.challengeWindow);
        bytes memory call = abi.encodeCall(OptimisticML.finalize, (claimId));
        uint256 snap = vm.snapshotState();
        (bool ok,) = address(game).call{gas: 2_000_000}(call);
        uint256 full = probe.seen();
        assertTrue(ok && full > 0, "finalize with plenty of gas calls the consumer");
        vm.revertToState(snap);
        (uint256 lo, uint256 hi) = (cfg.callbackGas, 2_000_000); // lo fails, hi succeeds
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            (ok,) = address(game).call{gas: mid}(call);
            vm.revertToState(snap);
            (lo, hi) = ok ? (lo, mid) : (mid, hi);
        }
        (ok,) = address(game).call{gas: hi}(call);
        assertTrue(ok, "finalize at the least gas it accepts");
        assertEqUint(probe.seen(), full, "the consumer's gas at that edge");
    }

    // ------------------------------------------------------------------ item 6: one node

    /// A one-node model: open goes straight to the handover of node 0, then the VM phase.
    function test_oneNodeModelOpensStraightToTheHandover() public {
        buildModel(1);
        bytes32 lie = Handover.bytesRoot(lyingOutput());
        uint256 claimId = postClaimFor(0, lyingOutput(), lie);
        uint256 gameId = challengeAs(CHALLENGER, claimId);
        bytes32[] memory outs = divergentOuts(0, "lie", lie);
        openWith(gameId, outs);
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Handover, "straight to the handover");
        assertTrue(g.turn == OptimisticML.Side.Submitter, "the submitter hands over");
        assertEqUint(g.lo, 0, "node 0");
        assertEqUint(g.hi, 1, "one node");
        assertEq(g.hashHi, graphState(outs, 1), "S_1 = the opened final state");
        handoverChecked(gameId, outs, 0);
        StepView memory sub = stepView(gv(gameId).hashLo, gv(gameId).hashHi, 1, keccak256("wrong post"), "s");
        playSteps(gameId, CHALLENGER, sub, otherStepView(sub, vecPost, "honest"));
        resolveLeaf(gameId);
        assertTrue(claimVoided(claimId), "the lie loses at the leaf");
        assertConserved();
    }

    // ------------------------------------------------------------------ item 6: handover shapes

    /// One input value with zero or two sibling paths: InputCountMismatch, not a panic.
    function test_handoverWithWrongNumberOfInputSiblingsReverts() public {
        (, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(NODE);
        OptimisticML.HandoverProof memory p = handoverProof(outs, NODE);
        bytes32[] memory good = p.inputSiblings[0];
        p.inputSiblings = new bytes32[][](0);
        handoverReverts(gameId, p, abi.encodeWithSelector(OptimisticML.InputCountMismatch.selector, 1, 1, 0));
        p.inputSiblings = new bytes32[][](2);
        p.inputSiblings[0] = good;
        p.inputSiblings[1] = good;
        handoverReverts(gameId, p, abi.encodeWithSelector(OptimisticML.InputCountMismatch.selector, 1, 1, 2));
        // no values and no siblings for a node that reads one input
        p.inputSiblings = new bytes32[][](0);
        p.inputValues = new bytes32[](0);
        handoverReverts(gameId, p, abi.encodeWithSelector(OptimisticML.InputCountMismatch.selector, 1, 0, 0));
        handoverAs(gameId, handoverProof(outs, NODE));
        assertTrue(phaseOf(gameId) == OptimisticML.Phase.Steps, "the right proof is accepted");
    }

    /// Descriptor proofs with one sibling too many or too few revert BadDescriptorProof, also
    /// when the path still reaches the model root: the 64 bytes "descriptor" d0 || d1 (the two
    /// lowest descriptor roots) with the siblings above them hashes to the model root.
    function test_descriptorProofWithWrongNumberOfSiblingsReverts() public {
        (, uint256 gameId, bytes32[] memory outs) = lyingGameToHandover(0);
        OptimisticML.HandoverProof memory p = handoverProof(outs, 0);
        bytes32[] memory sib = p.descriptorSiblings;
        bytes32[] memory longer = new bytes32[](sib.length + 1);
        bytes32[] memory shorter = new bytes32[](sib.length - 1);
        for (uint256 i = 0; i < sib.length; i++) {
            longer[i] = sib[i];
            if (i > 0) shorter[i - 1] = sib[i];
        }
        longer[sib.length] = bytes32(0);
        bytes memory err = abi.encodeWithSelector(OptimisticML.BadDescriptorProof.selector);
        p.descriptorSiblings = longer;
        handoverReverts(gameId, p, err);
        p.descriptorSiblings = shorter;
        handoverReverts(gameId, p, err);
        p.descriptor = abi.encodePacked(descriptorRoots[0], descriptorRoots[1]);
        assertEq(Handover.pathRoot(Handover.bytesRoot(p.descriptor), 0, shorter), modelRoot, "the short path fits");
        handoverReverts(gameId, p, err);
    }
}

/// A consumer that burns all the gas it is given.
contract GasBurner {
    function opmlResult(uint256, uint256, bytes32, bytes calldata) external pure {
        while (true) {}
    }
}
