#!/usr/bin/env bash
# tessera's server (tile-server + tile-client) against renderd, side by side in
# one run: the four benchmarks of issue 5.
#   throughput  seed the baseline's three tile sets through tile-server
#               (tile-client seed --force, empty tile dir each run) and through
#               renderd (render_list), alternating, at each thread count.
#   priority    ../shared/bench/mapnik/renderd_pan.py scenarios A-D against
#               renderd (naive client, a fresh renderd per scenario) and the same
#               scenarios against tessera (tile-client pan, a fresh tile-server
#               per scenario), 2 threads, alternating run by run; plus tessera
#               with --fifo (first come first served, the original program).
#   overhead    request -> TileDone for a stored tile, and Ping/Pong, over a
#               Unix socket and TCP (service_load overhead), server and client
#               pinned to CPU 0.
#   memory      tile-server's VmRSS with >= 1,000,000 bulk tiles queued
#               (--threads 1), then a bounded soak of request churn.
# Results: JSON lines in $RESULTS; service_vs_renderd_report.py prints the
# tables of docs/performance.md from them.
#
# Needs: apt-get install -y renderd mapnik-utils python3-mapnik (Debian 12), the
# data in ../shared/data/mapnik-3857, cargo.
# Knobs (env): PARTS="throughput priority overhead memory", THREADS="1 2",
#   ROUNDS=3, JAPAN_REPEAT=10, PAN_RUNS=5, OVERHEAD_N=20000, QUEUE_TILES=1000000,
#   SOAK_SECONDS=120, RESULTS=<file> (default: a temp file, printed at the end),
#   RUN_PARENT=/dev/shm (where the private run dir goes, default /tmp: both
#   servers' tiles are written there; tessera writes one file per tile, renderd
#   one .meta file per 64 tiles, so the file system matters, see the docs),
#   TS_LAYOUT=mod_tile (tessera's store layout, --tile-layout; mod_tile writes
#   renderd's .meta files as renderd does; default: tessera's default layout),
#   CARGO_TARGET_DIR (where the release binaries are built, as cargo's).
# Every JSON line carries "runmeta" (commit, dirty flag, machine, load average at
# that moment; runmeta.py). A tree with uncommitted changes is refused unless
# --allow-dirty or ALLOW_DIRTY=1 (then recorded as dirty, with the paths).
# Usage: bash benches/scripts/service_vs_renderd.sh [--allow-dirty]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/runmeta.sh"
runmeta_init "$@"                 # exits on a dirty tree unless allowed
SHARED=${SHARED:-$(cd "$ROOT/../shared" && pwd)}
B=$SHARED/bench/mapnik            # renderd_common.sh uses $B
STYLE=$B/mapnik_style.xml
PARTS=${PARTS:-throughput priority overhead memory}
THREADS=${THREADS:-1 2}
ROUNDS=${ROUNDS:-3}
JAPAN_REPEAT=${JAPAN_REPEAT:-10}
PAN_RUNS=${PAN_RUNS:-5}
OVERHEAD_N=${OVERHEAD_N:-20000}
QUEUE_TILES=${QUEUE_TILES:-1000000}
SOAK_SECONDS=${SOAK_SECONDS:-120}
PY=/usr/bin/python3               # Debian's python, which sees python3-mapnik
WORLD_BBOX=-180,-85.0511,180,85.0511
JAPAN_BBOX=135.01,31.96,146.24,40.97            # exactly z8 x 224-231, y 96-103
HELSINKI_BBOX=24.935176,60.164155,24.953415,60.179113
PAN_BBOX=139.55,35.55,139.95,35.8

for tool in renderd render_list taskset timeout; do
  command -v $tool >/dev/null || { echo "needs $tool: apt-get install -y renderd mapnik-utils python3-mapnik" >&2; exit 1; }
done

# renderd's private temp dir (socket, tiles, config, logs); removed at exit by
# its trap, which we extend to stop our own tile-server too.
. "$B/renderd_common.sh"
if [ -n "${RUN_PARENT:-}" ]; then   # e.g. /dev/shm: tiles, sockets and logs of both servers on tmpfs
  rmdir "$RD_DIR"
  RD_DIR=$(mktemp -d "$RUN_PARENT/service-vs-renderd.XXXXXX")
  RD_SOCK=$RD_DIR/renderd.sock
  RD_TILES=$RD_DIR/tiles
