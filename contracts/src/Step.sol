// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {MemoryProof} from "./MemoryProof.sol";

/// @title One step of the opml RISC-V VM (RV32IM + dot4), re-executed on-chain.
/// @notice Implements docs/spec/vm.md exactly. This is the Solidity mirror of the Rust
/// witness-only step `vm/src/step.rs`: the same function names (camelCase here, snake_case
/// there) and the same order of checks, so the two can be read side by side:
/// state length, state canonical, halted (proof must be empty), fetch alignment, fetch path,
/// decode and execute (data path checked when the access happens), exact proof length.
///
/// Anything non-canonical or malformed reverts: the ABI layout of the calldata must be the
/// canonical one (fixed offsets, zero padding, no trailing bytes), the state must be
/// canonical, every path must verify and its mask must have no bits out of range, and the
/// proof must be consumed exactly.
///
/// Calldata layout (canonical ABI encoding of `step(bytes,bytes)` with a 173-byte state):
///   0x000 selector | 0x004 0x40 | 0x024 0x120 | 0x044 173 | 0x064 state (173 B, 19 B zero pad)
///   0x124 proof length | 0x144 proof bytes (zero padded to a multiple of 32)
///
/// Memory: the post-state is built in place over a copy of the state at 0x80 (0x80..0x12d);
/// hashing uses scratch space; `MemoryProof` records the fetch path of loads and stores at
/// fixed addresses from 0x160. Nothing is allocated.
contract Step {
    /// Calldata offset of the state encoding.
    uint256 private constant STATE = 0x64;
    /// Calldata offset of the first proof byte.
    uint256 private constant PROOF = 0x144;
    /// Memory address of the post-state being built (173 bytes).
    uint256 private constant POST = 0x80;
    /// Length of the state encoding (docs/spec/vm.md §7).
    uint256 private constant STATE_LEN = 173;

    // Fault reasons (docs/spec/vm.md §3).
    uint256 private constant INVALID_INSTRUCTION = 1;
    uint256 private constant MISALIGNED_FETCH = 2;
    uint256 private constant MISALIGNED_JUMP = 3;
    uint256 private constant MISALIGNED_LOAD = 4;
    uint256 private constant MISALIGNED_STORE = 5;
    uint256 private constant UNSUPPORTED_SYSCALL = 6;
    uint256 private constant BAD_WRITE_FD = 7;
    uint256 private constant EBREAK = 8;

    // Major opcodes.
    uint256 private constant OP_LOAD = 0x03;
    uint256 private constant OP_STORE = 0x23;

    /// The calldata is not the canonical ABI encoding of `step(bytes,bytes)`.
    error BadCalldata();
    /// The state encoding is not 173 bytes.
    error StateLength(uint256 length);
    /// The state encoding is not canonical (status > 2, running with an exit code, or a
    /// faulted state whose exit code is not a fault reason).
    error StateNotCanonical(uint256 status, uint256 exitCode);
    /// The proof ends before a read.
    error ProofTooShort();
    /// The proof has unused trailing bytes.
    error ProofTooLong();
    /// The fetch path does not hash to the memory root.
    error BadFetchProof();
    /// The data path does not join the fetch path.
    error BadDataProof();

    /// @notice One step from `state` with the memory proofs `proof` (docs/spec/vm.md §8).
    /// @return postStateHash keccak256 of the 173-byte post-state encoding.
    function step(bytes calldata state, bytes calldata proof) external pure returns (bytes32 postStateHash) {
        uint256 end = checkCalldata(state.length, proof.length);
        (uint256 status, uint256 pcAddr) = decodeState();
        if (status != 0) {
            finish(PROOF, end);
            assembly {
                calldatacopy(POST, STATE, STATE_LEN)
                postStateHash := keccak256(POST, STATE_LEN)
            }
            return postStateHash;
        }
        copyState();
        if (pcAddr & 3 != 0) {
            finish(PROOF, end);
            fault(MISALIGNED_FETCH);
            return postHash();
        }
        (uint256 fetchLeaf, uint256 p) = readFetch(pcAddr, end);
        uint256 insn = wordAt(fetchLeaf, pcAddr);
        p = execute(p, end, fetchLeaf, insn, pcAddr);
        finish(p, end);
        return postHash();
    }

    // ------------------------------------------------------------------------------------
    // Calldata and state
    // ------------------------------------------------------------------------------------

    /// The calldata must be exactly the canonical ABI encoding: offsets 0x40 / 0x120, state
    /// length 173 (checked first, as the spec's first check), zero padding and no trailing
    /// bytes. Returns the calldata offset one past the last proof byte.
    function checkCalldata(uint256 stateLength, uint256 proofLength) private pure returns (uint256 end) {
        if (stateLength != STATE_LEN) revert StateLength(stateLength);
        bool ok;
        assembly {
            end := add(PROOF, proofLength)
            ok := and(
                and(eq(calldataload(0x04), 0x40), eq(calldataload(0x24), 0x120)),
                and(
                    // 19 zero bytes after the state, and the padding after the proof
                    iszero(shr(104, calldataload(add(STATE, STATE_LEN)))),
                    iszero(calldataload(end))
                )
            )
            ok := and(ok, eq(calldatasize(), add(PROOF, and(add(proofLength, 31), not(31)))))
        }
        if (!ok) revert BadCalldata();
    }

    /// Canonical checks of the state (docs/spec/vm.md §7); returns status and pc.
    function decodeState() private pure returns (uint256 status, uint256 pcAddr) {
        uint256 exitCode;
        assembly {
            let w := calldataload(add(STATE, 32))
            pcAddr := shr(224, w)
            status := byte(12, w)
            exitCode := and(shr(120, w), 0xffffffff)
        }
        if (status > 2 || (status == 0 && exitCode != 0) || (status == 2 && (exitCode == 0 || exitCode > 8))) {
            revert StateNotCanonical(status, exitCode);
        }
    }

    /// Copy the pre-state into memory; the post-state is built over it.
    function copyState() private pure {
        assembly {
            calldatacopy(POST, STATE, STATE_LEN)
        }
    }

    /// keccak256 of the post-state.
    function postHash() private pure returns (bytes32 h) {
        assembly {
            h := keccak256(POST, STATE_LEN)
        }
    }

    /// The proof must be consumed exactly.
    function finish(uint256 p, uint256 end) private pure {
        if (p != end) {
            if (p > end) revert ProofTooShort();
            revert ProofTooLong();
        }
    }

    /// Register `i` of the pre-state (x0 reads the running state's zero exit code: 0).
    function reg(uint256 i) private pure returns (uint256 v) {
        assembly {
            v := shr(224, calldataload(add(add(STATE, 45), shl(2, i))))
        }
    }

    /// Write `v` to `rd` of the post-state (dropping writes to x0).
    function setReg(uint256 rd, uint256 v) private pure {
        assembly {
            if rd {
                let a := add(add(POST, 45), shl(2, rd))
                mstore(a, or(shl(224, v), and(mload(a), sub(shl(224, 1), 1))))
            }
        }
    }

    /// Commit a completed instruction: advance the step counter and the pc.
    function advance(uint256 nextPc) private pure {
        assembly {
            let a := add(POST, 32)
            let w := mload(a)
            let s := and(add(shr(160, w), 1), 0xffffffffffffffff)
            mstore(a, or(or(shl(224, nextPc), shl(160, s)), and(w, sub(shl(160, 1), 1))))
        }
    }

    /// Fault with `reason`: status 2, exit code `reason`, step + 1; pc, registers and
    /// memory keep their pre-step values.
    function fault(uint256 reason) private pure {
        assembly {
            let a := add(POST, 32)
            let w := mload(a)
            let s := and(add(shr(160, w), 1), 0xffffffffffffffff)
            // keep pcAddr (bytes 0..3) and the registers (bytes 17..31)
            w := and(w, not(shl(120, sub(shl(104, 1), 1))))
            mstore(a, or(or(w, shl(160, s)), or(shl(152, 2), shl(120, reason))))
        }
    }

    // ------------------------------------------------------------------------------------
    // Memory proofs
    // ------------------------------------------------------------------------------------

    /// Verify the fetch path (leaf at `pc >> 5`) against the memory root. Loads and stores
    /// record the path's siblings and nodes for their data path (chosen by the opcode of the
    /// still unverified leaf: a gas optimisation only, both walks check the same hashes).
    function readFetch(uint256 pcAddr, uint256 end) private pure returns (uint256 leaf, uint256 p) {
        uint256 mask;
        assembly {
            leaf := calldataload(PROOF)
        }
        (mask, p) = MemoryProof.readMask(PROOF + 32, MemoryProof.DEPTH);
        uint256 root;
        uint256 opcode = wordAt(leaf, pcAddr) & 0x7f;
        if (opcode == OP_LOAD || opcode == OP_STORE) {
            (root, p) = MemoryProof.walkFetchRecording(leaf, pcAddr >> 5, p, mask);
        } else {
            (root, p) = MemoryProof.walkFetch(leaf, pcAddr >> 5, p, mask);
        }
        if (p > end) revert ProofTooShort();
        bool ok;
        assembly {
            ok := eq(root, mload(POST))
        }
        if (!ok) revert BadFetchProof();
    }

    /// Level at which the data path joins the fetch path: bit length of `f xor d`.
    function joinLevel(uint256 pcAddr, uint256 addr) private pure returns (uint256) {
        return MemoryProof.bitLength((pcAddr >> 5) ^ (addr >> 5));
    }

    /// Read and verify the data leaf at `addr` (the fetch leaf when they share a leaf).
    function readData(uint256 p, uint256 end, uint256 fetchLeaf, uint256 pcAddr, uint256 addr)
        private
        pure
        returns (uint256 leaf, uint256 next)
    {
        uint256 join = joinLevel(pcAddr, addr);
        if (join == 0) return (fetchLeaf, p);
        assembly {
            leaf := calldataload(p)
        }
        uint256 mask;
        (mask, next) = MemoryProof.readMask(p + 32, join - 1);
        uint256 top;
        (top, next) = MemoryProof.walk(leaf, addr >> 5, next, mask, join - 1);
        if (next > end) revert ProofTooShort();
        if (top != MemoryProof.recordedSibling(join - 1)) revert BadDataProof();
    }

    /// Read and verify the data leaf at `addr`, store the low `width` bytes of `value` into it
    /// and write the new memory root into the post-state. Returns the proof offset after the
    /// data path.
    function writeData(
        uint256 p,
        uint256 end,
        uint256 fetchLeaf,
        uint256 pcAddr,
        uint256 addr,
        uint256 width,
        uint256 value
    ) private pure returns (uint256) {
        uint256 join = joinLevel(pcAddr, addr);
        if (join == 0) {
            // The fetch leaf itself is rewritten: recompute the root along the fetch path.
            setMemRoot(MemoryProof.rootFromRecorded(storeBytes(fetchLeaf, addr, width, value), addr >> 5, 0));
            return p;
        }
        return writeJoinedData(p, end, join, addr, width, value);
    }

    /// `writeData` for a data leaf other than the fetch leaf: its path joins the fetch path at
    /// level `join` (> 0).
    function writeJoinedData(uint256 p, uint256 end, uint256 join, uint256 addr, uint256 width, uint256 value)
        private
        pure
        returns (uint256 next)
    {
        uint256 leaf;
        assembly {
            leaf := calldataload(p)
        }
        uint256 mask;
        (mask, next) = MemoryProof.readMask(p + 32, join - 1);
        uint256 oldTop;
        uint256 node;
        (oldTop, node, next) =
            MemoryProof.walkPair(leaf, storeBytes(leaf, addr, width, value), addr >> 5, next, mask, join - 1);
        if (next > end) revert ProofTooShort();
        if (oldTop != MemoryProof.recordedSibling(join - 1)) revert BadDataProof();
        // At level join-1 the new data node's sibling is the fetch path's node; above, the two
        // paths share their siblings (and their index bits).
        uint256 fetchNode = MemoryProof.recordedNode(join - 1);
        assembly {
            let s := shl(5, and(shr(sub(join, 1), shr(5, addr)), 1))
            mstore(s, node)
            mstore(xor(s, 0x20), fetchNode)
            node := keccak256(0, 0x40)
        }
        setMemRoot(MemoryProof.rootFromRecorded(node, addr >> 5, join));
    }

    /// Write the memory root of the post-state.
    function setMemRoot(uint256 root) private pure {
        assembly {
            mstore(POST, root)
        }
    }

    /// The little-endian word at `addr` (4-aligned) of a leaf.
    function wordAt(uint256 leaf, uint256 addr) private pure returns (uint256 w) {
        assembly {
            let o := and(addr, 31)
            w := or(
                or(byte(o, leaf), shl(8, byte(add(o, 1), leaf))),
                or(shl(16, byte(add(o, 2), leaf)), shl(24, byte(add(o, 3), leaf)))
            )
        }
    }

    /// `leaf` with the low `width` bytes of `value` stored little-endian at `addr & 31`.
    function storeBytes(uint256 leaf, uint256 addr, uint256 width, uint256 value) private pure returns (uint256) {
        assembly {
            // little-endian bytes of value as a big-endian `width`-byte field
            let v := value
            switch width
            case 1 { v := and(v, 0xff) }
            case 2 { v := or(shl(8, and(v, 0xff)), and(shr(8, v), 0xff)) }
            default {
                v := or(
                    or(shl(24, and(v, 0xff)), shl(16, and(shr(8, v), 0xff))),
                    or(shl(8, and(shr(16, v), 0xff)), and(shr(24, v), 0xff))
                )
            }
            // field occupies leaf bytes o .. o+width-1, i.e. bits shift .. shift+8*width
            let shift := sub(256, shl(3, add(and(addr, 31), width)))
            // 2^(8 * width) - 1 shifts the constant 1 by a computed amount, as intended.
            // slither-disable-next-line incorrect-shift
            let fieldMask := shl(shift, sub(shl(shl(3, width), 1), 1))
            leaf := or(and(leaf, not(fieldMask)), shl(shift, v))
        }
        return leaf;
    }

    // ------------------------------------------------------------------------------------
    // Execute
    // ------------------------------------------------------------------------------------

    /// Decode and execute `insn` at `pcAddr` (the pc: `pc` is a reserved name in inline
    /// assembly), writing the post-state. Returns the proof offset after any data path.
    function execute(uint256 p, uint256 end, uint256 fetchLeaf, uint256 insn, uint256 pcAddr)
        private
        pure
        returns (uint256)
    {
        uint256 opcode = insn & 0x7f;
        if (opcode == OP_LOAD) return execLoad(p, end, fetchLeaf, insn, pcAddr);
        if (opcode == OP_STORE) return execStore(p, end, fetchLeaf, insn, pcAddr);
        execRegister(insn, pcAddr);
        return p;
    }

    /// Every instruction that touches no memory: ALU, M extension, jumps, branches, lui,
    /// auipc, fence, ecall, ebreak, dot4 and invalid encodings.
    function execRegister(uint256 insn, uint256 pcAddr) private pure {
        assembly {
            function reg(i) -> v {
                v := shr(224, calldataload(add(add(STATE, 45), shl(2, i))))
            }
            function setReg(rd, v) {
                if rd {
                    let a := add(add(POST, 45), shl(2, rd))
                    mstore(a, or(shl(224, v), and(mload(a), sub(shl(224, 1), 1))))
                }
            }
            function advance(nextPc) {
                let a := add(POST, 32)
                let w := mload(a)
                let s := and(add(shr(160, w), 1), 0xffffffffffffffff)
                mstore(a, or(or(shl(224, nextPc), shl(160, s)), and(w, sub(shl(160, 1), 1))))
            }
            function fault(reason) {
                let a := add(POST, 32)
                let w := mload(a)
                let s := and(add(shr(160, w), 1), 0xffffffffffffffff)
                w := and(w, not(shl(120, sub(shl(104, 1), 1))))
                mstore(a, or(or(w, shl(160, s)), or(shl(152, 2), shl(120, reason))))
            }
            /// Set the status byte and exit code (ecall exit), keeping everything else.
            function setExit(code) {
                let a := add(POST, 32)
                let w := mload(a)
                w := and(w, not(shl(120, 0xffffffffff)))
                mstore(a, or(w, or(shl(152, 1), shl(120, code))))
            }
            function execJump(rd, link, target) {
                switch and(target, 3)
                case 0 {
                    setReg(rd, link)
                    advance(target)
                }
                default { fault(MISALIGNED_JUMP) }
            }
            /// ALU on register values (OP and OP-IMM share funct3 meanings); `alt` is
            /// funct7 = 0100000 (sub / sra / srai).
            function alu(f3, alt, a, b) -> v {
                switch f3
                case 0 {
                    switch alt
                    case 0 { v := and(add(a, b), 0xffffffff) }
                    default { v := and(sub(a, b), 0xffffffff) }
                }
                case 1 { v := and(shl(and(b, 31), a), 0xffffffff) }
                case 2 { v := slt(signextend(3, a), signextend(3, b)) }
                case 3 { v := lt(a, b) }
                case 4 { v := xor(a, b) }
                case 5 {
                    switch alt
                    case 0 { v := shr(and(b, 31), a) }
                    default { v := and(sar(and(b, 31), signextend(3, a)), 0xffffffff) }
                }
                case 6 { v := or(a, b) }
                default { v := and(a, b) }
            }
            /// The M extension.
            function mulDiv(f3, a, b) -> v {
                switch f3
                case 0 { v := and(mul(a, b), 0xffffffff) }
                case 1 { v := and(sar(32, mul(signextend(3, a), signextend(3, b))), 0xffffffff) }
                case 2 { v := and(sar(32, mul(signextend(3, a), b)), 0xffffffff) }
                case 3 { v := shr(32, mul(a, b)) }
                case 4 {
                    switch b
                    case 0 { v := 0xffffffff }
                    default { v := and(sdiv(signextend(3, a), signextend(3, b)), 0xffffffff) }
                }
                case 5 {
                    switch b
                    case 0 { v := 0xffffffff }
                    default { v := div(a, b) }
                }
                case 6 {
                    switch b
                    case 0 { v := a }
                    default { v := and(smod(signextend(3, a), signextend(3, b)), 0xffffffff) }
                }
                default {
                    switch b
                    case 0 { v := a }
                    default { v := mod(a, b) }
                }
            }

            let rd := and(shr(7, insn), 31)
            let f3 := and(shr(12, insn), 7)
            let f7 := shr(25, insn)
            let a := reg(and(shr(15, insn), 31))
            let next := and(add(pcAddr, 4), 0xffffffff)
            // imm_i, sign-extended to 32 bits
            let immI := and(sar(20, signextend(3, insn)), 0xffffffff)

            switch and(insn, 0x7f)
            case 0x13 {
                // OP-IMM
                switch f3
                case 1 {
                    switch f7
                    case 0 {
                        setReg(rd, alu(1, 0, a, and(shr(20, insn), 31)))
                        advance(next)
                    }
                    default { fault(INVALID_INSTRUCTION) }
                }
                case 5 {
                    switch f7
                    case 0 {
                        setReg(rd, alu(5, 0, a, and(shr(20, insn), 31)))
                        advance(next)
                    }
                    case 0x20 {
                        setReg(rd, alu(5, 1, a, and(shr(20, insn), 31)))
                        advance(next)
                    }
                    default { fault(INVALID_INSTRUCTION) }
                }
                default {
                    setReg(rd, alu(f3, 0, a, immI))
                    advance(next)
                }
            }
            case 0x33 {
                // OP
                let b := reg(and(shr(20, insn), 31))
                switch f7
                case 0 {
                    setReg(rd, alu(f3, 0, a, b))
                    advance(next)
                }
                case 1 {
                    setReg(rd, mulDiv(f3, a, b))
                    advance(next)
                }
                case 0x20 {
                    switch or(eq(f3, 0), eq(f3, 5))
                    case 1 {
                        setReg(rd, alu(f3, 1, a, b))
                        advance(next)
                    }
                    default { fault(INVALID_INSTRUCTION) }
                }
                default { fault(INVALID_INSTRUCTION) }
            }
            case 0x63 {
                // BRANCH
                let b := reg(and(shr(20, insn), 31))
                let taken
                switch f3
                case 0 { taken := eq(a, b) }
                case 1 { taken := iszero(eq(a, b)) }
                case 4 { taken := slt(signextend(3, a), signextend(3, b)) }
                case 5 { taken := iszero(slt(signextend(3, a), signextend(3, b))) }
                case 6 { taken := lt(a, b) }
                case 7 { taken := iszero(lt(a, b)) }
                default { taken := 2 }
                switch taken
                case 0 { advance(next) }
                case 1 {
                    // imm_b
                    let imm :=
                        or(
                            or(and(sar(19, signextend(3, insn)), 0xfffff000), shl(4, and(insn, 0x80))),
                            or(and(shr(20, insn), 0x7e0), and(shr(7, insn), 0x1e))
                        )
                    let target := and(add(pcAddr, imm), 0xffffffff)
                    switch and(target, 3)
                    case 0 { advance(target) }
                    default { fault(MISALIGNED_JUMP) }
                }
                default { fault(INVALID_INSTRUCTION) }
            }
            case 0x6f {
                // JAL: imm_j
                let imm :=
                    or(
                        or(and(sar(11, signextend(3, insn)), 0xfff00000), and(insn, 0x000ff000)),
                        or(and(shr(9, insn), 0x800), and(shr(20, insn), 0x7fe))
                    )
                execJump(rd, next, and(add(pcAddr, imm), 0xffffffff))
            }
            case 0x67 {
                // JALR
                switch f3
                case 0 { execJump(rd, next, and(add(a, immI), 0xfffffffe)) }
                default { fault(INVALID_INSTRUCTION) }
            }
            case 0x37 {
                // LUI
                setReg(rd, and(insn, 0xfffff000))
                advance(next)
            }
            case 0x17 {
                // AUIPC
                setReg(rd, and(add(pcAddr, and(insn, 0xfffff000)), 0xffffffff))
                advance(next)
            }
            case 0x0b {
                // custom-0: dot4
                switch or(f3, f7)
                case 0 {
                    let b := reg(and(shr(20, insn), 31))
                    let sum :=
                        add(
                            add(
                                mul(signextend(0, a), signextend(0, b)),
                                mul(signextend(0, shr(8, a)), signextend(0, shr(8, b)))
                            ),
                            add(
                                mul(signextend(0, shr(16, a)), signextend(0, shr(16, b))),
                                mul(signextend(0, shr(24, a)), signextend(0, shr(24, b)))
                            )
                        )
                    setReg(rd, and(add(reg(rd), sum), 0xffffffff))
                    advance(next)
                }
                default { fault(INVALID_INSTRUCTION) }
            }
            case 0x73 {
                // SYSTEM: only ecall and ebreak
                switch insn
                case 0x00000073 {
                    // ecall (execEcall)
                    switch reg(17)
                    case 93 {
                        setExit(reg(10))
                        advance(next)
                    }
                    case 64 {
                        let fd := reg(10)
                        switch or(eq(fd, 1), eq(fd, 2))
                        case 1 {
                            setReg(10, reg(12))
                            advance(next)
                        }
                        default { fault(BAD_WRITE_FD) }
                    }
                    default { fault(UNSUPPORTED_SYSCALL) }
                }
                case 0x00100073 { fault(EBREAK) }
                default { fault(INVALID_INSTRUCTION) }
            }
            case 0x0f {
                // MISC-MEM: fence (funct3 0) is a no-op
                switch f3
                case 0 { advance(next) }
                default { fault(INVALID_INSTRUCTION) }
            }
            default { fault(INVALID_INSTRUCTION) }
        }
    }

    /// lb lh lw lbu lhu.
    function execLoad(uint256 p, uint256 end, uint256 fetchLeaf, uint256 insn, uint256 pcAddr)
        private
        pure
        returns (uint256)
    {
        uint256 f3 = (insn >> 12) & 7;
        if (f3 == 3 || f3 > 5) {
            fault(INVALID_INSTRUCTION);
            return p;
        }
        uint256 a = reg((insn >> 15) & 31);
        uint256 addr;
        assembly {
            // a + imm_i
            addr := and(add(a, sar(20, signextend(3, insn))), 0xffffffff)
        }
        // width - 1: lb/lbu 0, lh/lhu 1, lw 3
        uint256 w1 = (f3 & 3) == 0 ? 0 : ((f3 & 3) == 1 ? 1 : 3);
        if (addr & w1 != 0) {
            fault(MISALIGNED_LOAD);
            return p;
        }
        uint256 leaf;
        (leaf, p) = readData(p, end, fetchLeaf, pcAddr, addr);
        uint256 v;
        assembly {
            let o := and(addr, 31)
            switch f3
            case 0 { v := and(signextend(0, byte(o, leaf)), 0xffffffff) }
            case 1 { v := and(signextend(1, or(byte(o, leaf), shl(8, byte(add(o, 1), leaf)))), 0xffffffff) }
            case 4 { v := byte(o, leaf) }
            case 5 { v := or(byte(o, leaf), shl(8, byte(add(o, 1), leaf))) }
            default {
                v := or(
                    or(byte(o, leaf), shl(8, byte(add(o, 1), leaf))),
                    or(shl(16, byte(add(o, 2), leaf)), shl(24, byte(add(o, 3), leaf)))
                )
            }
        }
        setReg((insn >> 7) & 31, v);
        advance((pcAddr + 4) & 0xffffffff);
        return p;
    }

    /// sb sh sw.
    function execStore(uint256 p, uint256 end, uint256 fetchLeaf, uint256 insn, uint256 pcAddr)
        private
        pure
        returns (uint256)
    {
        uint256 f3 = (insn >> 12) & 7;
        if (f3 > 2) {
            fault(INVALID_INSTRUCTION);
            return p;
        }
        uint256 a = reg((insn >> 15) & 31);
        uint256 value = reg((insn >> 20) & 31);
        uint256 addr;
        assembly {
            // a + imm_s
            addr := and(add(a, or(shl(5, sar(25, signextend(3, insn))), and(shr(7, insn), 0x1f))), 0xffffffff)
        }
        uint256 width = 1 << f3;
        if (addr & (width - 1) != 0) {
            fault(MISALIGNED_STORE);
            return p;
        }
        p = writeData(p, end, fetchLeaf, pcAddr, addr, width, value);
        advance((pcAddr + 4) & 0xffffffff);
        return p;
    }
}
