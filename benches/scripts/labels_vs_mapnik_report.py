#!/usr/bin/env python3
"""Markdown tables from the JSON lines of labels_vs_mapnik.sh (stdlib only).

Visual: per label set, tile_compare's line (tessera against Mapnik rendered by
metatile) with issue #15's pooled-PSNR target. Throughput and bytes/tile:
render_vs_mapnik_report.py's tables (median against median).

Usage: labels_vs_mapnik_report.py RESULTS.jsonl
"""
import json
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


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    print_header(rows)
    compares = {r["label"]: r for r in rows if r["tool"] == "compare"}
    if compares:
        print("| label set | tiles | pooled PSNR | target | worst tile | median tile | identical tiles | worst tiles |")
        print("|---|---|---|---|---|---|---|---|")
        for key, name in SETS:
            c = compares.get(key)
            if c is None:
                continue
            target = TARGET[key]
            print("| %s | %d | **%.2f dB** | >= %.0f dB: %s | %s %.2f dB | %.2f dB | %d | %s |" % (
                name, c["tiles"], c["pooled_psnr"], target,
                "met" if c["pooled_psnr"] >= target else "MISSED",
                c["worst_tile"], c["worst_psnr"], c["median_psnr"], c["identical_tiles"],
                ", ".join("%s %.2f" % (t, p) for t, p in c["worst"])))
        print()
    if any(r["tool"] in ("tessera", "renderd") for r in rows):
        print_speed(rows, SETS)


if __name__ == "__main__":
    main()
