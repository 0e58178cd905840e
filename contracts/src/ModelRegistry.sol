// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Handover} from "./Handover.sol";

/// @title Registry of committed models (docs/spec/protocol.md §Registry).
/// @notice A model is its commitment (the root over its node descriptors), the byte length of
/// each of its inputs and the shape of its graph state: `inputCount` model inputs in slots
/// 0..inputCount-1, one slot per node after them, `slotCount` slots in all, the model's output
/// in `outputSlot`. Registration is permissionless and final: no function changes or removes a
/// registered model, so a claim about a model id always means the same model. `checkInputs`
/// says whether input commitments (and bytes) can be a model's inputs.
contract ModelRegistry {
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

    /// What the game reads of a model (two storage slots; `get` also reads the owner's slot,
    /// the uri and the input lengths).
    struct Definition {
        bytes32 root;
        uint32 nodeCount;
        uint32 inputCount;
        uint32 slotCount;
        uint32 outputSlot;
        uint32 outputLen;
    }

    /// A model was registered under `modelId` by `owner`.
    event ModelRegistered(
        bytes32 indexed modelId,
        bytes32 root,
        uint32 nodeCount,
        uint32[] inputLens,
        uint32 slotCount,
        uint32 outputSlot,
        uint32 outputLen,
        address owner,
        string uri
    );

    /// `modelId` is already registered (its fields cannot change).
    error AlreadyRegistered(bytes32 modelId);
    /// The model's shape is impossible; `why` names the failed rule.
    error BadModel(string why);
    /// No model is registered under `modelId`.
    error UnknownModel(bytes32 modelId);
    /// `given` input commitments for a model of `expected` inputs.
    error WrongInputCount(uint256 given, uint256 expected);
    /// Input bytes given, but `given` bytes where the model's inputs have `expected` in all.
    error WrongInputLength(uint256 given, uint256 expected);
    /// Input `index`'s bytes do not hash to its commitment.
    error BadInputBytes(uint256 index);
    /// Input `index` has at most 32 bytes, so its commitment is its one padded leaf, but
    /// the commitment is not zero past the input's length: no input of that length has it.
    error BadInputCommitment(uint256 index);

    mapping(bytes32 => Model) private models;

    /// @notice The id of a model: keccak256 of the ABI encoding of its six defining fields.
    /// @dev The uri and the owner are not part of the id: they do not change what is claimed.
    function modelId(
        bytes32 root,
        uint32 nodeCount,
        uint32[] memory inputLens,
        uint32 slotCount,
        uint32 outputSlot,
        uint32 outputLen
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(root, nodeCount, inputLens, slotCount, outputSlot, outputLen));
    }

    /// @notice Register a model; the caller becomes its (informational) owner.
    /// @param root Root over the node descriptor roots (docs/spec/commitments.md).
    /// @param nodeCount Number of nodes (graph states S_0..S_nodeCount).
    /// @param inputLens Byte length of each model input (slots 0..inputLens.length-1).
    /// @param slotCount Length of the slot vector: a power of two >= inputCount + nodeCount.
    /// @param outputSlot Slot holding the model's output (< inputCount + nodeCount).
    /// @param outputLen Byte length of the model's output tensor (> 0).
    /// @param uri Where the model's files can be fetched (informational).
    /// @return id The model id (`modelId` of the six fields).
    function register(
        bytes32 root,
        uint32 nodeCount,
        uint32[] calldata inputLens,
        uint32 slotCount,
        uint32 outputSlot,
        uint32 outputLen,
        string calldata uri
    ) external returns (bytes32 id) {
        checkShape(nodeCount, inputLens, slotCount, outputSlot, outputLen);
        id = modelId(root, nodeCount, inputLens, slotCount, outputSlot, outputLen);
        if (models[id].nodeCount != 0) revert AlreadyRegistered(id);
        // forge-lint: disable-next-line(unsafe-typecast)
        uint32 inputCount = uint32(inputLens.length); // < 2^32: checkShape
        models[id] = Model(root, nodeCount, inputCount, slotCount, outputSlot, outputLen, msg.sender, uri, inputLens);
        emit ModelRegistered(id, root, nodeCount, inputLens, slotCount, outputSlot, outputLen, msg.sender, uri);
    }

    /// @notice The model registered under `id`; reverts UnknownModel if there is none.
    function get(bytes32 id) external view returns (Model memory m) {
        m = models[id];
        if (m.nodeCount == 0) revert UnknownModel(id);
    }

    /// @notice What the game reads of the model registered under `id` (`get` without the
    /// owner, the uri and the input lengths); reverts UnknownModel if there is none.
    function definition(bytes32 id) external view returns (Definition memory d) {
        Model storage m = models[id];
        d = Definition(m.root, m.nodeCount, m.inputCount, m.slotCount, m.outputSlot, m.outputLen);
        if (d.nodeCount == 0) revert UnknownModel(id);
    }

    /// @notice Whether `commitments` can be the inputs of model `id`, and whether `inputBytes`
    /// publish them; returns the model's definition and `published`.
    /// @dev Checks in order: model registered (UnknownModel); one commitment per input
    /// (WrongInputCount). With `inputBytes` empty (published = false): the commitment of
    /// every input of at most 32 bytes is zero past the input's length (BadInputCommitment(i));
    /// a longer input's commitment is a tree root that cannot be checked without its bytes.
    /// Else (published = true) `inputBytes` are the inputs' bytes one after the other, each of
    /// its registered length (WrongInputLength(given, total)), and each input's bytesRoot is
    /// its commitment (BadInputBytes(i)).
    function checkInputs(bytes32 id, bytes32[] calldata commitments, bytes calldata inputBytes)
        external
        view
        returns (Definition memory d, bool published)
    {
        Model storage m = models[id];
        d = Definition(m.root, m.nodeCount, m.inputCount, m.slotCount, m.outputSlot, m.outputLen);
        if (d.nodeCount == 0) revert UnknownModel(id);
        uint32[] storage lens = m.inputLens;
        uint256 n = lens.length;
        if (commitments.length != n) revert WrongInputCount(commitments.length, n);
        published = inputBytes.length != 0;
        if (published && inputBytes.length != totalLength(lens)) {
            revert WrongInputLength(inputBytes.length, totalLength(lens));
        }
        uint256 offset = 0;
        for (uint256 i = 0; i < n; i++) {
            uint256 len = lens[i];
            if (published) {
                if (Handover.bytesRoot(inputBytes[offset:offset + len]) != commitments[i]) revert BadInputBytes(i);
                offset += len;
            } else if (len < 32 && uint256(commitments[i]) << (8 * len) != 0) {
                revert BadInputCommitment(i);
            }
        }
    }

    /// Sum of the input lengths.
    function totalLength(uint32[] storage lens) private view returns (uint256 total) {
        for (uint256 i = 0; i < lens.length; i++) {
            total += lens[i];
        }
    }

    /// The registration rules, in this order (each failure names its rule).
    function checkShape(
        uint32 nodeCount,
        uint32[] calldata inputLens,
        uint32 slotCount,
        uint32 outputSlot,
        uint32 outputLen
    ) private pure {
        if (nodeCount == 0) revert BadModel("nodeCount == 0");
        uint256 inputCount = inputLens.length;
        if (inputCount == 0) revert BadModel("inputCount == 0");
        for (uint256 i = 0; i < inputCount; i++) {
            if (inputLens[i] == 0) revert BadModel("input length 0");
        }
        if (slotCount == 0 || slotCount & (slotCount - 1) != 0) revert BadModel("slotCount not a power of two");
        uint256 used = inputCount + nodeCount;
        if (slotCount < used) revert BadModel("slotCount < inputCount + nodeCount");
        if (outputSlot >= used) revert BadModel("outputSlot >= inputCount + nodeCount");
        if (outputLen == 0) revert BadModel("outputLen == 0");
    }
}
