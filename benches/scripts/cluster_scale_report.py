#!/usr/bin/env python3
"""The tables of docs/performance.md ("Scale-out", issue #14) from
cluster_scale.sh's JSON lines.

    python3 benches/scripts/cluster_scale_report.py RESULTS.jsonl

Throughput: medians of rounds, the cluster's scaling (2 nodes against 1)
and each setup against one machine with as many threads. The engine's cost
per metatile job: commands, bytes and Redis CPU between the counters read
before and after each cluster run, divided by the jobs completed; from it
the model "N nodes at M jobs/s each" with the engine's ceiling (one Redis
core). Priority: last-screen seconds of the pan scenarios, medians.
"""
import json
import statistics
import sys

# Commands a client sends (each one round trip); the rest run inside scripts.
CLIENT_COMMANDS = {"evalsha", "eval", "script|load", "script", "xread", "blpop",
                   "hset", "hgetall", "ping", "select", "client|setinfo", "hello", "get"}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def throughput(recs):
    rows = [r for r in recs if r.get("kind") == "throughput"]
    if not rows:
        return None
    walls = {}
    for r in rows:
        key = (r["setup"], r["threads"])
        walls.setdefault(key, []).append(r["wall_s"])
    jobs_meta = None
    print("### Throughput: world z0-6 (5,461 tiles, 88 metatiles), seconds (median of rounds)\n")
    print("| setup | render threads | rounds | wall s (median) | runs | tiles/s | against 1 node / 1 thread | against one machine, same threads |")
    print("|---|---|---|---|---|---|---|---|")
    for key in [("cluster", 1), ("cluster", 2), ("single", 1), ("single", 2)]:
        if key not in walls:
            continue
        m = med(walls[key])
        base = med(walls.get((key[0], 1), []))
        single = med(walls.get(("single", key[1]), []))
        name = "cluster: front + %d node%s of 1 thread" % (key[1], "s" if key[1] > 1 else "") \
            if key[0] == "cluster" else "one machine, --threads %d" % key[1]
        print("| %s | %d | %d | %.2f | %s | %.0f | %.2f× | %s |" % (
            name, key[1], len(walls[key]), m, " / ".join("%.2f" % w for w in walls[key]),
            5461 / m, base / m if base else float("nan"),
            "%.2f×" % (single / m) if key[0] == "cluster" and single else ""))
    print()
    c1, c2 = med(walls.get(("cluster", 1), [])), med(walls.get(("cluster", 2), []))
    if c1 and c2:
        print("Scaling, 2 render nodes against 1: **%.2f×** (target ≥ 1.8×)\n" % (c1 / c2))
    return walls


