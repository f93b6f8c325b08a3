#!/usr/bin/env bash
# tessera's IPC benchmark peer (echo-demo bench server/client) in the same
# run as the reference peers of ../shared/bench/ipc (C, Python socket,
# multiprocessing.connection, asyncio), at the same CPU placement.
#
# Usage (from anywhere inside the checkout; shared/ must sit beside it):
#   benches/scripts/ipc_vs_peers.sh            # PINS=same by default
#   PINS="same split" benches/scripts/ipc_vs_peers.sh
#   QUICK=1 benches/scripts/ipc_vs_peers.sh    # smoke test, tiny counts
# Every variable of run_all.sh (RTT_N, PIPE_N, PEERS, SKIP_SPAWN, ...) passes
# through. The table goes to stdout; the JSON lines to
# ../shared/bench/ipc/results/<run>.jsonl (results/quick/ with QUICK=1).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
harness="$root/../shared/bench/ipc/run_all.sh"
if [ ! -x "$harness" ]; then
  echo "ipc_vs_peers.sh: $harness not found (shared/ must sit beside the checkout)" >&2
  exit 2
fi
cargo build --release -p echo-demo
export EXT_PEER_NAME="${EXT_PEER_NAME:-tessera}"
export EXT_SERVER_CMD="target/release/echo-demo bench server"
export EXT_CLIENT_CMD="target/release/echo-demo bench client"
export PINS="${PINS:-same}"
export SKIP_SPAWN="${SKIP_SPAWN:-1}"
echo "# $(date -Is) on $(uname -srm), $(nproc) CPUs; PINS=$PINS" >&2
exec "$harness"
