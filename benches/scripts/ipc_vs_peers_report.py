#!/usr/bin/env python3
"""The IPC table of docs/performance.md from the JSON lines of
ipc_vs_peers.sh (stdlib only). The harness runs each peer, transport and
mode once with N messages: p50 is the median round trip of that run, rates
are N over the run's wall time.

Usage: ipc_vs_peers_report.py RESULTS.jsonl
"""
import json
import sys

PEERS = ["c-raw", "python-socket", "python-mpconn", "python-asyncio", "tessera"]


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    metas = [r["runmeta"] for r in rows if "runmeta" in r]
    if metas:
        print("<!-- commit %s; load average (1 min) %.2f-%.2f -->" % (
            ", ".join(sorted({m["commit"] + (" (dirty: %s)" % ", ".join(m["dirty_paths"])
                                             if m["dirty"] else "") for m in metas})),
            min(m["loadavg"][0] for m in metas), max(m["loadavg"][0] for m in metas)))
    by = {(r["peer"], r["transport"], r["mode"], r["msg_bytes"]): r for r in rows
          if r["mode"] != "conn-per-req"}
    print("| transport | mode | bytes | %s | tessera / c-raw |" % " | ".join(
        "**tessera**" if p == "tessera" else p for p in PEERS))
    print("|---|---|---|%s---|" % ("---|" * len(PEERS)))
    for t in ("tcp", "unix"):
        for mode, size, what in (("rtt", 64, "p50"), ("rtt", 64, "rate"), ("pipelined", 64, "rate"),
                                 ("pipelined", 4096, "mb")):
            cells = {}
            for p in PEERS:
                r = by.get((p, t, mode, size))
                if r is None:
                    cells[p] = None
                elif what == "p50":
                    cells[p] = r["p50_us"]
                elif what == "mb":
                    cells[p] = r["mb_per_s"]
                else:
                    cells[p] = r["msgs_per_s"]
            fmt = {"p50": "%.1f µs", "rate": "{:,.0f}", "mb": "{:,.0f} MB/s"}[what]

            def show(v, p):
                if v is None:
                    return "–"
                s = fmt % v if what == "p50" else fmt.format(v)
                return "**%s**" % s if p == "tessera" else s
            t_, c = cells.get("tessera"), cells.get("c-raw")
            if t_ is None or c is None:
                ratio = "–"
            elif what == "p50":
                ratio = "%.2f× the latency" % (t_ / c)
            else:
                ratio = "%.2f×" % (t_ / c)
            print("| %s | %s | %d | %s | %s |" % (
                t, "rtt p50" if what == "p50" else ("rtt rate" if mode == "rtt" else mode), size,
                " | ".join(show(cells[p], p) for p in PEERS), ratio))
    conn = [r for r in rows if r["mode"] == "conn-per-req"]
    if conn:
        print()
        print("| connection per request (%d-byte frames) | transport | server | req/s | p50 µs | "
              "TIME_WAIT on the server port |" % conn[0]["msg_bytes"])
        print("|---|---|---|---|---|---|")
        for r in conn:
            tw = "%s → %s" % (r["tw_port_before"], r["tw_port_after"]) \
                if r.get("tw_port_before") is not None else "–"
            print("| N = %d | %s | %s | {:,.0f} | %.1f | %s |".format(r["msgs_per_s"]) % (
                r["count"], r["transport"], r["server"], r["p50_us"], tw))


if __name__ == "__main__":
    main()
