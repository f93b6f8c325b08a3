#!/usr/bin/env bash
# tessera (render-core) against Mapnik/renderd, side by side in one run, on the
# baseline's three tile sets and exact style (../shared/bench/mapnik):
#   1. world countries-50m z0-5 (1365 tiles, 24 metatiles)
#   2. the Japan z8 8x8 block (1 metatile), JAPAN_REPEAT rounds one after another
#   3. Helsinki OSM z12-18 (458 wanted tiles in 19 metatiles)
# For each set and thread count: tessera's render_bench (one Renderer per thread,
# 8x8 metatiles, png8, each metatile written as a mod_tile .meta file to a temp
# dir, as renderd writes them), then renderd driven by
# render_list (num_threads = -n = N, png256 metatiles), alternating, ROUNDS times.
# Then: bytes/tile png8 vs png256, and the visual comparison against Mapnik's
# 32-bit per-tile render (mapnik_baseline.py --format png) on world-50m z0-4:
# pooled PSNR, worst tile, single-colour tiles, and a side-by-side image of the
# worst tiles (docs/images/render_vs_mapnik_worst.png).
#
# Needs: apt-get install -y python3-mapnik mapnik-utils renderd (Debian 12), the
# data in ../shared/data/mapnik-3857 (../shared/bench/mapnik/README.md), cargo.
# Knobs (env): THREADS="1 2", ROUNDS=3, JAPAN_REPEAT=10, SKIP_VISUAL=1,
#   HELSINKI_COUNTRIES=50m (10m: renderd_extra.sh's copy of the style),
#   RESULTS=<file for the JSON lines> (default: a temp file, printed at the end),
#   IMAGE=docs/images/render_vs_mapnik_worst.png.
# Every JSON line carries "runmeta" (commit, dirty flag, machine, load average at
# that moment; runmeta.py). A tree with uncommitted changes is refused unless
# --allow-dirty or ALLOW_DIRTY=1 (then recorded as dirty, with the paths).
# Usage (from the repo root or anywhere):
#   bash benches/scripts/render_vs_mapnik.sh [--allow-dirty]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/runmeta.sh"
runmeta_init "$@"                 # exits on a dirty tree unless allowed
SHARED=${SHARED:-$(cd "$ROOT/../shared" && pwd)}
B=$SHARED/bench/mapnik            # renderd_common.sh and renderd.conf.in use $B
STYLE=$B/mapnik_style.xml
THREADS=${THREADS:-1 2}
ROUNDS=${ROUNDS:-3}
JAPAN_REPEAT=${JAPAN_REPEAT:-10}
HELSINKI_COUNTRIES=${HELSINKI_COUNTRIES:-50m}
IMAGE=${IMAGE:-$ROOT/docs/images/render_vs_mapnik_worst.png}
HELSINKI_BBOX=24.935176,60.164155,24.953415,60.179113
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

# Helsinki: the exact style, or renderd_extra.sh's countries-10m copy (absolute paths).
HSTYLE=$STYLE
if [ "$HELSINKI_COUNTRIES" = 10m ]; then
  HSTYLE=$RD_DIR/mapnik_style_10m.xml
  sed -e "s|\.\./\.\./data/|$(_rd_sed_esc "$SHARED/data")/|g" -e "s|countries-50m.shp|countries-10m.shp|" \
    "$STYLE" > "$HSTYLE"
fi
HLIST=$RD_DIR/helsinki.metatiles
"$BIN/render_bench" --style "$HSTYLE" --zoom 12-18 --bbox $HELSINKI_BBOX --print-metatiles > "$HLIST"
HEXTRA=$(printf '[helsinki]\nURI=/helsinki/\nTILEDIR=%s\nXML=%s\nHOST=localhost\nTILESIZE=256\nMAXZOOM=20' "$RD_TILES" "$HSTYLE")

now() { date +%s.%N; }
json() { runmeta_json "$RESULTS" "$1"; }

tessera() { # set threads round args...
  local set=$1 n=$2 round=$3; shift 3
  rm -rf "$RD_DIR/tessera-tiles"
  "$BIN/render_bench" --threads "$n" --format png8 --meta-out "$RD_DIR/tessera-tiles" \
    --label "$set" --json "$RESULTS" "$@" | sed "s/^/  round $round tessera /"
}

