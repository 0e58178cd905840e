// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Handover} from "./Handover.sol";
import {OptimisticML} from "./OptimisticML.sol";

/// @title The handover checks of the dispute game, in their own contract.
/// @notice `OptimisticML` deploys one in its constructor and calls `verify` from `handover`:
/// with the Handover library inlined, OptimisticML would exceed the 24,576-byte code size
/// limit (EIP-170). Stateless and pure; its errors have the same names and selectors as
/// OptimisticML's, so a failed check reverts `handover` with the named error.
contract HandoverVerifier {
    /// What the game knows about the isolated node: the model (root, node count, input
    /// count, slot count), the node's index and the agreed / disputed graph states around it.
    struct NodeStep {
        bytes32 modelRoot;
        uint32 nodeCount;
        uint32 inputCount;
        uint32 slotCount;
        uint32 node;
        bytes32 stateLo;
        bytes32 stateHi;
    }

    error BadUpdateProof();
    error BadDescriptorProof();
    error WrongOutputSlot(uint256 slot, uint256 expected);
    error InputCountMismatch(uint256 descriptorInputs, uint256 values, uint256 siblings);
    error BadInputProof(uint256 i);
    error BadFinalState();

    /// @notice Check a handover proof (docs/spec/protocol.md §Handover), in this order:
    /// BadUpdateProof, BadDescriptorProof, BadDescriptor (decoding), WrongOutputSlot,
    /// InputCountMismatch, BadInputProof(i), BadFinalState; then compute the node's VM
    /// pre-state (reverts TooManyRegions / RegionTooLarge if the regions cannot form an image).
    /// @return preStateHash keccak256 of the node's VM pre-state.
    /// @return finalStateHash keccak256(p.finalState).
    /// @return output p.output, the node's output commitment.
    function verify(NodeStep calldata s, OptimisticML.HandoverProof calldata p)
        external
        pure
        returns (bytes32 preStateHash, bytes32 finalStateHash, bytes32 output)
    {
        Handover.Descriptor memory d = checkNodeStep(s, p);
        checkNodeInputs(s.stateLo, s.slotCount, d, p);
        finalStateHash = keccak256(p.finalState);
        if (!Handover.verifyFinalState(finalStateHash, p.finalState, d.outputLen, p.output, p.outputRegionSiblings)) {
            revert BadFinalState();
        }
        preStateHash = Handover.nodePreStateHash(d, p.inputValues);
        output = p.output;
    }

    /// Checks 1-3: the update S_lo -> S_lo+1 sets the node's output slot from zero to
    /// p.output; the descriptor is the model's node `s.node`; it writes that slot.
    function checkNodeStep(NodeStep calldata s, OptimisticML.HandoverProof calldata p)
        private
        pure
        returns (Handover.Descriptor memory d)
    {
        uint32 outSlot = s.inputCount + s.node;
        if (!Handover.verifyUpdateProof(s.stateLo, s.stateHi, s.slotCount, outSlot, 0, p.output, p.updateSiblings)) {
            revert BadUpdateProof();
        }
        bytes memory descriptor = p.descriptor;
        if (!Handover.verifyDescriptorProof(s.modelRoot, s.nodeCount, s.node, descriptor, p.descriptorSiblings)) {
            revert BadDescriptorProof();
        }
        d = Handover.decodeDescriptor(descriptor);
        if (d.outputSlot != outSlot) revert WrongOutputSlot(d.outputSlot, outSlot);
    }

    /// Checks 4-5: one value and one slot proof per descriptor input, each value proven at
    /// its slot in S_lo.
    function checkNodeInputs(
        bytes32 stateLo,
        uint32 slotCount,
        Handover.Descriptor memory d,
        OptimisticML.HandoverProof calldata p
    ) private pure {
        uint256 a = d.inputSlots.length;
        if (p.inputValues.length != a || p.inputSiblings.length != a) {
            revert InputCountMismatch(a, p.inputValues.length, p.inputSiblings.length);
        }
        for (uint256 i = 0; i < a; i++) {
            if (!Handover.verifySlotProof(stateLo, slotCount, d.inputSlots[i], p.inputValues[i], p.inputSiblings[i])) {
                revert BadInputProof(i);
            }
        }
    }
}
