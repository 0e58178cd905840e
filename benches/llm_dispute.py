#!/usr/bin/env python3
"""Report of one run of benches/llm_dispute.sh (stdlib only).

Usage: llm_dispute.py OUT_DIR RPC_URL LIES
OUT_DIR holds the challenger's JSON log (ch.log), each submitter's (subN.log), the claims'
JSON (claim_honest.json, claimN.json), timings (*_time.json, claimN_meta.json) and the
/usr/bin/time -v reports (ch.time, subN.time). Calldata sizes are read from the chain
(eth_getTransactionByHash), so it runs while the devnet is up.
"""
import json
import os
import sys
import urllib.request


def events(path):
    out = []
    if not os.path.exists(path):
        return out
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def load(path):
    return json.load(open(path)) if os.path.exists(path) else {}


def peak_rss_kb(path):
    if not os.path.exists(path):
        return None
    for line in open(path):
        if "Maximum resident set size" in line:
            return int(line.split(":")[1])
    return None


def calldata(rpc, tx):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionByHash", "params": [tx]}).encode()
    req = urllib.request.Request(rpc, body, {"Content-Type": "application/json"})
    r = json.load(urllib.request.urlopen(req, timeout=10))["result"]
    return (len(r["input"]) - 2) // 2


def kind(what):
    """Move kind from the watcher's `move` text: open, postStates graph|vm, pick graph|vm,
    handover, resolveStep, timeout, abandon."""
    w = what.split()
    if w[0] in ("postStates", "pick"):
        return f"{w[0]} {'graph' if w[1] == 'graph' else 'vm'}"
    return w[0]


