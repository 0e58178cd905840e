// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {ModelRegistry} from "../src/ModelRegistry.sol";
import {Cheats, TestBase} from "./utils/Cheats.sol";

/// ModelRegistry: registration, ids, immutability and every BadModel rule.
contract RegistryTest is TestBase {
    ModelRegistry internal reg;

    bytes32 internal constant ROOT = keccak256("model root");

    function setUp() public {
        reg = new ModelRegistry();
    }

    function badModel(string memory why) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(ModelRegistry.BadModel.selector, why);
    }

    /// The id is keccak256 of the ABI encoding of the six fields, computed here by hand
    /// (abi.encode of six 32-byte words = their concatenation).
    function test_idIsKeccakOfTheSixFields() public view {
        bytes memory words = bytes.concat(
            ROOT,
            bytes32(uint256(5)),
            bytes32(uint256(1)),
            bytes32(uint256(8)),
            bytes32(uint256(5)),
            bytes32(uint256(40))
        );
        assertEq(reg.modelId(ROOT, 5, 1, 8, 5, 40), keccak256(words), "modelId");
        assertTrue(reg.modelId(ROOT, 5, 1, 8, 5, 40) != reg.modelId(ROOT, 5, 1, 8, 4, 40), "output slot is in the id");
        assertTrue(reg.modelId(ROOT, 5, 1, 8, 5, 40) != reg.modelId(ROOT, 5, 1, 8, 5, 41), "output length is in the id");
    }

    function test_registerStoresTheModel() public {
        vm.prank(address(0xBEEF));
        bytes32 id = reg.register(ROOT, 5, 1, 8, 5, 40, "ipfs://model");
        assertEq(id, reg.modelId(ROOT, 5, 1, 8, 5, 40), "returned id");
        ModelRegistry.Model memory m = reg.get(id);
        assertEq(m.root, ROOT, "root");
        assertEqUint(m.nodeCount, 5, "nodeCount");
        assertEqUint(m.inputCount, 1, "inputCount");
        assertEqUint(m.slotCount, 8, "slotCount");
        assertEqUint(m.outputSlot, 5, "outputSlot");
        assertEqUint(m.outputLen, 40, "outputLen");
        assertTrue(m.owner == address(0xBEEF), "owner");
        assertEq(keccak256(bytes(m.uri)), keccak256("ipfs://model"), "uri");
    }

    /// `definition` answers the six registered fields (values chosen distinct, so a swapped
    /// field shows), with a long uri and an owner that it does not read.
    function test_definitionIsTheSixRegisteredFields() public {
        vm.prank(address(0xBEEF));
        bytes32 id = reg.register(ROOT, 6, 2, 16, 7, 40, "ipfs://a-uri-longer-than-one-storage-word");
        ModelRegistry.Definition memory d = reg.definition(id);
        assertEq(d.root, ROOT, "root");
        assertEqUint(d.nodeCount, 6, "nodeCount");
        assertEqUint(d.inputCount, 2, "inputCount");
        assertEqUint(d.slotCount, 16, "slotCount");
        assertEqUint(d.outputSlot, 7, "outputSlot");
        assertEqUint(d.outputLen, 40, "outputLen");
        bytes32 unknown = reg.modelId(ROOT, 6, 2, 16, 7, 41);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, unknown));
        reg.definition(unknown);
    }

    function test_registerEmitsModelRegistered() public {
        vm.recordLogs();
        bytes32 id = reg.register(ROOT, 1, 2, 4, 2, 7, "u");
        Cheats.Log[] memory logs = vm.getRecordedLogs();
        assertEqUint(logs.length, 1, "one log");
        assertEq(
            logs[0].topics[0],
            keccak256("ModelRegistered(bytes32,bytes32,uint32,uint32,uint32,uint32,uint32,address,string)"),
            "event"
        );
        assertEq(logs[0].topics[1], id, "indexed id");
        assertEq(
            keccak256(logs[0].data),
            keccak256(abi.encode(ROOT, uint32(1), uint32(2), uint32(4), uint32(2), uint32(7), address(this), "u")),
            "data"
        );
    }

    /// A registered model can never change: registering the same six fields again (with any
    /// uri, by anyone) reverts and leaves the first registration in place.
    function test_duplicateRegistrationRevertsAndKeepsTheFirst() public {
        bytes32 id = reg.register(ROOT, 5, 1, 8, 5, 40, "first");
        vm.prank(address(0xBAD));
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.AlreadyRegistered.selector, id));
        reg.register(ROOT, 5, 1, 8, 5, 40, "second");
        ModelRegistry.Model memory m = reg.get(id);
        assertEq(keccak256(bytes(m.uri)), keccak256("first"), "uri unchanged");
        assertTrue(m.owner == address(this), "owner unchanged");
    }

    function test_unknownModelReverts() public {
        bytes32 id = reg.modelId(ROOT, 5, 1, 8, 5, 40);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, id));
        reg.get(id);
    }

    function test_badModels() public {
        vm.expectRevert(badModel("nodeCount == 0"));
        reg.register(ROOT, 0, 1, 8, 0, 40, "");
        vm.expectRevert(badModel("inputCount == 0"));
        reg.register(ROOT, 5, 0, 8, 4, 40, "");
        vm.expectRevert(badModel("slotCount not a power of two"));
        reg.register(ROOT, 5, 1, 0, 5, 40, "");
        vm.expectRevert(badModel("slotCount not a power of two"));
        reg.register(ROOT, 5, 1, 12, 5, 40, "");
        vm.expectRevert(badModel("slotCount < inputCount + nodeCount"));
        reg.register(ROOT, 5, 4, 8, 5, 40, "");
        vm.expectRevert(badModel("outputSlot >= inputCount + nodeCount"));
        reg.register(ROOT, 5, 1, 8, 6, 40, "");
        vm.expectRevert(badModel("outputSlot >= inputCount + nodeCount"));
        reg.register(ROOT, 5, 1, 8, 7, 40, "");
        vm.expectRevert(badModel("outputLen == 0"));
        reg.register(ROOT, 5, 1, 8, 5, 0, "");
    }

    /// The edges of each rule are accepted: slotCount exactly inputCount + nodeCount (a
    /// power of two), the last used slot as the output, a one-byte output.
    function test_edgesOfTheRulesAreAccepted() public {
        reg.register(ROOT, 7, 1, 8, 7, 1, "");
        reg.register(ROOT, 1, 1, 2, 1, 1, "");
        reg.register(ROOT, 1, 1, 2, 0, 1, "");
        reg.register(ROOT, (1 << 31) - 1, 1, 1 << 31, (1 << 31) - 1, 1, "");
    }
}