fi
TS_PID=""
ts_stop() {
  [ -n "$TS_PID" ] || return 0
  kill -TERM "$TS_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$TS_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$TS_PID" 2>/dev/null || true
  wait "$TS_PID" 2>/dev/null || true
  TS_PID=""
}
trap 'ts_stop; rd_cleanup' EXIT
RESULTS=${RESULTS:-$RD_DIR/results.jsonl}
touch "$RESULTS"

echo "building tile-server, tile-client, service_load, render_bench (release)..."
(cd "$ROOT" && cargo build --release -q -p tile-server -p tile-client -p tessera-benches)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
TS_LAYOUT=${TS_LAYOUT:-}
TS_SOCK=$RD_DIR/tessera.sock
TS_TILES=$RD_DIR/tessera-tiles
CLIENT=("$BIN/tile-client" --server "unix:$TS_SOCK")

now() { date +%s.%N; }
json() { runmeta_json "$RESULTS" "$1"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

TS_RUN=0
ts_start() { # threads logname [extra tile-server args...]; fresh, empty tile dir
  local n=$1 log=$RD_DIR/$2; shift 2
  # A new directory for every run, removed only at exit: on ext4, creating
  # files where many were just deleted is several times slower (the
  # allocator checks recently freed inodes), which would charge tessera's
  # one-file-per-tile store for the previous run's clean-up.
  TS_RUN=$((TS_RUN + 1))
  TS_TILES=$RD_DIR/tessera-tiles-$TS_RUN
  rm -f "$TS_SOCK"
  ${TS_PREFIX:-} "$BIN/tile-server" --style "$STYLE" --threads "$n" --tile-dir "$TS_TILES" \
    --listen "unix:$TS_SOCK" ${TS_LAYOUT:+--tile-layout "$TS_LAYOUT"} "$@" > "$log" 2>&1 &
  TS_PID=$!
  for _ in $(seq 100); do            # up to ~10 s
    [ -S "$TS_SOCK" ] && return 0
    kill -0 "$TS_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "tile-server did not start; last lines of its log:" >&2
  tail -20 "$log" >&2
  ts_stop
  return 1
}

ts_warm() { # both workers load the map before anything is timed (as renderd_pan.py's warm-up)
  timeout 30 "${CLIENT[@]}" render 0/0/0 1/0/0 2/0/0 3/0/0 --force >/dev/null
}

FS=$(df -T "$RD_DIR" | awk 'NR == 2 { print $2 }')
echo "=== $(date -u '+%Y-%m-%d %H:%M:%S UTC')  load: $(load)  $(nproc) CPUs  parts: $PARTS  run dir: $RD_DIR ($FS)  tessera layout: ${TS_LAYOUT:-default}"
json "{\"kind\":\"meta\",\"date\":\"$(date -u '+%Y-%m-%d %H:%M:%S UTC')\",\"load_start\":\"$(load)\",\"cpus\":$(nproc),\"parts\":\"$PARTS\",\"fs\":\"$FS\",\"ts_layout\":\"${TS_LAYOUT:-default}\"}"

# ---------------------------------------------------------------- throughput
tessera_set() { # set threads round
  local set=$1 n=$2 round=$3 t0 t1 repeat=1 wanted out
  ts_start "$n" "tessera-$set-$n-r$round.log"
  t0=$(now)
  case $set in
    world)    out=$(timeout 300 "${CLIENT[@]}" seed --bbox "$WORLD_BBOX" --zoom 0-5 --force); wanted=1365 ;;
    japan)    for _ in $(seq "$JAPAN_REPEAT"); do
                out=$(timeout 300 "${CLIENT[@]}" seed --bbox "$JAPAN_BBOX" --zoom 8 --force)
              done
              wanted=64; repeat=$JAPAN_REPEAT ;;
    helsinki) out=$(timeout 300 "${CLIENT[@]}" seed --bbox "$HELSINKI_BBOX" --zoom 12-18 --force); wanted=458 ;;
  esac
  t1=$(now)
  ts_stop
  local wall; wall=$(awk "BEGIN { printf \"%.6f\", $t1 - $t0 }")
  echo "  round $round tessera $set: $n thread(s), wall $wall s (x$repeat): $out"
  json "{\"kind\":\"throughput\",\"tool\":\"tessera\",\"layout\":\"${TS_LAYOUT:-default}\",\"label\":\"$set\",\"threads\":$n,\"round\":$round,\"repeat\":$repeat,\"tiles_wanted\":$((wanted * repeat)),\"wall_s\":$wall,\"load\":\"$(load)\"}"
}

