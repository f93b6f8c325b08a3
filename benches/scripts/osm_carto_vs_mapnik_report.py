#!/usr/bin/env python3
"""Markdown tables from the JSON lines of osm_carto_vs_mapnik.sh (stdlib only).

Visual: tile_compare's lines (tessera against Mapnik, both by metatile) with
issue #11's pooled-PSNR target (>= 30 dB) and the scales. Throughput: tile by
tile at 1 thread, tessera against Mapnik (render_osm_carto.py), and by
metatile, tessera against renderd, per thread count: every round and the
ratio of the medians (targets >= 2x), with PostgreSQL's CPU seconds. Profile:
the perf buckets of tessera's own CPU and the peak RSS.

Usage: osm_carto_vs_mapnik_report.py RESULTS.jsonl
       osm_carto_vs_mapnik_report.py --buckets PERF_REPORT.txt PG_CPU_S
         (one JSON line: perf report's samples bucketed, for the script)
"""
import json
import os
import re
import statistics
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from labels_vs_mapnik_report import differing, median  # noqa: E402
from render_vs_mapnik_report import print_header  # noqa: E402

SET = "osmcarto"
TARGET_PSNR = 30.0
COMPARISONS = [
    ("", "tessera vs Mapnik", True),
    ("-renderd-extent", "tessera vs Mapnik with renderd's extent", False),
    ("-mapnik-extents", "Mapnik with renderd's extent vs Mapnik", False),
    ("-nolabels", "Mapnik without TextSymbolizers vs Mapnik", False),
]

# perf symbol (or library) -> bucket; the first pattern that matches wins.
BUCKETS = [
    ("encoding (PNG, palette)", r"png::|fdeflate|miniz|flate2|deflate|crc32|adler|encode::|quantiz|imagequant|palette|color_quant|NeuQuant"),
    ("rules: filters, attribute lookups", r"style::filter|FeatureView|Expr::eval|Value::compare|hash_one|sip::Hasher|select_rules|renderer::.*rule"),
    ("text and labels", r"rustybuzz|ttf_parser|text::|labels::|place::|shape|glyph|harfbuzz|unicode_|Collisions|collision"),
    ("images (SVG, markers, patterns)", r"usvg|resvg|image::|markers::|patterns::|svgtypes|roxmltree|zune"),
    ("data (libpq, GDAL, rows, WKB, reprojection)", r"libpq|libgdal|libproj|libgeos|postgis|source::vector::read|collect_geometry|read_layer|ogr|OGR|GDAL|wkb|libssl|libcrypto|sqlite|libz\b|dec2flt|field_value"),
    ("drawing (tiny-skia, paths, strokes, compositing)", r"tiny_skia|draw::|coverage::|stroke|PathBuilder|pipeline|blit|scan::|hairline|edge_builder|composite"),
    ("memory (malloc, memcpy, memset)", r"malloc|free|memcpy|memmove|memset|realloc|cfree|_int_|memcmp"),
    ("kernel (reads from the socket, scheduling)", r"\[kernel|kernel\]|\[k\]"),
]


def buckets(path, pg_cpu_s):
    """perf report --sort dso,sym lines -> percentage per bucket."""
    out = defaultdict(float)
    for line in open(path, errors="replace"):
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if not m:
            continue
        pct, dso, _, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4)
        text = dso + " " + sym
        for name, pat in BUCKETS:
            if re.search(pat, text):
                out[name] += pct
                break
        else:
            out["other"] += pct
    order = [b[0] for b in BUCKETS] + ["other"]
    return {"tool": "tessera", "label": SET + "-profile", "threads": 1,
            "buckets": {k: round(out[k], 1) for k in order if out[k] > 0}, "pg_cpu_s": float(pg_cpu_s)}


