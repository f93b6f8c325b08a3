#!/usr/bin/env bash
# tessera's IPC benchmark peer (echo-demo bench server/client) in the same
# run as the reference peers of ../shared/bench/ipc (C, Python socket,
# multiprocessing.connection, asyncio), at the same CPU placement.
#
# Usage (from anywhere inside the checkout; shared/ must sit beside it):
#   RESULTS=benches/results/ipc_vs_peers-DATE.jsonl benches/scripts/ipc_vs_peers.sh [--allow-dirty]
#   PINS="same split" benches/scripts/ipc_vs_peers.sh
#   QUICK=1 benches/scripts/ipc_vs_peers.sh    # smoke test, tiny counts
# Every variable of run_all.sh (RTT_N, PIPE_N, PEERS, SKIP_SPAWN, ...) passes
# through. The table goes to stdout. Every JSON line the harness prints is
# appended to RESULTS (default: a temp file, printed at the end) as it
# arrives, with "runmeta" (commit, dirty flag, machine, load average at that
# moment; runmeta.py); the harness's own notes (versions, load) are copied
# beside it as <RESULTS without .jsonl>.harness-meta.txt. A tree with
# uncommitted changes is refused unless --allow-dirty or ALLOW_DIRTY=1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
. "$here/runmeta.sh"
runmeta_init "$@"                 # exits on a dirty tree unless allowed
harness="$root/../shared/bench/ipc/run_all.sh"
if [ ! -x "$harness" ]; then
  echo "ipc_vs_peers.sh: $harness not found (shared/ must sit beside the checkout)" >&2
  exit 2
fi
RESULTS=${RESULTS:-$(mktemp /tmp/ipc_vs_peers.XXXXXX.jsonl)}
case $RESULTS in /*) ;; *) RESULTS=$root/$RESULTS ;; esac
harness_results=$(mktemp -d /tmp/ipc_vs_peers.XXXXXX)
trap 'rm -rf "$harness_results"' EXIT
cargo build --release -p echo-demo
export EXT_PEER_NAME="${EXT_PEER_NAME:-tessera}"
export EXT_SERVER_CMD="target/release/echo-demo bench server"
export EXT_CLIENT_CMD="target/release/echo-demo bench client"
export PINS="${PINS:-same}"
export SKIP_SPAWN="${SKIP_SPAWN:-1}"
export RESULTS_DIR=$harness_results
echo "# $(date -Is) on $(uname -srm), $(nproc) CPUs; PINS=$PINS" >&2
"$harness" | python3 "$RUNMETA_PY" tee "$RESULTS"
for meta in "$harness_results"/*.meta.txt; do
  [ -e "$meta" ] && cp "$meta" "${RESULTS%.jsonl}.harness-meta.txt"
done
echo "(raw results: $RESULTS)"
