#!/usr/bin/env bash
# Icons, markers and patterns (issue #10): tessera against Mapnik/renderd, side
# by side in one run, on benches/styles/images_helsinki.xml (the same XML for
# both): OSM Helsinki areas, lines and POIs with PolygonPatternSymbolizer (SVG
# and PNG tiles), LinePatternSymbolizer (warp and repeat), MarkersSymbolizer
# (SVG POI icons, oneway arrows along lines) and PointSymbolizer (PNG icons),
# z15-17 over the data's bbox (129 tiles, 7 metatiles).
# 1. Visual: Mapnik renders every metatile covering the tiles (8x8, as renderd:
#    mapnik_metatiles.py, the style's buffer-size, cut into 32-bit 256 px tiles);
#    tessera renders the same metatiles (render_bench --format png --out);
#    tile_compare gives the pooled PSNR over RGB, the worst tiles and a picture of
#    them side by side (docs/images/images_vs_mapnik.png). Target (issue #10):
#    pooled PSNR >= 32 dB. Two more references, for scale: Mapnik with the
#    metatile's extent computed as renderd computes it (--extent renderd), which
#    moves global patterns by a pixel here and there (Mapnik truncates their
#    phase, and the rounding of the extent decides; mapnik_metatiles.py), is
#    compared with Mapnik (the floor: Mapnik against itself) and tessera with it;
#    and Mapnik with the style's image symbolizers removed is compared with
#    Mapnik (what the image symbols weigh).
# 2. Throughput, as render_vs_mapnik.sh measures it: tessera's render_bench (one
#    Renderer per thread, 8x8 metatiles, png8, each metatile written as a
#    mod_tile .meta file) against renderd driven by render_list (num_threads = -n
#    = N, png256 metatiles), alternating, ROUNDS rounds per thread count; the
#    ratio of the medians (target >= 2x). The set (7 metatiles, under a second)
#    is rendered REPEAT times one after another in every round by both
#    (render_bench --repeat; render_list -f, as labels_vs_mapnik.sh's Helsinki).
#
# Needs: python3-mapnik, mapnik-utils, renderd (Debian 12), the data in
# ../shared/data (osm-helsinki.gpkg) and ../shared/bench/mapnik, cargo.
# Knobs (env): THREADS="1 2", ROUNDS=3, REPEAT=5, SKIP_VISUAL=1, SKIP_SPEED=1,
#   RESULTS=<file for the JSON lines> (default: a temp file),
#   IMAGES=docs/images (images_vs_mapnik.png), WORST=4 (tiles shown),
#   KEEP_TILES=<dir> (keep the compared tile trees there),
#   CARGO_TARGET_DIR (where the release binaries are built; default target/).
# Every JSON line carries "runmeta" (commit, dirty flag, machine, load average at
# that moment; runmeta.py). A tree with uncommitted changes is refused unless
# --allow-dirty or ALLOW_DIRTY=1 (then recorded as dirty, with the paths).
# Usage (from the repo root or anywhere):
#   bash benches/scripts/images_vs_mapnik.sh [--allow-dirty]
# Report: python3 benches/scripts/images_vs_mapnik_report.py RESULTS.jsonl
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/runmeta.sh"
runmeta_init "$@"                 # exits on a dirty tree unless allowed
SHARED=${SHARED:-$(cd "$ROOT/../shared" && pwd)}
export SHARED                     # mapnik_metatiles.py imports mapnik_baseline.py from there
B=$SHARED/bench/mapnik            # renderd_common.sh and renderd.conf.in use $B
STYLE=$ROOT/benches/styles/images_helsinki.xml
SET=helsinki                      # the label of the JSON lines and renderd's map name
ZOOM=15-17
BBOX=24.935176,60.164155,24.953415,60.179113   # the data's extent (mapnik_baseline.py)
THREADS=${THREADS:-1 2}
ROUNDS=${ROUNDS:-3}
REPEAT=${REPEAT:-5}
IMAGES=${IMAGES:-$ROOT/docs/images}
WORST=${WORST:-4}
PY=/usr/bin/python3               # Debian's python, which sees python3-mapnik

