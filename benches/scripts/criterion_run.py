#!/usr/bin/env python3
"""Runs one criterion bench of tessera-benches and returns, per benchmark id,
the median time per iteration in ns (criterion's `median` estimate over its
samples, from target/criterion/<id>/new/estimates.json): the same statistic
as every other table in docs/performance.md. Used by tile_math_vs_mercantile.py
and ipc_codec.py (stdlib only).
"""
import json
import os
import re
import subprocess

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def run(bench, warm_up_s=1, measurement_s=3, taskset=None):
    """{benchmark id: median ns/iter} for `cargo bench --bench <bench>`."""
    cmd = ["cargo", "bench", "-q", "-p", "tessera-benches", "--bench", bench, "--",
           "--warm-up-time", str(warm_up_s), "--measurement-time", str(measurement_s),
           "--output-format", "bencher"]
    if taskset is not None:
        # Build first, unpinned; only the measurement runs on the given CPU.
        subprocess.run(cmd[:7] + ["--no-run"], cwd=ROOT, check=True)
        cmd = ["taskset", "-c", str(taskset)] + cmd
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    ids = [m.group(1) for m in re.finditer(r"^test (\S+)\s+\.\.\. bench:", out, re.M)]
    if not ids:
        raise SystemExit("criterion printed no results for --bench %s:\n%s" % (bench, out))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    result = {}
    for bench_id in ids:
        path = os.path.join(target, "criterion", bench_id, "new", "estimates.json")
        with open(path) as f:
            result[bench_id] = json.load(f)["median"]["point_estimate"]
    return result
