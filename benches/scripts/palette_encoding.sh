#!/usr/bin/env bash
# png8 (palette) encoding: bytes/tile and encode time for each of
# render-core's Compression settings (zlib level 4 = Fast, the default; 6 =
# Balanced; 9 = High), on the same tiles: the world set z0-5 of the Mapnik
# baseline's style (../shared/bench/mapnik/mapnik_style.xml), the tiles that
# are not a single colour, one thread, ROUNDS rounds each (median).
# benches/src/bin/palette_encoding.rs does the work.
#
# Every JSON line carries "runmeta" (commit, dirty flag, machine, load
# average; runmeta.py). A tree with uncommitted changes is refused unless
# --allow-dirty or ALLOW_DIRTY=1.
# Knobs (env): ROUNDS=5, ZOOM=0-5, RESULTS=<file> (default: a temp file),
#   CPU=0 (pin to this CPU; CPU= to not pin).
# Usage: bash benches/scripts/palette_encoding.sh [--allow-dirty]   (~30 s after the build)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/runmeta.sh"
runmeta_init "$@"                 # exits on a dirty tree unless allowed
SHARED=${SHARED:-$(cd "$ROOT/../shared" && pwd)}
STYLE=$SHARED/bench/mapnik/mapnik_style.xml
[ -f "$STYLE" ] || { echo "palette_encoding.sh: $STYLE not found (../shared must sit beside the checkout)" >&2; exit 2; }
RESULTS=${RESULTS:-$(mktemp /tmp/palette_encoding.XXXXXX.jsonl)}
CPU=${CPU-0}
(cd "$ROOT" && cargo build --release -q -p tessera-benches --bin palette_encoding)
pin=()
[ -n "$CPU" ] && pin=(taskset -c "$CPU")
echo "=== $(date -u '+%Y-%m-%d %H:%M:%S UTC')  load: $(cut -d' ' -f1-3 /proc/loadavg)  $(nproc) CPUs"
"${pin[@]}" "$ROOT/target/release/palette_encoding" --style "$STYLE" --zoom "${ZOOM:-0-5}" \
  --rounds "${ROUNDS:-5}" --json "$RESULTS"
echo "(raw results: $RESULTS)"
