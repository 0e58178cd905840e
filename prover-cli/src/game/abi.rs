//! The contracts' interface, declared with `sol!` from the game API (`ModelRegistry`,
//! `OptimisticML` and the step verifier's errors), and conversions of the client's data to
//! its types. The tests compare these selectors with forge's artifacts, so a drift between
//! this interface and the contracts fails loudly.

// The generated constructors of events with many fields.
#![allow(clippy::too_many_arguments)]

use alloy_primitives::{keccak256, Bytes, B256};
use alloy_sol_types::{SolInterface, SolValue};

use crate::game::HandoverData;

alloy_sol_types::sol! {
    /// `contracts/src/ModelRegistry.sol`.
    #[derive(Debug, PartialEq, Eq)]
    interface IModelRegistry {
        struct Model {
            bytes32 root;
            uint32 nodeCount;
            uint32 inputCount;
            uint32 slotCount;
            uint32 outputSlot;
            uint32 outputLen;
            address owner;
            string uri;
            uint32[] inputLens;
        }
        struct Definition {
            bytes32 root;
            uint32 nodeCount;
            uint32 inputCount;
            uint32 slotCount;
            uint32 outputSlot;
            uint32 outputLen;
        }
        event ModelRegistered(bytes32 indexed modelId, bytes32 root, uint32 nodeCount, uint32[] inputLens,
            uint32 slotCount, uint32 outputSlot, uint32 outputLen, address owner, string uri);
        error AlreadyRegistered(bytes32 modelId);
        error BadModel(string why);
        error UnknownModel(bytes32 modelId);
        error WrongInputCount(uint256 given, uint256 expected);
        error WrongInputLength(uint256 given, uint256 expected);
        error BadInputBytes(uint256 index);
        error BadInputCommitment(uint256 index);
        function modelId(bytes32 root, uint32 nodeCount, uint32[] memory inputLens, uint32 slotCount,
            uint32 outputSlot, uint32 outputLen) external pure returns (bytes32);
        function register(bytes32 root, uint32 nodeCount, uint32[] calldata inputLens, uint32 slotCount,
            uint32 outputSlot, uint32 outputLen, string calldata uri) external returns (bytes32 id);
        function get(bytes32 id) external view returns (Model memory m);
        function definition(bytes32 id) external view returns (Definition memory d);
        function checkInputs(bytes32 id, bytes32[] calldata commitments, bytes calldata inputBytes) external view
            returns (Definition memory d, bool published);
    }

    /// `contracts/src/OptimisticML.sol` (with the handover library's and verifier's errors).
    #[derive(Debug, PartialEq, Eq)]
    interface IOptimisticML {
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
        enum Phase { Open, Graph, Handover, Steps, Leaf, Ended }
        enum Side { Submitter, Challenger }
        enum EndReason { Timeout, Step, Abandoned }
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

        event Requested(uint256 indexed requestId, bytes32 modelId, address requester, uint256 fee, address callback,
            bytes32[] inputCommitments);
        event RequestCancelled(uint256 indexed requestId);
        event ClaimPosted(uint256 indexed claimId, bytes32 modelId, uint256 requestId, address submitter,
            bytes32[] inputCommitments, bytes inputBytes, bytes output, bytes32 outputCommitment, uint64 deadline);
        event Challenged(uint256 indexed gameId, uint256 claimId, address challenger, bytes32 s0);
        event Opened(uint256 indexed gameId, bytes32 finalGraphState);
        event StatesPosted(uint256 indexed gameId, Phase phase, uint64 lo, uint64 hi, bytes32[] states);
        event Picked(uint256 indexed gameId, Phase phase, uint256 index, uint64 lo, uint64 hi, bytes32 hashLo,
            bytes32 hashHi);
        event HandedOver(uint256 indexed gameId, uint32 node, bytes32 output, bytes32 preStateHash,
            bytes32 finalStateHash);
        event StepResolved(uint256 indexed gameId, uint64 step, bytes32 postStateHash);
        event GameEnded(uint256 indexed gameId, Side winner, EndReason reason);
        event ClaimVoided(uint256 indexed claimId, uint256 gameId);
        event ClaimFinalized(uint256 indexed claimId, address submitter, bytes32 outputCommitment);
        event Withdrawn(address indexed account, uint256 amount);

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
        error BadDescriptor(uint256 length);
        error TooManyRegions(uint256 inputs, uint256 weights);
        error RegionTooLarge(uint256 what, uint256 index, uint256 len);
        error LengthMismatch(uint256 roots, uint256 lens);
        // The registry's, bubbled up from `request` and `postClaim`.
        error UnknownModel(bytes32 modelId);
        error WrongInputCount(uint256 given, uint256 expected);
        error WrongInputLength(uint256 given, uint256 expected);
        error BadInputBytes(uint256 index);
        error BadInputCommitment(uint256 index);

        function config() external view returns (Config memory);
        function request(bytes32 modelId, bytes32[] calldata inputCommitments, address callback) external payable
            returns (uint256 requestId);
        function cancelRequest(uint256 requestId) external;
        function postClaim(bytes32 modelId, uint256 requestId, bytes32[] calldata inputCommitments,
            bytes calldata inputBytes, bytes calldata output, bytes32 outputCommitment) external payable
            returns (uint256 claimId);
        function challenge(uint256 claimId) external payable returns (uint256 gameId);
        function finalize(uint256 claimId) external;
        function result(uint256 claimId) external view
            returns (bool finalized, bytes32 modelId, bytes32 inputsHash, bool inputsPublished, bytes32 outputCommitment,
                bytes memory output);
        function withdraw() external;
        function open(uint256 gameId, bytes32 finalGraphState, bytes32[] calldata outputSiblings) external;
        function postStates(uint256 gameId, bytes32[] calldata states) external;
        function pick(uint256 gameId, uint256 index, bytes32[] calldata states) external;
        function handover(uint256 gameId, HandoverProof calldata p) external;
        function resolveStep(uint256 gameId, bytes calldata state, bytes calldata proof) external;
        function timeout(uint256 gameId) external;
        function abandon(uint256 gameId) external;
        function claimOf(uint256 claimId) external view returns (ClaimView memory v);
        function gameOf(uint256 gameId) external view returns (GameView memory v);
        function parts(uint256 gameId) external view returns (uint256);
        function points(uint256 gameId) external view returns (uint64[] memory ps);
        function credits(address account) external view returns (uint256);
        function totalIn() external view returns (uint256);
        function totalOut() external view returns (uint256);
        function claimCount() external view returns (uint256);
        function gameCount() external view returns (uint256);
    }
}

