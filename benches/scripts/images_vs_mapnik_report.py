#!/usr/bin/env python3
"""Markdown tables from the JSON lines of images_vs_mapnik.sh (stdlib only).

Visual: tile_compare's line (tessera against Mapnik rendered by metatile)
with issue #10's pooled-PSNR target, and for scale: Mapnik with renderd's
metatile extent against Mapnik (Mapnik against itself: global patterns
move by a pixel with the rounding of the extent), tessera against that
Mapnik, and Mapnik without the image symbolizers against Mapnik. Throughput and bytes/tile:
render_vs_mapnik_report.py's tables (median against median).

Usage: images_vs_mapnik_report.py RESULTS.jsonl
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from labels_vs_mapnik_report import differing, median  # noqa: E402
from render_vs_mapnik_report import print_header, print_speed  # noqa: E402

SETS = [("helsinki", "Helsinki icons, markers, patterns z15-17")]
TARGET = 32.0  # issue #10: pooled PSNR over RGB, tessera against Mapnik
# (label suffix, what is compared with what, whether the target applies)
COMPARISONS = [
    ("", "tessera vs Mapnik", True),
    ("-renderd-extent", "tessera vs Mapnik with renderd's extent", False),
    ("-mapnik-extents", "Mapnik with renderd's extent vs Mapnik", False),
    ("-noimages", "Mapnik without image symbolizers vs Mapnik", False),
]


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    print_header(rows)
    compares = {r["label"]: r for r in rows if r["tool"] == "compare"}
    if compares:
        print("| compared | tiles | pooled PSNR | target | pooled PSNR of the differing tiles | "
              "worst tile | median tile | identical tiles | worst tiles |")
        print("|---|---|---|---|---|---|---|---|---|")
        for key, name in SETS:
            for suffix, what, target in COMPARISONS:
                c = compares.get(key + suffix)
                if c is None:
                    continue
                print("| %s | %d | **%.2f dB** | %s | %s | %s %.2f dB | %s | %d | %s |" % (
                    "%s: %s" % (name, what), c["tiles"], c["pooled_psnr"],
                    (">= %.0f dB: %s" % (TARGET, "met" if c["pooled_psnr"] >= TARGET else "MISSED"))
                    if target else "(scale)", differing(c),
                    c["worst_tile"], c["worst_psnr"], median(c), c["identical_tiles"],
                    ", ".join("%s %.2f" % (t, p) for t, p in c["worst"])))
        print()
        print("(pooled PSNR: of the mean squared error over every tile; \"of the differing tiles\": "
              "the same without the identical tiles, which add no error)")
        print()
    if any(r["tool"] in ("tessera", "renderd") for r in rows):
        print_speed(rows, SETS)


if __name__ == "__main__":
    main()
