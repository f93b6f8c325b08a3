#!/usr/bin/env bash
# tessera's cluster (issue #14) against tessera on one machine, side by side
# in one run, on this 2-core machine:
#   throughput  seed world z0-6 (5,461 tiles, 88 metatiles; tile-client seed
#               --force, an empty tile dir each run) through a front with 1
#               render node of 1 thread, then 2 nodes of 1 thread each (each
#               node pinned to its own CPU), and through one tile-server with
#               --threads 1 and 2 (the single-machine reference), alternating,
#               ROUNDS rounds. The engine's counters (commands, bytes, CPU)
#               are read before and after every cluster run: its cost per
#               metatile job.
#   ceiling     the engine's ceiling: engine_ceiling runs whole job lifecycles
#               (publish, claim, complete, the front's stream read) through
#               render-service's own engine client and Lua scripts, 1, 4 and
#               8 at once, 5 s each, against a fresh Redis; jobs/s, and the
#               share of a core Redis used (jobs/s ÷ share = the ceiling).
#   priority    tile-client pan scenarios A-D (as service_vs_renderd.sh) through
#               a front with 2 remote render nodes of 1 thread, and through one
#               tile-server with --threads 2, alternating, PAN_RUNS runs.
# Results: JSON lines in $RESULTS (default benches/results/cluster_scale-<date>.jsonl);
# cluster_scale_report.py prints the tables of docs/performance.md from them.
#
# Needs: redis-server (scripts/install-deps.sh), taskset, the data in
# ../shared/data/mapnik-3857 and ../shared/bench/mapnik/mapnik_style.xml.
# Knobs (env): PARTS="throughput priority", ROUNDS=3, PAN_RUNS=5, ZOOM=0-6,
#   CARGO_TARGET_DIR (where the release binaries are built).
# Every JSON line carries "runmeta" (runmeta.py); a dirty tree is refused
# unless --allow-dirty or ALLOW_DIRTY=1.
# Usage: bash benches/scripts/cluster_scale.sh [--allow-dirty]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/runmeta.sh"
runmeta_init "$@"
SHARED=${SHARED:-$(cd "$ROOT/../shared" && pwd)}
STYLE=$SHARED/bench/mapnik/mapnik_style.xml
PARTS=${PARTS:-throughput ceiling priority}
ROUNDS=${ROUNDS:-3}
PAN_RUNS=${PAN_RUNS:-5}
ZOOM=${ZOOM:-0-6}
WORLD_BBOX=-180,-85.0511,180,85.0511
PAN_BBOX=139.55,35.55,139.95,35.8
RESULTS=${RESULTS:-$ROOT/benches/results/cluster_scale-$(date -u +%Y-%m-%d).jsonl}
for tool in redis-server redis-cli taskset timeout; do
  command -v $tool >/dev/null || { echo "needs $tool (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -f "$STYLE" ] || { echo "needs $STYLE (../shared)" >&2; exit 1; }

RUN=$(mktemp -d /tmp/cluster-scale.XXXXXX)
PIDS=()
stop_all() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
trap 'stop_all; rm -rf "$RUN"' EXIT

echo "building tile-server, tile-client, engine_ceiling (release)..."
(cd "$ROOT" && cargo build --release -q -p tile-server -p tile-client -p tessera-benches --bin engine_ceiling)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
SOCK=$RUN/front.sock
CLIENT=("$BIN/tile-client" --server "unix:$SOCK")
PORT=16390
QUEUE=redis://127.0.0.1:$PORT

now() { date +%s.%N; }
json() { runmeta_json "$RESULTS" "$1"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
rcli() { redis-cli -p "$PORT" "$@"; }

RUN_N=0
wait_ready() { # log pid
  for _ in $(seq 200); do
    grep -q "tile-server: ready" "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  echo "a tile-server did not start; its log:" >&2; tail -20 "$1" >&2; exit 1
}
single_start() { # threads log; a fresh tile dir every run (see service_vs_renderd.sh)
  RUN_N=$((RUN_N + 1)); TILES=$RUN/tiles-$RUN_N
  rm -f "$SOCK"
  "$BIN/tile-server" --style "$STYLE" --threads "$1" --tile-dir "$TILES" --listen "unix:$SOCK" \
    > "$RUN/$2" 2>&1 &
  PIDS+=($!); wait_ready "$RUN/$2" $!
}
REDIS_PID=""
cluster_start() { # nodes log-prefix [extra tile-server args]; the engine (no persistence), a front,
                  # N nodes of 1 thread (pinned one per CPU unless UNPINNED=1)
  local n=$1 prefix=$2; shift 2
  RUN_N=$((RUN_N + 1)); TILES=$RUN/tiles-$RUN_N
  rm -f "$SOCK"
  redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning \
    > "$RUN/$prefix-redis.log" 2>&1 &
  REDIS_PID=$!; PIDS+=($!)
  for _ in $(seq 100); do [ "$(rcli ping 2>/dev/null)" = PONG ] && break; sleep 0.05; done
  "$BIN/tile-server" --style "${CLUSTER_STYLE:-$STYLE}" --tile-dir "$TILES" --listen "unix:$SOCK" \
    --role front --queue "$QUEUE" "$@" > "$RUN/$prefix-front.log" 2>&1 &
  PIDS+=($!); wait_ready "$RUN/$prefix-front.log" $!
  local k pin
  for k in $(seq "$n"); do
    pin=(taskset -c $(((k - 1) % $(nproc))))
    [ -n "${UNPINNED:-}" ] && pin=()
    "${pin[@]}" "$BIN/tile-server" --style "${CLUSTER_STYLE:-$STYLE}" --threads 1 --tile-dir "$TILES" \
      --role render --queue "$QUEUE" "$@" > "$RUN/$prefix-node$k.log" 2>&1 &
    PIDS+=($!); wait_ready "$RUN/$prefix-node$k.log" $!
  done
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
warm() { # every renderer loads its map before anything is timed
  timeout 60 "${CLIENT[@]}" render 0/0/0 1/0/0 2/0/0 3/0/0 4/0/0 --force >/dev/null
}
engine_counters() { # the engine's counters now, one JSON object
  python3 - "$PORT" <<'EOF'
import json, subprocess, sys
port = sys.argv[1]
def info(section):
    out = subprocess.run(["redis-cli", "-p", port, "INFO", section], capture_output=True, text=True).stdout
    return dict(l.split(":", 1) for l in out.splitlines() if ":" in l and not l.startswith("#"))
calls = {}
for k, v in info("commandstats").items():
    fields = dict(p.split("=") for p in v.split(","))
    calls[k.removeprefix("cmdstat_")] = int(fields["calls"])
stats, cpu = info("stats"), info("cpu")
completed = subprocess.run(["redis-cli", "-p", port, "GET", "tessera:tessera:stat:completed"],
                           capture_output=True, text=True).stdout.strip()
print(json.dumps({
    "calls": calls,
    "net_in": int(stats["total_net_input_bytes"]), "net_out": int(stats["total_net_output_bytes"]),
    "cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
    "jobs": int(completed or 0),
}))
EOF
}

echo "=== $(date -u '+%Y-%m-%d %H:%M:%S UTC')  load: $(load)  $(nproc) CPUs  parts: $PARTS  run dir: $RUN  results: $RESULTS"
json "{\"kind\":\"meta\",\"date\":\"$(date -u '+%Y-%m-%d %H:%M:%S UTC')\",\"load_start\":\"$(load)\",\"cpus\":$(nproc),\"parts\":\"$PARTS\",\"zoom\":\"$ZOOM\",\"redis\":\"$(redis-server --version | tr -d '"')\"}"

seed() { # setup round; seeds the world, prints wall seconds
  local t0 t1 out
  warm
  t0=$(now)
  out=$(timeout 600 "${CLIENT[@]}" seed --bbox "$WORLD_BBOX" --zoom "$ZOOM" --force)
  t1=$(now)
  echo "  round $2 $1: $(awk "BEGIN { printf \"%.3f\", $t1 - $t0 }") s: $out" >&2
  awk "BEGIN { printf \"%.6f\", $t1 - $t0 }"
}

if [[ " $PARTS " == *" throughput "* ]]; then
  for round in $(seq "$ROUNDS"); do
    echo "--- throughput round $round, load $(load)"
    for setup in cluster-1 cluster-2 single-1 single-2; do
      n=${setup#*-}
      case $setup in
        cluster-*)
          cluster_start "$n" "$setup-r$round"
          warm
          before=$(engine_counters)
          wall=$(seed "$setup" "$round")
          after=$(engine_counters)
          json "{\"kind\":\"throughput\",\"setup\":\"cluster\",\"nodes\":$n,\"threads\":$n,\"round\":$round,\"wall_s\":$wall,\"engine_before\":$before,\"engine_after\":$after,\"load\":\"$(load)\"}"
          ;;
        single-*)
          single_start "$n" "$setup-r$round.log"
          wall=$(seed "$setup" "$round")
          json "{\"kind\":\"throughput\",\"setup\":\"single\",\"threads\":$n,\"round\":$round,\"wall_s\":$wall,\"load\":\"$(load)\"}"
          ;;
      esac
      stop_all
    done
  done
fi

if [[ " $PARTS " == *" ceiling "* ]]; then
  for round in $(seq "$ROUNDS"); do
    echo "--- ceiling round $round, load $(load)"
    redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning \
      > "$RUN/ceiling-redis.log" 2>&1 &
    REDIS_PID=$!; PIDS+=($!)
    for _ in $(seq 100); do [ "$(rcli ping 2>/dev/null)" = PONG ] && break; sleep 0.05; done
    for clients in 1 4 8; do
      out=$("$BIN/engine_ceiling" --queue "$QUEUE" --redis-pid "$REDIS_PID" --clients "$clients" \
        --seconds 5 ${ALLOW_DIRTY:+--allow-dirty})
      echo "  round $round, $clients clients: $out" | cut -c1-220
      echo "$out" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d["round"]='"$round"'; print(json.dumps(d))' >> "$RESULTS"
    done
    stop_all
  done
fi

pan() { # setup run scenario
  local args=(--bbox "$PAN_BBOX" --zoom 12 --json --force) out
  case $3 in
    A)        args+=(--steps 0 --interval 0) ;;
    B-cancel) args+=(--steps 9 --interval 0.2 --left-behind cancel) ;;
    C-demote) args+=(--steps 9 --interval 0.2 --left-behind demote --backlog-zoom 9) ;;
    D-cancel) args+=(--steps 9 --interval 0.02 --left-behind cancel) ;;
  esac
  case $1 in
    cluster) cluster_start 2 "pan-$3-r$2" ;;
    single)  single_start 2 "pan-single-$3-r$2.log" ;;
  esac
  warm
  if out=$(timeout 60 "${CLIENT[@]}" pan "${args[@]}"); then
    echo "  run $2 $1 $3: $out"
    json "{\"kind\":\"pan\",\"setup\":\"$1\",\"scenario\":\"$3\",\"run\":$2,\"result\":$out,\"load\":\"$(load)\"}"
  else
    echo "  run $2 $1 $3: no answer within 60 s"
    json "{\"kind\":\"pan\",\"setup\":\"$1\",\"scenario\":\"$3\",\"run\":$2,\"timeout_s\":60,\"load\":\"$(load)\"}"
  fi
  stop_all
}

if [[ " $PARTS " == *" priority "* ]]; then
  for run in $(seq "$PAN_RUNS"); do
    echo "--- priority run $run, load $(load)"
    for scen in A B-cancel C-demote D-cancel; do
      pan cluster "$run" "$scen"
      pan single "$run" "$scen"
    done
  done
fi
echo "results: $RESULTS"
