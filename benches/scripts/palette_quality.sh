#!/usr/bin/env bash
# png8 palettes: render-core's quantiser against NeuQuant (what it used
# before) on the same tiles, side by side in one run: time to make the
# palettes, pooled PSNR against the 32-bit tile, worst tile, png8 bytes.
# 1. render_bench draws the set as 32-bit PNGs (--format png32 --out);
# 2. palette_quality quantises the tiles with more than 256 colours with
#    both, ROUNDS rounds each (median), one thread, pinned to CPU.
# Default set: the world z0-5 of the Mapnik baseline style (as
# palette_encoding.sh). Any other style works through STYLE/ZOOM/BBOX/BUFFER,
# e.g. openstreetmap-carto over the Helsinki database of
# osm_carto_vs_mapnik.sh (its cluster running, PGHOST/PGPORT/PGUSER exported):
#   STYLE=/tmp/osm-carto-bench/style/style.xml ZOOM=13-17 BUFFER=128 \
#   BBOX=24.935176,60.164155,24.953415,60.179113 LABEL=osm-carto bash benches/scripts/palette_quality.sh
# Every JSON line carries "runmeta"; a dirty tree is refused unless
# --allow-dirty or ALLOW_DIRTY=1.
# Knobs (env): STYLE, ZOOM=0-5, BBOX (default: the world), BUFFER, LABEL,
#   ROUNDS=5, CPU=0, RESULTS=<file> (default: a temp file).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/runmeta.sh"
runmeta_init "$@"
SHARED=${SHARED:-$(cd "$ROOT/../shared" 2>/dev/null && pwd || echo "$ROOT/../shared")}
STYLE=${STYLE:-$SHARED/bench/mapnik/mapnik_style.xml}
[ -f "$STYLE" ] || { echo "palette_quality.sh: $STYLE not found" >&2; exit 2; }
RESULTS=${RESULTS:-$(mktemp /tmp/palette_quality.XXXXXX.jsonl)}
CPU=${CPU-0}
LABEL=${LABEL:-$(basename "$STYLE" .xml) z${ZOOM:-0-5}}
(cd "$ROOT" && cargo build --release -q -p tessera-benches --bin render_bench --bin palette_quality)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
TILES=$(mktemp -d /tmp/palette_quality.tiles.XXXXXX)
trap 'rm -rf "$TILES"' EXIT
select=(--style "$STYLE" --zoom "${ZOOM:-0-5}")
[ -n "${BBOX:-}" ] && select+=(--bbox "$BBOX")
[ -n "${BUFFER:-}" ] && select+=(--buffer "$BUFFER")
pin=()
[ -n "$CPU" ] && pin=(taskset -c "$CPU")
echo "=== $(date -u '+%Y-%m-%d %H:%M:%S UTC')  load: $(cut -d' ' -f1-3 /proc/loadavg)  $(nproc) CPUs  $LABEL"
"$BIN/render_bench" "${select[@]}" --threads 2 --format png32 --out "$TILES" 2>/dev/null | sed 's/^/  /'
"${pin[@]}" "$BIN/palette_quality" --tiles "$TILES" --rounds "${ROUNDS:-5}" --label "$LABEL" \
  --json "$RESULTS"
echo "JSON lines: $RESULTS"
