// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// @title The dispute game's handover checks (docs/spec/commitments.md §Proofs for the game).
/// @notice Solidity mirror of the Rust `verify_*` functions: graph-level proofs
/// (`dnn/src/proofs.rs`: verifySlotProof, verifyUpdateProof, verifyDescriptorProof), VM memory
/// region proofs (`compiler/src/proofs.rs`: verifyRegion, verifyInputRegion,
/// verifyWeightRegion, verifyOutputRegion, verifyFinalState), and the node image's VM
/// pre-state computed from region roots alone (`compiler/src/layout.rs`:
/// ImageRoots::memory_root / pre_state, docs/spec/node-image.md). Same names (camelCase here)
/// and the same order of checks as the Rust twins. Every verifier is a pure function that
/// answers true/false; the pre-state functions revert when the regions cannot form an image
/// (the Rust `LayoutError`).
library Handover {
    /// Height of the VM memory tree (2^27 leaves of 32 bytes).
    uint256 internal constant TREE_HEIGHT = 27;
    /// Size of each tensor window (256 MiB): height 23 in the memory tree.
    uint256 internal constant TENSOR_WINDOW = 1 << 28;
    uint256 internal constant WINDOW_HEIGHT = 23;
    /// Code and parameter windows (1 MiB each: height 15).
    uint256 internal constant CODE_WINDOW = 1 << 20;
    uint256 internal constant PARAM_WINDOW = 1 << 20;
    uint256 internal constant SMALL_WINDOW_HEIGHT = 15;
    uint32 internal constant INPUT_BASE = 0x20000000;
    uint32 internal constant WEIGHT_BASE = 0xA0000000;
    uint32 internal constant OUTPUT_BASE = 0xF0000000;
    uint256 internal constant MAX_INPUTS = 8;
    uint256 internal constant MAX_WEIGHTS = 3;
    /// Packed VM state length (docs/spec/vm.md §7).
    uint256 internal constant STATE_LEN = 173;
    /// Initial registers: a0 (x10) = PARAM_BASE, sp (x2) = STACK_TOP.
    uint32 internal constant PARAM_BASE = 0x00100000;
    uint32 internal constant STACK_TOP = 0x20000000;

    /// More inputs or weights than the image has windows for.
    error TooManyRegions(uint256 inputs, uint256 weights);
    /// A region does not fit its window (`what`: 0 code, 1 params, 2 input, 3 weight, 4 output).
    error RegionTooLarge(uint256 what, uint256 index, uint256 len);
    /// Input and length arrays of different lengths.
    error LengthMismatch(uint256 roots, uint256 lens);
    /// Descriptor bytes whose length does not match their input and weight counts.
    error BadDescriptor(uint256 length);

    /// Length of a descriptor's fixed header (docs/spec/commitments.md §Node descriptor).
    uint256 internal constant DESCRIPTOR_HEADER = 124;

    // ---------------------------------------------------------------- hashing helpers

    /// keccak256(left || right), in scratch space.
    function hashPair(bytes32 left, bytes32 right) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            mstore(0x00, left)
            mstore(0x20, right)
            h := keccak256(0x00, 0x40)
        }
    }

    /// Root reached from `leaf` at `index` with `siblings[level]` bottom first
    /// (opml_merkle::path_root).
    function pathRoot(bytes32 leaf, uint256 index, bytes32[] memory siblings) internal pure returns (bytes32 node) {
        assembly ("memory-safe") {
            node := leaf
            let n := mload(siblings)
            let p := add(siblings, 0x20)
            for { let l := 0 } lt(l, n) { l := add(l, 1) } {
                let sib := mload(add(p, shl(5, l)))
                switch and(shr(l, index), 1)
                case 0 {
                    mstore(0x00, node)
                    mstore(0x20, sib)
                }
                default {
                    mstore(0x00, sib)
                    mstore(0x20, node)
                }
                node := keccak256(0x00, 0x40)
            }
        }
    }

    /// Root of an all-zero subtree of `height`.
    function zeroHash(uint256 height) internal pure returns (bytes32 z) {
        for (uint256 h = 0; h < height; h++) {
            z = hashPair(z, z);
        }
    }

    /// Number of 32-byte leaves `len` bytes pad to: next power of two of the chunk count,
    /// at least 1 (opml_merkle::padded_leaf_count). `len` must be below 2^200.
    function paddedLeafCount(uint256 len) internal pure returns (uint256 n) {
        uint256 chunks = (len + 31) >> 5;
        n = 1;
        while (n < chunks) n <<= 1;
    }

    /// log2 of paddedLeafCount(len) (compiler layout::region_height).
    function regionHeight(uint256 len) internal pure returns (uint256 k) {
        uint256 n = paddedLeafCount(len);
        while (n > 1) {
            n >>= 1;
            k++;
        }
    }

    /// Root of `b` zero-padded to paddedLeafCount(b.length) leaves (opml_merkle::bytes_root),
    /// hashed level by level in place in fresh memory (left unallocated afterwards).
    function bytesRoot(bytes memory b) internal pure returns (bytes32 r) {
        uint256 n = paddedLeafCount(b.length);
        assembly ("memory-safe") {
            let buf := mload(0x40)
            let len := mload(b)
            let src := add(b, 0x20)
            // copy the bytes, then zero the padding up to n leaves
            for { let i := 0 } lt(i, len) { i := add(i, 0x20) } { mstore(add(buf, i), mload(add(src, i))) }
            let tail := shl(5, n)
            for { let i := len } lt(i, tail) { i := add(i, 1) } { mstore8(add(buf, i), 0) }
            for {} gt(n, 1) {} {
                n := shr(1, n)
                for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                    mstore(add(buf, shl(5, i)), keccak256(add(buf, shl(6, i)), 0x40))
                }
            }
            r := mload(buf)
        }
    }

    /// Height of a tree over `len` leaves if `len` is a power of two.
    function heightOf(uint256 len) private pure returns (bool ok, uint256 h) {
        if (len == 0 || (len & (len - 1)) != 0) return (false, 0);
        while (len > 1) {
            len >>= 1;
            h++;
        }
        return (true, h);
    }

    // ---------------------------------------------------------------- graph-level proofs

    /// Whether `siblings` show that graph state `state` (over `slotLen` slots) holds
    /// `value` at `slot` (dnn verify_slot_proof).
    function verifySlotProof(bytes32 state, uint32 slotLen, uint32 slot, bytes32 value, bytes32[] memory siblings)
        internal
        pure
        returns (bool)
    {
        (bool ok, uint256 h) = heightOf(slotLen);
        if (!ok) return false;
        return slot < slotLen && siblings.length == h && pathRoot(value, slot, siblings) == state;
    }

    /// Whether `post` equals `pre` (over `slotLen` slots) with only `slot` changed from
    /// `oldValue` to `newValue`, both reached by `siblings` (dnn verify_update_proof).
    function verifyUpdateProof(
        bytes32 pre,
        bytes32 post,
        uint32 slotLen,
        uint32 slot,
        bytes32 oldValue,
        bytes32 newValue,
        bytes32[] memory siblings
    ) internal pure returns (bool) {
        (bool ok, uint256 h) = heightOf(slotLen);
        if (!ok) return false;
        return slot < slotLen && siblings.length == h && pathRoot(oldValue, slot, siblings) == pre
            && pathRoot(newValue, slot, siblings) == post;
    }

    /// Whether the model with commitment `modelRoot` and `nodeCount` nodes has `descriptor`
    /// as node `node`'s descriptor (dnn verify_descriptor_proof).
    function verifyDescriptorProof(
        bytes32 modelRoot,
        uint32 nodeCount,
        uint32 node,
        bytes memory descriptor,
        bytes32[] memory siblings
    ) internal pure returns (bool) {
        uint256 leaves = 1;
        while (leaves < nodeCount) leaves <<= 1;
        (bool ok, uint256 h) = heightOf(leaves);
        if (!ok) return false;
        return node < nodeCount && siblings.length == h && pathRoot(bytesRoot(descriptor), node, siblings) == modelRoot;
    }

    // ---------------------------------------------------------------- VM region proofs

    /// Whether `memRoot` holds a subtree with root `commitment` for the `len`-byte region at
    /// `addr` (aligned to its padded size, at most one tensor window), given its
    /// `27 - k` siblings (compiler verify_region).
    function verifyRegion(bytes32 memRoot, uint32 addr, uint256 len, bytes32 commitment, bytes32[] memory siblings)
        internal
        pure
        returns (bool)
    {
        // subtree_of: padded size at most a window, address aligned to it
        if (len > TENSOR_WINDOW) return false;
        uint256 padded = paddedLeafCount(len) << 5;
        if (padded > TENSOR_WINDOW || uint256(addr) % padded != 0) return false;
        uint256 k = regionHeight(len);
        uint256 index = (uint256(addr) >> 5) >> k;
        return siblings.length == TREE_HEIGHT - k && pathRoot(commitment, index, siblings) == memRoot;
    }

    /// Whether `memRoot` holds `commitment` in the output region of `len` bytes.
    function verifyOutputRegion(bytes32 memRoot, uint256 len, bytes32 commitment, bytes32[] memory siblings)
        internal
        pure
        returns (bool)
    {
        return verifyRegion(memRoot, OUTPUT_BASE, len, commitment, siblings);
    }

    /// Whether `memRoot` holds `commitment` in input region `i` of `len` bytes.
    function verifyInputRegion(bytes32 memRoot, uint256 i, uint256 len, bytes32 commitment, bytes32[] memory siblings)
        internal
        pure
        returns (bool)
    {
        return i < MAX_INPUTS && verifyRegion(memRoot, inputAddr(i), len, commitment, siblings);
    }

    /// Whether `memRoot` holds `commitment` in weight region `i` of `len` bytes.
    function verifyWeightRegion(bytes32 memRoot, uint256 i, uint256 len, bytes32 commitment, bytes32[] memory siblings)
        internal
        pure
        returns (bool)
    {
        return i < MAX_WEIGHTS && verifyRegion(memRoot, weightAddr(i), len, commitment, siblings);
    }

    /// The handover's final-state check: `encoded` hashes to `stateHash`, is a canonical
    /// exited state with exit code 0, and its memory holds `commitment` in the output region
    /// of `outputLen` bytes (compiler verify_final_state).
    function verifyFinalState(
        bytes32 stateHash,
        bytes memory encoded,
        uint256 outputLen,
        bytes32 commitment,
        bytes32[] memory siblings
    ) internal pure returns (bool) {
        if (keccak256(encoded) != stateHash) return false;
        if (encoded.length != STATE_LEN) return false;
        bytes32 memRoot;
        uint256 status;
        uint256 exitCode;
        assembly ("memory-safe") {
            let p := add(encoded, 0x20)
            memRoot := mload(p)
            status := byte(0, mload(add(p, 44)))
            exitCode := shr(224, mload(add(p, 45)))
        }
        // status 1 = exited; an exited state with any exit code decodes canonically
        return status == 1 && exitCode == 0 && verifyOutputRegion(memRoot, outputLen, commitment, siblings);
    }

    /// Address of input window `i` (`i < MAX_INPUTS`, so it fits 32 bits).
    function inputAddr(uint256 i) internal pure returns (uint32) {
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint32(INPUT_BASE + i * TENSOR_WINDOW);
    }

    /// Address of weight window `i` (`i < MAX_WEIGHTS`, so it fits 32 bits).
    function weightAddr(uint256 i) internal pure returns (uint32) {
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint32(WEIGHT_BASE + i * TENSOR_WINDOW);
    }

    // ---------------------------------------------------------------- node image pre-state

    /// The region roots a node's pre-state depends on (compiler layout::ImageRoots).
    struct ImageRoots {
        bytes32 codeRoot;
        uint256 codeLen;
        bytes32 paramRoot;
        uint256 paramLen;
        bytes32[] inputRoots;
        uint256[] inputLens;
        bytes32[] weightRoots;
        uint256[] weightLens;
        uint256 outputLen;
    }

    /// The checks of ImageRoots::placed, in its order: region counts, then each region
    /// (code, params, inputs, weights) fits its window, then the output fits its window.
    function checkPlaced(ImageRoots memory r) internal pure {
        if (r.inputRoots.length != r.inputLens.length) revert LengthMismatch(r.inputRoots.length, r.inputLens.length);
        if (r.weightRoots.length != r.weightLens.length) {
            revert LengthMismatch(r.weightRoots.length, r.weightLens.length);
        }
        if (r.inputRoots.length > MAX_INPUTS) revert TooManyRegions(r.inputRoots.length, r.weightRoots.length);
        if (r.weightRoots.length > MAX_WEIGHTS) revert TooManyRegions(r.inputRoots.length, r.weightRoots.length);
        if (r.codeLen > CODE_WINDOW || (paddedLeafCount(r.codeLen) << 5) > CODE_WINDOW) {
            revert RegionTooLarge(0, 0, r.codeLen);
        }
        if (r.paramLen > PARAM_WINDOW || (paddedLeafCount(r.paramLen) << 5) > PARAM_WINDOW) {
            revert RegionTooLarge(1, 0, r.paramLen);
        }
        for (uint256 i = 0; i < r.inputLens.length; i++) {
            if (r.inputLens[i] > TENSOR_WINDOW) revert RegionTooLarge(2, i, r.inputLens[i]);
        }
        for (uint256 i = 0; i < r.weightLens.length; i++) {
            if (r.weightLens[i] > TENSOR_WINDOW) revert RegionTooLarge(3, i, r.weightLens[i]);
        }
        if (r.outputLen > TENSOR_WINDOW) revert RegionTooLarge(4, 0, r.outputLen);
    }

    /// Raise the root of a `len`-byte region at the start of a subtree of height `top` to
    /// that subtree's root, hashing with the zero subtrees `zeros[k..top]`.
    function raise(bytes32 root, uint256 len, uint256 top, bytes32[] memory zeros) private pure returns (bytes32) {
        for (uint256 l = regionHeight(len); l < top; l++) {
            root = hashPair(root, zeros[l]);
        }
        return root;
    }

    /// The memory root of the node image: every region's root at its window's start, zero
    /// elsewhere (ImageRoots::memory_root). Reverts when the regions cannot form an image.
    function memoryRoot(ImageRoots memory r) internal pure returns (bytes32) {
        checkPlaced(r);
        bytes32[] memory zeros = new bytes32[](TREE_HEIGHT + 1);
        for (uint256 l = 1; l <= TREE_HEIGHT; l++) {
            zeros[l] = hashPair(zeros[l - 1], zeros[l - 1]);
        }
        // The 16 windows of 256 MiB (height 23): 0 code + params, 1 scratch, 2..9 inputs,
        // 10..12 weights, 13..14 unused, 15 output (zero at start).
        bytes32[16] memory w;
        bytes32 z = zeros[WINDOW_HEIGHT];
        for (uint256 i = 0; i < 16; i++) {
            w[i] = z;
        }
        // Window 0: code subtree (height 15) at leaf 0, params subtree at leaf 2^15.
        bytes32 low = hashPair(
            raise(r.codeRoot, r.codeLen, SMALL_WINDOW_HEIGHT, zeros),
            raise(r.paramRoot, r.paramLen, SMALL_WINDOW_HEIGHT, zeros)
        );
        w[0] = raise(low, 1 << (5 + SMALL_WINDOW_HEIGHT + 1), WINDOW_HEIGHT, zeros);
        for (uint256 i = 0; i < r.inputRoots.length; i++) {
            w[2 + i] = raise(r.inputRoots[i], r.inputLens[i], WINDOW_HEIGHT, zeros);
        }
        for (uint256 i = 0; i < r.weightRoots.length; i++) {
            w[10 + i] = raise(r.weightRoots[i], r.weightLens[i], WINDOW_HEIGHT, zeros);
        }
        for (uint256 n = 8; n >= 1; n >>= 1) {
            for (uint256 i = 0; i < n; i++) {
                w[i] = hashPair(w[2 * i], w[2 * i + 1]);
            }
        }
        return w[0];
    }

    /// keccak256 of the node's packed VM pre-state (docs/spec/vm.md §7): the image's memory
    /// root, pc = 0, step 0, running, exit code 0, sp = STACK_TOP, a0 = PARAM_BASE, every
    /// other register 0 (ImageRoots::pre_state().hash()).
    function preStateHash(ImageRoots memory r) internal pure returns (bytes32 h) {
        bytes32 root = memoryRoot(r);
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, root)
            // bytes 32..172: pc, step, status, exit code, registers x1..x31 (all zero ...)
            mstore(add(p, 0x20), 0)
            mstore(add(p, 0x40), 0)
            mstore(add(p, 0x60), 0)
            mstore(add(p, 0x80), 0)
            mstore(add(p, 0xa0), 0)
            // ... except sp = x2 at 49 + 4, a0 = x10 at 49 + 36 (big-endian u32)
            mstore(add(p, 53), or(shl(224, STACK_TOP), and(mload(add(p, 53)), not(shl(224, 0xffffffff)))))
            mstore(add(p, 85), or(shl(224, PARAM_BASE), and(mload(add(p, 85)), not(shl(224, 0xffffffff)))))
            h := keccak256(p, STATE_LEN)
        }
    }

    // ---------------------------------------------------------------- node descriptors

    /// A node descriptor's fields (dnn proofs::Descriptor), decoded from its bytes.
    struct Descriptor {
        uint32 opTag;
        uint32 outputSlot;
        uint32 outputLen;
        uint32 codeLen;
        uint32 argsLen;
        bytes32 codeRoot;
        bytes32 argsRoot;
        bytes32 paramRoot;
        bytes32[] weightRoots;
        uint256[] weightLens;
        uint32[] inputSlots;
        uint256[] inputLens;
    }

    /// Little-endian u32 at byte offset `o` of `d` (in bounds: checked by the caller).
    function le32(bytes memory d, uint256 o) private pure returns (uint32 v) {
        uint256 w;
        assembly ("memory-safe") {
            w := shr(224, mload(add(add(d, 0x20), o)))
        }
        // forge-lint: disable-next-line(unsafe-typecast)
        v = uint32(((w & 0xff) << 24) | ((w & 0xff00) << 8) | ((w >> 8) & 0xff00) | (w >> 24));
    }

    /// 32 bytes at offset `o` of `d` (in bounds: checked by the caller).
    function word32(bytes memory d, uint256 o) private pure returns (bytes32 v) {
        assembly ("memory-safe") {
            v := mload(add(add(d, 0x20), o))
        }
    }

    /// Decode descriptor bytes, checking that the length matches the counts
    /// (dnn Descriptor::decode). Reverts BadDescriptor otherwise.
    function decodeDescriptor(bytes memory d) internal pure returns (Descriptor memory r) {
        if (d.length < DESCRIPTOR_HEADER) revert BadDescriptor(d.length);
        uint256 a = le32(d, 12);
        uint256 w = le32(d, 16);
        if (DESCRIPTOR_HEADER + 36 * w + 8 * a != d.length) revert BadDescriptor(d.length);
        r.opTag = le32(d, 0);
        r.outputSlot = le32(d, 4);
        r.outputLen = le32(d, 8);
        r.codeLen = le32(d, 20);
        r.argsLen = le32(d, 24);
        r.codeRoot = word32(d, 28);
        r.argsRoot = word32(d, 60);
        r.paramRoot = word32(d, 92);
        r.weightRoots = new bytes32[](w);
        r.weightLens = new uint256[](w);
        for (uint256 k = 0; k < w; k++) {
            r.weightRoots[k] = word32(d, DESCRIPTOR_HEADER + 36 * k);
            r.weightLens[k] = le32(d, DESCRIPTOR_HEADER + 36 * k + 32);
        }
        uint256 base = DESCRIPTOR_HEADER + 36 * w;
        r.inputSlots = new uint32[](a);
        r.inputLens = new uint256[](a);
        for (uint256 k = 0; k < a; k++) {
            r.inputSlots[k] = le32(d, base + 8 * k);
            r.inputLens[k] = le32(d, base + 8 * k + 4);
        }
    }

    /// The VM pre-state hash of a node's image at the handover: code, argument blob, weights
    /// and every length from the proven descriptor `d`, the input commitments `inputRoots`
    /// from proven slots of the agreed graph state, in the descriptor's input order
    /// (compiler binding::descriptor_image_roots, then pre_state().hash()).
    function nodePreStateHash(Descriptor memory d, bytes32[] memory inputRoots) internal pure returns (bytes32) {
        if (inputRoots.length != d.inputLens.length) revert LengthMismatch(inputRoots.length, d.inputLens.length);
        ImageRoots memory r = ImageRoots({
            codeRoot: d.codeRoot,
            codeLen: d.codeLen,
            paramRoot: d.argsRoot,
            paramLen: d.argsLen,
            inputRoots: inputRoots,
            inputLens: d.inputLens,
            weightRoots: d.weightRoots,
            weightLens: d.weightLens,
            outputLen: d.outputLen
        });
        return preStateHash(r);
    }
}

