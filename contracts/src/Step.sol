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

    /// Highest fault reason.
    uint256 private constant MAX_FAULT = 8;

    // State layout (docs/spec/vm.md §7): memory root at 0, then one word at PC_WORD holding
    // pc (4 bytes), step (8), status (1), exit code (4) and the first bytes of x1; register
    // i at REGS + 4i (x0 lands on the exit code, which is 0 in every running state).
    /// State offset of the word that starts with the pc.
    uint256 private constant PC_WORD = 32;
    /// Bit offsets in the pc word of its fields (big-endian: the pc is the top 4 bytes).
    uint256 private constant PC_SHIFT = 224;
    uint256 private constant STEP_SHIFT = 160;
    uint256 private constant STATUS_SHIFT = 152;
    uint256 private constant EXIT_CODE_SHIFT = 120;
    /// Byte index of the status in the pc word (`byte(STATUS_BYTE, w)`).
    uint256 private constant STATUS_BYTE = 12;
    /// State offset of register 0.
    uint256 private constant REGS = 45;
    /// A 4-byte big-endian field at the top of a word is the word shifted right by this.
    uint256 private constant U32_SHIFT = 224;
    uint256 private constant U32 = 0xffffffff;
    uint256 private constant U64 = 0xffffffffffffffff;

    // Status (docs/spec/vm.md §1).
    uint256 private constant STATUS_RUNNING = 0;
    uint256 private constant STATUS_EXITED = 1;
    uint256 private constant STATUS_FAULTED = 2;

    // Major opcodes (`isa::opcode`).
    uint256 private constant OPCODE_MASK = 0x7f;
    uint256 private constant OPCODE_LUI = 0x37;
    uint256 private constant OPCODE_AUIPC = 0x17;
    uint256 private constant OPCODE_JAL = 0x6f;
    uint256 private constant OPCODE_JALR = 0x67;
    uint256 private constant OPCODE_BRANCH = 0x63;
    uint256 private constant OPCODE_LOAD = 0x03;
    uint256 private constant OPCODE_STORE = 0x23;
    uint256 private constant OPCODE_OP_IMM = 0x13;
    uint256 private constant OPCODE_OP = 0x33;
    uint256 private constant OPCODE_MISC_MEM = 0x0f;
    uint256 private constant OPCODE_SYSTEM = 0x73;
    /// custom-0: the opml ML extension.
    uint256 private constant OPCODE_CUSTOM_0 = 0x0b;

    // funct3 values (docs/spec/vm.md §4).
    uint256 private constant FUNCT3_JALR = 0;
    uint256 private constant FUNCT3_BEQ = 0;
    uint256 private constant FUNCT3_BNE = 1;
    uint256 private constant FUNCT3_BLT = 4;
    uint256 private constant FUNCT3_BGE = 5;
    uint256 private constant FUNCT3_BLTU = 6;
    uint256 private constant FUNCT3_BGEU = 7;
    uint256 private constant FUNCT3_LB = 0;
    uint256 private constant FUNCT3_LH = 1;
    uint256 private constant FUNCT3_LW = 2;
    /// RV64's ld: reserved here.
    uint256 private constant FUNCT3_LD = 3;
    uint256 private constant FUNCT3_LBU = 4;
    uint256 private constant FUNCT3_LHU = 5;
    uint256 private constant FUNCT3_SW = 2;
    uint256 private constant FUNCT3_ADD = 0;
    uint256 private constant FUNCT3_SLL = 1;
    uint256 private constant FUNCT3_SRL = 5;
    // funct7 values: base, the alternative (sub, sra, srai), the M extension.
    uint256 private constant FUNCT7_BASE = 0;
    uint256 private constant FUNCT7_ALT = 0x20;
    uint256 private constant FUNCT7_M = 1;
    // Instructions told by opcode, funct3 (and funct7) together: `insn & MASK == MATCH`,
    // one test where two would cost more gas.
    /// fence: MISC-MEM with funct3 0.
    uint256 private constant FENCE_MASK = 0x0000707f;
    uint256 private constant FENCE_MATCH = OPCODE_MISC_MEM;
    /// dot4: custom-0 with funct3 0 and funct7 0.
    uint256 private constant DOT4_MASK = 0xfe00707f;
    uint256 private constant DOT4_MATCH = OPCODE_CUSTOM_0;
    /// Shift amounts are taken mod 32.
    uint256 private constant SHAMT_MASK = 31;

    /// The two SYSTEM words that are valid (`isa::ECALL`, `isa::EBREAK`).
    uint256 private constant ECALL_WORD = 0x00000073;
    uint256 private constant EBREAK_WORD = 0x00100073;
    // Syscalls (in a7) and the registers they use (`isa::SYS_*`, `isa::REG_*`).
    uint256 private constant SYS_EXIT = 93;
    uint256 private constant SYS_WRITE = 64;
    uint256 private constant FD_STDOUT = 1;
    uint256 private constant FD_STDERR = 2;
    uint256 private constant REG_A0 = 10;
    uint256 private constant REG_A2 = 12;
    uint256 private constant REG_A7 = 17;

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
        if (status != STATUS_RUNNING) {
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
            let w := calldataload(add(STATE, PC_WORD))
            pcAddr := shr(PC_SHIFT, w)
            status := byte(STATUS_BYTE, w)
            exitCode := and(shr(EXIT_CODE_SHIFT, w), U32)
        }
        if (
            status > STATUS_FAULTED || (status == STATUS_RUNNING && exitCode != 0)
                || (status == STATUS_FAULTED && (exitCode == 0 || exitCode > MAX_FAULT))
        ) {
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
            v := shr(U32_SHIFT, calldataload(add(add(STATE, REGS), shl(2, i))))
        }
    }

    /// Write `v` to `rd` of the post-state (dropping writes to x0). x0's slot is the exit
    /// code, 0 in every running state: a write to x0 stores 0 there, which changes nothing.
    /// Without a branch the optimizer inlines this function (it inlines only jump-free ones).
    function setReg(uint256 rd, uint256 v) private pure {
        assembly {
            let a := add(add(POST, REGS), shl(2, rd))
            // Shifts the constant 1 by a named field offset, as intended.
            // slither-disable-next-line incorrect-shift
            mstore(a, or(shl(U32_SHIFT, mul(v, lt(0, rd))), and(mload(a), sub(shl(U32_SHIFT, 1), 1))))
        }
    }

    /// Commit a completed instruction: advance the step counter and the pc.
    function advance(uint256 nextPc) private pure {
        assembly {
            let a := add(POST, PC_WORD)
            let w := mload(a)
            let s := and(add(shr(STEP_SHIFT, w), 1), U64)
            // the new pc and step over the old ones; status, exit code and registers kept (the
            // constant 1 shifted by a named field offset, as intended)
            // slither-disable-next-line incorrect-shift
            mstore(a, or(or(shl(PC_SHIFT, nextPc), shl(STEP_SHIFT, s)), and(w, sub(shl(STEP_SHIFT, 1), 1))))
        }
    }

    /// Fault with `reason`: status 2, exit code `reason`, step + 1; pc, registers and
    /// memory keep their pre-step values.
    function fault(uint256 reason) private pure {
        assembly {
            let a := add(POST, PC_WORD)
            let w := mload(a)
            let s := and(add(shr(STEP_SHIFT, w), 1), U64)
            // keep the pc (bits PC_SHIFT..) and the registers (below EXIT_CODE_SHIFT): clear
            // step, status and exit code (constants shifted by named offsets, as intended)
            // slither-disable-next-line incorrect-shift
            w := and(w, not(shl(EXIT_CODE_SHIFT, sub(shl(sub(PC_SHIFT, EXIT_CODE_SHIFT), 1), 1))))
            mstore(
                a,
                or(or(w, shl(STEP_SHIFT, s)), or(shl(STATUS_SHIFT, STATUS_FAULTED), shl(EXIT_CODE_SHIFT, reason)))
            )
        }
    }

    /// Exit with `code` (ecall exit): status 1, exit code `code`; everything else is kept
    /// (the caller advances).
    function setExit(uint256 code) private pure {
        assembly {
            let a := add(POST, PC_WORD)
            // clear status and exit code (a 5-byte mask shifted to them, as intended)
            // slither-disable-next-line incorrect-shift
            let w := and(mload(a), not(shl(EXIT_CODE_SHIFT, 0xffffffffff)))
            mstore(a, or(w, or(shl(STATUS_SHIFT, STATUS_EXITED), shl(EXIT_CODE_SHIFT, code))))
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
        uint256 opcode = wordAt(leaf, pcAddr) & OPCODE_MASK;
        if (opcode == OPCODE_LOAD || opcode == OPCODE_STORE) {
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

    /// The byte at `addr` of a leaf.
    function byteAt(uint256 leaf, uint256 addr) private pure returns (uint256 v) {
        assembly {
            v := byte(and(addr, 31), leaf)
        }
    }

    /// The little-endian halfword at `addr` (2-aligned) of a leaf.
    function halfAt(uint256 leaf, uint256 addr) private pure returns (uint256 v) {
        assembly {
            let o := and(addr, 31)
            v := or(byte(o, leaf), shl(8, byte(add(o, 1), leaf)))
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
    // Execute: `execute` and the `exec_*` functions of vm/src/step.rs, in the same order
    // ------------------------------------------------------------------------------------

    /// Decode and execute `insn` at `pcAddr` (the pc: `pc` is a reserved name in inline
    /// assembly), writing the post-state. Returns the proof offset after any data path.
    /// The opcodes are tested in the order of the arms of `execute` in step.rs: the most
    /// frequent first, since every test costs about 25 gas to each opcode tested after it.
    function execute(uint256 p, uint256 end, uint256 fetchLeaf, uint256 insn, uint256 pcAddr)
        private
        pure
        returns (uint256)
    {
        unchecked {
            uint256 opcode = insn & OPCODE_MASK;
            uint256 a = reg(rs1Of(insn));
            if (opcode == OPCODE_OP_IMM) {
                execOpImm(insn, rdOf(insn), a, (pcAddr + 4) & U32);
                return p;
            }
            if (opcode == OPCODE_LOAD) return execLoad(p, end, fetchLeaf, insn, pcAddr, (a + immI(insn)) & U32);
            if (opcode == OPCODE_STORE) {
                return execStore(p, end, fetchLeaf, insn, pcAddr, (a + immS(insn)) & U32, reg(rs2Of(insn)));
            }
            uint256 rd = rdOf(insn);
            uint256 next = (pcAddr + 4) & U32;
            if (opcode == OPCODE_OP) {
                execOp(insn, rd, a, reg(rs2Of(insn)), next);
            } else if (opcode == OPCODE_BRANCH) {
                execBranch(insn, pcAddr, a, reg(rs2Of(insn)));
            } else if (opcode == OPCODE_JAL) {
                execJump(rd, next, (pcAddr + immJ(insn)) & U32);
            } else if (opcode == OPCODE_JALR && funct3(insn) == FUNCT3_JALR) {
                execJump(rd, next, (a + immI(insn)) & U32 & ~uint256(1));
            } else if (opcode == OPCODE_LUI) {
                setReg(rd, immU(insn));
                advance(next);
            } else if (opcode == OPCODE_AUIPC) {
                setReg(rd, (pcAddr + immU(insn)) & U32);
                advance(next);
            } else if (insn & DOT4_MASK == DOT4_MATCH) {
                setReg(rd, (reg(rd) + dot4(a, reg(rs2Of(insn)))) & U32);
                advance(next);
            } else if (insn == ECALL_WORD) {
                // (the opcode of both words is OPCODE_SYSTEM)
                execEcall(next);
            } else if (insn == EBREAK_WORD) {
                fault(EBREAK);
            } else if (insn & FENCE_MASK == FENCE_MATCH) {
                // fence: a no-op
                advance(next);
            } else {
                fault(INVALID_INSTRUCTION);
            }
            return p;
        }
    }

    /// lb lh lw lbu lhu at `addr` (rs1 + imm_i): a reserved funct3 faults, then a misaligned
    /// address; then the data path is read and the value written to rd.
    function execLoad(uint256 p, uint256 end, uint256 fetchLeaf, uint256 insn, uint256 pcAddr, uint256 addr)
        private
        pure
        returns (uint256)
    {
        unchecked {
            uint256 f3 = funct3(insn);
            // funct3 3 (RV64's ld), 6 (RV64's lwu) and 7 are reserved
            if (f3 == FUNCT3_LD || f3 > FUNCT3_LHU) {
                fault(INVALID_INSTRUCTION);
                return p;
            }
            if (addr & (accessWidth(f3) - 1) != 0) {
                fault(MISALIGNED_LOAD);
                return p;
            }
            uint256 leaf;
            (leaf, p) = readData(p, end, fetchLeaf, pcAddr, addr);
            uint256 v;
            if (f3 == FUNCT3_LW) {
                v = wordAt(leaf, addr);
            } else if (f3 == FUNCT3_LBU) {
                v = byteAt(leaf, addr);
            } else if (f3 == FUNCT3_LB) {
                v = signExtend(0, byteAt(leaf, addr));
            } else if (f3 == FUNCT3_LHU) {
                v = halfAt(leaf, addr);
            } else {
                // FUNCT3_LH
                v = signExtend(1, halfAt(leaf, addr));
            }
            setReg(rdOf(insn), v);
            advance((pcAddr + 4) & U32);
            return p;
        }
    }

    /// sb sh sw of the low bytes of `value` (rs2) at `addr` (rs1 + imm_s): a reserved funct3
    /// faults, then a misaligned address; then the data path is read and the new memory
    /// root written.
    function execStore(
        uint256 p,
        uint256 end,
        uint256 fetchLeaf,
        uint256 insn,
        uint256 pcAddr,
        uint256 addr,
        uint256 value
    ) private pure returns (uint256) {
        unchecked {
            uint256 f3 = funct3(insn);
            if (f3 > FUNCT3_SW) {
                fault(INVALID_INSTRUCTION);
                return p;
            }
            uint256 w = accessWidth(f3);
            if (addr & (w - 1) != 0) {
                fault(MISALIGNED_STORE);
                return p;
            }
            p = writeData(p, end, fetchLeaf, pcAddr, addr, w, value);
            advance((pcAddr + 4) & U32);
            return p;
        }
    }

    /// OP-IMM: `rd = a op imm_i` (slli, srli, srai: `rd = a op shamt`). The funct7 of a
    /// shift must be 0 (or 0100000 for srai), else the instruction faults; for the others it
    /// is part of the immediate.
    function execOpImm(uint256 insn, uint256 rd, uint256 a, uint256 next) private pure {
        uint256 f3 = funct3(insn);
        uint256 f7 = FUNCT7_BASE;
        if (f3 == FUNCT3_SLL || f3 == FUNCT3_SRL) {
            f7 = funct7(insn);
            if (f7 != FUNCT7_BASE && (f7 != FUNCT7_ALT || f3 != FUNCT3_SRL)) {
                fault(INVALID_INSTRUCTION);
                return;
            }
        }
        // shamt is the low 5 bits of imm_i, and `alu` takes shift amounts mod 32
        setReg(rd, alu(f3, f7, a, immI(insn)));
        advance(next);
    }

    /// OP: `rd = a op b` with funct7 0, 0100000 (sub, sra only) or 0000001 (the M extension);
    /// any other funct7 faults.
    function execOp(uint256 insn, uint256 rd, uint256 a, uint256 b, uint256 next) private pure {
        uint256 f3 = funct3(insn);
        uint256 f7 = funct7(insn);
        uint256 v;
        if (f7 == FUNCT7_BASE) {
            v = alu(f3, f7, a, b);
        } else if (f7 == FUNCT7_M) {
            v = aluM(f3, a, b);
        } else if (f7 == FUNCT7_ALT && (f3 == FUNCT3_ADD || f3 == FUNCT3_SRL)) {
            v = alu(f3, f7, a, b);
        } else {
            fault(INVALID_INSTRUCTION);
            return;
        }
        setReg(rd, v);
        advance(next);
    }

    /// beq bne blt bge bltu bgeu (funct3 2 and 3 are reserved). A taken branch to a misaligned
    /// target faults.
    function execBranch(uint256 insn, uint256 pcAddr, uint256 a, uint256 b) private pure {
        unchecked {
            uint256 f3 = funct3(insn);
            bool taken;
            if (f3 == FUNCT3_BEQ) {
                taken = a == b;
            } else if (f3 == FUNCT3_BNE) {
                taken = a != b;
            } else if (f3 == FUNCT3_BLT) {
                taken = lessSigned(a, b);
            } else if (f3 == FUNCT3_BGE) {
                taken = !lessSigned(a, b);
            } else if (f3 == FUNCT3_BLTU) {
                taken = a < b;
            } else if (f3 == FUNCT3_BGEU) {
                taken = a >= b;
            } else {
                fault(INVALID_INSTRUCTION);
                return;
            }
            if (!taken) {
                advance((pcAddr + 4) & U32);
                return;
            }
            uint256 target = (pcAddr + immB(insn)) & U32;
            if (target & 3 != 0) {
                fault(MISALIGNED_JUMP);
                return;
            }
            advance(target);
        }
    }

    /// jal, jalr: a misaligned target faults before rd is written; otherwise rd = `link`
    /// (pc + 4) and the pc jumps.
    function execJump(uint256 rd, uint256 link, uint256 target) private pure {
        if (target & 3 != 0) {
            fault(MISALIGNED_JUMP);
            return;
        }
        setReg(rd, link);
        advance(target);
    }

    /// ecall: exit (a7 = 93) with code a0, or write (a7 = 64) to fd a0 = 1 or 2, returning
    /// the byte count a2 in a0 (the bytes themselves go to the host only off-chain).
    function execEcall(uint256 next) private pure {
        uint256 syscall = reg(REG_A7);
        if (syscall == SYS_EXIT) {
            setExit(reg(REG_A0));
            advance(next);
        } else if (syscall == SYS_WRITE) {
            uint256 fd = reg(REG_A0);
            if (fd != FD_STDOUT && fd != FD_STDERR) {
                fault(BAD_WRITE_FD);
                return;
            }
            setReg(REG_A0, reg(REG_A2));
            advance(next);
        } else {
            fault(UNSUPPORTED_SYSCALL);
        }
    }

    // ------------------------------------------------------------------------------------
    // The ALU and decoding (vm/src/isa.rs)
    // ------------------------------------------------------------------------------------

    /// `isa::alu` without the M extension (that is `aluM`): OP and OP-IMM share the funct3
    /// meanings; `f7` is FUNCT7_BASE or FUNCT7_ALT (sub, sra, srai).
    function alu(uint256 f3, uint256 f7, uint256 a, uint256 b) private pure returns (uint256 v) {
        assembly {
            // Yul `case` takes literals only: the funct3 names are in the comments, and `case 0`
            // of `f7` is FUNCT7_BASE. The common operations come first (add, the shifts and the
            // logic before the compares): each case tested costs 22 gas to the later ones.
            switch f3
            case 0 {
                // add / sub
                switch f7
                case 0 { v := and(add(a, b), U32) }
                default { v := and(sub(a, b), U32) }
            }
            // sll
            case 1 { v := and(shl(and(b, SHAMT_MASK), a), U32) }
            case 5 {
                // srl / sra
                switch f7
                case 0 { v := shr(and(b, SHAMT_MASK), a) }
                default { v := and(sar(and(b, SHAMT_MASK), signextend(3, a)), U32) }
            }
            // and
            case 7 { v := and(a, b) }
            // or
            case 6 { v := or(a, b) }
            // xor
            case 4 { v := xor(a, b) }
            // sltu
            case 3 { v := lt(a, b) }
            // slt
            default { v := slt(signextend(3, a), signextend(3, b)) }
        }
    }

    /// The M extension of `isa::alu`: division by zero and `INT_MIN / -1` as RISC-V defines
    /// them (docs/spec/vm.md §4).
    function aluM(uint256 f3, uint256 a, uint256 b) private pure returns (uint256 v) {
        assembly {
            switch f3
            // mul
            case 0 { v := and(mul(a, b), U32) }
            // mulh
            case 1 { v := and(sar(32, mul(signextend(3, a), signextend(3, b))), U32) }
            // mulhsu
            case 2 { v := and(sar(32, mul(signextend(3, a), b)), U32) }
            // mulhu
            case 3 { v := shr(32, mul(a, b)) }
            case 4 {
                // div
                switch b
                case 0 { v := U32 }
                default { v := and(sdiv(signextend(3, a), signextend(3, b)), U32) }
            }
            case 5 {
                // divu
                switch b
                case 0 { v := U32 }
                default { v := div(a, b) }
            }
            case 6 {
                // rem
                switch b
                case 0 { v := a }
                default { v := and(smod(signextend(3, a), signextend(3, b)), U32) }
            }
            default {
                // remu
                switch b
                case 0 { v := a }
                default { v := mod(a, b) }
            }
        }
    }

    /// `isa::dot4`: the sum of the four signed byte-lane products of `a` and `b` (mod 2^256;
    /// the caller truncates).
    function dot4(uint256 a, uint256 b) private pure returns (uint256 sum) {
        assembly {
            sum := add(
                add(mul(signextend(0, a), signextend(0, b)), mul(signextend(0, shr(8, a)), signextend(0, shr(8, b)))),
                add(
                    mul(signextend(0, shr(16, a)), signextend(0, shr(16, b))),
                    mul(signextend(0, shr(24, a)), signextend(0, shr(24, b)))
                )
            )
        }
    }

    /// `(a as i32) < (b as i32)`.
    function lessSigned(uint256 a, uint256 b) private pure returns (bool less) {
        assembly {
            less := slt(signextend(3, a), signextend(3, b))
        }
    }

    /// `v` sign-extended from its byte `topByte` (0: a byte, 1: a halfword) to 32 bits.
    function signExtend(uint256 topByte, uint256 v) private pure returns (uint256 r) {
        assembly {
            r := and(signextend(topByte, v), U32)
        }
    }

    /// `isa::access_width` of a valid load or store: funct3 bits 1..0 are its log2.
    function accessWidth(uint256 f3) private pure returns (uint256) {
        return 1 << (f3 & 3);
    }

    /// `isa::rd`, `isa::rs1`, `isa::rs2`, `isa::funct3`, `isa::funct7`.
    function rdOf(uint256 insn) private pure returns (uint256) {
        return (insn >> 7) & 31;
    }

    function rs1Of(uint256 insn) private pure returns (uint256) {
        return (insn >> 15) & 31;
    }

    function rs2Of(uint256 insn) private pure returns (uint256) {
        return (insn >> 20) & 31;
    }

    function funct3(uint256 insn) private pure returns (uint256) {
        return (insn >> 12) & 7;
    }

    function funct7(uint256 insn) private pure returns (uint256) {
        return insn >> 25;
    }

    /// `isa::imm_i`, `imm_s`, `imm_b`, `imm_u`, `imm_j`: the immediates sign-extended to 32
    /// bits.
    function immI(uint256 insn) private pure returns (uint256 imm) {
        assembly {
            imm := and(sar(20, signextend(3, insn)), U32)
        }
    }

    function immS(uint256 insn) private pure returns (uint256 imm) {
        assembly {
            imm := and(or(shl(5, sar(25, signextend(3, insn))), and(shr(7, insn), 0x1f)), U32)
        }
    }

    function immB(uint256 insn) private pure returns (uint256 imm) {
        assembly {
            imm := or(
                or(and(sar(19, signextend(3, insn)), 0xfffff000), shl(4, and(insn, 0x80))),
                or(and(shr(20, insn), 0x7e0), and(shr(7, insn), 0x1e))
            )
        }
    }

    function immU(uint256 insn) private pure returns (uint256) {
        return insn & 0xfffff000;
    }

    function immJ(uint256 insn) private pure returns (uint256 imm) {
        assembly {
            imm := or(
                or(and(sar(11, signextend(3, insn)), 0xfff00000), and(insn, 0x000ff000)),
                or(and(shr(9, insn), 0x800), and(shr(20, insn), 0x7fe))
            )
        }
    }
}
