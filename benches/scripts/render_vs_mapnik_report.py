#!/usr/bin/env python3
"""Markdown tables from the JSON lines of render_vs_mapnik.sh (stdlib only).

Throughput: per tile set and thread count, every round of each side
(wanted tiles per second, as the Mapnik baseline counts them) and the ratio
of the medians, tessera / renderd (the one statistic of every benchmark
here: median of N rounds). Sizes: bytes/tile of tessera png8 against renderd png256
(over every tile of the rendered metatiles). Visual: tile_compare's line.

Usage: render_vs_mapnik_report.py RESULTS.jsonl
"""
import json
import statistics
import sys
from collections import defaultdict

SETS = [
    ("world", "world countries-50m z0-5"),
    ("japan", "Japan z8 8x8 block"),
    ("helsinki", "Helsinki OSM z12-18"),
]


def print_header(rows):
    """The HTML comment naming the commits and the load range of the lines."""
    commits = sorted({r["runmeta"]["commit"] + (" (dirty)" if r["runmeta"]["dirty"] else "")
                      for r in rows if "runmeta" in r})
    loads = [r["runmeta"]["loadavg"][0] for r in rows if "runmeta" in r]
    if commits:
        print("<!-- commit %s; load average (1 min) %.2f-%.2f over %d lines -->" % (
            ", ".join(commits), min(loads), max(loads), len(loads)))
    else:
        print("<!-- no run metadata: these lines predate runmeta.py (commit and tree state unknown) -->")
    print()


def print_speed(rows, sets):
    """Throughput (median against median) and bytes/tile tables of the
    tessera and renderd lines; sets: [(label, name)]."""
    runs = defaultdict(list)  # (set, tool, threads) -> [wanted tiles/s]
    size = {}
    for r in rows:
        if r["tool"] not in ("tessera", "renderd"):
            continue
        key = (r["label"], r["tool"], r["threads"])
        runs[key].append(r["tiles_wanted"] / r["wall_s"])
        size[(r["label"], r["tool"])] = r["bytes_per_tile"]
    threads = sorted({k[2] for k in runs})

    print("| tile set | threads | tessera tiles/s | renderd tiles/s | tessera / renderd | target >= 2x |")
    print("|---|---|---|---|---|---|")
    for key, name in sets:
        for n in threads:
            t, m = runs.get((key, "tessera", n)), runs.get((key, "renderd", n))
            if not t or not m:
                continue
            ratio = statistics.median(t) / statistics.median(m)
            print("| %s | %d | %s | %s | **%.2fx** | %s |" % (
                name, n, " / ".join("%.0f" % v for v in t), " / ".join("%.0f" % v for v in m),
                ratio, "met" if ratio >= 2 else "MISSED"))
    print()
    print("(each round's number; the ratio is median against median)")
    print()
    print("| tile set | tessera png8 bytes/tile | Mapnik png256 bytes/tile | ratio | target <= 1 |")
    print("|---|---|---|---|---|")
    for key, name in sets:
        t, m = size.get((key, "tessera")), size.get((key, "renderd"))
        if t is None or m is None:
            continue
        print("| %s | %.0f | %.0f | %.3f | %s |" % (name, t, m, t / m, "met" if t <= m else "MISSED"))


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    print_header(rows)
    print_speed(rows, SETS)
    compare = None
    for r in rows:
        if r["tool"] == "compare":
            compare = r
    if compare:
        c = compare
        print()
        print("| world-50m z%s, %d tiles | value | target |" % (c["zoom"], c["tiles"]))
        print("|---|---|---|")
        print("| pooled PSNR | %.2f dB | >= 38 dB: %s |" % (
            c["pooled_psnr"], "met" if c["pooled_psnr"] >= 38 else "MISSED"))
        print("| worst tile (%s) | %.2f dB | >= 27 dB: %s |" % (
            c["worst_tile"], c["worst_psnr"], "met" if c["worst_psnr"] >= 27 else "MISSED"))
        print("| median tile | %.2f dB | |" % c["median_psnr"])
        print("| identical tiles | %d of %d | |" % (c["identical_tiles"], c["tiles"]))
        ok = c["single_colour"] == c["single_colour_identical"]
        print("| single-colour Mapnik tiles identical | %d of %d | all: %s |" % (
            c["single_colour_identical"], c["single_colour"], "met" if ok else "MISSED"))
        print("| worst tiles | %s | |" % ", ".join("%s %.2f dB" % (t, p) for t, p in c["worst"]))


if __name__ == "__main__":
    main()