def print_visual(compares):
    print("| compared | tiles | pooled PSNR | target | pooled PSNR of the differing tiles | "
          "worst tile | median tile | identical tiles | worst tiles |")
    print("|---|---|---|---|---|---|---|---|---|")
    for suffix, what, target in COMPARISONS:
        c = compares.get(SET + suffix)
        if c is None:
            continue
        print("| %s | %d | **%.2f dB** | %s | %s | %s %.2f dB | %s | %d | %s |" % (
            what, c["tiles"], c["pooled_psnr"],
            (">= %.0f dB: %s" % (TARGET_PSNR, "met" if c["pooled_psnr"] >= TARGET_PSNR else "MISSED"))
            if target else "(scale)", differing(c),
            c["worst_tile"], c["worst_psnr"], median(c), c["identical_tiles"],
            ", ".join("%s %.2f" % (t, p) for t, p in c["worst"])))
    print()


def rate(r):
    return r["tiles_wanted"] / r["wall_s"]


def print_speed(rows):
    runs = defaultdict(list)   # (mode, tool, threads) -> [row]
    for r in rows:
        if r.get("mode") in ("tiles", "metatiles") and r["tool"] in ("tessera", "mapnik", "renderd"):
            runs[(r["mode"], r["tool"], r["threads"])].append(r)
    print("| how | threads | tessera tiles/s | Mapnik/renderd tiles/s | tessera / Mapnik | target | "
          "PostgreSQL CPU s per run (tessera / Mapnik) |")
    print("|---|---|---|---|---|---|---|")
    pairs = [("tiles", "mapnik", 1, "tile by tile: tessera vs Mapnik (render_osm_carto.py)")]
    threads = sorted({k[2] for k in runs if k[0] == "metatiles"})
    pairs += [("metatiles", "renderd", n, "8x8 metatiles: tessera vs renderd") for n in threads]
    for mode, other, n, what in pairs:
        t, m = runs.get((mode, "tessera", n)), runs.get((mode, other, n))
        if not t or not m:
            continue
        ratio = statistics.median(map(rate, t)) / statistics.median(map(rate, m))
        target = "met" if ratio >= 2 else "MISSED"
        if mode == "metatiles" and n != 2:
            target = "(no target)"
        print("| %s | %d | %s | %s | **%.2fx** | >= 2x: %s | %s / %s |" % (
            what, n, " / ".join("%.1f" % rate(r) for r in t), " / ".join("%.1f" % rate(r) for r in m),
            ratio, target, "%.2f" % statistics.median(r["pg_cpu_s"] for r in t),
            "%.2f" % statistics.median(r["pg_cpu_s"] for r in m)))
    print()
    print("(tiles/s: the 135 wanted tiles per second of wall time; by metatile every tile of the "
          "9 metatiles is rendered (576), for both)")
    print()


def print_profile(rows):
    prof = [r for r in rows if r.get("label") == SET + "-profile" and "buckets" in r]
    rss = [r for r in rows if r.get("label") == SET + "-rss"]
    hwm = [r["vmhwm_kb"] for r in rows if r["tool"] == "renderd" and r.get("threads") == 2 and r.get("vmhwm_kb")]
    if prof:
        p = prof[-1]
        print("| where tessera's CPU goes (1 thread, perf samples of render_bench) | share |")
        print("|---|---|")
        for k, v in p["buckets"].items():
            print("| %s | %.1f %% |" % (k, v))
        print("| (PostgreSQL's CPU in the same run, other processes) | %.2f s |" % p["pg_cpu_s"])
        print()
    if rss or hwm:
        print("| peak RSS, 2 threads | MiB |")
        print("|---|---|")
        if rss:
            print("| tessera render_bench (style loaded, 2 renderers) | %.0f |" % (rss[-1]["maxrss_kb"] / 1024))
        if hwm:
            print("| renderd (VmHWM; also holds renderd.conf's default style) | %.0f |" % (max(hwm) / 1024))
        print()


def main():
    if sys.argv[1] == "--buckets":
        print(json.dumps(buckets(sys.argv[2], sys.argv[3])))
        return
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    print_header(rows)
    compares = {r["label"]: r for r in rows if r["tool"] == "compare"}
    if compares:
        print_visual(compares)
    print_speed(rows)
    print_profile(rows)


if __name__ == "__main__":
    main()