for tool in renderd render_list; do
  command -v $tool >/dev/null || { echo "needs $tool: apt-get install -y python3-mapnik mapnik-utils renderd" >&2; exit 1; }
done
$PY -c 'import mapnik' 2>/dev/null || { echo "needs python3-mapnik" >&2; exit 1; }

# private temp dir (renderd socket/tiles/config/logs, our tiles); removed at exit
. "$B/renderd_common.sh"
RESULTS=${RESULTS:-$RD_DIR/results.jsonl}
: > "$RESULTS"

echo "building render_bench and tile_compare (release)..."
(cd "$ROOT" && cargo build --release -q -p tessera-benches --bin render_bench --bin tile_compare)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
SELECT=(--zoom "$ZOOM" --bbox "$BBOX")   # render_bench's tile selection

# renderd: one section for the style, render_list -m $SET; the metatile list on stdin
"$BIN/render_bench" --style "$STYLE" "${SELECT[@]}" --print-metatiles > "$RD_DIR/$SET.metatiles"
HEXTRA=$(printf '\n[%s]\nURI=/%s/\nTILEDIR=%s\nXML=%s\nHOST=localhost\nTILESIZE=256\nMAXZOOM=20\n' \
  "$SET" "$SET" "$RD_TILES" "$STYLE")
