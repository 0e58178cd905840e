#!/usr/bin/env python3
"""Throughput benchmark of ``unicorn_oracle.py seq``.

    .venv/bin/python vm/tests/oracle/bench_seq.py [--cases 10000] [--len 24]

Generates random straight-line RV32IM cases (every ALU and M instruction,
loads and stores into a 256-byte data region, edge register values), pipes
them through one oracle process and prints the wall time and cases/s.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rv32  # noqa: E402

EDGE = [0, 1, 2, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 31, 32, 33, 0xFFFFFFE0]
DATA_BASE = 0x00200000
DATA_LEN = 256


def random_case(rng, cid, length):
    words = []
    for _ in range(length):
        kind = rng.random()
        rd = rng.randrange(1, 31)  # x31 keeps the data base
        rs1 = rng.randrange(32)
        rs2 = rng.randrange(32)
        if kind < 0.45:
            words.append(rv32.r_type(rng.choice(list(rv32.R_OPS)), rd, rs1, rs2))
        elif kind < 0.65:
            words.append(rv32.i_type(rng.choice(list(rv32.I_OPS)), rd, rs1, rng.randrange(-2048, 2048)))
        elif kind < 0.75:
            words.append(rv32.shift_i(rng.choice(list(rv32.SHIFT_I_OPS)), rd, rs1, rng.choice([0, 1, 31, rng.randrange(32)])))
        elif kind < 0.8:
            words.append(rv32.lui(rd, rng.randrange(1 << 20)))
        elif kind < 0.9:
            # x31 holds the data base: aligned accesses within the region
            op = rng.choice(list(rv32.LOAD_OPS))
            size = {"lb": 1, "lbu": 1, "lh": 2, "lhu": 2, "lw": 4}[op]
            words.append(rv32.load(op, rd, 31, rng.randrange(0, DATA_LEN // size) * size))
        else:
            op = rng.choice(list(rv32.STORE_OPS))
            size = {"sb": 1, "sh": 2, "sw": 4}[op]
            words.append(rv32.store(op, rs2, 31, rng.randrange(0, DATA_LEN // size) * size))
    regs = [0] + [rng.choice(EDGE) if rng.random() < 0.5 else rng.getrandbits(32) for _ in range(31)]
    regs[31] = DATA_BASE
    return {
        "id": cid,
        "code_base": 0x00010000,
        "code": rv32.code_hex(words),
        "mem": [{"base": DATA_BASE, "hex": rng.randbytes(DATA_LEN).hex()}],
        "regs": regs,
        "max_insns": length + 8,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--len", type=int, default=24, help="instructions per case")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    lines = "".join(json.dumps(random_case(rng, i, args.len)) + "\n" for i in range(args.cases))
    oracle = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unicorn_oracle.py")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, oracle, "seq"], input=lines, capture_output=True, text=True, check=True)
    dt = time.perf_counter() - t0
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    errors = sum(1 for r in results if r["error"] is not None)
    insns = sum(r["insns"] for r in results)
    if len(results) != args.cases:
        sys.exit(f"expected {args.cases} results, got {len(results)}")
    print(f"{args.cases} cases x {args.len} insns: {dt:.2f} s, {args.cases / dt:.0f} cases/s, "
          f"{insns} instructions, {errors} cases with an error")


if __name__ == "__main__":
    main()
