#!/usr/bin/env python3
"""Self-test of the unicorn oracle (stdlib unittest, run with the project venv).

    .venv/bin/python vm/tests/oracle/selftest.py

* ``seq`` mode on hand-made cases whose expected values are derived by hand
  from the RISC-V spec (M-extension division corner cases, ``mulh*``
  extremes, sub-word sign extension, ...), on cases that stop with an error,
  and on consecutive cases that reuse the same code address.
* The encoder in ``rv32.py`` against the GNU assembler.
* ``elf`` mode on every C program of ``fixtures/programs``: stdout and exit
  code equal the native host build's, and block counting equals
  per-instruction counting. ``dot4`` (custom-0) must stop as an illegal
  instruction, since unicorn does not know the opml extension.

Needs ``riscv64-unknown-elf-gcc`` and ``gcc`` (``scripts/setup.sh``
installs them); a missing toolchain fails the test, it is not skipped.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
ORACLE = os.path.join(HERE, "unicorn_oracle.py")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
import rv32  # noqa: E402

CODE = 0x00010000
DATA = 0x00200000
M32 = 0xFFFFFFFF
INT_MIN = 0x80000000


def run_seq(cases, stream=False):
    args = [sys.executable, ORACLE, "seq"] + (["--stream"] if stream else [])
    inp = "".join(json.dumps(c) + "\n" for c in cases)
    out = subprocess.run(args, input=inp, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def case(cid, words, regs=None, mem=None, max_insns=1000):
    r = [0] * 32
    for k, v in (regs or {}).items():
        r[k] = v & M32
    return {"id": cid, "code_base": CODE, "code": rv32.code_hex(words), "mem": mem or [], "regs": r,
            "max_insns": max_insns}


class SeqHandMade(unittest.TestCase):
    def one(self, words, regs=None, mem=None, max_insns=1000):
        (res,) = run_seq([case(7, words, regs, mem, max_insns)])
        self.assertEqual(res["id"], 7)
        return res

    def test_addi_chain(self):
        words = [rv32.i_type("addi", 1, 0, 5), rv32.i_type("addi", 2, 1, -7), rv32.i_type("addi", 3, 2, 2047),
                 rv32.i_type("addi", 0, 3, 1)]
        res = self.one(words)
        self.assertIsNone(res["error"])
        self.assertEqual(res["regs"][1:4], [5, (-2) & M32, 2045])
        self.assertEqual(res["regs"][0], 0)
        self.assertEqual(res["insns"], 4)
        self.assertEqual(res["pc"], CODE + 16)

    def test_division_corner_cases(self):
        # x1 = 7, x2 = 0, x3 = INT_MIN, x4 = -1
        regs = {1: 7, 2: 0, 3: INT_MIN, 4: -1}
        words = [
            rv32.r_type("div", 10, 1, 2),    # 7 / 0 = -1
            rv32.r_type("divu", 11, 1, 2),   # 7 /u 0 = 2^32 - 1
            rv32.r_type("rem", 12, 1, 2),    # 7 % 0 = 7
            rv32.r_type("remu", 13, 1, 2),   # 7 %u 0 = 7
            rv32.r_type("div", 14, 3, 4),    # INT_MIN / -1 = INT_MIN
            rv32.r_type("rem", 15, 3, 4),    # INT_MIN % -1 = 0
            rv32.r_type("div", 16, 4, 1),    # -1 / 7 = 0 (rounds toward zero)
            rv32.r_type("rem", 17, 4, 1),    # -1 % 7 = -1
            rv32.r_type("divu", 18, 4, 1),   # 0xffffffff / 7 = 0x24924924
            rv32.r_type("remu", 19, 4, 1),   # 0xffffffff % 7 = 3
        ]
        res = self.one(words, regs)
        self.assertIsNone(res["error"])
        self.assertEqual(res["regs"][10:20], [M32, M32, 7, 7, INT_MIN, 0, 0, M32, 0x24924924, 3])

    def test_mulh_extremes(self):
        regs = {1: INT_MIN, 2: -1, 3: 0x7FFFFFFF}
        words = [
            rv32.r_type("mulh", 10, 1, 1),    # (-2^31)^2 = 2^62 -> high 0x40000000
            rv32.r_type("mulhu", 11, 2, 2),   # (2^32-1)^2 -> high 0xfffffffe
            rv32.r_type("mulhsu", 12, 2, 2),  # -1 * (2^32-1) = -(2^32-1) -> high 0xffffffff
            rv32.r_type("mulh", 13, 1, 3),    # -2^31 * (2^31-1) = -2^62 + 2^31 -> high 0xc0000000
            rv32.r_type("mul", 14, 1, 2),     # -2^31 * -1 = 2^31 -> low INT_MIN
            rv32.r_type("mulhsu", 15, 1, 2),  # -2^31 * (2^32-1) -> high 0x80000000
            rv32.r_type("mulh", 16, 2, 2),    # (-1)^2 = 1 -> high 0
        ]
        res = self.one(words, regs)
        self.assertIsNone(res["error"])
        self.assertEqual(res["regs"][10:17], [0x40000000, 0xFFFFFFFE, M32, 0xC0000000, INT_MIN, 0x80000000, 0])

    def test_shifts_use_low_five_bits(self):
        regs = {1: 0x80000001, 2: 33, 3: 32, 4: 31}
        words = [
            rv32.r_type("sll", 10, 1, 2),   # shift by 1
            rv32.r_type("srl", 11, 1, 3),   # shift by 0
            rv32.r_type("sra", 12, 1, 4),   # -> all ones
            rv32.shift_i("srai", 13, 1, 1), # 0xc0000000
            rv32.shift_i("srli", 14, 1, 31),
            rv32.r_type("slt", 15, 1, 4),   # negative < 31
            rv32.r_type("sltu", 16, 1, 4),  # 0x80000001 <u 31 is false
            rv32.i_type("sltiu", 17, 0, -1),  # 0 <u 0xffffffff
        ]
        res = self.one(words, regs)
        self.assertEqual(res["regs"][10:18], [2, 0x80000001, M32, 0xC0000000, 1, 1, 0, 1])

    def test_subword_loads_and_stores(self):
        mem = [{"base": DATA, "hex": "80ff7f01" + "00" * 12}]
        regs = {5: DATA, 6: 0xDEADBEEF}
        words = [
            rv32.load("lb", 10, 5, 0),    # 0x80 -> 0xffffff80
            rv32.load("lbu", 11, 5, 0),   # 0x80
            rv32.load("lh", 12, 5, 0),    # 0xff80 -> 0xffffff80
            rv32.load("lhu", 13, 5, 2),   # 0x017f
            rv32.load("lw", 14, 5, 0),    # 0x017fff80
            rv32.store("sb", 6, 5, 4),    # ef
            rv32.store("sh", 6, 5, 6),    # ef be
            rv32.store("sw", 6, 5, 8),    # ef be ad de
            rv32.load("lh", 15, 5, 6),    # 0xbeef -> 0xffffbeef
        ]
        res = self.one(words, regs, mem)
        self.assertIsNone(res["error"])
        self.assertEqual(res["regs"][10:16], [0xFFFFFF80, 0x80, 0xFFFFFF80, 0x017F, 0x017FFF80, 0xFFFFBEEF])
        self.assertEqual(res["mem"], [{"base": DATA, "hex": "80ff7f01" + "ef00efbe" + "efbeadde" + "00" * 4}])

    def test_branch_and_jal(self):
        regs = {1: -1, 2: 1}
        words = [
            rv32.branch("blt", 1, 2, 8),     # -1 < 1: taken, skips the next
            rv32.i_type("addi", 10, 0, 99),
            rv32.branch("bltu", 1, 2, 8),    # 0xffffffff <u 1: not taken
            rv32.i_type("addi", 11, 0, 42),
            rv32.jal(12, 8),                 # x12 = pc + 4, skip one
            rv32.i_type("addi", 13, 0, 1),
            rv32.auipc(14, 1),               # x14 = pc + 0x1000
        ]
        res = self.one(words, regs)
        self.assertIsNone(res["error"])
        self.assertEqual(res["regs"][10:15], [0, 42, CODE + 20, 0, CODE + 24 + 0x1000])
        self.assertEqual(res["insns"], 5)

    def test_max_insns_stops_early(self):
        words = [rv32.i_type("addi", 1, 1, 1)] * 10
        res = self.one(words, max_insns=3)
        self.assertIsNone(res["error"])
        self.assertEqual(res["regs"][1], 3)
        self.assertEqual(res["pc"], CODE + 12)
        self.assertEqual(res["insns"], 3)

    def test_errors_are_reported(self):
        cases = [
            case(1, [rv32.load("lw", 1, 0, 0x100)]),                     # unmapped read
            case(2, [rv32.i_type("addi", 17, 0, 93), rv32.ECALL]),       # ecall
            case(3, [rv32.EBREAK]),                                        # ebreak
            case(4, [0x0000000B | (10 << 7) | (11 << 15) | (12 << 20)]),  # custom-0 dot4
            case(5, [rv32.jalr(0, 0, 0x100)]),                           # fetch from unmapped
        ]
        res = run_seq(cases)
        self.assertEqual([r["id"] for r in res], [1, 2, 3, 4, 5])
        for r in res:
            self.assertIsNotNone(r["error"], r)
        self.assertIn("ecall", res[1]["error"])
        # unicorn 2.1.4 reports ebreak as an invalid instruction, not as a breakpoint
        self.assertTrue("breakpoint" in res[2]["error"] or "UC_ERR_INSN_INVALID" in res[2]["error"], res[2])
        self.assertIn("illegal", res[3]["error"])

    def test_code_is_not_stale_between_cases(self):
        # same address, different code each time: translated blocks must not be reused
        cases = [case(i, [rv32.i_type("addi", 1, 0, i), rv32.i_type("addi", 2, 1, 1)]) for i in range(20)]
        res = run_seq(cases)
        self.assertEqual([r["regs"][1] for r in res], list(range(20)))
        self.assertEqual([r["regs"][2] for r in res], [i + 1 for i in range(20)])
        self.assertEqual(run_seq(cases, stream=True), res)

    def test_memory_does_not_leak_between_cases(self):
        mem = [{"base": DATA, "hex": "00" * 8}]
        words = [rv32.load("lw", 10, 5, 0), rv32.store("sw", 6, 5, 0)]
        res = run_seq([case(1, words, {5: DATA, 6: 0x1234}, mem), case(2, words, {5: DATA, 6: 0x1234}, mem)])
        self.assertEqual([r["regs"][10] for r in res], [0, 0])
        self.assertEqual(res[1]["mem"][0]["hex"], "34120000" + "00" * 4)

    def test_bad_input_names_the_field(self):
        bad = case(9, [rv32.ECALL])
        bad["regs"] = bad["regs"][:5]
        proc = subprocess.run([sys.executable, ORACLE, "seq"], input=json.dumps(bad) + "\n",
                              capture_output=True, text=True)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("regs", proc.stderr)


class EncoderAgainstAssembler(unittest.TestCase):
    def test_encodings(self):
        samples = [
            ("add x1, x2, x3", rv32.r_type("add", 1, 2, 3)),
            ("mulhsu x31, x30, x29", rv32.r_type("mulhsu", 31, 30, 29)),
            ("addi x5, x6, -2048", rv32.i_type("addi", 5, 6, -2048)),
            ("srai x7, x8, 31", rv32.shift_i("srai", 7, 8, 31)),
            ("lhu x9, -4(x10)", rv32.load("lhu", 9, 10, -4)),
            ("sw x11, 2047(x12)", rv32.store("sw", 11, 12, 2047)),
            ("sb x11, -2048(x12)", rv32.store("sb", 11, 12, -2048)),
            ("lui x13, 0xfffff", rv32.lui(13, 0xFFFFF)),
            ("jalr x1, -8(x2)", rv32.jalr(1, 2, -8)),
        ]
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "t.S")
            obj = os.path.join(d, "t.o")
            binf = os.path.join(d, "t.bin")
            with open(src, "w") as f:
                f.write(".option norvc\n" + "".join(f"{s}\n" for s, _ in samples))
                f.write("1: beq x1, x2, 1b - 4096\nbgeu x3, x4, 1b + 4094\njal x0, 1b - 1048560\njal x5, 1b + 1048572\n")
            subprocess.run(["riscv64-unknown-elf-as", "-march=rv32im", "-mabi=ilp32", "-o", obj, src], check=True)
            subprocess.run(["riscv64-unknown-elf-objcopy", "-O", "binary", "-j", ".text", obj, binf], check=True)
            with open(binf, "rb") as f:
                data = f.read()
        words = [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]
        n = len(samples)
        self.assertEqual(words[:n], [w for _, w in samples])
        self.assertEqual(words[n], rv32.branch("beq", 1, 2, -4096))
        self.assertEqual(words[n + 1], rv32.branch("bgeu", 3, 4, 4094 - 4))
        self.assertEqual(words[n + 2], rv32.jal(0, -1048560 - 8))
        self.assertEqual(words[n + 3], rv32.jal(5, 1048572 - 12))


class ProgramsAgainstHost(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        env = dict(os.environ, LONG_ITERS="3000")
        subprocess.run(["bash", os.path.join(REPO, "fixtures", "programs", "build.sh"), cls.tmp.name],
                       check=True, env=env, stdout=subprocess.DEVNULL)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def elf(self, name, *extra):
        path = os.path.join(self.tmp.name, name + ".elf")
        out = subprocess.run([sys.executable, ORACLE, "elf", path, *extra], capture_output=True, text=True,
                             check=True).stdout
        return json.loads(out)

    def test_programs_match_host_build(self):
        for name in ["hello", "sort", "hash", "bignum", "recursion", "subword", "long"]:
            with self.subTest(program=name):
                host = subprocess.run([os.path.join(self.tmp.name, name + ".host")], capture_output=True)
                res = self.elf(name)
                self.assertIsNone(res["error"])
                self.assertEqual(res["exit_code"], host.returncode)
                self.assertEqual(bytes.fromhex(res["stdout_hex"]), host.stdout)
                self.assertEqual(bytes.fromhex(res["stderr_hex"]), host.stderr)
                self.assertNotIn(b"FAILED", host.stdout)
                exact = self.elf(name, "--count", "code")
                self.assertEqual(exact["insns"], res["insns"])
                self.assertEqual(exact["regs"], res["regs"])

    def test_hello_output(self):
        res = self.elf("hello")
        self.assertEqual(bytes.fromhex(res["stdout_hex"]), b"hello from opml vm\n")
        self.assertEqual(res["exit_code"], 0)
        self.assertEqual(res["regs"][17], 93)  # a7 of the exit ecall

    def test_max_insns(self):
        res = self.elf("sort", "--max-insns", "1000")
        self.assertEqual(res["insns"], 1000)
        self.assertIsNone(res["exit_code"])
        self.assertIn("without exiting", res["error"])

    def test_dot4_is_unknown_to_unicorn(self):
        res = self.elf("dot4")
        self.assertIsNone(res["exit_code"])
        self.assertIn("illegal instruction", res["error"])


if __name__ == "__main__":
    unittest.main(verbosity=1)