def engine_cost(recs):
    rows = [r for r in recs if r.get("kind") == "throughput" and r["setup"] == "cluster"]
    if not rows:
        return None
    per = []
    for r in rows:
        b, a = r["engine_before"], r["engine_after"]
        jobs = a["jobs"] - b["jobs"]
        if jobs <= 0:
            continue
        calls = {k: a["calls"].get(k, 0) - b["calls"].get(k, 0) for k in a["calls"]}
        client = sum(v for k, v in calls.items() if k in CLIENT_COMMANDS)
        total = sum(calls.values())
        per.append({
            "nodes": r["nodes"], "jobs": jobs, "wall_s": r["wall_s"],
            "round_trips": client / jobs, "commands": total / jobs,
            "evalsha": calls.get("evalsha", 0) / jobs,
            "bytes": (a["net_in"] - b["net_in"] + a["net_out"] - b["net_out"]) / jobs,
            "cpu_us": (a["cpu_s"] - b["cpu_s"]) * 1e6 / jobs,
            "calls": {k: v / jobs for k, v in sorted(calls.items()) if v},
        })
    if not per:
        return None
    print("### The engine's cost per metatile job (during the seeds above; median of runs)\n")
    print("| nodes | runs | jobs/run | round trips | of which scripts | commands incl. inside scripts | bytes on the wire | Redis CPU µs |")
    print("|---|---|---|---|---|---|---|---|")
    for n in sorted({p["nodes"] for p in per}):
        ps = [p for p in per if p["nodes"] == n]
        print("| %d | %d | %d | %.1f | %.1f | %.1f | %.0f | %.0f |" % (
            n, len(ps), med([p["jobs"] for p in ps]), med([p["round_trips"] for p in ps]),
            med([p["evalsha"] for p in ps]), med([p["commands"] for p in ps]),
            med([p["bytes"] for p in ps]), med([p["cpu_us"] for p in ps])))
    two = [p for p in per if p["nodes"] == 2] or per
    print("\nCommands per job, 2 nodes (median run): " + ", ".join(
        "%s %.2f" % (k, v) for k, v in sorted(two[len(two) // 2]["calls"].items(), key=lambda kv: -kv[1])))
    print("\nAt these runs' rate (tens of jobs/s) Redis wakes for every command, so its CPU a job\n"
          "is mostly fixed cost; the ceiling below measures it under load.")
    print()
    return per


def ceiling(recs, per):
    rows = [r for r in recs if r.get("kind") == "engine_ceiling"]
    if not rows:
        return
    print("#### The engine's ceiling, measured (engine_ceiling: whole job lifecycles through tessera's engine client and scripts; 5 s a run; median of rounds)\n")
    print("| concurrent lifecycles | rounds | jobs/s | Redis CPU (share of one core) | Redis CPU µs a job | jobs/s ÷ share |")
    print("|---|---|---|---|---|---|")
    best = None
    for clients in sorted({r["clients"] for r in rows}):
        rs = [r for r in rows if r["clients"] == clients]
        jobs = med([r["jobs_per_s"] for r in rs])
        print("| %d | %d | %.0f | %.0f %% | %.0f | %.0f |" % (
            clients, len(rs), jobs, 100 * med([r["redis_share"] for r in rs]),
            med([r["redis_cpu_us_per_job"] for r in rs]), med([r["ceiling_jobs_per_s"] for r in rs])))
        best = max(best or 0, jobs)
    one = [p for p in (per or []) if p["nodes"] == 1]
    if one and best:
        rate = med([p["jobs"] / p["wall_s"] for p in one])
        print("\n**Model, from the measured ceiling**: one Redis takes **%.0f jobs/s** (the best median\n"
              "above, Redis near one full core); N render nodes at M jobs/s each need N × M ≤ %.0f:\n"
              "%.0f nodes at this style's %.1f jobs/s per 1-thread node." % (best, best, best / rate, rate))
    print()


def priority(recs):
    pans = [r for r in recs if r.get("kind") == "pan"]
    if not pans:
        return
    runs = {}
    for r in pans:
        res = r.get("result") or {}
        runs.setdefault((r["scenario"], r["setup"]), []).append(res.get("last_screen_s"))
    idle = {s: med(runs.get(("A", s), [])) for s in ("cluster", "single")}
    print("### Priority through a front with 2 remote render nodes (1 thread each) against one machine (--threads 2); last screen s, median\n")
    print("| scenario | one machine | cluster | cluster / one machine | cluster × its idle screen | runs, cluster (s) | runs, one machine (s) |")
    print("|---|---|---|---|---|---|---|")
    names = {"A": "A idle screen", "B-cancel": "B drag 0.2 s (cancel)",
             "C-demote": "C z9 backlog + drag 0.2 s (demote)", "D-cancel": "D drag 0.02 s (cancel)"}
    for scen in ["A", "B-cancel", "C-demote", "D-cancel"]:
        c, s = runs.get((scen, "cluster"), []), runs.get((scen, "single"), [])
        mc, ms = med(c), med(s)
        if mc is None or ms is None:
            continue
        fmt = lambda xs: " / ".join("%.3f" % x if x is not None else "timeout" for x in xs)
        print("| %s | %.3f | %.3f | %.2f× | %.2f× | %s | %s |" % (
            names[scen], ms, mc, mc / ms, mc / idle["cluster"] if idle["cluster"] else float("nan"), fmt(c), fmt(s)))
    print()


def main():
    recs = load(sys.argv[1])
    meta = [r for r in recs if r.get("kind") == "meta"]
    if meta:
        rm = meta[0].get("runmeta", {})
        print("Run: %s, commit %s%s, %s, load at start %s\n" % (
            meta[0]["date"], rm.get("commit", "?")[:7], " (dirty)" if rm.get("dirty") else "",
            meta[0].get("redis", ""), meta[0]["load_start"]))
    throughput(recs)
    per = engine_cost(recs)
    ceiling(recs, per)
    priority(recs)


if __name__ == "__main__":
    main()
