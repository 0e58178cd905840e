#!/usr/bin/env python3
"""Measure the fixed-point conversion of a GGUF's block scales (docs/spec/ops.md §5.1).

For every Q4_1 / Q8_0 tensor: the exponent E the importer picks (largest E <= 24 with
every |round(v * 2^E)| <= 2^30, over d and m together) and the relative error of
round(v * 2^E) / 2^E against the f16 value; for every f32 tensor (norm weights) the same
with cap 30. Usage: llm_scale_error.py MODEL.gguf (numpy only; no gguf package).
"""
import struct
import sys

import numpy as np

VALUE_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def read_gguf(path):
    buf = open(path, "rb").read()
    assert buf[:4] == b"GGUF", "not a GGUF file"
    _, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
    off = 24
    align = 32

    def string(o):
        (n,) = struct.unpack_from("<Q", buf, o)
        return buf[o + 8 : o + 8 + n].decode(), o + 8 + n

    def value(t, o):
        if t == 8:
            return string(o)
        if t == 9:
            et, n = struct.unpack_from("<IQ", buf, o)
            o += 12
            out = []
            for _ in range(n):
                v, o = value(et, o)
                out.append(v)
            return out, o
        fmt = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}[t]
        return struct.unpack_from("<" + fmt, buf, o)[0], o + VALUE_SIZES[t]

    for _ in range(n_kv):
        key, off = string(off)
        (t,) = struct.unpack_from("<I", buf, off)
        v, off = value(t, off + 4)
        if key == "general.alignment":
            align = v
    infos = []
    for _ in range(n_tensors):
        name, off = string(off)
        (nd,) = struct.unpack_from("<I", buf, off)
        dims = struct.unpack_from("<" + "Q" * nd, buf, off + 4)
        typ, toff = struct.unpack_from("<IQ", buf, off + 4 + 8 * nd)
        off += 4 + 8 * nd + 12
        infos.append((name, dims, typ, toff))
    base = (off + align - 1) // align * align
    return buf, base, infos


def round_away(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def convert_error(v, cap):
    mags = np.abs(v)
    for e in range(cap, -1, -1):
        if round_away(mags.max() * 2.0**e) <= 2**30:
            break
    q = round_away(v * 2.0**e)
    nz = v != 0
    rel = np.abs(q / 2.0**e - v)[nz] / np.abs(v[nz])
    return e, rel.max(initial=0.0), rel.mean() if rel.size else 0.0, int((rel > 0).sum()), int(nz.sum())


def main():
    buf, base, infos = read_gguf(sys.argv[1])
    worst = 0.0
    for name, dims, typ, toff in infos:
        n = int(np.prod(dims))
        start = base + toff
        if typ in (3, 8):  # Q4_1: d, m f16 + 16 bytes; Q8_0: d f16 + 32 bytes
            bb = 20 if typ == 3 else 34
            blocks = np.frombuffer(buf, np.uint8, n // 32 * bb, start).reshape(-1, bb)
            scales = blocks[:, : 4 if typ == 3 else 2].copy().view(np.float16).astype(np.float64).ravel()
            e, mx, mean, inexact, nz = convert_error(scales, 24)
        elif typ == 0:
            v = np.frombuffer(buf, np.float32, n, start).astype(np.float64)
            e, mx, mean, inexact, nz = convert_error(v, 30)
        else:
            print(f"{name}: type {typ} skipped")
            continue
        worst = max(worst, mx)
        kind = {0: "f32", 3: "q4_1", 8: "q8_0"}[typ]
        print(f"{name:32} {kind:5} E={e:2}  max rel {mx:.2e}  mean rel {mean:.2e}  inexact {inexact}/{nz}")
    print(f"worst relative conversion error over all tensors: {worst:.2e}")


if __name__ == "__main__":
    main()
