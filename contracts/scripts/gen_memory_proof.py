#!/usr/bin/env python3
"""Generates contracts/src/MemoryProof.sol: the memory-proof walks unrolled level by level
with the zero-subtree hashes Z_l as inline constants (no table, no loop counter).

    python3 contracts/scripts/gen_memory_proof.py > contracts/src/MemoryProof.sol

Only the standard library is used; keccak256 comes from a small pure-Python Keccak-f[1600]
below, checked against the published keccak256("") at start-up.
"""

DEPTH = 27
SIBLINGS = 0x160
NODES = SIBLINGS + DEPTH * 32

# ----------------------------------------------------------------------------- keccak
RC = [
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
    0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
    0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
]
ROT = [[0, 36, 3, 41, 18], [1, 44, 10, 45, 2], [62, 6, 43, 15, 61], [28, 55, 25, 21, 56], [27, 20, 39, 8, 14]]
M64 = (1 << 64) - 1


def rol(x, n):
    return ((x << n) | (x >> (64 - n))) & M64 if n else x


def f1600(a):
    for rc in RC:
        c = [a[x][0] ^ a[x][1] ^ a[x][2] ^ a[x][3] ^ a[x][4] for x in range(5)]
        d = [c[(x - 1) % 5] ^ rol(c[(x + 1) % 5], 1) for x in range(5)]
        a = [[a[x][y] ^ d[x] for y in range(5)] for x in range(5)]
        b = [[0] * 5 for _ in range(5)]
        for x in range(5):
            for y in range(5):
                b[y][(2 * x + 3 * y) % 5] = rol(a[x][y], ROT[x][y])
        a = [[b[x][y] ^ (~b[(x + 1) % 5][y] & b[(x + 2) % 5][y]) for y in range(5)] for x in range(5)]
        a[0][0] ^= rc
    return a


