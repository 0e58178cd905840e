// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Step} from "../src/Step.sol";
import {MemoryProof} from "../src/MemoryProof.sol";
import {TestBase} from "./utils/Cheats.sol";

/// Malformed and non-canonical inputs revert, each with the error of the first failed check
/// (docs/spec/vm.md §8 order). Built from honest vectors of `fixtures/step-vectors`.
contract StepMalformedTest is TestBase {
    Step internal step;
    string internal json;

    function setUp() public {
        step = new Step();
        json = vm.readFile(string.concat(vm.projectRoot(), "/../fixtures/step-vectors/vectors.json"));
    }

    /// The (state, proof) of the vector called `name`.
    function vector(string memory name) internal view returns (bytes memory state, bytes memory proof) {
        uint256 n = vm.parseJsonUint(json, ".count");
        for (uint256 i = 0; i < n; i++) {
            string memory prefix = string.concat(".vectors[", vm.toString(i), "].");
            if (keccak256(bytes(vm.parseJsonString(json, string.concat(prefix, "name")))) == keccak256(bytes(name))) {
                return (
                    vm.parseJsonBytes(json, string.concat(prefix, "state")),
                    vm.parseJsonBytes(json, string.concat(prefix, "proof"))
                );
            }
        }
        revert AssertionFailed(string.concat("no vector ", name));
    }

    /// Call with raw calldata; require a revert whose selector is `sel` (0: any revert).
    function expectRevertRaw(bytes memory data, bytes4 sel, string memory what) internal view {
        (bool ok, bytes memory ret) = address(step).staticcall(data);
        assertTrue(!ok, string.concat(what, ": did not revert"));
        if (sel != bytes4(0)) {
            // casting to 'bytes4' is safe because it keeps the selector, the first 4 bytes
            // forge-lint: disable-next-line(unsafe-typecast)
            assertTrue(ret.length >= 4 && bytes4(ret) == sel, string.concat(what, ": wrong revert reason"));
        }
    }

    function expectRevertStep(bytes memory state, bytes memory proof, bytes4 sel, string memory what) internal view {
        expectRevertRaw(abi.encodeCall(Step.step, (state, proof)), sel, what);
    }

    function honestAccepted(bytes memory state, bytes memory proof) internal view {
        (bool ok,) = address(step).staticcall(abi.encodeCall(Step.step, (state, proof)));
        assertTrue(ok, "the honest witness must be accepted");
    }

    // Bytes 0..31 of a proof are the fetch leaf, 32..35 its mask, then the siblings.
    uint256 internal constant FETCH_MASK = 32;
    uint256 internal constant FETCH_SIBLINGS = 36;

    function test_wrongFetchSiblingReverts() public view {
        (bytes memory state, bytes memory proof) = vector("instruction:Sh#1");
        honestAccepted(state, proof);
        proof[FETCH_SIBLINGS + 5] ^= 0x01;
        expectRevertStep(state, proof, Step.BadFetchProof.selector, "wrong fetch sibling");
    }

    function test_wrongFetchLeafReverts() public view {
        (bytes memory state, bytes memory proof) = vector("instruction:Add#0");
        proof[31] ^= 0x80;
        expectRevertStep(state, proof, Step.BadFetchProof.selector, "wrong fetch leaf");
    }

    function test_wrongDataLeafAndSiblingRevert() public view {
        // Lh#0: fetch path with 4 siblings (164 bytes), then a data leaf and its path.
        (bytes memory state, bytes memory proof) = vector("instruction:Lh#0");
        honestAccepted(state, proof);
        bytes memory bad = bytes.concat(proof);
        bad[164 + 3] ^= 0x01; // data leaf
        expectRevertStep(state, bad, Step.BadDataProof.selector, "wrong data leaf");
        bad = bytes.concat(proof);
        bad[164 + 32 + 4 + 7] ^= 0x01; // first data sibling
        expectRevertStep(state, bad, Step.BadDataProof.selector, "wrong data sibling");
        // A store must not accept a wrong data leaf either (it would write a wrong root).
        (state, proof) = vector("instruction:Sh#1");
        proof[proof.length - 1] ^= 0x01;
        expectRevertStep(state, proof, Step.BadDataProof.selector, "store: wrong data sibling");
    }

    function test_proofForTheWrongAddressReverts() public view {
        (bytes memory state, bytes memory proof) = vector("instruction:Add#0");
        // The same proof for a pc one leaf further on.
        uint32 pc = uint32(bytes4(abi.encodePacked(state[32], state[33], state[34], state[35])));
        bytes4 moved = bytes4(pc ^ 0x20);
        for (uint256 i = 0; i < 4; i++) {
            state[32 + i] = moved[i];
        }
        expectRevertStep(state, proof, Step.BadFetchProof.selector, "proof for another pc");
        // A load's data proof for another address: Lh#0 with the base register moved by a leaf.
        (state, proof) = vector("instruction:Lbu#0");
        (bytes memory state2, bytes memory proof2) = vector("instruction:Lh#0");
        expectRevertStep(state, proof2, bytes4(0), "another step's proof");
        expectRevertStep(state2, proof, bytes4(0), "another step's proof (2)");
    }

    function test_maskBitsOutOfRangeRevert() public view {
        (bytes memory state, bytes memory proof) = vector("instruction:Add#0");
        bytes memory bad = bytes.concat(proof);
        bad[FETCH_MASK] |= 0x08; // bit 27
        expectRevertStep(state, bad, MemoryProof.MaskOutOfRange.selector, "fetch mask bit 27");
        bad = bytes.concat(proof);
        bad[FETCH_MASK] |= 0x80; // bit 31
        expectRevertStep(state, bad, MemoryProof.MaskOutOfRange.selector, "fetch mask bit 31");
        // Lh#0 joins at level 27: its data path covers levels 0..25, so bit 26 is out of range.
        (state, proof) = vector("instruction:Lh#0");
        proof[164 + 32] |= 0x04;
        expectRevertStep(state, proof, MemoryProof.MaskOutOfRange.selector, "data mask bit 26");
    }

    function test_nonCanonicalStatesRevert() public view {
        (bytes memory state, bytes memory proof) = vector("instruction:Add#0");
        bytes memory bad = bytes.concat(state);
        bad[44] = 0x03; // status 3
        expectRevertStep(bad, proof, Step.StateNotCanonical.selector, "status 3");
        bad = bytes.concat(state);
        bad[48] = 0x01; // running with exit code 1
        expectRevertStep(bad, proof, Step.StateNotCanonical.selector, "running with an exit code");
        bad = bytes.concat(state);
        bad[44] = 0x02; // faulted with exit code 0
        expectRevertStep(bad, "", Step.StateNotCanonical.selector, "fault reason 0");
        bad[48] = 0x09; // faulted with exit code 9
        expectRevertStep(bad, "", Step.StateNotCanonical.selector, "fault reason 9");
        bad[48] = 0x08; // fault reason 8 is canonical: a halted state steps to itself
        assertEq(step.step(bad, ""), keccak256(bad), "halted fixed point");
    }

    function test_wrongStateLengthReverts() public view {
        (bytes memory state, bytes memory proof) = vector("instruction:Add#0");
        expectRevertStep(bytes.concat(state, hex"00"), proof, Step.StateLength.selector, "174-byte state");
        bytes memory short = new bytes(172);
        for (uint256 i = 0; i < 172; i++) {
            short[i] = state[i];
        }
        expectRevertStep(short, proof, Step.StateLength.selector, "172-byte state");
    }

    function test_proofLengthMustBeExact() public view {
        (bytes memory state, bytes memory proof) = vector("instruction:Add#0");
        expectRevertStep(state, bytes.concat(proof, hex"00"), Step.ProofTooLong.selector, "one trailing proof byte");
        bytes memory short = new bytes(proof.length - 32);
        for (uint256 i = 0; i < short.length; i++) {
            short[i] = proof[i];
        }
        expectRevertStep(state, short, bytes4(0), "proof missing a sibling");
        // Halted and misaligned-fetch steps take an empty proof.
        (state, proof) = vector("halted:1#0");
        assertTrue(proof.length == 0, "halted vector has an empty proof");
        expectRevertStep(state, hex"00", Step.ProofTooLong.selector, "halted with a proof byte");
        (state, proof) = vector("fault:2#0");
        expectRevertStep(state, hex"00", Step.ProofTooLong.selector, "misaligned fetch with a proof byte");
    }

    function test_truncatedPaddedOrNonCanonicalCalldataReverts() public view {
        (bytes memory state, bytes memory proof) = vector("instruction:Sw#0");
        bytes memory data = abi.encodeCall(Step.step, (state, proof));
        (bool ok,) = address(step).staticcall(data);
        assertTrue(ok, "canonical calldata is accepted");
        // truncated by one byte / one word
        bytes memory cut = new bytes(data.length - 1);
        for (uint256 i = 0; i < cut.length; i++) {
            cut[i] = data[i];
        }
        expectRevertRaw(cut, bytes4(0), "truncated by a byte");
        cut = new bytes(data.length - 32);
        for (uint256 i = 0; i < cut.length; i++) {
            cut[i] = data[i];
        }
        expectRevertRaw(cut, bytes4(0), "truncated by a word");
        // padded with a trailing word or byte
        expectRevertRaw(bytes.concat(data, bytes32(0)), Step.BadCalldata.selector, "trailing word");
        expectRevertRaw(bytes.concat(data, hex"00"), Step.BadCalldata.selector, "trailing byte");
        // non-zero padding after the state (byte 0x64 + 173) and after the proof
        bytes memory bad = bytes.concat(data);
        bad[0x64 + 173] = 0x01;
        expectRevertRaw(bad, Step.BadCalldata.selector, "state padding");
        bad = bytes.concat(data);
        bad[bad.length - 1] = 0x01;
        expectRevertRaw(bad, Step.BadCalldata.selector, "proof padding");
        // a non-canonical head offset (state moved one word later)
        bad = bytes.concat(data);
        bad[4 + 31] = 0x60;
        expectRevertRaw(bad, bytes4(0), "state offset 0x60");
    }
}