renderd_set() { # set threads round
  local set=$1 n=$2 round=$3 t0 t1 stats
  rd_start "$n" "renderd-$set-$n-r$round.log" "$HEXTRA"
  t0=$(now)
  case $set in
    world)    render_list -a -f -z 0 -Z 5 -n "$n" -s "$RD_SOCK" -m default -t "$RD_TILES" >/dev/null 2>&1 ;;
    japan)    for _ in $(seq "$JAPAN_REPEAT"); do
                render_list -a -f -z 8 -Z 8 -x 224 -X 231 -y 96 -Y 103 -n "$n" -s "$RD_SOCK" -m default \
                  -t "$RD_TILES" >/dev/null 2>&1
              done ;;
    helsinki) render_list -n "$n" -s "$RD_SOCK" -m helsinki -t "$RD_TILES" < "$HLIST" >/dev/null 2>&1 ;;
  esac
  t1=$(now)
  local m=default; [ "$set" = helsinki ] && m=helsinki
  stats=$($PY "$B/meta2png.py" "$RD_TILES/$m")   # metatiles=.. tiles=.. bytes/tile mean=.. median=..
  rd_stop
  local wall tiles bytes wanted repeat=1
  wall=$(awk "BEGIN { printf \"%.6f\", $t1 - $t0 }")
  tiles=$(sed -E 's/.*tiles=([0-9]+).*/\1/' <<<"$stats")
  bytes=$(sed -E 's/.*mean=([0-9]+).*/\1/' <<<"$stats")
  case $set in world) wanted=1365 ;; japan) wanted=64; repeat=$JAPAN_REPEAT ;; helsinki) wanted=458 ;; esac
  echo "  round $round renderd $set: $n thread(s), wall $wall s, $stats (x$repeat)"
  json "{\"tool\":\"renderd\",\"label\":\"$set\",\"threads\":$n,\"round\":$round,\"repeat\":$repeat,\"tiles_rendered\":$((tiles * repeat)),\"tiles_wanted\":$((wanted * repeat)),\"wall_s\":$wall,\"bytes_per_tile\":$bytes}"
}

echo "=== $(date -u '+%Y-%m-%d %H:%M:%S UTC')  load: $(cut -d' ' -f1-3 /proc/loadavg)  $(nproc) CPUs"
for round in $(seq "$ROUNDS"); do
  for n in $THREADS; do
    echo "--- round $round, $n thread(s), load $(cut -d' ' -f1-3 /proc/loadavg)"
    tessera world "$n" "$round" --style "$STYLE" --zoom 0-5
    renderd_set world "$n" "$round"
    tessera japan "$n" "$round" --style "$STYLE" --block 8,224,96,8,8 --repeat "$JAPAN_REPEAT"
    renderd_set japan "$n" "$round"
    tessera helsinki "$n" "$round" --style "$HSTYLE" --zoom 12-18 --bbox $HELSINKI_BBOX
    renderd_set helsinki "$n" "$round"
  done
done

if [ "${SKIP_VISUAL:-0}" != 1 ]; then
  echo "--- visual: world-50m z0-4, tessera png32 vs Mapnik png32 (mapnik_baseline.py, per tile, buffer 128)"
  rm -rf "$RD_DIR/tessera-png32" "$RD_DIR/mapnik-png32"
  "$BIN/render_bench" --style "$STYLE" --zoom 0-4 --threads 2 --format png --out "$RD_DIR/tessera-png32" >/dev/null
  $PY "$B/mapnik_baseline.py" --data world50m --zoom 0-4 --workers 2 --mode process --format png \
    --out "$RD_DIR/mapnik-png32" >/dev/null
  mkdir -p "$(dirname "$IMAGE")"
  "$BIN/tile_compare" --ours "$RD_DIR/tessera-png32" --reference "$RD_DIR/mapnik-png32" --zoom 0-4 \
    --worst 4 --image "$IMAGE" --json "$RESULTS"
fi

echo
python3 "$HERE/render_vs_mapnik_report.py" "$RESULTS"
echo "(raw results: $RESULTS — removed at exit unless RESULTS was set)"