fn b256s(v: &[[u8; 32]]) -> Vec<B256> {
    v.iter().map(|h| B256::from(*h)).collect()
}

impl From<&HandoverData> for IOptimisticML::HandoverProof {
    fn from(d: &HandoverData) -> Self {
        IOptimisticML::HandoverProof {
            output: d.output.into(),
            updateSiblings: b256s(&d.update_siblings),
            descriptor: Bytes::copy_from_slice(&d.descriptor),
            descriptorSiblings: b256s(&d.descriptor_siblings),
            inputValues: b256s(&d.input_values),
            inputSiblings: d.input_siblings.iter().map(|s| b256s(s)).collect(),
            finalState: Bytes::copy_from_slice(&d.final_state),
            outputRegionSiblings: b256s(&d.output_region_siblings),
        }
    }
}

/// A decoded revert of the contracts: a registry error (its own functions, or bubbled up
/// through the game's `request` and `postClaim`), a game error, or data neither declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revert {
    Registry(IModelRegistry::IModelRegistryErrors),
    Game(IOptimisticML::IOptimisticMLErrors),
    Raw(Bytes),
}

impl Revert {
    /// Decode revert data; registry errors first (the game's interface repeats the ones it
    /// bubbles up, with the same selectors).
    pub fn decode(data: &[u8]) -> Revert {
        if let Ok(e) = IModelRegistry::IModelRegistryErrors::abi_decode(data) {
            return Revert::Registry(e);
        }
        match IOptimisticML::IOptimisticMLErrors::abi_decode(data) {
            Ok(e) => Revert::Game(e),
            Err(_) => Revert::Raw(Bytes::copy_from_slice(data)),
        }
    }

    /// Whether this is the game's clock rule: a move too late (`ClockRunOut`) or a timeout
    /// too early (`ClockNotRunOut`), which a move racing the clock can meet.
    pub fn is_clock_race(&self) -> bool {
        use IOptimisticML::IOptimisticMLErrors as E;
        matches!(self, Revert::Game(E::ClockRunOut(_) | E::ClockNotRunOut(_)))
    }

    /// Whether this is the registry's `UnknownModel`.
    pub fn is_unknown_model(&self) -> bool {
        use IModelRegistry::IModelRegistryErrors as R;
        use IOptimisticML::IOptimisticMLErrors as E;
        matches!(self, Revert::Registry(R::UnknownModel(_)) | Revert::Game(E::UnknownModel(_)))
    }
}

impl std::fmt::Display for Revert {
    /// The error's name and arguments (`ClockRunOut(ClockRunOut)`), or the data in hex.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Revert::Registry(e) => write!(f, "{e:?}"),
            Revert::Game(e) => write!(f, "{e:?}"),
            Revert::Raw(d) => write!(f, "0x{}", hex::encode(d)),
        }
    }
}

/// The name and arguments of a revert of the contracts (or the raw data, hex).
pub fn revert_reason(data: &[u8]) -> String {
    Revert::decode(data).to_string()
}

/// Name of a side.
pub fn side_name(s: IOptimisticML::Side) -> &'static str {
    match s {
        IOptimisticML::Side::Submitter => "submitter",
        IOptimisticML::Side::Challenger => "challenger",
        IOptimisticML::Side::__Invalid => "invalid",
    }
}

/// Name of a phase.
pub fn phase_name(p: IOptimisticML::Phase) -> &'static str {
    match p {
        IOptimisticML::Phase::Open => "open",
        IOptimisticML::Phase::Graph => "graph",
        IOptimisticML::Phase::Handover => "handover",
        IOptimisticML::Phase::Steps => "steps",
        IOptimisticML::Phase::Leaf => "leaf",
        IOptimisticML::Phase::Ended => "ended",
        IOptimisticML::Phase::__Invalid => "invalid",
    }
}
/// The name of a game-end reason, as the commands print it.
pub fn reason_name(r: IOptimisticML::EndReason) -> &'static str {
    use IOptimisticML::EndReason as R;
    match r {
        R::Timeout => "timeout",
        R::Step => "step",
        R::Abandoned => "abandoned",
        R::__Invalid => "invalid",
    }
}

/// `ModelRegistry.modelId`: keccak256 of `abi.encode(root, nodeCount, inputLens, slotCount,
/// outputSlot, outputLen)` (the parameters' encoding, as Solidity's `abi.encode` of a list).
pub fn model_id(
    root: B256,
    node_count: u32,
    input_lens: &[u32],
    slot_count: u32,
    output_slot: u32,
    output_len: u32,
) -> B256 {
    keccak256((root, node_count, input_lens.to_vec(), slot_count, output_slot, output_len).abi_encode_params())
}

/// Hashes as `B256`.
pub fn to_b256(v: &[[u8; 32]]) -> Vec<B256> {
    b256s(v)
}
