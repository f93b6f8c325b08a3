#!/usr/bin/env python3
"""Markdown tables from the JSON lines of labels_vs_mapnik.sh (stdlib only).

Visual: per label set, tile_compare's line (tessera against Mapnik rendered by
metatile) with issue #15's pooled-PSNR target. Throughput and bytes/tile:
render_vs_mapnik_report.py's tables (median against median).

Usage: labels_vs_mapnik_report.py RESULTS.jsonl
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from render_vs_mapnik_report import print_header, print_speed  # noqa: E402

SETS = [
    ("world", "world country names z2-6"),
    ("helsinki", "Helsinki street names z15-17"),
]
# issue #15: pooled PSNR over RGB, tessera against Mapnik
TARGET = {"world": 30.0, "helsinki": 27.0}


def differing(c):
    """Pooled PSNR over the tiles that are not identical: identical tiles
    add nothing to the summed error, so it is the pooled PSNR minus
    10 log10(tiles / differing tiles)."""
    n, same = c["tiles"], c["identical_tiles"]
    if n == same:
        return "-"
    return "%.2f dB" % (c["pooled_psnr"] - 10 * math.log10(n / (n - same)))


def median(c):
    return "identical" if c["median_psnr"] >= 999 else "%.2f dB" % c["median_psnr"]


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    print_header(rows)
    compares = {r["label"]: r for r in rows if r["tool"] == "compare"}
    if compares:
        print("| label set | tiles | pooled PSNR | target | pooled PSNR of the differing tiles | "
              "worst tile | median tile | identical tiles | worst tiles | scale: Mapnik without labels |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for key, name in SETS:
            c = compares.get(key)
            if c is None:
                continue
            target = TARGET[key]
            scale = compares.get(key + "-nolabels")
            print("| %s | %d | **%.2f dB** | >= %.0f dB: %s | %s | %s %.2f dB | %s | %d | %s | %s |" % (
                name, c["tiles"], c["pooled_psnr"], target,
                "met" if c["pooled_psnr"] >= target else "MISSED", differing(c),
                c["worst_tile"], c["worst_psnr"], median(c), c["identical_tiles"],
                ", ".join("%s %.2f" % (t, p) for t, p in c["worst"]),
                "pooled %.2f dB, worst %.2f dB" % (scale["pooled_psnr"], scale["worst_psnr"])
                if scale else "-"))
        print()
        print("(pooled PSNR: of the mean squared error over every tile; \"of the differing tiles\": "
              "the same without the identical tiles, which add no error — most of them plain sea)")
        print()
    if any(r["tool"] in ("tessera", "renderd") for r in rows):
        print_speed(rows, SETS)


if __name__ == "__main__":
    main()
