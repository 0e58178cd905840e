#!/usr/bin/env python3
"""Single-point mutation testing of the game contracts (not run in CI: it takes long).

    python3 contracts/scripts/mutate.py [--files A.sol,B.sol] [--sample N] [--seed S]
                                        [--match-contract REGEX] [--grep REGEX] [--ops A,B] [--list]
                                        [--out FILE]

Applies one mutant at a time (a fixed list of regex operators, each applied at one
occurrence on one code line) to a private copy of `contracts/` (the checkout is never
modified), runs the forge suite on it and reports the score: killed / (killed + survived).
A mutant that does not compile is counted apart (not in the score). With --sample N, a
fixed-seed sample of N mutants is run, chosen by a hash of each mutant's file, operator
and mutated line (so an edit elsewhere in a file does not change the rest of the sample).
Each survivor is printed with its file, line and the mutated line; --out writes the full
report. Default files: OptimisticML, Handover, HandoverVerifier, Dissection (src/).
"""

import argparse
import os
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONTRACTS = os.path.dirname(HERE)
REPO = os.path.dirname(CONTRACTS)
DEFAULT_FILES = ["OptimisticML.sol", "Handover.sol", "HandoverVerifier.sol", "Dissection.sol"]

# (name, pattern, replacement): each match of `pattern` on a line is one mutant.
OPERATORS = [
    ("lt->le", r"(?<![<<=])<(?![<=])", "<="),
    ("le->lt", r"(?<!<)<=", "<"),
    ("gt->ge", r"(?<![>=>-])>(?![>=])", ">="),
    ("ge->gt", r"(?<!>)>=", ">"),
    ("eq->ne", r"==", "!="),
    ("ne->eq", r"!=", "=="),
    ("add->sub", r"(?<=\s)\+(?=\s)", "-"),
    ("sub->add", r"(?<=\s)-(?=\s)", "+"),
    ("and->or", r"&&", "||"),
    ("or->and", r"\|\|", "&&"),
    ("drop-revert", r"\bif \((.*)\) revert\b", r"if (false && (\1)) revert"),
    ("const+1", r"(?<![\w.])([0-9]+)(?![\w.])", None),  # n -> n + 1
    ("true<->false", r"\b(true|false)\b", None),
]


def code_part(line):
    """The part of a line before a // comment (None for comment-only / pragma / import lines)."""
    s = line.strip()
    if not s or s.startswith(("//", "/*", "*", "pragma", "import", "event ", "error ")):
        return None
    cut = line.find("//")
    return line if cut < 0 else line[:cut]


