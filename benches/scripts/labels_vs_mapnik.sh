#!/usr/bin/env bash
# Text labels (issue #15): tessera against Mapnik/renderd, side by side in one
# run, on the two label styles of benches/styles/ (the same XML for both):
#   world     labels_world.xml, country names (point placement, halo, wrap-width)
#             over countries-50m, z2-6 of the whole world (5456 tiles, 86 metatiles)
#   helsinki  labels_helsinki.xml, street names along the OSM roads
#             (placement="line", spacing 300, halo), z15-17 over the data's bbox
# 1. Visual: Mapnik renders every metatile covering the tiles (8x8, as renderd:
#    mapnik_metatiles.py, the style's buffer-size, cut into 32-bit 256 px tiles);
#    tessera renders the same metatiles (render_bench --format png --out);
#    tile_compare gives the pooled PSNR over RGB, the worst tiles and a picture of
#    them side by side (docs/images/labels_vs_mapnik_<set>.png). For scale, Mapnik
#    with the style's TextSymbolizers removed is compared with Mapnik the same way.
#    Targets (issue #15): pooled PSNR >= 30 dB (world), >= 27 dB (helsinki).
# 2. Throughput, as render_vs_mapnik.sh measures it: tessera's render_bench (one
#    Renderer per thread, 8x8 metatiles, png8, each metatile written as a
#    mod_tile .meta file) against renderd driven by render_list (num_threads = -n
#    = N, png256 metatiles), alternating, ROUNDS rounds per thread count; the
#    ratio of the medians (target >= 2x). The Helsinki set (7 metatiles, under a
#    second) is rendered HELSINKI_REPEAT times one after another in every round
#    by both (render_bench --repeat; render_list -f, as render_vs_mapnik.sh's Japan).
#
# Needs: python3-mapnik, mapnik-utils, renderd, fonts-dejavu-core (Debian 12), the
# data in ../shared/data/mapnik-3857 (../shared/bench/mapnik/README.md), cargo.
# Knobs (env): THREADS="1 2", ROUNDS=3, SETS="world helsinki", HELSINKI_REPEAT=5, SKIP_VISUAL=1,
#   SKIP_SPEED=1, RESULTS=<file for the JSON lines> (default: a temp file),
#   IMAGES=docs/images (labels_vs_mapnik_<set>.png), WORST=4 (tiles shown).
# Every JSON line carries "runmeta" (commit, dirty flag, machine, load average at
# that moment; runmeta.py). A tree with uncommitted changes is refused unless
# --allow-dirty or ALLOW_DIRTY=1 (then recorded as dirty, with the paths).
# Usage (from the repo root or anywhere):
#   bash benches/scripts/labels_vs_mapnik.sh [--allow-dirty]
# Report: python3 benches/scripts/labels_vs_mapnik_report.py RESULTS.jsonl
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/runmeta.sh"
runmeta_init "$@"                 # exits on a dirty tree unless allowed
SHARED=${SHARED:-$(cd "$ROOT/../shared" && pwd)}
export SHARED                     # mapnik_metatiles.py imports mapnik_baseline.py from there
B=$SHARED/bench/mapnik            # renderd_common.sh and renderd.conf.in use $B
STYLES=$ROOT/benches/styles
THREADS=${THREADS:-1 2}
ROUNDS=${ROUNDS:-3}
SETS=${SETS:-world helsinki}
IMAGES=${IMAGES:-$ROOT/docs/images}
WORST=${WORST:-4}
HELSINKI_REPEAT=${HELSINKI_REPEAT:-5}
HELSINKI_BBOX=24.935176,60.164155,24.953415,60.179113   # the data's extent (mapnik_baseline.py)
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
BIN=$ROOT/target/release

# per set: style, zoom, bbox ("" = the world), wanted tiles' selection for render_bench
style_of() { case $1 in world) echo "$STYLES/labels_world.xml" ;; helsinki) echo "$STYLES/labels_helsinki.xml" ;; esac; }
zoom_of()  { case $1 in world) echo 2-6 ;; helsinki) echo 15-17 ;; esac; }
bbox_of()  { case $1 in world) echo "" ;; helsinki) echo "$HELSINKI_BBOX" ;; esac; }
repeat_of() { case $1 in world) echo 1 ;; helsinki) echo "$HELSINKI_REPEAT" ;; esac; }
select_args() { # set -> render_bench's tile selection
  local bbox; bbox=$(bbox_of "$1")
  echo "--zoom $(zoom_of "$1")${bbox:+ --bbox $bbox}"
}

# renderd: one section per style, render_list -m <set>; the metatile lists on stdin
HEXTRA=""
for set in $SETS; do
  # shellcheck disable=SC2046
  "$BIN/render_bench" --style "$(style_of "$set")" $(select_args "$set") --print-metatiles > "$RD_DIR/$set.metatiles"
  HEXTRA+=$(printf '\n[%s]\nURI=/%s/\nTILEDIR=%s\nXML=%s\nHOST=localhost\nTILESIZE=256\nMAXZOOM=20\n' \
    "$set" "$set" "$RD_TILES" "$(style_of "$set")")
done
wanted_of() { # set -> number of wanted tiles (generate_tiles.py's loops, as render_bench selects them)
  local bbox; bbox=$(bbox_of "$1")
  $PY -c 'import sys; sys.path.insert(0, sys.argv[1]); import mapnik_baseline as b
z0, z1 = map(int, sys.argv[2].split("-")); bbox = tuple(map(float, sys.argv[3].split(","))) if sys.argv[3] else b.WORLD_BBOX
print(len(b.enumerate_tiles(bbox, z0, z1, b.GoogleProjection())))' "$B" "$(zoom_of "$1")" "$bbox"
}