/// @notice Exposes the Handover library for tests (Rust revm differential tests and forge).
/// Every function returns one 32-byte word (a bool or a hash).
contract HandoverHarness {
    function verifySlotProof(bytes32 state, uint32 slotLen, uint32 slot, bytes32 value, bytes32[] calldata siblings)
        external
        pure
        returns (bool)
    {
        return Handover.verifySlotProof(state, slotLen, slot, value, siblings);
    }

    function verifyUpdateProof(
        bytes32 pre,
        bytes32 post,
        uint32 slotLen,
        uint32 slot,
        bytes32 oldValue,
        bytes32 newValue,
        bytes32[] calldata siblings
    ) external pure returns (bool) {
        return Handover.verifyUpdateProof(pre, post, slotLen, slot, oldValue, newValue, siblings);
    }

    function verifyDescriptorProof(
        bytes32 modelRoot,
        uint32 nodeCount,
        uint32 node,
        bytes calldata descriptor,
        bytes32[] calldata siblings
    ) external pure returns (bool) {
        return Handover.verifyDescriptorProof(modelRoot, nodeCount, node, descriptor, siblings);
    }

    function verifyRegion(bytes32 memRoot, uint32 addr, uint256 len, bytes32 commitment, bytes32[] calldata siblings)
        external
        pure
        returns (bool)
    {
        return Handover.verifyRegion(memRoot, addr, len, commitment, siblings);
    }

    function verifyInputRegion(bytes32 memRoot, uint256 i, uint256 len, bytes32 commitment, bytes32[] calldata siblings)
        external
        pure
        returns (bool)
    {
        return Handover.verifyInputRegion(memRoot, i, len, commitment, siblings);
    }

    function verifyWeightRegion(
        bytes32 memRoot,
        uint256 i,
        uint256 len,
        bytes32 commitment,
        bytes32[] calldata siblings
    ) external pure returns (bool) {
        return Handover.verifyWeightRegion(memRoot, i, len, commitment, siblings);
    }

    function verifyFinalState(
        bytes32 stateHash,
        bytes calldata encoded,
        uint256 outputLen,
        bytes32 commitment,
        bytes32[] calldata siblings
    ) external pure returns (bool) {
        return Handover.verifyFinalState(stateHash, encoded, outputLen, commitment, siblings);
    }

    function decodeDescriptor(bytes calldata d) external pure returns (Handover.Descriptor memory) {
        return Handover.decodeDescriptor(d);
    }

    function nodePreStateHash(bytes calldata descriptor, bytes32[] calldata inputRoots)
        external
        pure
        returns (bytes32)
    {
        return Handover.nodePreStateHash(Handover.decodeDescriptor(descriptor), inputRoots);
    }

    function memoryRoot(Handover.ImageRoots calldata r) external pure returns (bytes32) {
        return Handover.memoryRoot(r);
    }

    function preStateHash(Handover.ImageRoots calldata r) external pure returns (bytes32) {
        return Handover.preStateHash(r);
    }
}
