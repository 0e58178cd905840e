// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {OptimisticML} from "../src/OptimisticML.sol";
import {GameFixture} from "./utils/GameFixture.sol";

/// Round counts of a worst-case dispute (n = 100 nodes, 2^32 VM steps) for k = 2, 8, 16,
/// against a count derived from the split rule p_j = lo + (hi - lo) * j / parts and against
/// hand-derived values; and the gas of every kind of call (printed with -vv).
///
/// Gas figures: execution gas of the call measured with gasleft() around it, the storage of
/// every touched contract cooled first (`vm.cool`: slots cold as in a separate transaction;
/// forge leaves the accounts themselves warm, so a real transaction pays about 2,500 more per
/// other contract it calls: the registry, Step, the handover verifier), less the cost of the
/// measuring call itself (the same call to an empty contract, with value for payable calls);
/// "incl. tx" adds each transaction's intrinsic gas (21000 + 16 per non-zero / 4 per zero
/// calldata byte).
/// A contract that accepts any call and does nothing (to calibrate the measuring call).
contract Nop {
    fallback() external payable {}
}

contract GameRoundsTest is GameFixture {
    event log(string);
    event log_named_uint(string key, uint256 val);

    uint32 internal constant N = 100;
    uint64 internal constant D = 32;

    struct Gas {
        uint256 request;
        uint256 postClaim;
        uint256 challenge;
        uint256 open;
        uint256 postStates;
        uint256 pick;
        uint256 handover;
        uint256 resolveStep;
        uint256 timeout;
        uint256 finalize;
        uint256 withdraw;
        uint256 dispute; // challenge + open + every post and pick + handover + resolveStep
        uint256 disputeTx; // the same with each transaction's intrinsic gas
        uint256 graphRounds;
        uint256 stepRounds;
        uint256 calls;
    }

    Gas internal gas;

    // ------------------------------------------------------------------ round counts from the rule

    /// Rounds of a worst-case dissection of an interval of `len` (the challenger always picks
    /// a part that needs the most further rounds), from the split rule alone.
    /// (Each part size is evaluated once: the floor rule gives at most two sizes per level.)
    function worstRounds(uint256 len, uint256 k) internal pure returns (uint256) {
        if (len <= 1) return 0;
        uint256 parts = len < k ? len : k;
        uint256 best;
        uint256 prev;
        uint256[] memory seen = new uint256[](parts);
        uint256 nSeen;
        for (uint256 j = 1; j <= parts; j++) {
            uint256 pj = (len * j) / parts;
            uint256 size = pj - prev;
            prev = pj;
            bool done;
            for (uint256 i = 0; i < nSeen; i++) {
                if (seen[i] == size) done = true;
            }
            if (done) continue;
            seen[nSeen++] = size;
            uint256 r = worstRounds(size, k);
            if (r > best) best = r;
        }
        return best + 1;
    }

    /// The part of [lo, hi] a worst-case challenger picks: one needing the most rounds.
    function worstPart(uint256 lo, uint256 hi, uint256 k) internal pure returns (uint256 index) {
        uint256 len = hi - lo;
        uint256 parts = len < k ? len : k;
        uint256 best;
        uint256 prev;
        for (uint256 j = 1; j <= parts; j++) {
            uint256 pj = (len * j) / parts;
            uint256 r = worstRounds(pj - prev, k);
            if (j == 1 || r > best) {
                best = r;
                index = j - 1;
            }
            prev = pj;
        }
    }

    function test_worstRoundsMatchHandValues() public pure {
        // phase 1, n = 100: k = 2: 100 -> 50 -> 25 -> 13 -> 7 -> 4 -> 2 -> 1
        assertEqUint(worstRounds(100, 2), 7, "k=2 graph");
        // k = 8: 100 -> 13 (parts of 12/13) -> 2 (parts of 1/2) -> 1
        assertEqUint(worstRounds(100, 8), 3, "k=8 graph");
        // k = 16: 100 -> 7 (parts of 6/7) -> 1
        assertEqUint(worstRounds(100, 16), 2, "k=16 graph");
        // phase 2 over 2^32 steps: 32 / log2(k) rounds, rounded up (8^11 >= 2^32 > 8^10)
        assertEqUint(worstRounds(1 << 32, 2), 32, "k=2 steps");
        assertEqUint(worstRounds(1 << 32, 8), 11, "k=8 steps");
        assertEqUint(worstRounds(1 << 32, 16), 8, "k=16 steps");
        // edge cases of the rule
        assertEqUint(worstRounds(1, 8), 0, "one node: no round");
        assertEqUint(worstRounds(2, 8), 1, "two nodes");
        assertEqUint(worstRounds(9, 8), 2, "nine nodes, k = 8");
    }

    // ------------------------------------------------------------------ measuring

    /// Cools every contract a game call touches (separate-transaction gas).
    function coolAll() internal {
        vm.cool(address(game));
        vm.cool(address(registry));
        vm.cool(address(stepVerifier));
        (bool ok, bytes memory ret) = address(game).staticcall(abi.encodeWithSignature("handoverVerifier()"));
        if (ok && ret.length == 32) vm.cool(abi.decode(ret, (address)));
    }

    /// 21000 + calldata cost of a transaction carrying `data`.
    function intrinsic(bytes memory data) internal pure returns (uint256 g) {
        g = 21_000;
        for (uint256 i = 0; i < data.length; i++) {
            g += data[i] == 0 ? 4 : 16;
        }
    }

    /// Calls the game as `who` with `value`, cold; returns the execution gas and the call's
    /// return data (reverts if the call reverts).
    function measure(address who, uint256 value, bytes memory data) internal returns (uint256 used, bytes memory ret) {
        bool ok;
        (ok, used, ret) = rawCall(address(game), who, value, data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        // what the call itself costs the caller (cold account, value transfer) is not
        // execution of the game: in a transaction the target is warm and the value free
        uint256 overhead = value == 0 ? callOverhead : valueCallOverhead;
        used -= overhead;
    }

    /// gasleft() difference of a cold call of `target` as `who`.
    function rawCall(address target, address who, uint256 value, bytes memory data)
        internal
        returns (bool ok, uint256 used, bytes memory ret)
    {
        coolAll();
        vm.cool(target);
        vm.prank(who);
        uint256 g0 = gasleft();
        (ok, ret) = target.call{value: value}(data);
        used = g0 - gasleft();
    }

    uint256 internal callOverhead;
    uint256 internal valueCallOverhead;

    /// The cost of the measuring call itself: the same call to a contract that does nothing.
    function calibrate() internal {
        address nop = address(new Nop());
        bytes memory data = abi.encodeWithSignature("anything(uint256)", 1);
        (, callOverhead,) = rawCall(nop, ANYONE, 0, data);
        (, valueCallOverhead,) = rawCall(nop, ANYONE, 1 wei, data);
        assertTrue(callOverhead < 3000 && valueCallOverhead > callOverhead, "calibration");
    }

    /// A dispute move: measured, added to the dispute totals.
    function move(address who, uint256 value, bytes memory data) internal returns (uint256 used, bytes memory ret) {
        (used, ret) = measure(who, value, data);
        gas.dispute += used;
        gas.disputeTx += used + intrinsic(data);
        gas.calls++;
    }

    function max(uint256 a, uint256 b) internal pure returns (uint256) {
        return a > b ? a : b;
    }

    /// The points the game reports equal the rule's.
    function checkPoints(uint256 gameId) internal view {
        G memory g = gv(gameId);
        uint256[] memory want = splitPoints(g.lo, g.hi);
        uint64[] memory got = game.points(gameId);
        assertEqUint(got.length, want.length, "points length");
        for (uint256 j = 0; j < want.length; j++) {
            assertEqUint(got[j], want[j], "point");
        }
        assertEqUint(game.parts(gameId), want.length - 1, "parts");
    }

    // ------------------------------------------------------------------ the worst-case dispute

    /// Phase 1: the challenger always takes a part that needs the most rounds.
    function playGraphWorstCase(uint256 gameId, uint64 k, bytes32[] memory S) internal {
        uint256 used;
        while (phaseOf(gameId) == OptimisticML.Phase.Graph) {
            checkPoints(gameId);
            G memory g = gv(gameId);
            bytes32[] memory states = graphStatesToPost(gameId, S);
            (used,) = move(SUBMITTER, 0, abi.encodeCall(OptimisticML.postStates, (gameId, states)));
            if (states.length == k - 1) gas.postStates = max(gas.postStates, used);
            uint256 index = worstPart(g.lo, g.hi, k);
            (used,) = move(CHALLENGER, 0, abi.encodeCall(OptimisticML.pick, (gameId, index, states)));
            gas.pick = max(gas.pick, used);
            gas.graphRounds++;
        }
        assertTrue(phaseOf(gameId) == OptimisticML.Phase.Handover, "handover");
    }

    /// Phase 2: every part has the same size (k divides 2^32); the lying challenger disputes
    /// from the real step on.
    function playStepsMeasured(uint256 gameId, uint64 k, bytes32[] memory outs, uint256 node) internal {
        StepView memory sub = honestStepView(outs, node, defaultLeafStep());
        StepView memory chal = otherStepView(sub, keccak256("challenger lie"), "challenger");
        uint256 used;
        while (phaseOf(gameId) == OptimisticML.Phase.Steps) {
            checkPoints(gameId);
            bytes32[] memory states = stepStatesToPost(gameId, sub);
            (used,) = move(SUBMITTER, 0, abi.encodeCall(OptimisticML.postStates, (gameId, states)));
            if (states.length == k - 1) gas.postStates = max(gas.postStates, used);
            uint256 index = firstDisagreement(states, stepStatesToPost(gameId, chal), bytes32(0));
            (used,) = move(CHALLENGER, 0, abi.encodeCall(OptimisticML.pick, (gameId, index, states)));
            gas.pick = max(gas.pick, used);
            gas.stepRounds++;
        }
        assertTrue(phaseOf(gameId) == OptimisticML.Phase.Leaf, "leaf");
    }

    function run(uint64 k, uint256 handGraph, uint256 handSteps) internal {
        setUpGame(k, D, N);
        calibrate();
        assertEqUint(slotCount, 128, "128 slots");
        bytes32[] memory outs = honestOuts();
        bytes32[] memory S = graphStates(outs);
        bytes memory ret;

        // request and claim
        (gas.request, ret) = measure(
            REQUESTER, 0.1 ether, abi.encodeCall(OptimisticML.request, (modelId, inputCommitments, address(0)))
        );
        uint256 requestId = abi.decode(ret, (uint256));
        (gas.postClaim, ret) = measure(
            SUBMITTER,
            cfg.submitterBond,
            abi.encodeCall(
                OptimisticML.postClaim,
                (modelId, requestId, inputCommitments, inputBytes, outputBytes, outputCommitment)
            )
        );
        uint256 claimId = abi.decode(ret, (uint256));
        // a second claim whose submitter will never open (for the timeout figure)
        uint256 idle = postHonestClaim();
        uint256 idleGame = challengeAs(CHALLENGER2, idle);

        // challenge and open
        (gas.challenge, ret) = move(CHALLENGER, cfg.challengerBond, abi.encodeCall(OptimisticML.challenge, (claimId)));
        uint256 gameId = abi.decode(ret, (uint256));
        (gas.open,) = move(SUBMITTER, 0, abi.encodeCall(OptimisticML.open, (gameId, S[N], outputSiblings(outs))));

        playGraphWorstCase(gameId, k, S);
        uint256 node = gv(gameId).lo;

        // handover of the isolated node
        (gas.handover,) = move(SUBMITTER, 0, abi.encodeCall(OptimisticML.handover, (gameId, handoverProof(outs, node))));
        assertEq(gv(gameId).hashLo, handoverPreState(outs, node), "pre-state");
        playStepsMeasured(gameId, k, outs, node);
        (gas.resolveStep,) = move(ANYONE, 0, abi.encodeCall(OptimisticML.resolveStep, (gameId, vecState, vecProof)));
        assertTrue(gv(gameId).winner == OptimisticML.Side.Submitter, "honest submitter wins");

        // the round counts: rule-derived and by hand
        assertEqUint(gas.graphRounds, worstRounds(N, k), "graph rounds == rule");
        assertEqUint(gas.graphRounds, handGraph, "graph rounds == hand value");
        assertEqUint(gas.stepRounds, worstRounds(uint256(1) << D, k), "step rounds == rule");
        assertEqUint(gas.stepRounds, handSteps, "step rounds == hand value");
        assertEqUint(gas.calls, 2 + 2 * (handGraph + handSteps) + 2, "moves in the dispute");

        // timeout, finalize (with the request fee), withdraw
        vm.warp(block.timestamp + cfg.clock + 1);
        (gas.timeout,) = measure(ANYONE, 0, abi.encodeCall(OptimisticML.timeout, (idleGame)));
        (gas.finalize,) = measure(ANYONE, 0, abi.encodeCall(OptimisticML.finalize, (claimId)));
        assertEqUint(credit(SUBMITTER), submitterPrize() + cfg.submitterBond + 0.1 ether, "bond, prize and fee");
        (gas.withdraw,) = measure(SUBMITTER, 0, abi.encodeCall(OptimisticML.withdraw, ()));
        assertConserved();
        report(k);
    }

    function report(uint64 k) internal {
        string memory row = string.concat("| ", vm.toString(k), " | ", vm.toString(gas.graphRounds), " + ");
        row = string.concat(row, vm.toString(gas.stepRounds), " | ", vm.toString(gas.request), " | ");
        row = string.concat(row, vm.toString(gas.postClaim), " | ", vm.toString(gas.challenge), " | ");
        row = string.concat(row, vm.toString(gas.open), " | ", vm.toString(gas.postStates), " | ");
        row = string.concat(row, vm.toString(gas.pick), " | ", vm.toString(gas.handover), " | ");
        row = string.concat(row, vm.toString(gas.resolveStep), " | ", vm.toString(gas.timeout), " | ");
        row = string.concat(row, vm.toString(gas.finalize), " | ", vm.toString(gas.withdraw), " | ");
        row = string.concat(row, vm.toString(gas.dispute), " | ", vm.toString(gas.disputeTx), " |");
        emit log("| k | rounds (graph + steps) | request | postClaim | challenge | open | postStates (k-1) | pick | handover | resolveStep | timeout | finalize | withdraw | dispute exec | dispute incl. tx |");
        emit log(row);
    }

    function test_roundsAndGas_k2() public {
        run(2, 7, 32);
    }

    function test_roundsAndGas_k8() public {
        run(8, 3, 11);
    }

    function test_roundsAndGas_k16() public {
        run(16, 2, 8);
    }
}