# the number of wanted tiles (generate_tiles.py's loops, as render_bench selects them)
WANTED=$($PY -c 'import sys; sys.path.insert(0, sys.argv[1]); import mapnik_baseline as b
z0, z1 = map(int, sys.argv[2].split("-")); bbox = tuple(map(float, sys.argv[3].split(",")))
print(len(b.enumerate_tiles(bbox, z0, z1, b.GoogleProjection())))' "$B" "$ZOOM" "$BBOX")

now() { date +%s.%N; }
json() { runmeta_json "$RESULTS" "$1"; }

echo "=== $(date -u '+%Y-%m-%d %H:%M:%S UTC')  load: $(cut -d' ' -f1-3 /proc/loadavg)  $(nproc) CPUs"
echo "--- Mapnik $($PY -c 'import mapnik; print(mapnik.mapnik_version())'), renderd $(dpkg-query -W -f '${Version}' renderd 2>/dev/null || echo '?')"

compare() { # label ours-dir reference-dir [tile_compare args]; tile_compare stamps its
  # line, the label is added to it here
  local label=$1 ours=$2 reference=$3; shift 3
  echo "  $label:"
  "$BIN/tile_compare" --ours "$ours" --reference "$reference" --zoom "$ZOOM" \
    --worst "$WORST" --json "$RD_DIR/compare.jsonl" "$@" | sed 's/^/    /'
  tail -n 1 "$RD_DIR/compare.jsonl" | python3 -c \
    'import json, sys; r = json.loads(sys.stdin.read()); r["label"] = sys.argv[1]; print(json.dumps(r))' \
    "$label" >> "$RESULTS"
}

if [ "${SKIP_VISUAL:-0}" != 1 ]; then
  mkdir -p "$IMAGES"
  echo "--- visual: $(wc -l < "$RD_DIR/$SET.metatiles") metatiles, z$ZOOM, tessera png32 vs Mapnik png32 (by metatile)"
  rm -rf "$RD_DIR/tessera" "$RD_DIR/mapnik" "$RD_DIR/mapnik-renderd-extent" "$RD_DIR/mapnik-noimages"
  "$BIN/render_bench" --style "$STYLE" "${SELECT[@]}" --threads 2 --format png \
    --out "$RD_DIR/tessera" | sed 's/^/  tessera: /'
  mapnik_tiles() { # out-dir [mapnik_metatiles.py args]
    local out=$1; shift
    $PY "$HERE/mapnik_metatiles.py" --style "$STYLE" --metatiles "$RD_DIR/$SET.metatiles" \
      --zoom "$ZOOM" --bbox "$BBOX" --workers 2 --out "$out" "$@"
  }
  mapnik_tiles "$RD_DIR/mapnik" | sed 's/^/  /'
  compare "$SET" "$RD_DIR/tessera" "$RD_DIR/mapnik" --image "$IMAGES/images_vs_mapnik.png"
  # the scales: Mapnik with renderd's extent against Mapnik, and tessera against it
  mapnik_tiles "$RD_DIR/mapnik-renderd-extent" --extent renderd | sed 's/^/  renderd extent: /'
  compare "$SET-mapnik-extents" "$RD_DIR/mapnik-renderd-extent" "$RD_DIR/mapnik"
  compare "$SET-renderd-extent" "$RD_DIR/tessera" "$RD_DIR/mapnik-renderd-extent"
  # Mapnik without the image symbolizers against Mapnik
  mapnik_tiles "$RD_DIR/mapnik-noimages" --no-images | sed 's/^/  no images: /'
  compare "$SET-noimages" "$RD_DIR/mapnik-noimages" "$RD_DIR/mapnik"
  if [ -n "${KEEP_TILES:-}" ]; then     # for looking at single tiles afterwards
    rm -rf "$KEEP_TILES"; mkdir -p "$KEEP_TILES"
    cp -r "$RD_DIR/tessera" "$RD_DIR/mapnik" "$RD_DIR/mapnik-renderd-extent" "$RD_DIR/mapnik-noimages" \
      "$KEEP_TILES/"
  fi
fi

tessera() { # threads round
  local n=$1 round=$2
  rm -rf "$RD_DIR/tessera-tiles"
  "$BIN/render_bench" --style "$STYLE" "${SELECT[@]}" --threads "$n" --format png8 \
    --repeat "$REPEAT" --meta-out "$RD_DIR/tessera-tiles" --label "$SET" --json "$RESULTS" \
    | sed "s/^/  round $round tessera /"
}

renderd_run() { # threads round
  local n=$1 round=$2 t0 t1 stats wall tiles bytes _
  rd_start "$n" "renderd-$n-r$round.log" "$HEXTRA"
  t0=$(now)
  for _ in $(seq "$REPEAT"); do
    render_list -f -n "$n" -s "$RD_SOCK" -m "$SET" -t "$RD_TILES" < "$RD_DIR/$SET.metatiles" >/dev/null 2>&1
  done
  t1=$(now)
  stats=$($PY "$B/meta2png.py" "$RD_TILES/$SET")   # metatiles=.. tiles=.. bytes/tile mean=.. median=..
  rd_stop
  wall=$(awk "BEGIN { printf \"%.6f\", $t1 - $t0 }")
  tiles=$(sed -E 's/.*tiles=([0-9]+).*/\1/' <<<"$stats")
  bytes=$(sed -E 's/.*mean=([0-9]+).*/\1/' <<<"$stats")
  echo "  round $round renderd: $n thread(s), wall $wall s, $stats (x$REPEAT)"
  json "{\"tool\":\"renderd\",\"label\":\"$SET\",\"threads\":$n,\"round\":$round,\"repeat\":$REPEAT,\"tiles_rendered\":$((tiles * REPEAT)),\"tiles_wanted\":$((WANTED * REPEAT)),\"wall_s\":$wall,\"bytes_per_tile\":$bytes}"
}

if [ "${SKIP_SPEED:-0}" != 1 ]; then
  for round in $(seq "$ROUNDS"); do
    for n in $THREADS; do
      echo "--- round $round, $n thread(s), load $(cut -d' ' -f1-3 /proc/loadavg)"
      tessera "$n" "$round"
      renderd_run "$n" "$round"
    done
  done
fi

echo
python3 "$HERE/images_vs_mapnik_report.py" "$RESULTS"
echo "(raw results: $RESULTS — removed at exit unless RESULTS was set)"
