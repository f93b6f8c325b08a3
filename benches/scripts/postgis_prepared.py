#!/usr/bin/env python3
"""PostGIS: do prepared statements help openstreetmap-carto's queries? (issue #11)

Runs every PostGIS layer query of openstreetmap-carto's style.xml for the 135
tiles z13-17 of ../shared/bench/osm-carto (256 px tiles, buffer 128, Mapnik's
tokens substituted as tessera substitutes them) three ways, on one
connection, ROUNDS rounds alternating, and records the PostgreSQL backend's
CPU seconds (utime + stime of the backend process, /proc) and the wall time:

  literal   each query's text with the numbers written in (what Mapnik and
            tessera send: planned every time);
  auto      one prepared statement per layer, the bbox as 4 float8 parameters
            and the scale/pixel tokens as numeric parameters, with
            PostgreSQL's default plan_cache_mode (custom plans 5 times, then
            a generic plan if it is not much dearer);
  generic   the same with plan_cache_mode = force_generic_plan (planned once).

Rows are fetched whole in every mode (psycopg2, text format), so the
differences are PostgreSQL's planning and execution, not the transfer.
Run with the cluster of osm_carto_vs_mapnik.sh running and PGHOST/PGPORT/PGUSER
exported. Needs python3-psycopg2. Each JSON line carries "runmeta" (runmeta.py).

Usage: python3 benches/scripts/postgis_prepared.py STYLE.xml [--rounds 3] [--json FILE] [--allow-dirty]
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
C = 20037508.342789244
BBOX = (24.935176, 60.164155, 24.953415, 60.179113)


def layers(style):
    out = []
    for layer in ET.parse(style).getroot().iter("Layer"):
        ds = {p.get("name"): p.text for p in layer.find("Datasource").iter("Parameter")}
        if ds.get("type") != "postgis":
            continue
        lo = float(layer.get("minimum-scale-denominator") or 0)
        hi = float(layer.get("maximum-scale-denominator") or 1e20)
        out.append((layer.get("name"), ds["table"], lo, hi))
    return out


def tiles():
    out = []
    west, south, east, north = BBOX
    for z in range(13, 18):
        n = 2 ** z
        tx = lambda lon: int((lon + 180) / 360 * n)
        ty = lambda lat: int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
        for x in range(tx(west), tx(east) + 1):
            for y in range(ty(north), ty(south) + 1):
                out.append((z, x, y))
    return out


def area(z, x, y):
    res = 2 * C / 256 / 2 ** z
    minx, maxy = -C + x * 256 * res, C - y * 256 * res
    b = 128 * res
    return (minx - b, maxy - 256 * res - b, minx + 256 * res + b, maxy + b), res / 0.00028, res


def backend_cpu(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def run(mode, style_layers, tile_list):
    conn = psycopg2.connect(dbname="gis")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    if mode != "literal":
        cur.execute("SET plan_cache_mode = %s" % ("auto" if mode == "auto" else "force_generic_plan"))
        for i, (_, sql, _, _) in enumerate(style_layers):
            q = (sql.replace("!bbox!", "ST_MakeEnvelope($1,$2,$3,$4,3857)")
                 .replace("!scale_denominator!", "($5::numeric)")
                 .replace("!pixel_width!", "($6::numeric)")
                 .replace("!pixel_height!", "($7::numeric)"))
            cur.execute("PREPARE l%d (float8,float8,float8,float8,text,text,text) AS SELECT * FROM %s" % (i, q))
    cpu0, t0, rows = backend_cpu(pid), time.time(), 0
    for z, x, y in tile_list:
        (x0, y0, x1, y1), sd, res = area(z, x, y)
        for i, (_, sql, lo, hi) in enumerate(style_layers):
            if not (lo <= sd < hi):
                continue
            if mode == "literal":
                bb = "ST_MakeEnvelope(%r,%r,%r,%r,3857)" % (x0, y0, x1, y1)
                q = (sql.replace("!bbox!", bb).replace("!scale_denominator!", repr(sd))
                     .replace("!pixel_width!", repr(res)).replace("!pixel_height!", repr(res)))
                cur.execute("SELECT * FROM " + q)
            else:
                cur.execute("EXECUTE l%d (%%s,%%s,%%s,%%s,%%s,%%s,%%s)" % i,
                            (x0, y0, x1, y1, repr(sd), repr(res), repr(res)))
            rows += len(cur.fetchall())
    result = {"mode": mode, "backend_cpu_s": round(backend_cpu(pid) - cpu0, 3),
              "wall_s": round(time.time() - t0, 3), "rows": rows}
    conn.close()
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("style")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--allow-dirty", action="store_true")
    args = ap.parse_args()
    meta = None
    if args.json:
        cmd = [sys.executable, os.path.join(HERE, "runmeta.py"), "static"] + (["--allow-dirty"] if args.allow_dirty else [])
        meta = os.environ.get("RUNMETA") or subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    style_layers, tile_list = layers(args.style), tiles()
    print("%d PostGIS layers, %d tiles" % (len(style_layers), len(tile_list)))
    results = {m: [] for m in ("literal", "auto", "generic")}
    for r in range(args.rounds):
        for mode in results:
            res = run(mode, style_layers, tile_list)
            res["round"] = r + 1
            results[mode].append(res)
            print("  round %d %-8s backend CPU %.2f s, wall %.2f s, %d rows" % (r + 1, mode, res["backend_cpu_s"], res["wall_s"], res["rows"]))
            if args.json:
                line = json.dumps(dict(res, tool="postgis_prepared", tiles=len(tile_list)))
                p = subprocess.run([sys.executable, os.path.join(HERE, "runmeta.py"), "stamp"], input=line + "\n",
                                   capture_output=True, text=True, check=True, env=dict(os.environ, RUNMETA=meta.strip()))
                open(args.json, "a").write(p.stdout)
    base = statistics.median(r["backend_cpu_s"] for r in results["literal"])
    print("\n| mode | backend CPU s (median of %d) | / literal |\n|---|---|---|" % args.rounds)
    for mode, rs in results.items():
        m = statistics.median(r["backend_cpu_s"] for r in rs)
        print("| %s | %.2f | %.2f |" % (mode, m, m / base))


if __name__ == "__main__":
    main()
