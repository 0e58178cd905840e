// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {ModelRegistry} from "../src/ModelRegistry.sol";
import {Cheats, TestBase} from "./utils/Cheats.sol";

/// ModelRegistry: registration, ids, immutability, every BadModel rule and checkInputs.
contract RegistryTest is TestBase {
    ModelRegistry internal reg;

    bytes32 internal constant ROOT = keccak256("model root");

    function setUp() public {
        reg = new ModelRegistry();
    }

    function badModel(string memory why) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(ModelRegistry.BadModel.selector, why);
    }

    /// `count` inputs of `len` bytes each.
    function lens(uint256 count, uint32 len) internal pure returns (uint32[] memory l) {
        l = new uint32[](count);
        for (uint256 i = 0; i < count; i++) {
            l[i] = len;
        }
    }

    function lens2(uint32 a, uint32 b) internal pure returns (uint32[] memory l) {
        l = new uint32[](2);
        (l[0], l[1]) = (a, b);
    }

    /// The id is keccak256 of the ABI encoding of the six fields, computed here by hand:
    /// the head of six words (the input lengths as the offset 6 * 32 of their tail), then
    /// the tail (the array's length, then its elements).
    function test_idIsKeccakOfTheSixFields() public view {
        bytes memory words = bytes.concat(
            bytes.concat(ROOT, bytes32(uint256(5)), bytes32(uint256(0xc0)), bytes32(uint256(8))),
            bytes.concat(bytes32(uint256(5)), bytes32(uint256(40)), bytes32(uint256(1)), bytes32(uint256(64)))
        );
        assertEq(reg.modelId(ROOT, 5, lens(1, 64), 8, 5, 40), keccak256(words), "modelId");
        bytes32 id = reg.modelId(ROOT, 5, lens(1, 64), 8, 5, 40);
        assertTrue(id != reg.modelId(ROOT, 5, lens(1, 64), 8, 4, 40), "output slot is in the id");
        assertTrue(id != reg.modelId(ROOT, 5, lens(1, 64), 8, 5, 41), "output length is in the id");
        assertTrue(id != reg.modelId(ROOT, 5, lens(1, 32), 8, 5, 40), "the input length is in the id");
        assertTrue(id != reg.modelId(ROOT, 5, lens(2, 64), 8, 5, 40), "the input count is in the id");
    }

    function test_registerStoresTheModel() public {
        vm.prank(address(0xBEEF));
        bytes32 id = reg.register(ROOT, 5, lens(1, 64), 8, 5, 40, "ipfs://model");
        assertEq(id, reg.modelId(ROOT, 5, lens(1, 64), 8, 5, 40), "returned id");
        ModelRegistry.Model memory m = reg.get(id);
        assertEq(m.root, ROOT, "root");
        assertEqUint(m.nodeCount, 5, "nodeCount");
        assertEqUint(m.inputCount, 1, "inputCount");
        assertEqUint(m.slotCount, 8, "slotCount");
        assertEqUint(m.outputSlot, 5, "outputSlot");
        assertEqUint(m.outputLen, 40, "outputLen");
        assertTrue(m.owner == address(0xBEEF), "owner");
        assertEq(keccak256(bytes(m.uri)), keccak256("ipfs://model"), "uri");
        assertEqUint(m.inputLens.length, 1, "one input length");
        assertEqUint(m.inputLens[0], 64, "input length");
    }

    /// `definition` answers the six registered fields (values chosen distinct, so a swapped
    /// field shows), with a long uri and an owner that it does not read.
    function test_definitionIsTheSixRegisteredFields() public {
        vm.prank(address(0xBEEF));
        bytes32 id = reg.register(ROOT, 6, lens2(3, 9), 16, 7, 40, "ipfs://a-uri-longer-than-one-storage-word");
        ModelRegistry.Definition memory d = reg.definition(id);
        assertEq(d.root, ROOT, "root");
        assertEqUint(d.nodeCount, 6, "nodeCount");
        assertEqUint(d.inputCount, 2, "inputCount");
        assertEqUint(d.slotCount, 16, "slotCount");
        assertEqUint(d.outputSlot, 7, "outputSlot");
        assertEqUint(d.outputLen, 40, "outputLen");
        bytes32 unknown = reg.modelId(ROOT, 6, lens2(3, 9), 16, 7, 41);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, unknown));
        reg.definition(unknown);
    }

    function test_registerEmitsModelRegistered() public {
        vm.recordLogs();
        bytes32 id = reg.register(ROOT, 1, lens2(3, 9), 4, 2, 7, "u");
        Cheats.Log[] memory logs = vm.getRecordedLogs();
        assertEqUint(logs.length, 1, "one log");
        assertEq(
            logs[0].topics[0],
            keccak256("ModelRegistered(bytes32,bytes32,uint32,uint32[],uint32,uint32,uint32,address,string)"),
            "event"
        );
        assertEq(logs[0].topics[1], id, "indexed id");
        assertEq(
            keccak256(logs[0].data),
            keccak256(abi.encode(ROOT, uint32(1), lens2(3, 9), uint32(4), uint32(2), uint32(7), address(this), "u")),
            "data"
        );
    }

    /// A registered model can never change: registering the same six fields again (with any
    /// uri, by anyone) reverts and leaves the first registration in place.
    function test_duplicateRegistrationRevertsAndKeepsTheFirst() public {
        bytes32 id = reg.register(ROOT, 5, lens(1, 64), 8, 5, 40, "first");
        vm.prank(address(0xBAD));
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.AlreadyRegistered.selector, id));
        reg.register(ROOT, 5, lens(1, 64), 8, 5, 40, "second");
        ModelRegistry.Model memory m = reg.get(id);
        assertEq(keccak256(bytes(m.uri)), keccak256("first"), "uri unchanged");
        assertTrue(m.owner == address(this), "owner unchanged");
    }

    function test_unknownModelReverts() public {
        bytes32 id = reg.modelId(ROOT, 5, lens(1, 64), 8, 5, 40);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, id));
        reg.get(id);
    }

    function test_badModels() public {
        vm.expectRevert(badModel("nodeCount == 0"));
        reg.register(ROOT, 0, lens(1, 64), 8, 0, 40, "");
        vm.expectRevert(badModel("inputCount == 0"));
        reg.register(ROOT, 5, lens(0, 64), 8, 4, 40, "");
        vm.expectRevert(badModel("slotCount not a power of two"));
        reg.register(ROOT, 5, lens(1, 64), 0, 5, 40, "");
        vm.expectRevert(badModel("slotCount not a power of two"));
        reg.register(ROOT, 5, lens(1, 64), 12, 5, 40, "");
        vm.expectRevert(badModel("slotCount < inputCount + nodeCount"));
        reg.register(ROOT, 5, lens(4, 64), 8, 5, 40, "");
        vm.expectRevert(badModel("outputSlot >= inputCount + nodeCount"));
        reg.register(ROOT, 5, lens(1, 64), 8, 6, 40, "");
        vm.expectRevert(badModel("outputSlot >= inputCount + nodeCount"));
        reg.register(ROOT, 5, lens(1, 64), 8, 7, 40, "");
        vm.expectRevert(badModel("input length 0"));
        reg.register(ROOT, 5, lens2(64, 0), 8, 6, 40, "");
        vm.expectRevert(badModel("outputLen == 0"));
        reg.register(ROOT, 5, lens(1, 64), 8, 5, 0, "");
    }

    /// The edges of each rule are accepted: slotCount exactly inputCount + nodeCount (a
    /// power of two), the last used slot as the output, a one-byte output and input.
    function test_edgesOfTheRulesAreAccepted() public {
        reg.register(ROOT, 7, lens(1, 64), 8, 7, 1, "");
        reg.register(ROOT, 1, lens(1, 64), 2, 1, 1, "");
        reg.register(ROOT, 1, lens(1, 64), 2, 0, 1, "");
        reg.register(ROOT, (1 << 31) - 1, lens(1, 64), 1 << 31, (1 << 31) - 1, 1, "");
        reg.register(ROOT, 1, lens(1, 1), 2, 1, 1, ""); // a one-byte input
    }

    /// checkInputs: the count, then (bytes given) the total length and each input's root in
    /// slot order, or (no bytes) the padding of every input of at most 32 bytes. Commitments
    /// here are derived by hand: an input of at most 32 bytes is its one zero-padded leaf,
    /// a 64-byte input the hash of its two 32-byte halves.
    function test_checkInputsBindsInputsToTheirRegisteredLengths() public {
        bytes32 id = reg.register(ROOT, 3, lens2(5, 64), 8, 4, 40, "");
        bytes memory a = hex"0102030405";
        bytes memory b = new bytes(64);
        b[0] = 0xAA;
        b[63] = 0xBB;
        bytes32[] memory c = new bytes32[](2);
        // Short hex literals as bytes32 are left-aligned and zero-padded: the padded leaves.
        // forge-lint: disable-next-line(unsafe-typecast)
        c[0] = bytes32(hex"0102030405");
        // forge-lint: disable-next-line(unsafe-typecast)
        c[1] = keccak256(bytes.concat(bytes32(hex"AA"), bytes32(uint256(0xBB))));
        (ModelRegistry.Definition memory d, bool published) = reg.checkInputs(id, c, bytes.concat(a, b));
        assertTrue(published, "bytes given");
        assertEqUint(d.inputCount, 2, "definition returned");
        (, published) = reg.checkInputs(id, c, "");
        assertTrue(!published, "no bytes");
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.WrongInputCount.selector, 1, 2));
        reg.checkInputs(id, new bytes32[](1), "");
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.WrongInputLength.selector, 68, 69));
        reg.checkInputs(id, c, bytes.concat(hex"01020304", b));
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.BadInputBytes.selector, 1));
        reg.checkInputs(id, c, bytes.concat(a, new bytes(64)));
        bytes32[] memory padded = new bytes32[](2);
        padded[0] = c[0] | bytes32(uint256(1)); // the last padding byte set
        padded[1] = c[1];
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.BadInputCommitment.selector, 0));
        reg.checkInputs(id, padded, "");
        // forge-lint: disable-next-line(unsafe-typecast)
        padded[0] = bytes32(hex"0102030405FF"); // the first padding byte set
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.BadInputCommitment.selector, 0));
        reg.checkInputs(id, padded, "");
        bytes32 unknown = bytes32(uint256(7));
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, unknown));
        reg.checkInputs(unknown, c, "");
    }
}
