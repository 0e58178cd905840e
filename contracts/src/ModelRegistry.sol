// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// @title Registry of committed models (docs/spec/protocol.md §Registry).
/// @notice A model is its commitment (the root over its node descriptors) and the shape of
/// its graph state: `inputCount` model inputs in slots 0..inputCount-1, one slot per node
/// after them, `slotCount` slots in all, the model's output in `outputSlot`. Registration is
/// permissionless and final: no function changes or removes a registered model, so a claim
/// about a model id always means the same model.
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
    }

    /// The six fields a model id is the hash of: what the game reads (two storage slots;
    /// `get` also reads the owner's slot and the uri).
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
        uint32 inputCount,
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

    mapping(bytes32 => Model) private models;

    /// @notice The id of a model: keccak256 of the ABI encoding of its six defining fields.
    /// @dev The uri and the owner are not part of the id: they do not change what is claimed.
    function modelId(
        bytes32 root,
        uint32 nodeCount,
        uint32 inputCount,
        uint32 slotCount,
        uint32 outputSlot,
        uint32 outputLen
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(root, nodeCount, inputCount, slotCount, outputSlot, outputLen));
    }

    /// @notice Register a model; the caller becomes its (informational) owner.
    /// @param root Root over the node descriptor roots (docs/spec/commitments.md).
    /// @param nodeCount Number of nodes (graph states S_0..S_nodeCount).
    /// @param inputCount Number of model inputs (slots 0..inputCount-1).
    /// @param slotCount Length of the slot vector: a power of two >= inputCount + nodeCount.
    /// @param outputSlot Slot holding the model's output (< inputCount + nodeCount).
    /// @param outputLen Byte length of the model's output tensor (> 0).
    /// @param uri Where the model's files can be fetched (informational).
    /// @return id The model id (`modelId` of the six fields).
    function register(
        bytes32 root,
        uint32 nodeCount,
        uint32 inputCount,
        uint32 slotCount,
        uint32 outputSlot,
        uint32 outputLen,
        string calldata uri
    ) external returns (bytes32 id) {
        checkShape(nodeCount, inputCount, slotCount, outputSlot, outputLen);
        id = modelId(root, nodeCount, inputCount, slotCount, outputSlot, outputLen);
        if (models[id].nodeCount != 0) revert AlreadyRegistered(id);
        models[id] = Model(root, nodeCount, inputCount, slotCount, outputSlot, outputLen, msg.sender, uri);
        emit ModelRegistered(id, root, nodeCount, inputCount, slotCount, outputSlot, outputLen, msg.sender, uri);
    }

    /// @notice The model registered under `id`; reverts UnknownModel if there is none.
    function get(bytes32 id) external view returns (Model memory m) {
        m = models[id];
        if (m.nodeCount == 0) revert UnknownModel(id);
    }

    /// @notice The defining fields of the model registered under `id` (`get` without the
    /// owner and the uri); reverts UnknownModel if there is none.
    function definition(bytes32 id) external view returns (Definition memory d) {
        Model storage m = models[id];
        d = Definition(m.root, m.nodeCount, m.inputCount, m.slotCount, m.outputSlot, m.outputLen);
        if (d.nodeCount == 0) revert UnknownModel(id);
    }

    /// The registration rules, in this order (each failure names its rule).
    function checkShape(uint32 nodeCount, uint32 inputCount, uint32 slotCount, uint32 outputSlot, uint32 outputLen)
        private
        pure
    {
        if (nodeCount == 0) revert BadModel("nodeCount == 0");
        if (inputCount == 0) revert BadModel("inputCount == 0");
        if (slotCount == 0 || slotCount & (slotCount - 1) != 0) revert BadModel("slotCount not a power of two");
        uint256 used = uint256(inputCount) + nodeCount;
        if (slotCount < used) revert BadModel("slotCount < inputCount + nodeCount");
        if (outputSlot >= used) revert BadModel("outputSlot >= inputCount + nodeCount");
        if (outputLen == 0) revert BadModel("outputLen == 0");
    }
}