renderd_set() { # set threads round
  local set=$1 n=$2 round=$3 t0 t1 repeat=1 wanted
  rd_start "$n" "renderd-$set-$n-r$round.log" "$HEXTRA"
  t0=$(now)
  case $set in
    world)    timeout 300 render_list -a -f -z 0 -Z 5 -n "$n" -s "$RD_SOCK" -m default -t "$RD_TILES" >/dev/null 2>&1; wanted=1365 ;;
    japan)    for _ in $(seq "$JAPAN_REPEAT"); do
                timeout 300 render_list -a -f -z 8 -Z 8 -x 224 -X 231 -y 96 -Y 103 -n "$n" -s "$RD_SOCK" \
                  -m default -t "$RD_TILES" >/dev/null 2>&1
              done
              wanted=64; repeat=$JAPAN_REPEAT ;;
    helsinki) timeout 300 render_list -n "$n" -s "$RD_SOCK" -m helsinki -t "$RD_TILES" < "$HLIST" >/dev/null 2>&1; wanted=458 ;;
  esac
  t1=$(now)
  rd_stop
  local wall; wall=$(awk "BEGIN { printf \"%.6f\", $t1 - $t0 }")
  echo "  round $round renderd $set: $n thread(s), wall $wall s (x$repeat)"
  json "{\"kind\":\"throughput\",\"tool\":\"renderd\",\"label\":\"$set\",\"threads\":$n,\"round\":$round,\"repeat\":$repeat,\"tiles_wanted\":$((wanted * repeat)),\"wall_s\":$wall,\"load\":\"$(load)\"}"
}

if [[ " $PARTS " == *" throughput "* ]]; then
  HLIST=$RD_DIR/helsinki.metatiles
  "$BIN/render_bench" --style "$STYLE" --zoom 12-18 --bbox $HELSINKI_BBOX --print-metatiles > "$HLIST"
  HEXTRA=$(printf '[helsinki]\nURI=/helsinki/\nTILEDIR=%s\nXML=%s\nHOST=localhost\nTILESIZE=256\nMAXZOOM=20' "$RD_TILES" "$STYLE")
  for round in $(seq "$ROUNDS"); do
    for n in $THREADS; do
      echo "--- throughput round $round, $n thread(s), load $(load)"
      for set in world japan helsinki; do
        tessera_set "$set" "$n" "$round"
        renderd_set "$set" "$n" "$round"
      done
    done
  done
fi

# ------------------------------------------------------------------ priority
tessera_pan() { # run scenario order [tile-server args...]; order = priority|fifo
  local run=$1 scen=$2 order=$3 out limit=60; shift 3
  local args=(--bbox "$PAN_BBOX" --zoom 12 --json --force)
  case $scen in
    A)         args+=(--steps 0 --interval 0) ;;
    B-cancel)  args+=(--steps 9 --interval 0.2 --left-behind cancel) ;;
    B-demote)  args+=(--steps 9 --interval 0.2 --left-behind demote) ;;
    C-demote)  args+=(--steps 9 --interval 0.2 --left-behind demote --backlog-zoom 9) ;;
    D-cancel)  args+=(--steps 9 --interval 0.02 --left-behind cancel) ;;
    D-demote)  args+=(--steps 9 --interval 0.02 --left-behind demote) ;;
  esac
  [ "$order" = fifo ] && limit=${FIFO_C_LIMIT:-30}
  ts_start 2 "tessera-pan-$scen-$order-r$run.log" "$@"
  ts_warm
  if out=$(timeout "$limit" "${CLIENT[@]}" pan "${args[@]}"); then
    echo "  run $run tessera $order $scen: $out"
    json "{\"kind\":\"pan\",\"tool\":\"tessera\",\"order\":\"$order\",\"scenario\":\"$scen\",\"run\":$run,\"result\":$out,\"load\":\"$(load)\"}"
  else
    echo "  run $run tessera $order $scen: no answer within $limit s (exit $?)"
    json "{\"kind\":\"pan\",\"tool\":\"tessera\",\"order\":\"$order\",\"scenario\":\"$scen\",\"run\":$run,\"timeout_s\":$limit,\"load\":\"$(load)\"}"
  fi
  ts_stop
}

