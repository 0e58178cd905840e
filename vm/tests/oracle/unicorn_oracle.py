#!/usr/bin/env python3
"""Unicorn (RV32) reference runner for the opml VM differential tests.

Run it with the project venv: ``<repo>/.venv/bin/python unicorn_oracle.py MODE ...``.
Only the standard library and ``unicorn`` are used.

Modes
-----
``seq [--stream]``
    Reads JSON lines from stdin, one case per line::

        {"id": n, "code_base": u32, "code": "<hex>",
         "mem": [{"base": u32, "hex": "<hex>"}, ...],
         "regs": [32 x u32], "max_insns": n}

    For each case it maps the 4 KiB pages covering the code and every mem
    region (one fresh mapping per case), writes the bytes, sets x1..x31 (x0
    is ignored), runs ``emu_start(code_base, code_base + len(code),
    count=max_insns)`` and writes one JSON line::

        {"id": n, "regs": [32 x u32], "pc": u32,
         "mem": [{"base": u32, "hex": "<hex>"}, ...],
         "insns": k, "error": null | "<text>"}

    ``mem`` holds the same regions as the input, read back after the run.
    ``insns`` is the number of instructions a UC_HOOK_CODE hook saw; an
    instruction that raised an error counts (the hook runs before it).
    Any exception (ecall, ebreak, illegal instruction) stops the case with
    an ``error``; so does a unicorn error (e.g. unmapped fetch or access).
    After an error, ``pc`` is whatever unicorn left (often past the
    instruction) and should not be compared. Unicorn differs from the opml
    VM by design on misaligned accesses (it performs them) and on jump
    targets that are 2- but not 4-aligned (its CPU has the C extension, so
    they do not trap): test those fault rules directly.

    By default all of stdin is read before the first case runs and the
    results are written at the end, so a caller may write every case and
    only then read (no pipe deadlock). ``--stream`` instead answers each
    line as soon as it is read and flushes it (for request/response use).

``elf PATH [--max-insns N] [--count block|code]``
    Loads the PT_LOAD segments of an ELF32 little-endian RISC-V executable,
    starts at the entry with every register 0 and runs until the exit ecall.
    ``ecall`` with a7 = 93 exits with code a0; a7 = 64 writes a2 bytes at a1
    to fd a0 (1 or 2) and sets a0 = a2. Prints one JSON object::

        {"exit_code": u32 | null, "stdout_hex": "...", "stderr_hex": "...",
         "insns": k, "regs": [32 x u32], "pc": u32, "error": null | "<text>"}

    ``insns`` counts every executed instruction, the exit ecall included;
    ``pc`` is the address after the exit ecall. Counting uses a block hook
    (each translation block adds size/4, which is exact for RV32 without
    compressed instructions and blocks that run to their end) unless
    ``--count code`` or ``--max-insns`` is given, which count with a
    per-instruction hook. The exit status is 0 when the JSON was printed,
    2 for a usage or ELF error (message on stderr).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys

from unicorn import (
    UC_ARCH_RISCV,
    UC_HOOK_BLOCK,
    UC_HOOK_CODE,
    UC_HOOK_INTR,
    UC_MODE_RISCV32,
    Uc,
    UcError,
)
from unicorn.riscv_const import UC_RISCV_REG_PC, UC_RISCV_REG_X0

PAGE = 4096
MASK32 = 0xFFFFFFFF
REG_X = [UC_RISCV_REG_X0 + i for i in range(32)]

# RISC-V exception causes (privileged spec) as unicorn reports them to UC_HOOK_INTR.
EXCEPTION_NAMES = {
    0: "instruction address misaligned",
    1: "instruction access fault",
    2: "illegal instruction",
    3: "breakpoint",
    4: "load address misaligned",
    5: "load access fault",
    6: "store address misaligned",
    7: "store access fault",
    8: "ecall from U-mode",
    9: "ecall from S-mode",
    11: "ecall from M-mode",
}
ECALL_CAUSES = (8, 9, 11)
ECALL_WORD = 0x00000073

SYS_EXIT = 93
SYS_WRITE = 64


class OracleError(Exception):
    """A malformed case or ELF file: reported with the offending field."""


def page_runs(regions):
    """Contiguous runs (start, size) of the 4 KiB pages covering the regions.

    ``regions`` is an iterable of (base, length); empty regions map nothing.
    A region must not extend past 2^32.
    """
    pages = set()
    for base, length in regions:
        if length == 0:
            continue
        if base < 0 or base + length > 1 << 32:
            raise OracleError(f"region base={base:#x} len={length} leaves the 32-bit address space")
        first = base // PAGE
        last = (base + length - 1) // PAGE
        pages.update(range(first, last + 1))
    runs = []
    for p in sorted(pages):
        if runs and runs[-1][0] + runs[-1][1] == p * PAGE:
            runs[-1][1] += PAGE
        else:
            runs.append([p * PAGE, PAGE])
    return [(start, size) for start, size in runs]


def exception_text(intno, pc):
    name = EXCEPTION_NAMES.get(intno, "unknown")
    return f"exception {intno} ({name}) near pc={pc:#010x}"


# --------------------------------------------------------------------------- seq


class SeqRunner:
    """Runs instruction-sequence cases on one reused Uc instance."""

    def __init__(self):
        self.uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV32)
        self.insns = 0
        self.error = None
        self.uc.hook_add(UC_HOOK_CODE, self._on_code)
        self.uc.hook_add(UC_HOOK_INTR, self._on_intr)

    def _on_code(self, uc, address, size, user_data):
        self.insns += 1

    def _on_intr(self, uc, intno, user_data):
        self.error = exception_text(intno, uc.reg_read(UC_RISCV_REG_PC))
        uc.emu_stop()

    @staticmethod
    def _parse(case):
        try:
            cid = case["id"]
            code_base = int(case["code_base"])
            code = bytes.fromhex(case["code"])
            mem = [(int(m["base"]), bytes.fromhex(m["hex"])) for m in case.get("mem", [])]
            regs = [int(r) & MASK32 for r in case["regs"]]
            max_insns = int(case["max_insns"])
        except (KeyError, TypeError, ValueError) as e:
            raise OracleError(f"bad case {case.get('id', '?') if isinstance(case, dict) else '?'}: {e!r}") from e
        if len(regs) != 32:
            raise OracleError(f"case {cid}: field regs has {len(regs)} entries, expected 32")
        if not 0 <= code_base <= MASK32:
            raise OracleError(f"case {cid}: code_base {code_base:#x} is not a u32")
        if max_insns < 0:
            raise OracleError(f"case {cid}: max_insns {max_insns} is negative")
        return cid, code_base, code, mem, regs, max_insns

    def run(self, case):
        cid, code_base, code, mem, regs, max_insns = self._parse(case)
        uc = self.uc
        runs = page_runs([(code_base, len(code))] + [(b, len(d)) for b, d in mem])
        for start, size in runs:
            uc.mem_map(start, size)
        try:
            uc.mem_write(code_base, code)
            for base, data in mem:
                uc.mem_write(base, data)
            for i in range(1, 32):
                uc.reg_write(REG_X[i], regs[i])
            self.insns = 0
            self.error = None
            try:
                uc.emu_start(code_base, code_base + len(code), count=max_insns)
            except UcError as e:
                if self.error is None:
                    self.error = f"{e} near pc={uc.reg_read(UC_RISCV_REG_PC):#010x}"
            out_regs = [0] + [uc.reg_read(REG_X[i]) & MASK32 for i in range(1, 32)]
            out_mem = [{"base": base, "hex": bytes(uc.mem_read(base, len(data))).hex()} for base, data in mem]
            return {
                "id": cid,
                "regs": out_regs,
                "pc": uc.reg_read(UC_RISCV_REG_PC) & MASK32,
                "mem": out_mem,
                "insns": self.insns,
                "error": self.error,
            }
        finally:
            for start, size in runs:
                uc.mem_unmap(start, size)


def run_seq(stream):
    runner = SeqRunner()

    def one(line_no, line):
        try:
            case = json.loads(line)
        except json.JSONDecodeError as e:
            raise OracleError(f"stdin line {line_no}: not JSON: {e}") from e
        return json.dumps(runner.run(case), separators=(",", ":"))

    if stream:
        for n, line in enumerate(sys.stdin, 1):
            if line.strip():
                sys.stdout.write(one(n, line) + "\n")
                sys.stdout.flush()
        return
    lines = sys.stdin.read().splitlines()
    out = [one(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- elf

EM_RISCV = 243
PT_LOAD = 1


def parse_elf(data, path):
    """PT_LOAD segments [(vaddr, file_bytes, memsz)] and the entry of an ELF32 RISC-V file."""
    if len(data) < 52 or data[:4] != b"\x7fELF":
        raise OracleError(f"{path}: not an ELF file")
    if data[4] != 1:
        raise OracleError(f"{path}: EI_CLASS={data[4]}, expected 1 (ELF32)")
    if data[5] != 1:
        raise OracleError(f"{path}: EI_DATA={data[5]}, expected 1 (little-endian)")
    (e_type, e_machine, _version, e_entry, e_phoff, _shoff, _flags, _ehsize, e_phentsize, e_phnum) = struct.unpack_from(
        "<HHIIIIIHHH", data, 16
    )
    if e_machine != EM_RISCV:
        raise OracleError(f"{path}: e_machine={e_machine}, expected {EM_RISCV} (RISC-V)")
    if e_type != 2:
        raise OracleError(f"{path}: e_type={e_type}, expected 2 (ET_EXEC)")
    if e_phnum and e_phentsize < 32:
        raise OracleError(f"{path}: e_phentsize={e_phentsize} is too small")
    segments = []
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        if off + 32 > len(data):
            raise OracleError(f"{path}: program header {i} lies past the end of the file")
        p_type, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _pflags, _align = struct.unpack_from("<IIIIIIII", data, off)
        if p_type != PT_LOAD or p_memsz == 0:
            continue
        if p_filesz > p_memsz:
            raise OracleError(f"{path}: segment {i}: p_filesz={p_filesz} > p_memsz={p_memsz}")
        if p_offset + p_filesz > len(data):
            raise OracleError(f"{path}: segment {i}: file bytes end past the file")
        if p_vaddr + p_memsz > 1 << 32:
            raise OracleError(f"{path}: segment {i}: extends past 2^32")
        segments.append((p_vaddr, data[p_offset : p_offset + p_filesz], p_memsz))
    spans = sorted((v, v + m, i) for i, (v, _, m) in enumerate(segments))
    for (_, end_a, a), (start_b, _, b) in zip(spans, spans[1:]):
        if start_b < end_a:
            raise OracleError(f"{path}: PT_LOAD segments {a} and {b} overlap")
    return e_entry, segments


class ElfRunner:
    def __init__(self, entry, segments, exact_count):
        self.uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV32)
        for start, size in page_runs([(v, m) for v, _, m in segments]):
            self.uc.mem_map(start, size)
        for vaddr, file_bytes, _ in segments:
            if file_bytes:
                self.uc.mem_write(vaddr, file_bytes)
        self.entry = entry
        self.insns = 0
        self.exit_code = None
        self.error = None
        self.out = {1: bytearray(), 2: bytearray()}
        if exact_count:
            self.uc.hook_add(UC_HOOK_CODE, self._on_code)
        else:
            self.uc.hook_add(UC_HOOK_BLOCK, self._on_block)
        self.uc.hook_add(UC_HOOK_INTR, self._on_intr)

    def _on_code(self, uc, address, size, user_data):
        self.insns += 1

    def _on_block(self, uc, address, size, user_data):
        self.insns += size // 4

    def _stop(self, error):
        self.error = error
        self.uc.emu_stop()

    def _on_intr(self, uc, intno, user_data):
        pc = uc.reg_read(UC_RISCV_REG_PC)
        if intno not in ECALL_CAUSES:
            self._stop(exception_text(intno, pc))
            return
        # unicorn reports an ecall with pc already past it; make sure of that
        try:
            word = struct.unpack("<I", uc.mem_read((pc - 4) & MASK32, 4))[0]
        except UcError:
            word = None
        if word != ECALL_WORD:
            self._stop(f"ecall reported at pc={pc:#010x} but the previous word is not ecall")
            return
        a7 = uc.reg_read(REG_X[17])
        a0 = uc.reg_read(REG_X[10])
        if a7 == SYS_EXIT:
            self.exit_code = a0 & MASK32
            uc.emu_stop()
        elif a7 == SYS_WRITE:
            if a0 not in self.out:
                self._stop(f"write to fd {a0} (only 1 and 2) at pc={pc - 4:#010x}")
                return
            addr = uc.reg_read(REG_X[11]) & MASK32
            length = uc.reg_read(REG_X[12]) & MASK32
            try:
                if addr + length <= 1 << 32:
                    buf = bytes(uc.mem_read(addr, length))
                else:
                    first = (1 << 32) - addr
                    buf = bytes(uc.mem_read(addr, first)) + bytes(uc.mem_read(0, length - first))
            except UcError as e:
                self._stop(f"write of {length} bytes at {addr:#010x}: {e}")
                return
            self.out[a0] += buf
            uc.reg_write(REG_X[10], length)
        else:
            self._stop(f"unsupported syscall a7={a7} at pc={pc - 4:#010x}")

    def run(self, max_insns):
        try:
            self.uc.emu_start(self.entry, 0xFFFFFFFF, count=max_insns or 0)
        except UcError as e:
            if self.error is None:
                self.error = f"{e} near pc={self.uc.reg_read(UC_RISCV_REG_PC):#010x}"
        if self.exit_code is None and self.error is None:
            self.error = f"stopped after {self.insns} instructions without exiting"
        return {
            "exit_code": self.exit_code,
            "stdout_hex": bytes(self.out[1]).hex(),
            "stderr_hex": bytes(self.out[2]).hex(),
            "insns": self.insns,
            "regs": [0] + [self.uc.reg_read(REG_X[i]) & MASK32 for i in range(1, 32)],
            "pc": self.uc.reg_read(UC_RISCV_REG_PC) & MASK32,
            "error": self.error,
        }


def run_elf(path, max_insns, count):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise OracleError(f"{path}: {e.strerror}") from e
    entry, segments = parse_elf(data, path)
    exact = count == "code" or max_insns is not None
    result = ElfRunner(entry, segments, exact).run(max_insns)
    sys.stdout.write(json.dumps(result) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description="unicorn RV32 oracle for the opml VM tests")
    sub = ap.add_subparsers(dest="mode", required=True)
    seq = sub.add_parser("seq", help="run instruction-sequence cases given as JSON lines on stdin")
    seq.add_argument("--stream", action="store_true", help="answer each line as soon as it is read")
    elf = sub.add_parser("elf", help="run an ELF32 RISC-V program until it exits")
    elf.add_argument("path")
    elf.add_argument("--max-insns", type=int, default=None, help="stop after N instructions")
    elf.add_argument("--count", choices=("block", "code"), default="block", help="instruction counting hook")
    args = ap.parse_args(argv)
    try:
        if args.mode == "seq":
            run_seq(args.stream)
        else:
            if args.max_insns is not None and args.max_insns <= 0:
                raise OracleError(f"--max-insns must be positive, got {args.max_insns}")
            run_elf(args.path, args.max_insns, args.count)
    except OracleError as e:
        print(f"unicorn_oracle: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