def mutants_of(name, text):
    """Every (file, line number, operator, mutated text, mutated line) of one source."""
    lines = text.split("\n")
    out = []
    asm_depth = 0  # brace depth inside an assembly block (not mutated: Yul has no operators)
    for i, line in enumerate(lines):
        if line.startswith("contract HandoverHarness"):
            break  # the test-only harness after the library
        code = code_part(line)
        if asm_depth or re.search(r"\bassembly\b", code or ""):
            asm_depth += line.count("{") - line.count("}")
            continue
        if code is None:
            continue
        rest = line[len(code):]
        for op, pat, rep in OPERATORS:
            for m in re.finditer(pat, code):
                if op == "const+1":
                    new = str(int(m.group(1)) + 1)
                elif op == "true<->false":
                    new = "false" if m.group(1) == "true" else "true"
                else:
                    new = m.expand(rep)
                mutated = code[: m.start()] + new + code[m.end():] + rest
                if mutated == line:
                    continue
                out.append(
                    (name, i + 1, op, "\n".join(lines[:i] + [mutated] + lines[i + 1:]), mutated.strip(), line.strip())
                )
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", default=",".join(DEFAULT_FILES))
    ap.add_argument("--sample", type=int, default=0, help="run a fixed-seed sample of N mutants")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--match-contract", default=None, help="forge --match-contract for each run")
    ap.add_argument("--grep", default=None, help="only the mutants of lines matching this regex")
    ap.add_argument("--ops", default=None, help="only these operators (comma-separated names)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--out", default=None, help="write the report here too")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per mutant run")
    args = ap.parse_args()

    files = [f.strip() for f in args.files.split(",") if f.strip()]
    sources = {f: open(os.path.join(CONTRACTS, "src", f)).read() for f in files}
    all_mutants = []
    for f in files:
        all_mutants += mutants_of(f, sources[f])
    if args.grep:
        all_mutants = [m for m in all_mutants if re.search(args.grep, m[5])]
    if args.ops:
        all_mutants = [m for m in all_mutants if m[2] in args.ops.split(",")]
    chosen = all_mutants
    if args.sample and args.sample < len(all_mutants):
        # Keyed by (seed, file, operator, mutated line), not by position: an edit elsewhere
        # in a file keeps the sample of its unchanged lines.
        def key(m):
            return hashlib.sha256(f"{args.seed}|{m[0]}|{m[2]}|{m[4]}".encode()).hexdigest()

        picked = set(id(m) for m in sorted(all_mutants, key=key)[: args.sample])
        chosen = [m for m in all_mutants if id(m) in picked]
    if args.list:
        for f, ln, op, _, ml, _ in chosen:
            print(f"{f}:{ln} {op}: {ml}")
        print(f"{len(chosen)} of {len(all_mutants)} mutants")
        return 0

    forge = subprocess.check_output(["bash", os.path.join(HERE, "bin.sh"), "forge"], text=True).strip()
    work = tempfile.mkdtemp(prefix="opml-mutate-")
    copy = os.path.join(work, "contracts")
    os.makedirs(copy)
    for item in ("foundry.toml", "src", "test", "scripts"):
        src = os.path.join(CONTRACTS, item)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, os.path.join(copy, item))
    os.symlink(os.path.realpath(os.path.join(CONTRACTS, "node_modules")), os.path.join(copy, "node_modules"))
    os.symlink(os.path.join(REPO, "fixtures"), os.path.join(work, "fixtures"))
    # A mutant is killed by its first failing test: stop there (the score is the same).
    cmd = [forge, "test", "--fail-fast"]
    if args.match_contract:
        cmd += ["--match-contract", args.match_contract]

    def run():
        try:
            p = subprocess.run(cmd, cwd=copy, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return "killed(timeout)"
        out = p.stdout + p.stderr
        if p.returncode == 0:
            return "survived"
        if re.search(r"Compiler run failed|Compilation failed|Compiler error", out):
            return "invalid"
        return "killed"

    base = run()
    if base != "survived":
        print(f"the unmutated suite does not pass ({base}); stopping", file=sys.stderr)
        return 2
    report = []
    counts = {"killed": 0, "survived": 0, "invalid": 0}
    start = time.time()
    for n, (f, ln, op, text, ml, _) in enumerate(chosen, 1):
        path = os.path.join(copy, "src", f)
        with open(path, "w") as h:
            h.write(text)
        res = run()
        with open(path, "w") as h:
            h.write(sources[f])
        key = "killed" if res.startswith("killed") else res
        counts[key] += 1
        line = f"[{n}/{len(chosen)}] {res:9} {f}:{ln} {op}: {ml}"
        report.append(line)
        print(line, flush=True)
    run()  # leave the copy's build cache on the original sources
    scored = counts["killed"] + counts["survived"]
    summary = (
        f"mutation score: {counts['killed']}/{scored} killed"
        f" ({100.0 * counts['killed'] / max(scored, 1):.1f}%), {counts['invalid']} did not compile;"
        f" {len(chosen)} of {len(all_mutants)} mutants, seed {args.seed}, {time.time() - start:.0f} s"
    )
    print(summary)
    print("survivors:")
    for r in report:
        if " survived " in r:
            print("  " + r)
    if args.out:
        with open(args.out, "w") as h:
            h.write("\n".join(report + [summary]) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