if [[ " $PARTS " == *" priority "* ]]; then
  for run in $(seq "$PAN_RUNS"); do
    echo "--- priority run $run, load $(load)"
    # renderd: a fresh renderd (2 threads) per scenario, the naive client (every
    # tile of every screen is sent, as tile-client pan does).
    $PY "$B/renderd_pan.py" --runs 1 --scenarios A,B,C,D --modes naive --no-stats --threads 2 \
      --json "$RD_DIR/pan-renderd-$run.jsonl" > "$RD_DIR/pan-renderd-$run.txt"
    while read -r line; do
      json "{\"kind\":\"pan\",\"tool\":\"renderd\",\"run\":$run,\"result\":$line,\"load\":\"$(load)\"}"
      echo "  run $run renderd: $(cut -c1-160 <<<"$line")"
    done < "$RD_DIR/pan-renderd-$run.jsonl"
    for scen in A B-cancel B-demote C-demote D-cancel D-demote; do
      tessera_pan "$run" "$scen" priority
    done
    for scen in A B-demote D-demote; do
      tessera_pan "$run" "$scen" fifo --fifo
    done
    # FIFO behind the backlog waits for the whole z9 world: once, bounded.
    if [ "$run" = 1 ]; then tessera_pan "$run" C-demote fifo --fifo; fi
  done
fi

# ------------------------------------------------------------------ overhead
if [[ " $PARTS " == *" overhead "* ]]; then
  echo "--- overhead, load $(load)"
  TS_PREFIX="taskset -c 0" ts_start 1 tessera-overhead.log --listen tcp:127.0.0.1:0
  # the TCP port the server chose
  PORT=""
  for _ in $(seq 50); do
    PORT=$(sed -nE 's/.*listening on tcp:127\.0\.0\.1:([0-9]+).*/\1/p' "$RD_DIR/tessera-overhead.log" | head -1)
    [ -n "$PORT" ] && break; sleep 0.1
  done
  for transport in "unix:$TS_SOCK" "tcp:127.0.0.1:$PORT"; do
    out=$(timeout 300 taskset -c 0 "$BIN/service_load" --server "$transport" overhead --n "$OVERHEAD_N" \
      --label "${transport%%:*}")
    echo "  $out"
    json "$out"
  done
  ts_stop
fi

# -------------------------------------------------------------------- memory
if [[ " $PARTS " == *" memory "* ]]; then
  echo "--- memory: $QUEUE_TILES tiles queued, load $(load)"
  CONF=$RD_DIR/memory.toml
  printf '[server]\nmax_queued_tiles = 4000000\nmax_queued_tiles_per_client = 4000000\nmax_tiles_per_request = 1000000\n' > "$CONF"
  ts_start 1 tessera-memory.log --config "$CONF"
  out=$(timeout 600 "$BIN/service_load" --server "unix:$TS_SOCK" queue --pid "$TS_PID" --tiles "$QUEUE_TILES" \
    --per-request 250000 --zoom 14 --max-seconds 300)
  echo "  $out"; json "$out"
  ts_stop
  echo "--- memory: soak for $SOAK_SECONDS s, load $(load)"
  ts_start 2 tessera-soak.log
  out=$(timeout $((SOAK_SECONDS + 120)) "$BIN/service_load" --server "unix:$TS_SOCK" soak --pid "$TS_PID" \
    --seconds "$SOAK_SECONDS" --max-iterations 20000 --sample-seconds 5)
  echo "  $out"; json "$out"
  ts_stop
fi

json "{\"kind\":\"meta\",\"date_end\":\"$(date -u '+%Y-%m-%d %H:%M:%S UTC')\",\"load_end\":\"$(load)\"}"
echo
python3 "$HERE/service_vs_renderd_report.py" "$RESULTS"
echo "(raw results: $RESULTS — removed at exit unless RESULTS was set)"
