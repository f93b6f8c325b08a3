#!/usr/bin/env python3
"""tile-math against mercantile, side by side in one run.

Runs the criterion bench `tile_math` (point -> tile; cover a bbox, building
the list of tiles and only counting them) and times the same work in
mercantile with timeit, on the same machine in the same run. Both sides do
the same work: `collect::<Vec<_>>()` against `list(...)`, `.count()` against
`sum(1 for _ in ...)`. One statistic on both sides: the median over samples
(criterion's median estimate; the median of REPEAT timeit repeats).

Writes one JSON line per operation (with "runmeta": commit, dirty flag,
machine, load average) to RESULTS (default: a temp file, printed at the end)
and prints a Markdown table. Refuses a tree with uncommitted changes unless
--allow-dirty or ALLOW_DIRTY=1.

    pip install mercantile==1.2.1
    RESULTS=benches/results/tile_math_vs_mercantile-DATE.jsonl \\
        python3 benches/scripts/tile_math_vs_mercantile.py [--allow-dirty] [--cpu N]

--cpu N pins both sides to CPU N (taskset for the bench, sched_setaffinity here).
"""
import json
import os
import platform
import statistics
import sys
import tempfile
import timeit

import mercantile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import criterion_run  # noqa: E402
import runmeta  # noqa: E402

REPEAT = 11
JAPAN = "129.0, 31.0, 146.0, 45.5, zooms=range(0, 13)"


def python_ns(stmt, number):
    """Median over REPEAT repeats of the time per call, in ns."""
    times = timeit.repeat(stmt, globals={"mercantile": mercantile}, number=number, repeat=REPEAT)
    return statistics.median(times) / number * 1e9


def main(argv):
    try:
        meta = runmeta.static(runmeta.allow_dirty_from(argv))
    except runmeta.DirtyTree as e:
        sys.exit("tile_math_vs_mercantile: %s" % e)
    cpu = None
    if "--cpu" in argv:
        cpu = int(argv[argv.index("--cpu") + 1])
    results = os.environ.get("RESULTS") or tempfile.mkstemp(suffix=".jsonl")[1]

    rust = criterion_run.run("tile_math", measurement_s=3, taskset=cpu)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    n_cover = len(list(mercantile.tiles(129.0, 31.0, 146.0, 45.5, zooms=range(0, 13))))
    rows = [
        ("point_to_tile/helsinki_z16", "point -> tile (z16)", 1,
         "mercantile.tile(24.9384, 60.1699, 16)", 200_000),
        ("cover_bbox/japan_z0_12_collect", "cover Japan z0-12, list of tiles", n_cover,
         "list(mercantile.tiles(%s))" % JAPAN, 20),
        ("cover_bbox/japan_z0_12_count", "cover Japan z0-12, count only", n_cover,
         "sum(1 for _ in mercantile.tiles(%s))" % JAPAN, 20),
    ]
    print("machine: %s, %d CPUs; python %s, mercantile %s; commit %s%s" % (
        meta["cpu_model"], meta["cores"], platform.python_version(), mercantile.__version__,
        meta["commit"][:12], " (dirty)" if meta["dirty"] else ""))
    print()
    print("| operation | tiles | tile-math | mercantile | mercantile / tile-math |")
    print("|---|---|---|---|---|")
    with open(results, "a") as out:
        for key, label, tiles, stmt, number in rows:
            rs = rust.get(key)
            if rs is None:
                sys.exit("criterion printed no result for %s" % key)
            py = python_ns(stmt, number)
            record = {"tool": "tile_math_vs_mercantile", "op": key, "tiles": tiles,
                      "tile_math_ns": round(rs, 3), "mercantile_ns": round(py, 3),
                      "python_stmt": stmt, "python": platform.python_version(),
                      "mercantile": mercantile.__version__, "cpu": cpu,
                      "statistic": "median"}
            out.write(json.dumps(runmeta.stamp(record, meta)) + "\n")
            per = "" if tiles == 1 else " (%.1f ns/tile)" % (rs / tiles)
            print("| %s | %s | %s ns%s | %s ns | %sx |" % (
                label, "{:,}".format(tiles), "{:,.0f}".format(rs), per, "{:,.0f}".format(py),
                "{:,.0f}".format(py / rs)))
    print()
    print("(raw results: %s)" % results)


if __name__ == "__main__":
    main(sys.argv[1:])