def keccak256(data: bytes) -> bytes:
    rate = 136
    msg = bytearray(data) + b"\x01"
    while len(msg) % rate:
        msg += b"\x00"
    msg[-1] |= 0x80
    a = [[0] * 5 for _ in range(5)]
    for off in range(0, len(msg), rate):
        block = msg[off:off + rate]
        for i in range(rate // 8):
            x, y = i % 5, i // 5
            a[x][y] ^= int.from_bytes(block[8 * i:8 * i + 8], "little")
        a = f1600(a)
    out = b"".join(a[i % 5][i // 5].to_bytes(8, "little") for i in range(4))
    return out


assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"

Z = [bytes(32)]
for _ in range(DEPTH):
    Z.append(keccak256(Z[-1] + Z[-1]))


def z(l):
    return "0x" + Z[l].hex()


# ----------------------------------------------------------------------------- code


def index_bit(l, var="index"):
    """Yul expression: 0x20 if bit l of var is set, else 0."""
    if l < 5:
        return f"and(shl({5 - l}, {var}), 0x20)"
    if l == 5:
        return f"and({var}, 0x20)"
    return f"and(shr({l - 5}, {var}), 0x20)"


def store_sibling(l, ind, at):
    """Store the level-l sibling at memory `at`: Z_l if the mask says so, else from calldata."""
    return (
        f"{ind}let sib := {z(l)}\n"
        f"{ind}if iszero(and(mask, {hex(1 << l)})) {{\n"
        f"{ind}    sib := calldataload(ptr)\n"
        f"{ind}    ptr := add(ptr, 0x20)\n"
        f"{ind}}}\n"
        f"{ind}mstore({at}, sib)\n"
    )


def level(l, ind, record=False):
    s = f"{ind}// level {l}\n{ind}{{\n"
    i2 = ind + "    "
    s += f"{i2}let o := {index_bit(l)}\n"
    s += f"{i2}mstore(o, node)\n"
    if record:
        s += f"{i2}mstore({hex(NODES + 32 * l)}, node)\n"
    s += store_sibling(l, i2, "xor(o, 0x20)")
    if record:
        s += f"{i2}mstore({hex(SIBLINGS + 32 * l)}, sib)\n"
    s += f"{i2}node := keccak256(0, 0x40)\n"
    s += f"{ind}}}\n"
    return s


def pair_level(l, ind):
    s = f"{ind}// level {l}\n{ind}{{\n"
    i2 = ind + "    "
    s += f"{i2}let o := {index_bit(l)}\n"
    s += store_sibling(l, i2, "xor(o, 0x20)")
    s += f"{i2}mstore(o, oldNode)\n"
    s += f"{i2}oldNode := keccak256(0, 0x40)\n"
    s += f"{i2}mstore(o, newNode)\n"
    s += f"{i2}newNode := keccak256(0, 0x40)\n"
    s += f"{ind}}}\n"
    return s


def recorded_level(l, ind):
    i2 = ind + "    "
    return (
        f"{ind}if lt(start, {l + 1}) {{\n"
        f"{i2}let o := {index_bit(l)}\n"
        f"{i2}mstore(o, node)\n"
        f"{i2}mstore(xor(o, 0x20), mload({hex(SIBLINGS + 32 * l)}))\n"
        f"{i2}node := keccak256(0, 0x40)\n"
        f"{ind}}}\n"
    )


IND = " " * 12

walk_fetch = "".join(level(l, IND) for l in range(DEPTH))
walk_fetch_rec = "".join(level(l, IND, record=True) for l in range(DEPTH))


def variable(body_fn, max_levels):
    # A loop that runs once, leaving after `levels` levels.
    s = f"{IND}for {{}} 1 {{}} {{\n"
    i2 = IND + "    "
    for l in range(max_levels):
        s += f"{i2}if eq(levels, {l}) {{ break }}\n"
        s += body_fn(l, i2)
    s += f"{i2}break\n{IND}}}\n"
    return s


walk_data = variable(lambda l, i: level(l, i), DEPTH - 1)
walk_pair = variable(pair_level, DEPTH - 1)
root_recorded = "".join(recorded_level(l, IND) for l in range(DEPTH))

print(f"""// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

// GENERATED by contracts/scripts/gen_memory_proof.py -- edit the generator, not this file:
//   python3 contracts/scripts/gen_memory_proof.py > contracts/src/MemoryProof.sol

/// @title Memory proofs over the opml VM memory tree (docs/spec/merkle.md, docs/spec/vm.md §8).
/// @notice The tree has 2^27 raw 32-byte leaves; an internal node is keccak256(left || right);
/// level 0 is the leaves, level 27 the root. A path is `mask(4 bytes, big-endian) sibling*`:
/// bit `l` of the mask set means the sibling at level `l` is the zero-subtree hash `Z_l` and
/// is omitted from calldata.
///
/// Everything works on calldata offsets. The walks are unrolled level by level with `Z_l` as
/// inline constants; hashing uses scratch space (0x00..0x3f) only. The fetch path's siblings
/// and nodes are recorded at fixed memory addresses for loads and stores (a data path joins
/// the fetch path; a store recomputes the root from them). Nothing is allocated.
library MemoryProof {{
    /// Levels of the memory tree (leaf index = address >> 5).
    uint256 internal constant DEPTH = {DEPTH};
    /// Memory: the fetch path's sibling at each level 0 .. 26 (recorded by `walkFetchRecording`).
    uint256 internal constant SIBLINGS = {hex(SIBLINGS)};
    /// Memory: the fetch path's own node at each level 0 .. 26 (level 0 is the fetch leaf).
    uint256 internal constant NODES = {hex(NODES)};

    /// A path's mask has a bit set at or above the number of levels it covers.
    error MaskOutOfRange(uint256 mask, uint256 levels);

    /// Read a path's 4-byte mask at `ptr`; revert unless every set bit is below `levels`.
    function readMask(uint256 ptr, uint256 levels) internal pure returns (uint256 mask, uint256 next) {{
        assembly {{
            mask := shr(224, calldataload(ptr))
            next := add(ptr, 4)
        }}
        if (mask >> levels != 0) revert MaskOutOfRange(mask, levels);
    }}

    /// Hash `node` (leaf index `index`) up all 27 levels with the siblings at `ptr` (zero
    /// siblings where `mask` says so). Returns the root reached and the offset after the path.
    function walkFetch(uint256 node, uint256 index, uint256 ptr, uint256 mask)
        internal
        pure
        returns (uint256 top, uint256 next)
    {{
        assembly {{
{walk_fetch}            top := node
            next := ptr
        }}
    }}

    /// `walkFetch` that also records each level's sibling and node (for loads and stores).
    function walkFetchRecording(uint256 node, uint256 index, uint256 ptr, uint256 mask)
        internal
        pure
        returns (uint256 top, uint256 next)
    {{
        assembly {{
{walk_fetch_rec}            top := node
            next := ptr
        }}
    }}

    /// Hash `node` (leaf index `index`) up `levels` (< 27) levels with the siblings at `ptr`.
    function walk(uint256 node, uint256 index, uint256 ptr, uint256 mask, uint256 levels)
        internal
        pure
        returns (uint256 top, uint256 next)
    {{
        assembly {{
{walk_data}            top := node
            next := ptr
        }}
    }}

    /// Hash an old and a new leaf at the same index up `levels` (< 27) levels with the same
    /// siblings: the read check and the write-back of a store's data path in one pass.
    function walkPair(uint256 oldNode, uint256 newNode, uint256 index, uint256 ptr, uint256 mask, uint256 levels)
        internal
        pure
        returns (uint256 oldTop, uint256 newTop, uint256 next)
    {{
        assembly {{
{walk_pair}            oldTop := oldNode
            newTop := newNode
            next := ptr
        }}
    }}

    /// Root reached from `node` at level `start` (leaf index `index`) with the recorded fetch
    /// siblings of levels `start .. 26`.
    function rootFromRecorded(uint256 node, uint256 index, uint256 start) internal pure returns (uint256 root) {{
        assembly {{
{root_recorded}            root := node
        }}
    }}

    /// The recorded fetch path sibling at `level`.
    function recordedSibling(uint256 level) internal pure returns (uint256 sib) {{
        assembly {{
            sib := mload(add({hex(SIBLINGS)}, shl(5, level)))
        }}
    }}

    /// The recorded fetch path node at `level` (level 0 is the fetch leaf).
    function recordedNode(uint256 level) internal pure returns (uint256 node) {{
        assembly {{
            node := mload(add({hex(NODES)}, shl(5, level)))
        }}
    }}

    /// Bit length of `x` (0 for 0). `x < 2^32`.
    function bitLength(uint256 x) internal pure returns (uint256 n) {{
        assembly {{
            let b := shl(4, gt(x, 0xffff))
            x := shr(b, x)
            n := b
            b := shl(3, gt(x, 0xff))
            x := shr(b, x)
            n := or(n, b)
            b := shl(2, gt(x, 0xf))
            x := shr(b, x)
            n := or(n, b)
            b := shl(1, gt(x, 0x3))
            x := shr(b, x)
            n := or(n, b)
            // x is now 0..3: bit length 0, 1, 2, 2
            n := add(n, add(gt(x, 0), gt(x, 1)))
        }}
    }}
}}""")
