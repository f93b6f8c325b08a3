#!/usr/bin/env bash
# The main job on the bundled demo map: start tile-server, render two
# screens through tile-client (the world at zoom 2, central Helsinki at
# zoom 15), show the server's counters, stop the server gracefully, and say
# where the tiles are.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
echo "== building (release)"
cargo build --release --quiet -p tile-server -p tile-client

out="$PWD/target/demo"
mkdir -p "$out"
socket="$out/tessera.sock"
target/release/tile-server --tile-dir "$out/tiles" --listen "unix:$socket" >"$out/server.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
# Wait (at most 60 s) for the server to bind its socket.
for _ in $(seq 600); do
    [ -S "$socket" ] && break
    kill -0 $server 2>/dev/null || { cat "$out/server.log"; exit 1; }
    sleep 0.1
done
client() { target/release/tile-client --server "unix:$socket" "$@"; }

echo "== the world at zoom 2 (16 tiles)"
client viewport --bbox -180,-85,180,85 --zoom 2 --ring 0
echo
echo "== central Helsinki at zoom 15: the screen first, then the ring around it"
client viewport --bbox 24.935,60.163,24.955,60.172 --zoom 15 --ring 1
echo
echo "== server counters"
client stats | grep -E '^(tiles_rendered|metatiles_rendered|tiles_from_store|render_ms_p50|render_ms_p99) '
kill -TERM $server
wait $server || true
trap - EXIT
echo
echo "Tiles are in $out/tiles/demo/{z}/{x}/{y}.png; the server's log is $out/server.log."
