#!/usr/bin/env python3
"""tile-math against mercantile, side by side in one run.

Runs the criterion bench `tile_math` (point -> tile, cover a bbox) and times
the same work in mercantile with timeit, on the same machine in the same
run, and prints a Markdown table of ns per operation and the ratio.

    pip install mercantile==1.2.1
    python3 benches/scripts/tile_math_vs_mercantile.py

Pin both to one CPU for steadier numbers: `taskset -c 0 python3 ...`.
"""
import os
import platform
import re
import subprocess
import sys
import timeit

import mercantile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def criterion_ns():
    """ns per iteration of each tile_math bench, from criterion's bencher output."""
    out = subprocess.run(
        ["cargo", "bench", "-q", "-p", "tessera-benches", "--bench", "tile_math", "--",
         "--warm-up-time", "1", "--measurement-time", "3", "--output-format", "bencher"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    result = {}
    for line in out.splitlines():
        m = re.match(r"test (\S+)\s+\.\.\. bench:\s+([\d,]+) ns/iter", line)
        if m:
            result[m.group(1)] = float(m.group(2).replace(",", ""))
    return result


def python_ns(stmt, number):
    best = min(timeit.repeat(stmt, globals={"mercantile": mercantile}, number=number, repeat=5))
    return best / number * 1e9


def main():
    rust = criterion_ns()
    cover = "list(mercantile.tiles(129.0, 31.0, 146.0, 45.5, zooms=range(0, 13)))"
    n_cover = len(eval(cover))
    rows = [
        ("point_to_tile/helsinki_z16", "point -> tile (z16)",
         python_ns("mercantile.tile(24.9384, 60.1699, 16)", 200_000), 1),
        ("cover_bbox/japan_z0_12", f"cover Japan z0-12 ({n_cover} tiles)", python_ns(cover, 20), n_cover),
    ]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs; "
          f"python {platform.python_version()}, mercantile {mercantile.__version__}")
    print()
    print("| operation | tile-math | mercantile | mercantile / tile-math |")
    print("|---|---|---|---|")
    for key, label, py, per in rows:
        rs = rust.get(key)
        if rs is None:
            sys.exit(f"criterion printed no result for {key}")
        unit = "" if per == 1 else f" ({rs / per:.1f} ns/tile)"
        print(f"| {label} | {rs:,.0f} ns{unit} | {py:,.0f} ns | {py / rs:,.0f}x |")


if __name__ == "__main__":
    main()
