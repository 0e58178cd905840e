// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Handover} from "../../src/Handover.sol";
import {Step} from "../../src/Step.sol";
import {ModelRegistry} from "../../src/ModelRegistry.sol";
import {OptimisticML} from "../../src/OptimisticML.sol";
import {TestBase} from "./Cheats.sol";

/// Shared builders of the dispute-game tests: deploys Step, ModelRegistry and OptimisticML,
/// builds a synthetic chain model of `n` nodes (descriptor v2 bytes, model root), its graph
/// states S_0..S_n for any per-node outputs, every handover proof, exited final VM states
/// that hold a node's output, and a real step witness from `fixtures/step-vectors` so that a
/// leaf is resolved by the real step verifier. Players play honest or lying strategies from
/// two truth tables (what the submitter and what the challenger believe at each point).
///
/// Every value here is derived from the rules of docs/spec (descriptor layout, slot vector,
/// padded Merkle trees, node image pre-state via `Handover.preStateHash`), never read back
/// from the game contract under test.
abstract contract GameFixture is TestBase {
    // ------------------------------------------------------------------ actors

    address internal constant REQUESTER = address(0xA11CE);
    address internal constant SUBMITTER = address(0x5B5B);
    address internal constant CHALLENGER = address(0xC1C1);
    address internal constant CHALLENGER2 = address(0xC2C2);
    address internal constant CHALLENGER3 = address(0xC3C3);
    address internal constant ANYONE = address(0xABAB);
    /// Start time of every test (far from 0 so `lastMove + clock` arithmetic is visible).
    uint256 internal constant T0 = 1_000_000;

    // ------------------------------------------------------------------ deployed contracts

    Step internal stepVerifier;
    ModelRegistry internal registry;
    OptimisticML internal game;
    OptimisticML.Config internal cfg;

    // ------------------------------------------------------------------ the synthetic model

    uint32 internal nodeCount;
    uint32 internal inputCount;
    uint32 internal slotCount;
    uint32 internal outputSlot;
    uint32 internal outputLen;
    bytes32 internal modelRoot;
    bytes32 internal modelId;
    bytes[] internal descriptors;
    bytes32[] internal descriptorRoots;
    bytes internal inputBytes;
    bytes32[] internal inputCommitments;
    bytes internal outputBytes;
    bytes32 internal outputCommitment;
    /// The true output commitment of every node (node i writes slot inputCount + i).
    bytes32[] internal honestOutputs;

    // ------------------------------------------------------------------ the real step witness

    bytes internal vecState;
    bytes internal vecProof;
    bytes32 internal vecPost;

    /// One node's descriptor fields (docs: /tmp/game-api.md "Descriptor v2").
    struct NodeSpec {
        uint32 opTag;
        uint32 outputSlot;
        uint32 outputLen;
        uint32 codeLen;
        uint32 argsLen;
        bytes32 codeRoot;
        bytes32 argsRoot;
        bytes32 paramRoot;
        bytes32[] weightRoots;
        uint32[] weightLens;
        uint32[] inputSlots;
        uint32[] inputLens;
    }

    /// A player's belief about the step trace of one node over [0, 2^vmDepth]: `pre` at 0,
    /// `fin` at 2^vmDepth, a hash shared by both players below `t`, `atT` at t, `atT1` at t + 1
    /// and a private hash (`tag`, x) above t + 1.
    struct StepView {
        bytes32 pre;
        bytes32 fin;
        uint256 t;
        bytes32 atT;
        bytes32 atT1;
        bytes32 tag;
    }

    /// The fields of the game's view this fixture reads (one adapter: `gv`).
    struct G {
        OptimisticML.Phase phase;
        OptimisticML.Side turn;
        uint256 lo;
        uint256 hi;
        bytes32 hashLo;
        bytes32 hashHi;
        bytes32 pendingHash;
        uint256 submitterClock;
        uint256 challengerClock;
        uint256 lastMove;
        uint256 node;
        OptimisticML.Side winner;
    }

    // ------------------------------------------------------------------ deployment

    /// A plausible configuration: bonds 1 / 0.4 ether, half of a loser's bond burnt.
    function defaultConfig(uint64 arity, uint64 vmDepth) internal pure returns (OptimisticML.Config memory c) {
        c.arity = arity;
        c.vmDepth = vmDepth;
        c.challengeWindow = 1 hours;
        c.clock = 1 days;
        c.requestTimeout = 2 days;
        c.callbackGas = 200_000;
        c.submitterBond = 1 ether;
        c.challengerBond = 0.4 ether;
        c.burnBps = 5000;
    }

    /// Deploys the three contracts with `c`, funds the actors and sets the time to T0.
    function deploy(OptimisticML.Config memory c) internal {
        vm.warp(T0);
        stepVerifier = new Step();
        registry = new ModelRegistry();
        game = new OptimisticML(registry, stepVerifier, c);
        cfg = c;
        vm.deal(REQUESTER, 100 ether);
        vm.deal(SUBMITTER, 100 ether);
        vm.deal(CHALLENGER, 100 ether);
        vm.deal(CHALLENGER2, 100 ether);
        vm.deal(CHALLENGER3, 100 ether);
        vm.deal(ANYONE, 100 ether);
        loadStepVector("instruction:Add#0");
    }

    /// deploy(defaultConfig(arity, vmDepth)) then buildModel(n).
    function setUpGame(uint64 arity, uint64 vmDepth, uint32 n) internal {
        deploy(defaultConfig(arity, vmDepth));
        buildModel(n);
    }

    // ------------------------------------------------------------------ the step vector

    /// Loads the vector called `name` from fixtures/step-vectors/vectors.json.
    function loadStepVector(string memory name) internal {
        string memory json = vm.readFile(string.concat(vm.projectRoot(), "/../fixtures/step-vectors/vectors.json"));
        uint256 count = vm.parseJsonUint(json, ".count");
        for (uint256 i = 0; i < count; i++) {
            string memory prefix = string.concat(".vectors[", vm.toString(i), "].");
            if (keccak256(bytes(vm.parseJsonString(json, string.concat(prefix, "name")))) == keccak256(bytes(name))) {
                vecState = vm.parseJsonBytes(json, string.concat(prefix, "state"));
                vecProof = vm.parseJsonBytes(json, string.concat(prefix, "proof"));
                vecPost = vm.parseJsonBytes32(json, string.concat(prefix, "post_state_hash"));
                return;
            }
        }
        revert AssertionFailed(string.concat("no step vector ", name));
    }

    // ------------------------------------------------------------------ the model

    function nextPow2(uint256 x) internal pure returns (uint256 p) {
        p = 1;
        while (p < x) p <<= 1;
    }

    /// Output byte length of node i (the last node's is the model's output length, 40).
    function nodeOutputLen(uint256 i) internal view returns (uint32) {
        if (i + 1 == nodeCount) return 40;
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint32(48 + (i % 7) * 8);
    }

    /// Node i: op tag 1 + i % 5, reads the previous slot (node 0 reads the model input),
    /// writes slot inputCount + i, one weight tensor, kernel code and argument blob roots.
    function nodeSpec(uint256 i) internal view returns (NodeSpec memory s) {
        // forge-lint: disable-next-line(unsafe-typecast)
        uint32 idx = uint32(i);
        s.opTag = 1 + (idx % 5);
        s.outputSlot = inputCount + idx;
        s.outputLen = nodeOutputLen(i);
        s.codeLen = 512 + 4 * (idx % 5);
        s.argsLen = 64;
        s.codeRoot = keccak256(abi.encode("kernel code", s.opTag));
        s.argsRoot = keccak256(abi.encode("argument blob", i));
        s.paramRoot = keccak256(abi.encode("parameter blob", i));
        s.weightRoots = new bytes32[](1);
        s.weightLens = new uint32[](1);
        s.weightRoots[0] = keccak256(abi.encode("weight", i));
        s.weightLens[0] = 1024 + idx;
        s.inputSlots = new uint32[](1);
        s.inputLens = new uint32[](1);
        s.inputSlots[0] = i == 0 ? 0 : inputCount + idx - 1;
        // forge-lint: disable-next-line(unsafe-typecast)
        s.inputLens[0] = i == 0 ? uint32(inputBytes.length) : nodeOutputLen(i - 1);
    }

    /// u32 little-endian.
    function le32(uint32 v) internal pure returns (bytes4) {
        return bytes4(((v & 0xff) << 24) | (((v >> 8) & 0xff) << 16) | (((v >> 16) & 0xff) << 8) | (v >> 24));
    }

    /// Descriptor v2 bytes: 124 + 36 w + 8 a bytes, integers u32 little-endian.
    function encodeDescriptor(NodeSpec memory s) internal pure returns (bytes memory d) {
        // forge-lint: disable-next-line(unsafe-typecast)
        uint32 a = uint32(s.inputSlots.length);
        // forge-lint: disable-next-line(unsafe-typecast)
        uint32 w = uint32(s.weightRoots.length);
        d = abi.encodePacked(le32(s.opTag), le32(s.outputSlot), le32(s.outputLen), le32(a), le32(w));
        d = abi.encodePacked(d, le32(s.codeLen), le32(s.argsLen), s.codeRoot, s.argsRoot, s.paramRoot);
        for (uint256 j = 0; j < w; j++) {
            d = abi.encodePacked(d, s.weightRoots[j], le32(s.weightLens[j]));
        }
        for (uint256 j = 0; j < a; j++) {
            d = abi.encodePacked(d, le32(s.inputSlots[j]), le32(s.inputLens[j]));
        }
    }

    /// Builds and registers the chain model of `n` nodes with one 64-byte input and a 40-byte
    /// output; fills the honest per-node outputs (the last one commits to `outputBytes`).
    function buildModel(uint32 n) internal {
        nodeCount = n;
        inputCount = 1;
        // forge-lint: disable-next-line(unsafe-typecast)
        slotCount = uint32(nextPow2(uint256(inputCount) + n));
        outputSlot = inputCount + n - 1;
        outputLen = 40;
        inputBytes = new bytes(64);
        for (uint256 i = 0; i < 64; i++) {
            // forge-lint: disable-next-line(unsafe-typecast)
            inputBytes[i] = bytes1(uint8(i * 7 + 3));
        }
        delete inputCommitments;
        inputCommitments.push(Handover.bytesRoot(inputBytes));
        outputBytes = new bytes(outputLen);
        for (uint256 i = 0; i < outputLen; i++) {
            // forge-lint: disable-next-line(unsafe-typecast)
            outputBytes[i] = bytes1(uint8(200 - i));
        }
        outputCommitment = Handover.bytesRoot(outputBytes);
        delete descriptors;
        delete descriptorRoots;
        delete honestOutputs;
        for (uint256 i = 0; i < n; i++) {
            bytes memory d = encodeDescriptor(nodeSpec(i));
            assertEqUint(d.length, 124 + 36 + 8, "descriptor length");
            descriptors.push(d);
            descriptorRoots.push(Handover.bytesRoot(d));
            honestOutputs.push(i + 1 == n ? outputCommitment : keccak256(abi.encode("node output", i)));
        }
        modelRoot = merkleRoot(padded(descriptorRoots, nextPow2(n)));
        modelId = registry.register(modelRoot, n, inputLens(), slotCount, outputSlot, outputLen, "test://chain-model");
    }

    /// The registered input lengths: every input has the length of `inputBytes` (the model
    /// of buildModel has one input; the multi-input models of the hardening tests override
    /// this).
    function inputLens() internal view virtual returns (uint32[] memory lens) {
        lens = new uint32[](inputCount);
        for (uint256 i = 0; i < inputCount; i++) {
            // forge-lint: disable-next-line(unsafe-typecast)
            lens[i] = uint32(inputBytes.length);
        }
    }

    // ------------------------------------------------------------------ Merkle helpers

    function padded(bytes32[] memory leaves, uint256 len) internal pure returns (bytes32[] memory p) {
        p = new bytes32[](len);
        for (uint256 i = 0; i < leaves.length; i++) {
            p[i] = leaves[i];
        }
    }

    /// Root of a power-of-two leaf vector with hashPair (one leaf: the leaf itself).
    function merkleRoot(bytes32[] memory leaves) internal pure returns (bytes32) {
        uint256 n = leaves.length;
        bytes32[] memory level = new bytes32[](n);
        for (uint256 i = 0; i < n; i++) {
            level[i] = leaves[i];
        }
        while (n > 1) {
            n >>= 1;
            for (uint256 i = 0; i < n; i++) {
                level[i] = Handover.hashPair(level[2 * i], level[2 * i + 1]);
            }
        }
        return level[0];
    }

    /// Siblings (bottom first) of leaf `index` in a power-of-two leaf vector.
    function merkleSiblings(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32[] memory sib) {
        uint256 n = leaves.length;
        uint256 h = 0;
        while ((uint256(1) << h) < n) h++;
        sib = new bytes32[](h);
        bytes32[] memory level = new bytes32[](n);
        for (uint256 i = 0; i < n; i++) {
            level[i] = leaves[i];
        }
        for (uint256 l = 0; l < h; l++) {
            sib[l] = level[index ^ 1];
            n >>= 1;
            for (uint256 i = 0; i < n; i++) {
                level[i] = Handover.hashPair(level[2 * i], level[2 * i + 1]);
            }
            index >>= 1;
        }
    }

    /// Siblings of node `node`'s descriptor root under the model root.
    function descriptorSiblings(uint256 node) internal view returns (bytes32[] memory) {
        return merkleSiblings(padded(descriptorRoots, nextPow2(nodeCount)), node);
    }

    // ------------------------------------------------------------------ graph states

    /// The slot vector after nodes 0..i-1 have run with outputs `outs`.
    function slotLeaves(bytes32[] memory outs, uint256 i) internal view returns (bytes32[] memory leaves) {
        leaves = new bytes32[](slotCount);
        for (uint256 s = 0; s < inputCount; s++) {
            leaves[s] = inputCommitments[s];
        }
        for (uint256 j = 0; j < i; j++) {
            leaves[inputCount + j] = outs[j];
        }
    }

    function graphState(bytes32[] memory outs, uint256 i) internal view returns (bytes32) {
        return merkleRoot(slotLeaves(outs, i));
    }

    /// S_0..S_n for per-node outputs `outs`.
    function graphStates(bytes32[] memory outs) internal view returns (bytes32[] memory S) {
        S = new bytes32[](uint256(nodeCount) + 1);
        for (uint256 i = 0; i <= nodeCount; i++) {
            S[i] = graphState(outs, i);
        }
    }

    function honestOuts() internal view returns (bytes32[] memory o) {
        o = new bytes32[](nodeCount);
        for (uint256 i = 0; i < nodeCount; i++) {
            o[i] = honestOutputs[i];
        }
    }

    /// Outputs that agree with the honest ones before node `from` and differ from it on
    /// (`tag` picks the alternative trace); the last output is `lastOutput`.
    function divergentOuts(uint256 from, bytes32 tag, bytes32 lastOutput) internal view returns (bytes32[] memory o) {
        o = honestOuts();
        for (uint256 i = from; i < nodeCount; i++) {
            o[i] = keccak256(abi.encode(tag, i));
        }
        o[nodeCount - 1] = lastOutput;
    }

    /// Siblings proving the output slot in S_n (for `open`).
    function outputSiblings(bytes32[] memory outs) internal view returns (bytes32[] memory) {
        return merkleSiblings(slotLeaves(outs, nodeCount), outputSlot);
    }

    // ------------------------------------------------------------------ final VM states

    /// Zero-subtree siblings of the output region of `len` bytes: memory root with only that
    /// region non-zero, and the proof of it.
    function outputRegion(bytes32 commitment, uint256 len)
        internal
        pure
        returns (bytes32 memRoot, bytes32[] memory siblings)
    {
        uint256 k = Handover.regionHeight(len);
        siblings = new bytes32[](Handover.TREE_HEIGHT - k);
        bytes32 z = Handover.zeroHash(k);
        for (uint256 l = 0; l < siblings.length; l++) {
            siblings[l] = z;
            z = Handover.hashPair(z, z);
        }
        memRoot = Handover.pathRoot(commitment, (uint256(Handover.OUTPUT_BASE) >> 5) >> k, siblings);
    }

    /// The 173-byte packed state: mem_root, pc, step, status, exit code, x1..x31 (big-endian).
    function encodeState(bytes32 memRoot, uint32 pc, uint64 stepNo, uint8 status, uint32 exitCode)
        internal
        pure
        returns (bytes memory s)
    {
        s = abi.encodePacked(memRoot, pc, stepNo, status, exitCode);
        for (uint256 x = 1; x < 32; x++) {
            // forge-lint: disable-next-line(unsafe-typecast)
            s = abi.encodePacked(s, uint32(x * 0x01010101));
        }
    }

    /// A final state that exited with `exitCode` (`status` 1 = exited) holding `commitment` in
    /// the output region of `len` bytes, and its output-region siblings.
    function finalStateWith(bytes32 commitment, uint256 len, uint8 status, uint32 exitCode)
        internal
        pure
        returns (bytes memory state, bytes32[] memory siblings)
    {
        bytes32 memRoot;
        (memRoot, siblings) = outputRegion(commitment, len);
        state = encodeState(memRoot, 0x1F0, 90_210, status, exitCode);
    }

    // ------------------------------------------------------------------ handover proofs

    /// The node's VM pre-state from its descriptor fields and input values (image layout of
    /// docs/spec/node-image.md through Handover.preStateHash).
    function preStateOf(uint256 node, bytes32[] memory inputValues) internal view returns (bytes32) {
        NodeSpec memory s = nodeSpec(node);
        Handover.ImageRoots memory r;
        r.codeRoot = s.codeRoot;
        r.codeLen = s.codeLen;
        r.paramRoot = s.argsRoot;
        r.paramLen = s.argsLen;
        r.inputRoots = inputValues;
        r.inputLens = new uint256[](s.inputLens.length);
        for (uint256 i = 0; i < s.inputLens.length; i++) {
            r.inputLens[i] = s.inputLens[i];
        }
        r.weightRoots = s.weightRoots;
        r.weightLens = new uint256[](s.weightLens.length);
        for (uint256 i = 0; i < s.weightLens.length; i++) {
            r.weightLens[i] = s.weightLens[i];
        }
        r.outputLen = s.outputLen;
        return Handover.preStateHash(r);
    }

    /// The correct handover proof of node `node` for the trace `outs` (S_node -> S_node+1).
    function handoverProof(bytes32[] memory outs, uint256 node)
        internal
        view
        returns (OptimisticML.HandoverProof memory p)
    {
        bytes32[] memory pre = slotLeaves(outs, node);
        NodeSpec memory s = nodeSpec(node);
        p.output = outs[node];
        p.updateSiblings = merkleSiblings(pre, inputCount + node);
        p.descriptor = descriptors[node];
        p.descriptorSiblings = descriptorSiblings(node);
        p.inputValues = new bytes32[](s.inputSlots.length);
        p.inputSiblings = new bytes32[][](s.inputSlots.length);
        for (uint256 i = 0; i < s.inputSlots.length; i++) {
            p.inputValues[i] = pre[s.inputSlots[i]];
            p.inputSiblings[i] = merkleSiblings(pre, s.inputSlots[i]);
        }
        (p.finalState, p.outputRegionSiblings) = finalStateWith(outs[node], s.outputLen, 1, 0);
    }

    /// The pre-state the game must derive at node `node`'s handover for the trace `outs`.
    function handoverPreState(bytes32[] memory outs, uint256 node) internal view returns (bytes32) {
        OptimisticML.HandoverProof memory p = handoverProof(outs, node);
        return preStateOf(node, p.inputValues);
    }

    // ------------------------------------------------------------------ step views

    function top() internal view returns (uint256) {
        return uint256(1) << cfg.vmDepth;
    }

    /// The default disputed step: past the middle, clear of both ends.
    function defaultLeafStep() internal view returns (uint256) {
        return (top() * 5) / 8 + 1;
    }

    /// A player's step trace for a node whose handover gave (pre, fin): agrees on [0, t] with
    /// the other player, holds the real vector's state at t, and `atT1` at t + 1.
    function stepView(bytes32 pre, bytes32 fin, uint256 t, bytes32 atT1, bytes32 tag)
        internal
        view
        returns (StepView memory v)
    {
        assertTrue(t >= 1 && t + 1 < top(), "leaf step inside (0, 2^D - 1)");
        v = StepView(pre, fin, t, keccak256(vecState), atT1, tag);
    }

    function stepHash(StepView memory v, uint256 x) internal view returns (bytes32) {
        if (x == 0) return v.pre;
        if (x == top()) return v.fin;
        if (x < v.t) return keccak256(abi.encode("agreed step", v.pre, x));
        if (x == v.t) return v.atT;
        if (x == v.t + 1) return v.atT1;
        return keccak256(abi.encode(v.tag, x));
    }

    // ------------------------------------------------------------------ reading the game

    /// The one adapter over the game's view struct.
    function gv(uint256 gameId) internal view returns (G memory g) {
        OptimisticML.GameView memory v = game.gameOf(gameId);
        g.phase = v.phase;
        g.turn = v.turn;
        g.lo = v.lo;
        g.hi = v.hi;
        g.hashLo = v.hashLo;
        g.hashHi = v.hashHi;
        g.pendingHash = v.pendingHash;
        g.submitterClock = v.submitterClock;
        g.challengerClock = v.challengerClock;
        g.lastMove = v.lastMove;
        g.node = v.node;
        g.winner = v.winner;
    }

    /// The pull-payment credit of `account`.
    function credit(address account) internal view returns (uint256) {
        return game.credits(account);
    }

    function claimVoided(uint256 claimId) internal view returns (bool) {
        return game.claimOf(claimId).voided;
    }

    function claimFinalized(uint256 claimId) internal view returns (bool) {
        return game.claimOf(claimId).finalized;
    }

    /// The part of `bond` burnt when its owner loses.
    function burnOf(uint256 bond) internal view returns (uint256) {
        return (bond * cfg.burnBps) / 10_000;
    }

    /// The payout of a challenger that wins while the submitter bond is still locked.
    function challengerPrize() internal view returns (uint256) {
        return uint256(cfg.challengerBond) + cfg.submitterBond - burnOf(cfg.submitterBond);
    }

    /// The share of the voided submitter bond (less the burn) of each of `games` games open on
    /// the claim when it is voided (the voiding game's included).
    function voidShare(uint256 games) internal view returns (uint256) {
        return (uint256(cfg.submitterBond) - burnOf(cfg.submitterBond)) / games;
    }

    /// The payout of the challenger whose win voids the claim while `games` games are open on
    /// it (its own included): its bond, one share and the rounding dust.
    function voidingPrize(uint256 games) internal view returns (uint256) {
        return challengerPrize() - (games - 1) * voidShare(games);
    }

    /// The payout of a game abandoned after a claim was voided with `games` games open.
    function abandonPrize(uint256 games) internal view returns (uint256) {
        return uint256(cfg.challengerBond) + voidShare(games);
    }

    /// The payout of a submitter that wins one game.
    function submitterPrize() internal view returns (uint256) {
        return uint256(cfg.challengerBond) - burnOf(cfg.challengerBond);
    }

    /// The game's books balance: its ether equals what came in minus what went out.
    function assertConserved() internal view {
        assertEqUint(address(game).balance, game.totalIn() - game.totalOut(), "balance == totalIn - totalOut");
    }

    function phaseOf(uint256 gameId) internal view returns (OptimisticML.Phase) {
        return gv(gameId).phase;
    }

    /// The split points p_0..p_parts of [lo, hi] by the rule p_j = lo + (hi - lo) * j / parts,
    /// parts = min(arity, hi - lo) (computed here, not read from the game).
    function splitPoints(uint256 lo, uint256 hi) internal view returns (uint256[] memory p) {
        uint256 parts = hi - lo < cfg.arity ? hi - lo : cfg.arity;
        p = new uint256[](parts + 1);
        for (uint256 j = 0; j <= parts; j++) {
            p[j] = lo + ((hi - lo) * j) / parts;
        }
    }

    // ------------------------------------------------------------------ requests and claims

    /// The submitter posts the honest claim (no request); returns the claim id.
    function postHonestClaim() internal returns (uint256) {
        return postClaimFor(0, outputBytes, outputCommitment);
    }

    function postClaimFor(uint256 requestId, bytes memory out, bytes32 commitment) internal returns (uint256 id) {
        vm.prank(SUBMITTER);
        id = game.postClaim{value: cfg.submitterBond}(modelId, requestId, inputCommitments, inputBytes, out, commitment);
    }

    /// A claim of the wrong output `lie` (a 40-byte tensor different from the true one).
    function lyingOutput() internal view returns (bytes memory lie) {
        lie = bytes.concat(outputBytes);
        lie[7] = bytes1(uint8(lie[7]) ^ 0x5A);
    }

    function challengeAs(address who, uint256 claimId) internal returns (uint256 gameId) {
        vm.prank(who);
        gameId = game.challenge{value: cfg.challengerBond}(claimId);
    }

    // ------------------------------------------------------------------ moves

    function openWith(uint256 gameId, bytes32[] memory outs) internal {
        bytes32[] memory S = graphStates(outs);
        vm.prank(SUBMITTER);
        game.open(gameId, S[nodeCount], outputSiblings(outs));
    }

    /// The submitter's k-1 states of the current interval, from its belief `S` (graph phase).
    function graphStatesToPost(uint256 gameId, bytes32[] memory S) internal view returns (bytes32[] memory states) {
        G memory g = gv(gameId);
        uint256[] memory p = splitPoints(g.lo, g.hi);
        states = new bytes32[](p.length - 2);
        for (uint256 j = 1; j + 1 < p.length; j++) {
            states[j - 1] = S[p[j]];
        }
    }

    function stepStatesToPost(uint256 gameId, StepView memory v) internal view returns (bytes32[] memory states) {
        G memory g = gv(gameId);
        uint256[] memory p = splitPoints(g.lo, g.hi);
        states = new bytes32[](p.length - 2);
        for (uint256 j = 1; j + 1 < p.length; j++) {
            states[j - 1] = stepHash(v, p[j]);
        }
    }

    function post(uint256 gameId, bytes32[] memory states) internal {
        vm.prank(SUBMITTER);
        game.postStates(gameId, states);
    }

    function pickAs(address challenger, uint256 gameId, uint256 index, bytes32[] memory states) internal {
        vm.prank(challenger);
        game.pick(gameId, index, states);
    }

    /// The honest challenger's choice: the first sub-interval whose right end it disputes
    /// (`belief[j]` is its value at p_{j+1}; `states` what the submitter posted). If it agrees
    /// with every posted state it disputes the interval's end `hashHi` (it would not be
    /// playing otherwise), so the last part.
    function firstDisagreement(
        bytes32[] memory states,
        bytes32[] memory belief,
        bytes32 /* hashHi */
    )
        internal
        pure
        returns (uint256)
    {
        for (uint256 j = 0; j < states.length; j++) {
            if (states[j] != belief[j]) return j;
        }
        return states.length;
    }

    /// Plays the graph phase to its end: the submitter posts from `subS`, `challenger` picks
    /// the first disagreement with `chalS`. Returns the number of rounds.
    function playGraph(uint256 gameId, address challenger, bytes32[] memory subS, bytes32[] memory chalS)
        internal
        returns (uint256 rounds)
    {
        while (phaseOf(gameId) == OptimisticML.Phase.Graph) {
            bytes32[] memory states = graphStatesToPost(gameId, subS);
            bytes32[] memory belief = graphStatesToPost(gameId, chalS);
            post(gameId, states);
            pickAs(challenger, gameId, firstDisagreement(states, belief, gv(gameId).hashHi), states);
            rounds++;
        }
    }

    /// Plays the step phase to its end (same strategies over step views).
    function playSteps(uint256 gameId, address challenger, StepView memory sub, StepView memory chal)
        internal
        returns (uint256 rounds)
    {
        while (phaseOf(gameId) == OptimisticML.Phase.Steps) {
            bytes32[] memory states = stepStatesToPost(gameId, sub);
            bytes32[] memory belief = stepStatesToPost(gameId, chal);
            post(gameId, states);
            pickAs(challenger, gameId, firstDisagreement(states, belief, gv(gameId).hashHi), states);
            rounds++;
        }
    }

    function handoverAs(uint256 gameId, OptimisticML.HandoverProof memory p) internal {
        vm.prank(SUBMITTER);
        game.handover(gameId, p);
    }

    /// Hands node `node` of the trace `outs` over and checks the step interval the game
    /// derived: [0, 2^vmDepth] from the pre-state computed here to keccak256(final state).
    function handoverChecked(uint256 gameId, bytes32[] memory outs, uint256 node) internal {
        OptimisticML.HandoverProof memory p = handoverProof(outs, node);
        handoverAs(gameId, p);
        G memory g = gv(gameId);
        assertTrue(g.phase == OptimisticML.Phase.Steps, "steps phase after the handover");
        assertTrue(g.turn == OptimisticML.Side.Submitter, "submitter posts first");
        assertEqUint(g.node, node, "handed-over node");
        assertEqUint(g.lo, 0, "steps from 0");
        assertEqUint(g.hi, top(), "steps to 2^vmDepth");
        assertEq(g.hashLo, preStateOf(node, p.inputValues), "node pre-state hash");
        assertEq(g.hashHi, keccak256(p.finalState), "final state hash");
    }

    function resolveLeaf(uint256 gameId) internal {
        vm.prank(ANYONE);
        game.resolveStep(gameId, vecState, vecProof);
    }

    /// The submitter's honest step view after the honest handover of `node` (the real
    /// vector's post-state at t + 1).
    function honestStepView(bytes32[] memory outs, uint256 node, uint256 t) internal view returns (StepView memory) {
        OptimisticML.HandoverProof memory p = handoverProof(outs, node);
        return
            stepView(preStateOf(node, p.inputValues), keccak256(p.finalState), t, vecPost, keccak256("submitter trace"));
    }

    /// A view that agrees with `v` up to t and believes `atT1` at t + 1 (and something of its
    /// own after, the final state included).
    function otherStepView(StepView memory v, bytes32 atT1, bytes32 tag) internal pure returns (StepView memory w) {
        w = StepView(v.pre, keccak256(abi.encode(tag, "fin")), v.t, v.atT, atT1, tag);
    }

    /// Plays a whole honest-vs-lying dispute over node `node`: both agree on the graph trace
    /// before `node`, the challenger (lying) diverges from node `node` on; at the leaf the
    /// honest submitter's post-state is the real one. Returns (graph rounds, step rounds).
    function playHonestSubmitterToLeaf(uint256 gameId, address challenger, uint256 node, uint256 t)
        internal
        returns (uint256 graphRounds, uint256 stepRounds)
    {
        bytes32[] memory outs = honestOuts();
        openWith(gameId, outs);
        bytes32[] memory chalOuts = divergentOuts(node, keccak256("challenger lie"), keccak256("challenger output"));
        graphRounds = playGraph(gameId, challenger, graphStates(outs), graphStates(chalOuts));
        assertTrue(phaseOf(gameId) == OptimisticML.Phase.Handover, "graph phase ends at the handover");
        assertEqUint(gv(gameId).lo, node, "disputed node");
        handoverChecked(gameId, outs, node);
        StepView memory sub = honestStepView(outs, node, t);
        StepView memory chal = otherStepView(sub, keccak256("challenger step lie"), keccak256("challenger trace"));
        stepRounds = playSteps(gameId, challenger, sub, chal);
        assertTrue(phaseOf(gameId) == OptimisticML.Phase.Leaf, "step phase ends at the leaf");
    }
}