now() { date +%s.%N; }
json() { runmeta_json "$RESULTS" "$1"; }

echo "=== $(date -u '+%Y-%m-%d %H:%M:%S UTC')  load: $(cut -d' ' -f1-3 /proc/loadavg)  $(nproc) CPUs"
echo "--- Mapnik $($PY -c 'import mapnik; print(mapnik.mapnik_version())'), renderd $(dpkg-query -W -f '${Version}' renderd 2>/dev/null || echo '?')"

compare() { # label ours-dir [tile_compare args]: against Mapnik's tiles of the set; tile_compare
  # stamps its line, the label is added to it here
  local label=$1 ours=$2 set=${1%-nolabels}; shift 2
  echo "  $label:"
  "$BIN/tile_compare" --ours "$ours" --reference "$RD_DIR/mapnik-$set" --zoom "$(zoom_of "$set")" \
    --worst "$WORST" --json "$RD_DIR/compare.jsonl" "$@" | sed 's/^/    /'
  tail -n 1 "$RD_DIR/compare.jsonl" | python3 -c \
    'import json, sys; r = json.loads(sys.stdin.read()); r["label"] = sys.argv[1]; print(json.dumps(r))' \
    "$label" >> "$RESULTS"
}

if [ "${SKIP_VISUAL:-0}" != 1 ]; then
  mkdir -p "$IMAGES"
  for set in $SETS; do
    echo "--- visual $set: $(wc -l < "$RD_DIR/$set.metatiles") metatiles, z$(zoom_of "$set"), tessera png32 vs Mapnik png32 (by metatile)"
    rm -rf "$RD_DIR/tessera-$set" "$RD_DIR/mapnik-$set"
    # shellcheck disable=SC2046
    "$BIN/render_bench" --style "$(style_of "$set")" $(select_args "$set") --threads 2 --format png \
      --out "$RD_DIR/tessera-$set" | sed 's/^/  tessera: /'
    bbox=$(bbox_of "$set")
    $PY "$HERE/mapnik_metatiles.py" --style "$(style_of "$set")" --metatiles "$RD_DIR/$set.metatiles" \
      --zoom "$(zoom_of "$set")" ${bbox:+--bbox "$bbox"} --workers 2 --out "$RD_DIR/mapnik-$set" | sed 's/^/  /'
    compare "$set" "$RD_DIR/tessera-$set" --image "$IMAGES/labels_vs_mapnik_$set.png"
    # the scale: Mapnik without the labels against Mapnik
    $PY "$HERE/mapnik_metatiles.py" --style "$(style_of "$set")" --metatiles "$RD_DIR/$set.metatiles" \
      --zoom "$(zoom_of "$set")" ${bbox:+--bbox "$bbox"} --workers 2 --out "$RD_DIR/mapnik-nolabels-$set" \
      --no-labels | sed 's/^/  no labels: /'
    compare "$set-nolabels" "$RD_DIR/mapnik-nolabels-$set"
  done
fi

tessera() { # set threads round
  local set=$1 n=$2 round=$3
  rm -rf "$RD_DIR/tessera-tiles"
  # shellcheck disable=SC2046
  "$BIN/render_bench" --style "$(style_of "$set")" $(select_args "$set") --threads "$n" --format png8 \
    --repeat "$(repeat_of "$set")" --meta-out "$RD_DIR/tessera-tiles" --label "$set" --json "$RESULTS" | sed "s/^/  round $round tessera /"
}

renderd_set() { # set threads round wanted
  local set=$1 n=$2 round=$3 wanted=$4 t0 t1 stats wall tiles bytes repeat _
  repeat=$(repeat_of "$set")
  rd_start "$n" "renderd-$set-$n-r$round.log" "$HEXTRA"
  t0=$(now)
  for _ in $(seq "$repeat"); do
    render_list -f -n "$n" -s "$RD_SOCK" -m "$set" -t "$RD_TILES" < "$RD_DIR/$set.metatiles" >/dev/null 2>&1
  done
  t1=$(now)
  stats=$($PY "$B/meta2png.py" "$RD_TILES/$set")   # metatiles=.. tiles=.. bytes/tile mean=.. median=..
  rd_stop
  wall=$(awk "BEGIN { printf \"%.6f\", $t1 - $t0 }")
  tiles=$(sed -E 's/.*tiles=([0-9]+).*/\1/' <<<"$stats")
  bytes=$(sed -E 's/.*mean=([0-9]+).*/\1/' <<<"$stats")
  echo "  round $round renderd $set: $n thread(s), wall $wall s, $stats (x$repeat)"
  json "{\"tool\":\"renderd\",\"label\":\"$set\",\"threads\":$n,\"round\":$round,\"repeat\":$repeat,\"tiles_rendered\":$((tiles * repeat)),\"tiles_wanted\":$((wanted * repeat)),\"wall_s\":$wall,\"bytes_per_tile\":$bytes}"
}

if [ "${SKIP_SPEED:-0}" != 1 ]; then
  declare -A WANTED
  for set in $SETS; do WANTED[$set]=$(wanted_of "$set"); done
  for round in $(seq "$ROUNDS"); do
    for n in $THREADS; do
      echo "--- round $round, $n thread(s), load $(cut -d' ' -f1-3 /proc/loadavg)"
      for set in $SETS; do
        tessera "$set" "$n" "$round"
        renderd_set "$set" "$n" "$round" "${WANTED[$set]}"
      done
    done
  done
fi

echo
python3 "$HERE/labels_vs_mapnik_report.py" "$RESULTS"
echo "(raw results: $RESULTS — removed at exit unless RESULTS was set)"
