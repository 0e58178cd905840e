// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {ModelRegistry} from "./ModelRegistry.sol";
import {Step} from "./Step.sol";
import {Handover} from "./Handover.sol";
import {HandoverVerifier} from "./HandoverVerifier.sol";
import {Dissection} from "./Dissection.sol";

/// @notice Receives the result of a finalized claim that fulfilled the consumer's request.
interface IOpmlConsumer {
    /// @notice Called once, by `finalize`, with a fixed gas budget; a revert is ignored.
    function opmlResult(uint256 requestId, uint256 claimId, bytes32 outputCommitment, bytes calldata output) external;
}

/// @title Optimistic ML: inference claims defended by a two-level k-ary dispute game.
/// @notice docs/spec/protocol.md describes the game as implemented here: requests, claims,
/// challenges, the graph-level dissection over graph states S_0..S_n, the handover to one
/// node's VM execution, the VM-level dissection over steps [0, 2^D], the one-step leaf,
/// chess clocks, and settlement with pull payments.
///
/// Every move checks, in this order: phase (and that the claim was not voided), turn,
/// caller, clock. Only hashes of posted states are stored; the states are in the events.
contract OptimisticML {
    // ------------------------------------------------------------------ types

    struct Config {
        uint64 arity;
        uint64 vmDepth;
        uint64 challengeWindow;
        uint64 clock;
        uint64 requestTimeout;
        uint64 callbackGas;
        uint128 submitterBond;
        uint128 challengerBond;
        uint16 burnBps;
    }

    /// Open: waiting for the submitter's S_n. Graph / Steps: dissection at the graph / VM
    /// level. Handover: one node isolated, waiting for the submitter's handover proof.
    /// Leaf: one VM step isolated, waiting for resolveStep. Ended: settled.
    enum Phase {
        Open,
        Graph,
        Handover,
        Steps,
        Leaf,
        Ended
    }

    enum Side {
        Submitter,
        Challenger
    }

    /// Why a game ended (GameEnded): a side's clock ran out, the leaf step was re-executed,
    /// or the game was abandoned because its claim was voided by another game.
    enum EndReason {
        Timeout,
        Step,
        Abandoned
    }

    enum RequestStatus {
        None,
        Open,
        Fulfilled,
        Cancelled
    }

    enum ClaimStatus {
        None,
        Active,
        Voided,
        Finalized
    }

    struct Request {
        bytes32 modelId;
        bytes32 inputsHash; // keccak256(abi.encodePacked(inputCommitments))
        address requester;
        uint64 timeoutFrom; // creation time, then the latest claim's deadline + 2 clocks
        RequestStatus status;
        address callback;
        uint96 fee;
    }

    struct Claim {
        address submitter;
        uint48 deadline; // challenge() before, finalize() from this timestamp
        uint32 openGames;
        ClaimStatus status;
        bool inputsPublished; // the claim (postClaim's inputBytes) carries every input's bytes
        bytes32 modelId;
        uint256 requestId;
        bytes32 outputCommitment;
        bytes32 inputState; // S_0
        bytes32 inputsHash; // keccak256(abi.encodePacked(inputCommitments))
    }

    /// Three packed slots, then the interval's end hashes and the pending states' hash.
    struct Game {
        address submitter;
        uint64 lo;
        uint32 node; // the node isolated by the graph level (valid from Steps on)
        address challenger;
        uint64 hi;
        Phase phase;
        bool pending; // the submitter's states for [lo, hi] are posted, the challenger picks
        Side winner;
        EndReason endReason;
        uint64 claimId;
        uint64 lastMove;
        uint64 submitterClock;
        uint64 challengerClock;
        bytes32 hashLo;
        bytes32 hashHi;
        bytes32 pendingHash; // keccak256(abi.encodePacked(states)) of the pending states
    }

    struct HandoverProof {
        bytes32 output;
        bytes32[] updateSiblings;
        bytes descriptor;
        bytes32[] descriptorSiblings;
        bytes32[] inputValues;
        bytes32[][] inputSiblings;
        bytes finalState;
        bytes32[] outputRegionSiblings;
    }

    struct ClaimView {
        address submitter;
        bytes32 modelId;
        uint256 requestId;
        bytes32 outputCommitment;
        bytes32 inputState;
        uint64 deadline;
        uint32 openGames;
        bool voided;
        bool finalized;
        bool inputsPublished;
    }

    struct GameView {
        uint256 claimId;
        address submitter;
        address challenger;
        Phase phase;
        Side turn;
        uint64 lo;
        uint64 hi;
        bytes32 hashLo;
        bytes32 hashHi;
        bool pending;
        bytes32 pendingHash;
        uint64 submitterClock;
        uint64 challengerClock;
        uint64 lastMove;
        uint32 node;
        Side winner;
        EndReason endReason;
    }

    // ------------------------------------------------------------------ events

    event Requested(
        uint256 indexed requestId,
        bytes32 modelId,
        address requester,
        uint256 fee,
        address callback,
        bytes32[] inputCommitments
    );
    event RequestCancelled(uint256 indexed requestId);
    event ClaimPosted(
        uint256 indexed claimId,
        bytes32 modelId,
        uint256 requestId,
        address submitter,
        bytes32[] inputCommitments,
        bytes inputBytes,
        bytes output,
        bytes32 outputCommitment,
        uint64 deadline
    );
    event Challenged(uint256 indexed gameId, uint256 claimId, address challenger, bytes32 s0);
    event Opened(uint256 indexed gameId, bytes32 finalGraphState);
    event StatesPosted(uint256 indexed gameId, Phase phase, uint64 lo, uint64 hi, bytes32[] states);
    event Picked(
        uint256 indexed gameId, Phase phase, uint256 index, uint64 lo, uint64 hi, bytes32 hashLo, bytes32 hashHi
    );
    event HandedOver(uint256 indexed gameId, uint32 node, bytes32 output, bytes32 preStateHash, bytes32 finalStateHash);
    event StepResolved(uint256 indexed gameId, uint64 step, bytes32 postStateHash);
    event GameEnded(uint256 indexed gameId, Side winner, EndReason reason);
    event ClaimVoided(uint256 indexed claimId, uint256 gameId);
    event ClaimFinalized(uint256 indexed claimId, address submitter, bytes32 outputCommitment);
    event Withdrawn(address indexed account, uint256 amount);

    // ------------------------------------------------------------------ errors

    error BadConfig(string why);
    error ZeroChallengeWindow();
    error ZeroClock();
    error ZeroBond();
    error CallbackGasTooHigh(uint256 callbackGas, uint256 max);
    error Reentrancy();
    error WrongValue(uint256 value);
    error UnknownRequest(uint256 requestId);
    error NotRequester();
    error RequestClosed(uint256 requestId);
    error RequestNotExpired(uint256 expiresAt);
    error RequestMismatch(uint256 requestId);
    error BadOutput();
    error UnknownClaim(uint256 claimId);
    error UnknownGame(uint256 gameId);
    error WindowClosed(uint256 deadline);
    error WindowOpen(uint256 deadline);
    error ClaimVoidedError(uint256 claimId);
    error ClaimNotVoided(uint256 claimId);
    error GamesOpen(uint256 openGames);
    error AlreadyFinalized(uint256 claimId);
    error WrongPhase(Phase phase);
    error NotYourTurn();
    error NotParty();
    error ClockRunOut();
    error ClockNotRunOut();
    error BadStates(uint256 length);
    error StatesMismatch();
    error PickOutOfRange(uint256 index, uint256 parts);
    error BadOutputProof();
    error BadUpdateProof();
    error BadDescriptorProof();
    error WrongOutputSlot(uint256 slot, uint256 expected);
    error InputCountMismatch(uint256 descriptorInputs, uint256 values, uint256 siblings);
    error BadInputProof(uint256 i);
    error BadFinalState();
    error StateMismatch();
    error InsufficientGas();
    error NothingToWithdraw();
    error TransferFailed();

    // ------------------------------------------------------------------ state

    /// The dissection phases (a set of phase bits): Graph and Steps.
    uint256 private constant DISSECTING = (1 << uint256(Phase.Graph)) | (1 << uint256(Phase.Steps));
    /// The largest callbackGas the constructor accepts: a third of a 30M-gas block, so that
    /// `finalize` (callbackGas + 5,000 + 1/64 withheld by EIP-150 + its own cost) always fits
    /// in a block.
    uint256 internal constant MAX_CALLBACK_GAS = 10_000_000;

    /// The registry the claims' models are read from.
    ModelRegistry public immutable registry;
    /// The one-step verifier of the leaf.
    Step public immutable stepVerifier;
    /// The handover checks (deployed by the constructor; see HandoverVerifier).
    HandoverVerifier public immutable handoverVerifier;
    uint256 internal immutable arity;
    uint256 internal immutable vmDepth;
    uint256 internal immutable challengeWindow;
    uint256 internal immutable clockBudget;
    uint256 internal immutable requestTimeout;
    /// challengeWindow + 2 clocks: from a claim's posting until every game on it can be ended.
    uint256 internal immutable claimSpan;
    uint256 internal immutable callbackGas;
    uint256 internal immutable submitterBond;
    uint256 internal immutable challengerBond;
    uint256 internal immutable burnBps;

    /// Every wei accepted (request fees and bonds).
    uint256 public totalIn;
    /// Every wei sent out (withdrawals and burns). balance == totalIn - totalOut.
    uint256 public totalOut;
    /// Ids handed out so far (each kind starts at 1).
    uint256 public requestCount;
    uint256 public claimCount;
    uint256 public gameCount;

    /// Requests by id (public getter: the fields of Request in order).
    mapping(uint256 => Request) public requests;
    mapping(uint256 => Claim) internal claims;
    mapping(uint256 => Game) internal games;
    /// The claimed output bytes of each claim.
    mapping(uint256 => bytes) internal outputs;
    /// Pull payments: what each account can withdraw.
    mapping(address => uint256) public credits;
    /// The share of a voided claim's bond (less the burn) that each game still open when the
    /// claim was voided receives on top of its bond when abandoned (0 if no other game was open).
    mapping(uint256 => uint256) internal abandonShares;

    /// The reentrancy lock, 1 while held (transient storage: cleared at the end of the
    /// transaction). A whole word, not a bool: no masking on each read and write.
    uint256 private transient locked;

    /// One lock for every state-changing external function. Taking the lock is a function
    /// call, not inline code, because the modifier is expanded into every function it guards.
    modifier nonReentrant() {
        lock();
        _;
        locked = 0;
    }

    /// @notice Deploy a game over `registry`'s models with the step verifier `stepVerifier`.
    /// @dev Reverts BadConfig unless 2 <= arity <= 64, 1 <= vmDepth <= 48,
    /// 0 < burnBps <= 10000 and the durations fit 32 bits; then ZeroChallengeWindow (a claim
    /// could never be challenged), ZeroClock (no move could ever be made), ZeroBond (either
    /// bond) and CallbackGasTooHigh (callbackGas > MAX_CALLBACK_GAS: finalize would not fit in
    /// a block).
    constructor(ModelRegistry registry_, Step stepVerifier_, Config memory cfg) {
        if (cfg.arity < 2 || cfg.arity > 64) revert BadConfig("arity");
        if (cfg.vmDepth < 1 || cfg.vmDepth > 48) revert BadConfig("vmDepth");
        if (cfg.burnBps > 10000) revert BadConfig("burnBps");
        if (cfg.burnBps == 0) revert BadConfig("burnBps"); // a liar voiding its own claim must lose something
        if (cfg.challengeWindow > type(uint32).max || cfg.clock > type(uint32).max) revert BadConfig("duration");
        if (cfg.requestTimeout > type(uint32).max) revert BadConfig("duration");
        if (cfg.challengeWindow == 0) revert ZeroChallengeWindow();
        if (cfg.clock == 0) revert ZeroClock();
        if (cfg.submitterBond == 0 || cfg.challengerBond == 0) revert ZeroBond();
        if (cfg.callbackGas > MAX_CALLBACK_GAS) revert CallbackGasTooHigh(cfg.callbackGas, MAX_CALLBACK_GAS);
        registry = registry_;
        stepVerifier = stepVerifier_;
        handoverVerifier = new HandoverVerifier();
        arity = cfg.arity;
        vmDepth = cfg.vmDepth;
        challengeWindow = cfg.challengeWindow;
        clockBudget = cfg.clock;
        requestTimeout = cfg.requestTimeout;
        claimSpan = uint256(cfg.challengeWindow) + 2 * uint256(cfg.clock);
        callbackGas = cfg.callbackGas;
        submitterBond = cfg.submitterBond;
        challengerBond = cfg.challengerBond;
        burnBps = cfg.burnBps;
    }

    /// @notice The configuration this game was deployed with.
    // forge-lint: disable-next-item(unsafe-typecast)
    function config() external view returns (Config memory) {
        return Config(
            uint64(arity),
            uint64(vmDepth),
            uint64(challengeWindow),
            uint64(clockBudget),
            uint64(requestTimeout),
            uint64(callbackGas),
            uint128(submitterBond),
            uint128(challengerBond),
            uint16(burnBps)
        );
    }

    // ------------------------------------------------------------------ requests

    /// @notice Ask for an inference of `modelId` on the inputs with these commitments.
    /// @dev Checks in order: the registry's checkInputs without bytes (model registered, one
    /// commitment per input, short inputs' commitments zero past their length); fee < 2^96.
    /// The fee (msg.value, may be 0) goes to the submitter of the first claim on this request
    /// to finalize. `callback` (or address(0)) receives the result.
    /// @return requestId The request's id (from 1).
    function request(bytes32 modelId, bytes32[] calldata inputCommitments, address callback)
        external
        payable
        nonReentrant
        returns (uint256 requestId)
    {
        // Called for its checks only: a request stores the commitments, not the definition.
        // slither-disable-next-line unused-return
        registry.checkInputs(modelId, inputCommitments, "");
        if (msg.value > type(uint96).max) revert WrongValue(msg.value);
        requestId = ++requestCount;
        requests[requestId] = Request({
            modelId: modelId,
            inputsHash: keccak256(abi.encodePacked(inputCommitments)),
            requester: msg.sender,
            // forge-lint: disable-next-line(unsafe-typecast)
            timeoutFrom: uint64(block.timestamp),
            status: RequestStatus.Open,
            callback: callback,
            // forge-lint: disable-next-line(unsafe-typecast)
            fee: uint96(msg.value)
        });
        totalIn += msg.value;
        emit Requested(requestId, modelId, msg.sender, msg.value, callback, inputCommitments);
    }

    /// @notice Cancel an unfulfilled request after requestTimeout; the fee is credited back.
    /// The timeout runs from the request's creation and, once claims are posted on it, from
    /// the latest claim's deadline plus both clocks: by then every game on that claim can be
    /// ended, so the fee of a claim that wins cannot be clawed back by challenging it and
    /// waiting (its submitter has requestTimeout seconds to end the games and finalize).
    /// @dev Checks: request exists, caller is its requester, still open, timeout passed.
    function cancelRequest(uint256 requestId) external nonReentrant {
        Request storage r = requests[requestId];
        if (r.status == RequestStatus.None) revert UnknownRequest(requestId);
        if (msg.sender != r.requester) revert NotRequester();
        if (r.status != RequestStatus.Open) revert RequestClosed(requestId);
        uint256 expiresAt = uint256(r.timeoutFrom) + requestTimeout;
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp < expiresAt) revert RequestNotExpired(expiresAt);
        r.status = RequestStatus.Cancelled;
        credits[r.requester] += r.fee;
        emit RequestCancelled(requestId);
    }

    // ------------------------------------------------------------------ claims

    /// @notice Claim that `modelId` on `inputCommitments` outputs `output`.
    /// @dev Checks in order: msg.value == submitterBond; the registry's checkInputs (model
    /// registered, one commitment per model input, and inputBytes empty or every input's
    /// bytes at its registered length hashing to its commitment); requestId 0 or an open
    /// request for the same model and inputs; output.length == outputLen and
    /// bytesRoot(output) == outputCommitment. Stores the output bytes, S_0 and whether the
    /// inputs were published (non-empty inputBytes).
    /// @return claimId The claim's id (from 1).
    function postClaim(
        bytes32 modelId,
        uint256 requestId,
        bytes32[] calldata inputCommitments,
        bytes calldata inputBytes,
        bytes calldata output,
        bytes32 outputCommitment
    ) external payable nonReentrant returns (uint256 claimId) {
        if (msg.value != submitterBond) revert WrongValue(msg.value);
        (ModelRegistry.Definition memory m, bool published) =
            registry.checkInputs(modelId, inputCommitments, inputBytes);
        bytes32 inputsHash = keccak256(abi.encodePacked(inputCommitments));
        if (requestId != 0) checkRequestMatches(requestId, modelId, inputsHash);
        if (output.length != m.outputLen || Handover.bytesRoot(output) != outputCommitment) revert BadOutput();
        claimId = storeClaim(
            modelId, requestId, outputCommitment, initialState(inputCommitments, m.slotCount), inputsHash, published
        );
        outputs[claimId] = output;
        totalIn += msg.value;
        emitClaimPosted(claimId, inputCommitments, inputBytes, output);
    }

    /// @notice Challenge claim `claimId`: starts a two-party game against its submitter.
    /// @dev Checks: msg.value == challengerBond; claim exists, not voided, not finalized;
    /// before its deadline. The game starts in phase Open with the submitter to move, both
    /// clocks full and the interval's low end S_0.
    /// @return gameId The game's id (from 1).
    function challenge(uint256 claimId) external payable nonReentrant returns (uint256 gameId) {
        if (msg.value != challengerBond) revert WrongValue(msg.value);
        Claim storage c = activeClaim(claimId);
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp >= c.deadline) revert WindowClosed(c.deadline);
        c.openGames += 1;
        gameId = ++gameCount;
        Game storage g = games[gameId];
        g.submitter = c.submitter;
        g.challenger = msg.sender;
        // forge-lint: disable-next-line(unsafe-typecast)
        g.claimId = uint64(claimId);
        // forge-lint: disable-next-line(unsafe-typecast)
        g.lastMove = uint64(block.timestamp);
        // forge-lint: disable-next-line(unsafe-typecast)
        g.submitterClock = uint64(clockBudget);
        // forge-lint: disable-next-line(unsafe-typecast)
        g.challengerClock = uint64(clockBudget);
        g.hashLo = c.inputState;
        totalIn += msg.value;
        emit Challenged(gameId, claimId, msg.sender, c.inputState);
    }

    /// @notice Finalize an undefeated claim after its window: credits the submitter's bond
    /// (and the request fee if this claim fulfils the request) and calls the consumer.
    /// @dev Checks: claim exists, not voided, not finalized, window over, no open game.
    /// The callback gets exactly callbackGas (InsufficientGas if the caller sent too
    /// little to forward it); its failure or return data is ignored.
    function finalize(uint256 claimId) external nonReentrant {
        Claim storage c = activeClaim(claimId);
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp < c.deadline) revert WindowOpen(c.deadline);
        if (c.openGames != 0) revert GamesOpen(c.openGames);
        c.status = ClaimStatus.Finalized;
        address submitter = c.submitter;
        credits[submitter] += submitterBond;
        emit ClaimFinalized(claimId, submitter, c.outputCommitment);
        if (c.requestId != 0) fulfil(c.requestId, claimId, submitter, c.outputCommitment);
    }

    /// @notice The claim's status, what it answers and its claimed output: `finalized` says the
    /// output can be used, as the output of model `modelId` on the inputs whose commitments
    /// hash to `inputsHash` (keccak256(abi.encodePacked(inputCommitments))). A consumer handed
    /// a claim id must check both against the model and inputs it asked about.
    /// `inputsPublished` says the claim carried its inputs' bytes, so anyone could re-run it
    /// during the window; when false, only holders of the inputs could check it, and a
    /// consumer relying on third-party challengers must refuse it.
    function result(uint256 claimId)
        external
        view
        returns (
            bool finalized,
            bytes32 modelId,
            bytes32 inputsHash,
            bool inputsPublished,
            bytes32 outputCommitment,
            bytes memory output
        )
    {
        Claim storage c = claims[claimId];
        if (c.status == ClaimStatus.None) revert UnknownClaim(claimId);
        return (
            c.status == ClaimStatus.Finalized,
            c.modelId,
            c.inputsHash,
            c.inputsPublished,
            c.outputCommitment,
            outputs[claimId]
        );
    }

    /// @notice Pay the caller everything credited to it (pull payment; zeroed before the call).
    function withdraw() external nonReentrant {
        uint256 amount = credits[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        credits[msg.sender] = 0;
        send(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }

    // ------------------------------------------------------------------ game moves

    /// @notice Submitter's first move: the final graph state S_n, proven to hold the claimed
    /// output commitment in the model's output slot.
    /// @dev Checks: phase Open, submitter's turn, caller submitter, clock; then the slot
    /// proof (BadOutputProof). Next phase: Handover if the model has one node, else Graph.
    function open(uint256 gameId, bytes32 finalGraphState, bytes32[] calldata outputSiblings) external nonReentrant {
        (Game storage g, Claim storage c) = enterMove(gameId, Side.Submitter, bit(Phase.Open));
        ModelRegistry.Definition memory m = registry.definition(c.modelId);
        if (!Handover.verifySlotProof(finalGraphState, m.slotCount, m.outputSlot, c.outputCommitment, outputSiblings)) {
            revert BadOutputProof();
        }
        g.hi = m.nodeCount;
        g.hashHi = finalGraphState;
        g.phase = m.nodeCount == 1 ? Phase.Handover : Phase.Graph;
        emit Opened(gameId, finalGraphState);
    }

    /// @notice Submitter posts the hashes at the inner points p_1..p_{parts-1} of [lo, hi].
    /// @dev Checks: phase Graph or Steps, nothing pending (else NotYourTurn), caller
    /// submitter, clock; states.length == parts - 1 (BadStates). Only their hash is stored.
    function postStates(uint256 gameId, bytes32[] calldata states) external nonReentrant {
        (Game storage g,) = enterMove(gameId, Side.Submitter, DISSECTING);
        uint256 n = Dissection.parts(g.lo, g.hi, arity);
        if (states.length != n - 1) revert BadStates(states.length);
        g.pendingHash = keccak256(abi.encodePacked(states));
        g.pending = true;
        emit StatesPosted(gameId, g.phase, g.lo, g.hi, states);
    }

    /// @notice Challenger picks the first piece [p_index, p_{index+1}] it disputes,
    /// repeating the posted states.
    /// @dev Checks: phase Graph or Steps, states pending (else NotYourTurn), caller
    /// challenger, clock; states hash to the pending hash (StatesMismatch); index < parts
    /// (PickOutOfRange). A piece of width 1 moves Graph -> Handover, Steps -> Leaf.
    function pick(uint256 gameId, uint256 index, bytes32[] calldata states) external nonReentrant {
        (Game storage g,) = enterMove(gameId, Side.Challenger, DISSECTING);
        if (keccak256(abi.encodePacked(states)) != g.pendingHash) revert StatesMismatch();
        uint256 lo = g.lo;
        uint256 hi = g.hi;
        uint256 n = Dissection.parts(lo, hi, arity);
        if (index >= n) revert PickOutOfRange(index, n);
        if (index > 0) g.hashLo = states[index - 1];
        if (index < n - 1) g.hashHi = states[index];
        // forge-lint: disable-next-line(unsafe-typecast)
        uint64 newLo = uint64(Dissection.point(lo, hi, n, index));
        // forge-lint: disable-next-line(unsafe-typecast)
        uint64 newHi = uint64(Dissection.point(lo, hi, n, index + 1));
        Phase phase = g.phase;
        g.lo = newLo;
        g.hi = newHi;
        g.pending = false;
        if (newHi - newLo == 1) g.phase = phase == Phase.Graph ? Phase.Handover : Phase.Leaf;
        emit Picked(gameId, phase, index, newLo, newHi, g.hashLo, g.hashHi);
    }

    /// @notice Submitter proves that the isolated node lo's step S_lo -> S_lo+1 starts a VM
    /// execution (pre-state from the model and S_lo) that ends exited with the node's output.
    /// @dev Checks: phase Handover, submitter's turn, caller submitter, clock; then in order
    /// BadUpdateProof, BadDescriptorProof, BadDescriptor (decoding), WrongOutputSlot,
    /// InputCountMismatch, BadInputProof(i), BadFinalState. Next phase: Steps over
    /// [0, 2^vmDepth] from the pre-state hash to keccak256(finalState).
    function handover(
        uint256 gameId,
        HandoverProof calldata /* p: forwarded raw */
    )
        external
        nonReentrant
    {
        (Game storage g, Claim storage c) = enterMove(gameId, Side.Submitter, bit(Phase.Handover));
        ModelRegistry.Definition memory m = registry.definition(c.modelId);
        // forge-lint: disable-next-line(unsafe-typecast)
        uint32 node = uint32(g.lo);
        (bytes32 pre, bytes32 finalHash, bytes32 output) = verifyHandover(
            HandoverVerifier.NodeStep(m.root, m.nodeCount, m.inputCount, m.slotCount, node, g.hashLo, g.hashHi)
        );
        g.phase = Phase.Steps;
        g.node = node;
        g.lo = 0;
        // forge-lint: disable-next-line(unsafe-typecast)
        g.hi = uint64(uint256(1) << vmDepth); // vmDepth <= 48
        g.hashLo = pre;
        g.hashHi = finalHash;
        emit HandedOver(gameId, node, output, pre, finalHash);
    }

    /// @notice Anyone settles the isolated VM step: re-executes it from the agreed state.
    /// @dev Checks: phase Leaf, challenger's clock not run out (ClockRunOut),
    /// keccak256(state) == hashLo (StateMismatch); a revert of the step verifier bubbles
    /// up. The submitter wins iff the post-state hash equals hashHi.
    function resolveStep(uint256 gameId, bytes calldata state, bytes calldata proof) external nonReentrant {
        (Game storage g, Claim storage c) = loadGame(gameId);
        checkPhase(g, c, g.phase == Phase.Leaf);
        if (elapsed(g) > g.challengerClock) revert ClockRunOut();
        if (keccak256(state) != g.hashLo) revert StateMismatch();
        bytes32 post = stepVerifier.step(state, proof);
        emit StepResolved(gameId, g.lo, post);
        endGame(gameId, g, c, post == g.hashHi ? Side.Submitter : Side.Challenger, EndReason.Step);
    }

    /// @notice Anyone ends a game whose side to move has spent more than its clock: it loses.
    /// @dev Side to move: Open, Handover, Graph/Steps with nothing pending -> submitter;
    /// states pending, Leaf -> challenger. Reverts ClockNotRunOut while time is left, and
    /// ClaimVoidedError if the claim was voided (use abandon).
    function timeout(uint256 gameId) external nonReentrant {
        (Game storage g, Claim storage c) = loadGame(gameId);
        checkPhase(g, c, g.phase != Phase.Ended);
        Side side = turnOf(g);
        if (elapsed(g) <= clockOf(g, side)) revert ClockNotRunOut();
        endGame(gameId, g, c, side == Side.Submitter ? Side.Challenger : Side.Submitter, EndReason.Timeout);
    }

    /// @notice Anyone ends a game whose claim another game voided: no loser, the challenger's
    /// bond is credited back in full, plus its share of the voided bond (see endGame).
    function abandon(uint256 gameId) external nonReentrant {
        (Game storage g, Claim storage c) = loadGame(gameId);
        if (g.phase == Phase.Ended) revert WrongPhase(Phase.Ended);
        if (c.status != ClaimStatus.Voided) revert ClaimNotVoided(g.claimId);
        // The claim is voided, so endGame credits the challenger its bond and its share.
        endGame(gameId, g, c, Side.Challenger, EndReason.Abandoned);
    }

    // ------------------------------------------------------------------ views

    /// @notice A claim's fields (see ClaimView).
    function claimOf(uint256 claimId) external view returns (ClaimView memory v) {
        Claim storage c = claims[claimId];
        if (c.status == ClaimStatus.None) revert UnknownClaim(claimId);
        v = ClaimView({
            submitter: c.submitter,
            modelId: c.modelId,
            requestId: c.requestId,
            outputCommitment: c.outputCommitment,
            inputState: c.inputState,
            deadline: c.deadline,
            openGames: c.openGames,
            voided: c.status == ClaimStatus.Voided,
            finalized: c.status == ClaimStatus.Finalized,
            inputsPublished: c.inputsPublished
        });
    }

    /// @notice A game's fields (see GameView); clocks as of the last move.
    function gameOf(uint256 gameId) external view returns (GameView memory v) {
        (Game storage g,) = loadGame(gameId);
        v.claimId = g.claimId;
        v.submitter = g.submitter;
        v.challenger = g.challenger;
        v.phase = g.phase;
        v.turn = turnOf(g);
        v.lo = g.lo;
        v.hi = g.hi;
        v.hashLo = g.hashLo;
        v.hashHi = g.hashHi;
        v.pending = g.pending;
        v.pendingHash = g.pendingHash;
        v.submitterClock = g.submitterClock;
        v.challengerClock = g.challengerClock;
        v.lastMove = g.lastMove;
        v.node = g.node;
        v.winner = g.winner;
        v.endReason = g.endReason;
    }

    /// @notice Number of pieces the current interval [lo, hi] is cut into: min(arity, hi - lo).
    function parts(uint256 gameId) external view returns (uint256) {
        (Game storage g,) = loadGame(gameId);
        return Dissection.parts(g.lo, g.hi, arity);
    }

    /// @notice The points p_0..p_parts of the current interval (p_0 = lo, p_parts = hi).
    function points(uint256 gameId) external view returns (uint64[] memory ps) {
        (Game storage g,) = loadGame(gameId);
        uint256 lo = g.lo;
        uint256 hi = g.hi;
        uint256 n = Dissection.parts(lo, hi, arity);
        ps = new uint64[](n + 1);
        for (uint256 j = 0; j <= n; j++) {
            // forge-lint: disable-next-line(unsafe-typecast)
            ps[j] = uint64(Dissection.point(lo, hi, n == 0 ? 1 : n, j));
        }
    }

    // ------------------------------------------------------------------ internals: moves

    /// Take the reentrancy lock (Reentrancy if it is held).
    function lock() private {
        if (locked != 0) revert Reentrancy();
        locked = 1;
    }

    /// A game that exists, with its claim.
    function loadGame(uint256 gameId) private view returns (Game storage g, Claim storage c) {
        g = games[gameId];
        if (g.claimId == 0) revert UnknownGame(gameId);
        c = claims[g.claimId];
    }

    /// The bit of `phase` in a set of phases.
    function bit(Phase phase) private pure returns (uint256) {
        return 1 << uint256(phase);
    }

    /// The checks of every move, in order: phase in the set `phases` (and claim not
    /// voided), turn, caller, clock; then charges the mover's clock.
    function enterMove(uint256 gameId, Side side, uint256 phases) private returns (Game storage g, Claim storage c) {
        (g, c) = loadGame(gameId);
        checkPhase(g, c, bit(g.phase) & phases != 0);
        if (turnOf(g) != side) revert NotYourTurn();
        if (msg.sender != (side == Side.Submitter ? g.submitter : g.challenger)) revert NotParty();
        spendClock(g, side);
    }

    /// Phase check: `phaseOk` (computed by the caller) and the claim not voided.
    function checkPhase(Game storage g, Claim storage c, bool phaseOk) private view {
        if (!phaseOk) revert WrongPhase(g.phase);
        if (c.status == ClaimStatus.Voided) revert ClaimVoidedError(g.claimId);
    }

    /// The side to move (Ended games report the submitter; no move is possible).
    function turnOf(Game storage g) private view returns (Side) {
        Phase phase = g.phase;
        if (phase == Phase.Leaf) return Side.Challenger;
        if ((phase == Phase.Graph || phase == Phase.Steps) && g.pending) return Side.Challenger;
        return Side.Submitter;
    }

    /// Seconds since the last move (or the challenge).
    function elapsed(Game storage g) private view returns (uint256) {
        return block.timestamp - g.lastMove;
    }

    /// Remaining clock of `side` as of the last move.
    function clockOf(Game storage g, Side side) private view returns (uint256) {
        return side == Side.Submitter ? g.submitterClock : g.challengerClock;
    }

    /// Charge the mover's clock with the time since the last move (ClockRunOut if it
    /// exceeds what is left).
    function spendClock(Game storage g, Side side) private {
        uint256 spent = elapsed(g);
        uint256 left = clockOf(g, side);
        if (spent > left) revert ClockRunOut();
        // clocks and timestamps fit 64 bits (clock budget < 2^32 s)
        // forge-lint: disable-next-line(unsafe-typecast)
        uint64 leftAfter = uint64(left - spent);
        if (side == Side.Submitter) g.submitterClock = leftAfter;
        else g.challengerClock = leftAfter;
        // forge-lint: disable-next-line(unsafe-typecast)
        g.lastMove = uint64(block.timestamp);
    }

    // ------------------------------------------------------------------ internals: handover

    /// Call handoverVerifier.verify(s, p) with this call's HandoverProof forwarded as raw
    /// calldata (its ABI encoding only has offsets relative to its own start, so the bytes
    /// from its start to the end of calldata are its encoding as verify's second argument;
    /// the verifier's decoder checks them). A failed check's revert bubbles up.
    function verifyHandover(HandoverVerifier.NodeStep memory s)
        private
        view
        returns (bytes32 pre, bytes32 finalHash, bytes32 output)
    {
        bytes4 selector = HandoverVerifier.verify.selector;
        address verifier = address(handoverVerifier);
        assembly ("memory-safe") {
            // handover(uint256, HandoverProof): the proof's offset is the second head word
            let pStart := add(4, calldataload(0x24))
            if gt(pStart, calldatasize()) { revert(0, 0) }
            let pLen := sub(calldatasize(), pStart)
            let buf := mload(0x40)
            mstore(buf, selector)
            // NodeStep is static: its 7 words inline, then the proof's offset (8 head words)
            for { let i := 0 } lt(i, 7) { i := add(i, 1) } {
                mstore(add(add(buf, 4), shl(5, i)), mload(add(s, shl(5, i))))
            }
            mstore(add(buf, 228), 0x100)
            calldatacopy(add(buf, 260), pStart, pLen)
            let ok := staticcall(gas(), verifier, buf, add(260, pLen), 0, 0)
            if iszero(ok) {
                returndatacopy(buf, 0, returndatasize())
                revert(buf, returndatasize())
            }
            if lt(returndatasize(), 96) { revert(0, 0) }
            returndatacopy(buf, 0, 96)
            pre := mload(buf)
            finalHash := mload(add(buf, 0x20))
            output := mload(add(buf, 0x40))
        }
    }

    // ------------------------------------------------------------------ internals: settlement

    /// End the game: `winner` is paid (see docs/spec/protocol.md §Settlement). The game that
    /// voids the claim shares the submitter bond (less the burn) with every game still open on
    /// the claim (one share each, the rounding dust to the voiding game); such a game, ended
    /// only by `abandon`, gets its own bond back and its share.
    function endGame(uint256 gameId, Game storage g, Claim storage c, Side winner, EndReason reason) private {
        g.phase = Phase.Ended;
        g.winner = winner;
        g.endReason = reason;
        c.openGames -= 1;
        if (winner == Side.Submitter) {
            uint256 burnt = burnShare(challengerBond);
            credits[g.submitter] += challengerBond - burnt;
            burn(burnt);
        } else {
            uint256 reward = challengerBond;
            uint256 burnt = 0;
            uint256 claimId = g.claimId;
            if (c.status == ClaimStatus.Active) {
                burnt = burnShare(submitterBond);
                uint256 pool = submitterBond - burnt;
                uint256 sharers = c.openGames; // those still open, to be abandoned
                if (sharers != 0) {
                    unchecked {
                        sharers += 1; // and this one (openGames < 2^32)
                    }
                    uint256 share = pool / sharers;
                    abandonShares[claimId] = share;
                    pool = share + pool % sharers; // one share and the rounding dust
                }
                reward += pool;
                c.status = ClaimStatus.Voided;
                emit ClaimVoided(claimId, gameId);
            } else {
                reward += abandonShares[claimId];
            }
            credits[g.challenger] += reward;
            burn(burnt);
        }
        emit GameEnded(gameId, winner, reason);
    }

    /// The burnt part of a loser's bond.
    function burnShare(uint256 bond) private view returns (uint256) {
        return bond * burnBps / 10000;
    }

    /// Send `amount` to address(0).
    function burn(uint256 amount) private {
        if (amount != 0) send(address(0), amount);
    }

    /// Send `amount` wei to `to`, counting it in totalOut. The only recipients are
    /// msg.sender in `withdraw` (its own credit, zeroed before) and address(0) in `burn`.
    function send(address to, uint256 amount) private {
        totalOut += amount;
        // Not an arbitrary recipient: `to` is the withdrawing caller or address(0) (see above).
        // slither-disable-next-line arbitrary-send-eth
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    // ------------------------------------------------------------------ internals: claims

    /// Emit ClaimPosted for the stored claim `claimId` (memory copies keep the stack shallow).
    function emitClaimPosted(
        uint256 claimId,
        bytes32[] memory inputCommitments,
        bytes memory inputBytes,
        bytes memory output
    ) private {
        Claim storage c = claims[claimId];
        emit ClaimPosted(
            claimId,
            c.modelId,
            c.requestId,
            c.submitter,
            inputCommitments,
            inputBytes,
            output,
            c.outputCommitment,
            c.deadline
        );
    }

    /// A claim that exists and is neither voided nor finalized.
    function activeClaim(uint256 claimId) private view returns (Claim storage c) {
        c = claims[claimId];
        ClaimStatus status = c.status;
        if (status == ClaimStatus.None) revert UnknownClaim(claimId);
        if (status == ClaimStatus.Voided) revert ClaimVoidedError(claimId);
        if (status == ClaimStatus.Finalized) revert AlreadyFinalized(claimId);
    }

    /// The claim's request is open and asks for the same model and inputs; its timeout now
    /// runs from this claim's deadline plus both clocks (see cancelRequest).
    function checkRequestMatches(uint256 requestId, bytes32 modelId, bytes32 inputsHash) private {
        Request storage r = requests[requestId];
        if (r.status == RequestStatus.None) revert UnknownRequest(requestId);
        if (r.status != RequestStatus.Open) revert RequestClosed(requestId);
        if (r.modelId != modelId || r.inputsHash != inputsHash) revert RequestMismatch(requestId);
        // forge-lint: disable-next-line(unsafe-typecast)
        r.timeoutFrom = uint64(block.timestamp + claimSpan);
    }

    /// Store a new active claim by msg.sender; returns its id.
    function storeClaim(
        bytes32 modelId,
        uint256 requestId,
        bytes32 outputCommitment,
        bytes32 s0,
        bytes32 inputsHash,
        bool inputsPublished
    ) private returns (uint256 claimId) {
        claimId = ++claimCount;
        claims[claimId] = Claim({
            submitter: msg.sender,
            // forge-lint: disable-next-line(unsafe-typecast)
            deadline: uint48(block.timestamp + challengeWindow),
            openGames: 0,
            status: ClaimStatus.Active,
            inputsPublished: inputsPublished,
            modelId: modelId,
            requestId: requestId,
            outputCommitment: outputCommitment,
            inputState: s0,
            inputsHash: inputsHash
        });
    }

    /// S_0: the root over `slotCount` slots holding the input commitments in slots
    /// 0..m-1 and zero elsewhere, hashing only the non-zero prefix of each level.
    function initialState(bytes32[] calldata inputCommitments, uint32 slotCount) private pure returns (bytes32) {
        bytes32[] memory level = inputCommitments;
        uint256 len = level.length;
        bytes32 zero = bytes32(0);
        for (uint256 width = slotCount; width > 1; width >>= 1) {
            uint256 next = (len + 1) >> 1;
            for (uint256 i = 0; i < next; i++) {
                bytes32 right = 2 * i + 1 < len ? level[2 * i + 1] : zero;
                level[i] = Handover.hashPair(level[2 * i], right);
            }
            len = next;
            zero = Handover.hashPair(zero, zero);
        }
        return level[0];
    }

    /// Credit the request fee to the submitter if the request is still open, mark it
    /// fulfilled and call its consumer.
    function fulfil(uint256 requestId, uint256 claimId, address submitter, bytes32 outputCommitment) private {
        Request storage r = requests[requestId];
        if (r.status != RequestStatus.Open) return;
        r.status = RequestStatus.Fulfilled;
        credits[submitter] += r.fee;
        address callback = r.callback;
        if (callback != address(0)) callConsumer(callback, requestId, claimId, outputCommitment);
    }

    /// Call the consumer with exactly callbackGas, ignoring its outcome and return data.
    function callConsumer(address callback, uint256 requestId, uint256 claimId, bytes32 outputCommitment) private {
        bytes memory data =
            abi.encodeCall(IOpmlConsumer.opmlResult, (requestId, claimId, outputCommitment, outputs[claimId]));
        uint256 gasForCall = callbackGas;
        // A caller must not make the callback fail by sending too little gas (EIP-150 keeps 1/64).
        if (gasleft() - gasleft() / 64 < gasForCall + 5000) revert InsufficientGas();
        assembly ("memory-safe") {
            pop(call(gasForCall, callback, 0, add(data, 0x20), mload(data), 0, 0))
        }
    }
}