def main():
    out, rpc, lies = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ch = events(os.path.join(out, "ch.log"))
    meta = load(os.path.join(out, "meta.json"))
    meta_end = load(os.path.join(out, "meta_end.json"))
    gen = load(os.path.join(out, "generate.json"))
    gen_t = load(os.path.join(out, "generate_time.json"))
    honest = load(os.path.join(out, "claim_honest.json"))
    honest_t = load(os.path.join(out, "claim_honest_time.json"))
    hid = honest.get("claim")
    seen = next((e["ts"] for e in ch if e["event"] == "claim" and e["claim"] == hid), None)
    verdict = next((e for e in ch if e["event"] == "verdict" and e["claim"] == hid), None)
    report = {
        "machine": {"load_start": meta.get("load_start"), "load_end": meta_end.get("load_end")},
        "honest": {
            "claim": hid,
            "new_tokens": (honest.get("generation") or {}).get("new_tokens"),
            "prompt_tokens": (honest.get("generation") or {}).get("prompt_tokens"),
            "verdict": verdict and verdict["verdict"],
            "recheck_s": verdict and seen and round(verdict["ts"] - seen, 3),
            "claim_wall_s": round(honest_t.get("claim_s", 0), 2),
            "generate_wall_s": round(gen_t.get("generate_s", 0), 2),
            "generate_load_s": gen.get("load_seconds"),
            "generate_prompt_s": gen.get("prompt_seconds"),
            "generate_decode_s": gen.get("generate_seconds"),
            "generate_tokens_per_s": gen.get("tokens_per_second"),
            "same_output": gen.get("output_commitment") == honest.get("output_commitment"),
            "register_s": meta.get("register_s"),
            "load": honest_t.get("load"),
        },
        "lies": [],
        "challenger_peak_rss_mib": (peak_rss_kb(os.path.join(out, "ch.time")) or 0) / 1024,
    }
    for n in range(1, lies + 1):
        c = load(os.path.join(out, f"claim{n}.json"))
        m = load(os.path.join(out, f"claim{n}_meta.json"))
        sub = events(os.path.join(out, f"sub{n}.log"))
        cid = c.get("claim")
        chal = next((e for e in ch if e["event"] == "challenge" and e["claim"] == cid), None)
        if chal is None:
            report["lies"].append({"fault": m.get("fault"), "error": "not challenged"})
            continue
        gid = chal["game"]
        seen_ts = next((e["ts"] for e in ch if e["event"] == "claim" and e["claim"] == cid), None)
        v = next((e for e in ch if e["event"] == "verdict" and e["claim"] == cid), None)
        moves = [e for e in ch + sub if e["event"] == "move" and e["game"] == gid]
        ends = [e for e in ch + sub if e["event"] == "game_end" and e["game"] == gid]
        node = next((e["node"] for e in ch if e["event"] == "vm_run" and e["game"] == gid), None)
        kinds = {}
        biggest = (0, None)
        for e in moves:
            size = calldata(rpc, e["tx"])
            k = kind(e["move"])
            d = kinds.setdefault(k, {"count": 0, "gas_min": None, "gas_max": 0, "calldata_max": 0})
            d["count"] += 1
            d["gas_min"] = e["gas"] if d["gas_min"] is None else min(d["gas_min"], e["gas"])
            d["gas_max"] = max(d["gas_max"], e["gas"])
            d["calldata_max"] = max(d["calldata_max"], size)
            if size > biggest[0]:
                biggest = (size, k)
        chal_size = calldata(rpc, chal["tx"])
        end_ts = max(e["ts"] for e in ends) if ends else None
        winner = {e.get("winner") for e in ends}
        report["lies"].append(
            {
                "fault": m.get("fault"),
                "claim": cid,
                "game": gid,
                "claim_wall_s": round(m.get("claim_s", 0), 2),
                "verdict": v and v["verdict"],
                "recheck_s": v and seen_ts and round(v["ts"] - seen_ts, 3),
                "challenge_ms_since_seen": chal.get("ms_since_seen"),
                "node": node,
                "graph_rounds": kinds.get("pick graph", {}).get("count", 0),
                "vm_rounds": kinds.get("pick vm", {}).get("count", 0),
                "moves": kinds,
                "challenge_gas": chal["gas"],
                "challenge_calldata": chal_size,
                "total_gas": chal["gas"] + sum(e["gas"] for e in moves),
                "transactions": 1 + len(moves),
                "transactions_game_end": sum(e.get("transactions", 0) for e in ends),
                "largest_calldata": biggest[0],
                "largest_calldata_move": biggest[1],
                "challenge_to_end_s": end_ts and round(end_ts - chal["ts"], 2),
                "winner": "/".join(sorted(w for w in winner if w)),
                "challenger_vmhwm_mib": round(m.get("challenger_vmhwm_kb", 0) / 1024),
                "submitter_peak_rss_mib": round((peak_rss_kb(os.path.join(out, f"sub{n}.time")) or 0) / 1024),
                "load_before": m.get("load_before"),
                "load_after": m.get("load_after"),
            }
        )

    h = report["honest"]
    print(f"honest claim {h['claim']}: prompt {h['prompt_tokens']} + {h['new_tokens']} tokens; verdict {h['verdict']} "
          f"{h['recheck_s']} s after the watcher saw it; `chain claim` {h['claim_wall_s']} s vs `generate` "
          f"{h['generate_wall_s']} s (load {h['generate_load_s']:.2f} + prompt {h['generate_prompt_s']:.2f} + decode "
          f"{h['generate_decode_s']:.2f} s); same output: {h['same_output']}; load {h['load']}")
    cols = ["fault", "node", "rounds g+vm", "txs", "total gas", "largest calldata", "challenge->end s",
            "ch. latency ms", "sub RSS MiB", "winner", "load"]
    print(" | ".join(cols))
    for x in report["lies"]:
        if "error" in x:
            print(x)
            continue
        print(" | ".join(str(v) for v in [
            x["fault"], x["node"], f"{x['graph_rounds']}+{x['vm_rounds']}", x["transactions"], f"{x['total_gas']:,}",
            f"{x['largest_calldata']:,} B ({x['largest_calldata_move']})", x["challenge_to_end_s"],
            x["challenge_ms_since_seen"], x["submitter_peak_rss_mib"], x["winner"], x["load_after"]]))
        for k, d in sorted(x["moves"].items()):
            print(f"    {k:16} x{d['count']:<3} gas {d['gas_min']:,}-{d['gas_max']:,}  calldata <= {d['calldata_max']:,} B")
        print(f"    {'challenge':16} x1   gas {x['challenge_gas']:,}  calldata {x['challenge_calldata']:,} B")
    print(f"challenger watcher peak RSS: {report['challenger_peak_rss_mib']:.0f} MiB")
    print(json.dumps(report))


main()
