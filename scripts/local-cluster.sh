#!/usr/bin/env bash
# A cluster on this machine, for trying it: Redis (the engine, on a port of
# its own, without persistence), one front serving the demo map on a Unix
# socket and over HTTP, and two render nodes of one thread each, all sharing
# one tile directory. Stays in the foreground; Ctrl-C stops everything
# (the nodes finish the jobs in hand). Logs and tiles in target/cluster/.
#
# Knobs (env): PORT=16379 (Redis), HTTP=127.0.0.1:8080, NODES=2.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-16379}
HTTP=${HTTP:-127.0.0.1:8080}
NODES=${NODES:-2}

command -v redis-server >/dev/null || bash scripts/install-deps.sh
echo "== building (release)"
cargo build --release --quiet -p tile-server -p tile-client

out="$PWD/target/cluster"
mkdir -p "$out"
socket="$out/front.sock"
queue="redis://127.0.0.1:$PORT"
pids=()
stop() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "stopped; logs in $out"
}
trap stop EXIT
trap 'exit 0' INT TERM

redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
    >"$out/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
done
ready() { # log
    for _ in $(seq 600); do
        grep -q "tile-server: ready" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$1"; exit 1
}
target/release/tile-server --role front --queue "$queue" --tile-dir "$out/tiles" \
    --listen "unix:$socket" --http-listen "$HTTP" >"$out/front.log" 2>&1 &
pids+=($!)
ready "$out/front.log"
for k in $(seq "$NODES"); do
    target/release/tile-server --role render --queue "$queue" --tile-dir "$out/tiles" \
        --threads 1 >"$out/node$k.log" 2>&1 &
    pids+=($!)
    ready "$out/node$k.log"
done
cat <<EOF
== a cluster of the engine ($queue), 1 front and $NODES render nodes
   map viewer:  http://$HTTP/
   seed:        target/release/tile-client --server unix:$socket seed --bbox -180,-85,180,85 --zoom 0-6
   engine:      redis-cli -p $PORT keys 'tessera:*'
   logs:        $out/{redis,front,node1..$NODES}.log
Ctrl-C stops everything.
EOF
wait
