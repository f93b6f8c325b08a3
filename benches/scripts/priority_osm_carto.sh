#!/usr/bin/env bash
# Viewport priority on openstreetmap-carto 5.7 (issue #11): the priority part
# of service_vs_renderd.sh (renderd_pan.py scenarios A-D against renderd,
# tile-client pan against tile-server, tile-server --fifo for scale), on the
# real style, where a metatile takes seconds instead of milliseconds.
#
#   A  idle screen: one screen, nothing else queued (the same place as the
#      drag's LAST screen, so that last / idle compares the same tiles)
#   B  drag: 10 screens, each the next one east, 0.2 s apart
#   C  bulk backlog (the whole z9 world, as bulk work) then the drag of B
#   D  fast drag: the drag of B, 0.02 s apart
# Reported: seconds from the last move until the last screen is complete,
# against A (target: B and D <= 1.2x idle), renderd beside it.
#
# Database: openstreetmap-carto's Debian style.xml, unchanged, on PostGIS built
# offline by ../shared/bench/osm-carto/setup_and_render.sh (private PostgreSQL
# cluster in $WORK, Unix socket only; osm2pgsql import of the Helsinki
# extract). The extract is 1.0 x 1.7 km: one z17 metatile wide, less than one
# screen of the drag. So that every screen of the drag is real work (not empty
# land, which tessera answers from its single-colour cache in milliseconds),
# the imported rows are COPIED side by side east (and once west) of the extract,
# each copy shifted by the extract's width (ST_Translate of every row of
# planet_osm_point/line/polygon/roads and water_polygons; attributes as
# imported), COPIES times. The drag runs at z17 over metatile row y 37936 (the
# dense centre, Kluuvi), 7 metatiles in all, each full of city.
# Both servers see the cluster through PGHOST/PGPORT/PGUSER (the style's
# datasources say only dbname=gis).
#
# renderd: a fresh renderd (num_threads 2) per scenario, started by
# renderd_pan.py with a config naming the style (renderd_pan.py's template
# with XML= replaced), naive client (every tile of every screen asked, as
# tile-client pan --force does). tessera: a fresh tile-server --threads 2 per
# scenario, warmed as service_vs_renderd.sh does; B and D with --left-behind
# cancel and demote, C with demote. Runs alternate renderd / tessera / --fifo.
#
# Needs: renderd, python3-mapnik, openstreetmap-carto-common, osm2pgsql,
# postgresql-15(-postgis-3) (setup_and_render.sh installs them unless SKIP_APT=1),
# cargo. Run as root (PostgreSQL runs as user postgres).
# Knobs (env): PAN_RUNS=5, WORK=/tmp/prio-carto (cluster, style copy; kept for
#   the next run: the import is reused while $WORK/replicas matches COPIES),
#   COPIES=8, RUN_PARENT=/dev/shm (tiles, sockets, logs of both servers),
#   PAN_ZOOM=17, PAN_BBOX (the first screen), RESULTS=<file> (default: a temp
#   file, printed at the end), SCENARIOS="A B-cancel B-demote C-demote
#   D-cancel D-demote", FIFO="A B-demote D-demote", FIFO_C=1 (C with --fifo in
#   run 1, bounded by FIFO_C_LIMIT=120 s), LIMIT=300 (bound on one scenario),
#   CARGO_TARGET_DIR (where the release binaries are built; default target/),
#   RENDERD=0 (tessera only),
#   TRACE=1 (tile-server logs its scheduling at debug level; after each tessera
#   scenario priority_timeline.py adds a "timeline" line: the renders running
#   at the last move and when the last screen's metatiles started and ended).
# Every JSON line carries "runmeta" (runmeta.py); a dirty tree is refused
# unless --allow-dirty or ALLOW_DIRTY=1.
# Usage: bash benches/scripts/priority_osm_carto.sh [--allow-dirty]
# Report: python3 benches/scripts/priority_osm_carto_report.py RESULTS.jsonl
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/runmeta.sh"
runmeta_init "$@"
SHARED=${SHARED:-$(cd "$ROOT/../shared" && pwd)}
B=$SHARED/bench/mapnik             # renderd_pan.py, renderd.conf.in
OC=$SHARED/bench/osm-carto         # setup_and_render.sh
WORK=${WORK:-/tmp/prio-carto}
COPIES=${COPIES:-8}
PAN_RUNS=${PAN_RUNS:-5}
PAN_ZOOM=${PAN_ZOOM:-17}
# 4.5 x 3.5 z17 tiles (x 74615.28-74619.78, y 37936.25-37939.75), as the Tokyo
# screen of service_vs_renderd.sh is 4.5 x 3.5 z12 tiles
PAN_BBOX=${PAN_BBOX:-24.937,60.169183,24.94936,60.173965}
SCENARIOS=${SCENARIOS-A B-cancel B-demote C-demote D-cancel D-demote}
FIFO=${FIFO-A B-demote D-demote}
FIFO_C=${FIFO_C:-1}
FIFO_C_LIMIT=${FIFO_C_LIMIT:-120}
LIMIT=${LIMIT:-300}
RUN_PARENT=${RUN_PARENT:-/dev/shm}
TRACE=${TRACE:-0}
RENDERD=${RENDERD:-1}
[ "$TRACE" = 1 ] && TRACE_ENV="RUST_LOG=info,render_service::service=debug"
PY=/usr/bin/python3                # Debian's python, which sees python3-mapnik
PGBIN=/usr/lib/postgresql/15/bin
BBOX=24.935176,60.164155,24.953415,60.179113   # the extract (setup_and_render.sh's default)

for tool in renderd runuser timeout; do
  command -v $tool >/dev/null || { echo "needs $tool (apt-get install -y renderd)" >&2; exit 1; }
done

RUN_DIR=$(mktemp -d "$RUN_PARENT/priority-osm-carto.XXXXXX")
TS_PID=""
PGPID=""
pg() { runuser -u postgres -- "$PGBIN/$@"; }
ts_stop() {
  [ -n "$TS_PID" ] || return 0
  kill -TERM "$TS_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$TS_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$TS_PID" 2>/dev/null || true
  wait "$TS_PID" 2>/dev/null || true
  TS_PID=""
}
pg_stop() {
  [ -n "$PGPID" ] || return 0
  pg pg_ctl -D "$WORK/pgdata" -m fast -w stop >/dev/null 2>&1 || kill -INT "$PGPID" 2>/dev/null || true
  PGPID=""
}
trap 'ts_stop; pg_stop; rm -rf "$RUN_DIR"' EXIT
trap 'exit 130' INT TERM
RESULTS=${RESULTS:-$RUN_DIR/results.jsonl}
touch "$RESULTS"
now() { date +%s.%N; }
json() { runmeta_json "$RESULTS" "$1"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

echo "building tile-server, tile-client (release)..."
(cd "$ROOT" && cargo build --release -q -p tile-server -p tile-client)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

# ------------------------------------------------------------------ database
# The extract's width in EPSG:3857 metres: the shift between copies.
DX=$(python3 -c "import sys; w, s, e, n = map(float, sys.argv[1].split(',')); print('%.6f' % ((e - w) * 20037508.342789244 / 180))" "$BBOX")
if [ ! -f "$WORK/pgdata/PG_VERSION" ] || [ "$(cat "$WORK/replicas" 2>/dev/null)" != "$COPIES $DX" ]; then
  echo "--- database: setup_and_render.sh (import; its Mapnik render is cut to z12, 1 round)"
  rm -f "$WORK/replicas"
  WORK=$WORK RESULTS_DIR=$WORK/setup-results ZOOM=12 ROUNDS=1 BBOX=$BBOX bash "$OC/setup_and_render.sh"
  FRESH_IMPORT=1
fi
if pg pg_ctl -D "$WORK/pgdata" status >/dev/null 2>&1; then
  echo "a PostgreSQL server is already running on $WORK/pgdata: stop it first" >&2; exit 1
fi
# as setup_and_render.sh starts it: unix socket only, no durability
pg pg_ctl -D "$WORK/pgdata" -l "$WORK/postgresql.log" -w -o "-k $WORK/sock -c listen_addresses='' \
  -c shared_buffers=1GB -c work_mem=64MB -c maintenance_work_mem=1GB -c fsync=off \
  -c synchronous_commit=off -c full_page_writes=off -c jit=off -c max_wal_size=4GB" start >/dev/null
PGPID=$(head -1 "$WORK/pgdata/postmaster.pid")
export PGHOST=$WORK/sock PGPORT=5432 PGUSER=postgres   # for renderd, tile-server and psql
if [ "${FRESH_IMPORT:-0}" = 1 ]; then
  echo "--- database: $COPIES copies east and 1 west of the extract, $DX m apart"
  psql -q -d gis -v ON_ERROR_STOP=1 <<SQL
DO \$\$
DECLARE t text; k int; cols text;
BEGIN
  FOREACH t IN ARRAY ARRAY['planet_osm_point', 'planet_osm_line', 'planet_osm_polygon',
                           'planet_osm_roads', 'water_polygons'] LOOP
    EXECUTE format('CREATE TEMP TABLE orig AS SELECT * FROM %I', t);
    FOR k IN -1..$COPIES LOOP
      CONTINUE WHEN k = 0;
      SELECT string_agg(CASE WHEN column_name = 'way' THEN format('ST_Translate(way, %s, 0)', k * $DX)
                             ELSE quote_ident(column_name) END, ', ' ORDER BY ordinal_position)
        INTO cols FROM information_schema.columns WHERE table_schema = 'public' AND table_name = t;
      EXECUTE format('INSERT INTO %I SELECT %s FROM orig', t, cols);
    END LOOP;
    DROP TABLE orig;
  END LOOP;
END \$\$;
VACUUM ANALYZE;
SQL
  echo "$COPIES $DX" > "$WORK/replicas"
fi
psql -d gis -At -F ' ' -c "SELECT 'rows: point', (SELECT count(*) FROM planet_osm_point), 'line', (SELECT count(*) FROM planet_osm_line),
  'polygon', (SELECT count(*) FROM planet_osm_polygon), 'roads', (SELECT count(*) FROM planet_osm_roads),
  'water_polygons', (SELECT count(*) FROM water_polygons), 'x extent', round(ST_XMin(ST_Extent(way))::numeric), round(ST_XMax(ST_Extent(way))::numeric) FROM planet_osm_polygon"
STYLE=$WORK/style/style.xml        # Debian's style.xml, with symbols/ and patterns/ beside it

# --------------------------------------------------------------- the screens
# the drag's screens (the first, the last = A's) and their metatiles
read -r LAST_BBOX SCREEN_INFO < <(python3 - "$PAN_BBOX" "$PAN_ZOOM" <<'EOF'
import math, sys
w, s, e, n = map(float, sys.argv[1].split(",")); z = int(sys.argv[2])
def tx(lon): return (lon + 180) / 360 * (1 << z)
def ty(lat): return (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * (1 << z)
metas, tiles = [], []
for k in range(10):
    a, b = w + k * (e - w), e + k * (e - w)
    xs = range(math.floor(tx(a)), math.ceil(tx(b)))
    ys = range(math.floor(ty(n)), math.ceil(ty(s)))
    tiles.append(len(xs) * len(ys))
    metas.append(len({(x // 8, y // 8) for x in xs for y in ys}))
    last = "%.6f,%s,%.6f,%s" % (a, s, b, n)
print(last, "tiles/screen=%s metatiles/screen=%s" % ("/".join(map(str, tiles)), "/".join(map(str, metas))))
EOF
)
echo "screens z$PAN_ZOOM: first $PAN_BBOX, last (= A) $LAST_BBOX; $SCREEN_INFO"

# --------------------------------------------------------------------- tessera
TS_SOCK=$RUN_DIR/tessera.sock
CLIENT=("$BIN/tile-client" --server "unix:$TS_SOCK")
TS_RUN=0
ts_start() { # threads logname [extra tile-server args...]; fresh, empty tile dir
  local n=$1 log=$RUN_DIR/$2; shift 2
  TS_RUN=$((TS_RUN + 1))
  rm -f "$TS_SOCK"
  env ${TRACE_ENV:-} "$BIN/tile-server" --style "$STYLE" --threads "$n" --tile-dir "$RUN_DIR/tessera-tiles-$TS_RUN" \
    --listen "unix:$TS_SOCK" "$@" > "$log" 2>&1 &
  TS_PID=$!
  for _ in $(seq 300); do            # up to ~30 s (the style takes a while to load)
    [ -S "$TS_SOCK" ] && return 0
    kill -0 "$TS_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "tile-server did not start; last lines of its log:" >&2
  tail -20 "$log" >&2
  ts_stop
  return 1
}
ts_warm() { # both workers load the map and connect before anything is timed
  timeout 60 "${CLIENT[@]}" render 0/0/0 1/0/0 2/0/0 3/0/0 --force >/dev/null
}
stat_of() { "${CLIENT[@]}" stats | awk -v k="$1" '$1 == k { print $2 }'; }

tessera_pan() { # run scenario order [tile-server args...]; order = priority|fifo
  local run=$1 scen=$2 order=$3 out limit=$LIMIT m0 m1 t0 t1 bbox=$PAN_BBOX; shift 3
  local args=(--zoom "$PAN_ZOOM" --json --force)
  case $scen in
    A)         bbox=$LAST_BBOX; args+=(--steps 0 --interval 0) ;;
    B-cancel)  args+=(--steps 9 --interval 0.2 --left-behind cancel) ;;
    B-demote)  args+=(--steps 9 --interval 0.2 --left-behind demote) ;;
    C-demote)  args+=(--steps 9 --interval 0.2 --left-behind demote --backlog-zoom 9) ;;
    D-cancel)  args+=(--steps 9 --interval 0.02 --left-behind cancel) ;;
    D-demote)  args+=(--steps 9 --interval 0.02 --left-behind demote) ;;
  esac
  [ "$order" = fifo ] && [ "$scen" = C-demote ] && limit=$FIFO_C_LIMIT
  ts_start 2 "tessera-pan-$scen-$order-r$run.log" "$@"
  ts_warm
  m0=$(stat_of metatiles_rendered); t0=$(now)
  if out=$(timeout "$limit" "${CLIENT[@]}" pan --bbox "$bbox" "${args[@]}"); then
    t1=$(now); m1=$(stat_of metatiles_rendered)
    local wall; wall=$(awk "BEGIN { printf \"%.3f\", $t1 - $t0 }")
    echo "  run $run tessera $order $scen: $out (metatiles rendered $((m1 - m0)), wall $wall s)"
    json "{\"kind\":\"pan\",\"tool\":\"tessera\",\"order\":\"$order\",\"scenario\":\"$scen\",\"run\":$run,\"result\":$out,\"metatiles_rendered\":$((m1 - m0)),\"wall_s\":$wall,\"load\":\"$(load)\"}"
  else
    echo "  run $run tessera $order $scen: no answer within $limit s (exit $?)"
    json "{\"kind\":\"pan\",\"tool\":\"tessera\",\"order\":\"$order\",\"scenario\":\"$scen\",\"run\":$run,\"timeout_s\":$limit,\"load\":\"$(load)\"}"
  fi
  ts_stop
  if [ "$TRACE" = 1 ]; then
    out=$(python3 "$HERE/priority_timeline.py" "$RUN_DIR/tessera-pan-$scen-$order-r$run.log")
    json "{\"kind\":\"timeline\",\"tool\":\"tessera\",\"order\":\"$order\",\"scenario\":\"$scen\",\"run\":$run,\"timeline\":$out}"
  fi
}

# --------------------------------------------------------------------- renderd
# renderd_pan.py starts a fresh renderd per scenario from its config template,
# which names mapnik_style.xml: give it a copy naming the osm-carto style.
sed -e "s|^XML=.*|XML=$STYLE|" "$B/renderd.conf.in" > "$RUN_DIR/renderd.conf.in"
renderd_pan() { # run scenarios bbox
  TMPDIR=$RUN_DIR $PY - "$B" "$RUN_DIR/renderd.conf.in" --runs 1 --scenarios "$2" --modes naive --no-stats \
    --threads 2 --zoom "$PAN_ZOOM" --bbox "$3" --timeout "$LIMIT" \
    --json "$RUN_DIR/pan-renderd-$1.jsonl" >> "$RUN_DIR/pan-renderd-$1.txt" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import renderd_pan
renderd_pan.CONF_TEMPLATE = sys.argv[2]
sys.argv = ["renderd_pan.py"] + sys.argv[3:]
renderd_pan.main()
EOF
}

echo "=== $(date -u '+%Y-%m-%d %H:%M:%S UTC')  load: $(load)  $(nproc) CPUs  runs: $PAN_RUNS  run dir: $RUN_DIR"
json "{\"kind\":\"meta\",\"date\":\"$(date -u '+%Y-%m-%d %H:%M:%S UTC')\",\"load_start\":\"$(load)\",\"cpus\":$(nproc),\"style\":\"openstreetmap-carto $(dpkg-query -W -f='${Version}' openstreetmap-carto-common)\",\"zoom\":$PAN_ZOOM,\"first_bbox\":\"$PAN_BBOX\",\"last_bbox\":\"$LAST_BBOX\",\"screens\":\"$SCREEN_INFO\",\"copies\":$COPIES,\"copy_dx_m\":$DX}"

for run in $(seq "$PAN_RUNS"); do
  echo "--- priority run $run, load $(load)"
  : > "$RUN_DIR/pan-renderd-$run.jsonl"
  if [ "$RENDERD" = 1 ]; then
    renderd_pan "$run" A "$LAST_BBOX"
    renderd_pan "$run" B,C,D "$PAN_BBOX"
  fi
  while read -r line; do
    json "{\"kind\":\"pan\",\"tool\":\"renderd\",\"run\":$run,\"result\":$line,\"load\":\"$(load)\"}"
    echo "  run $run renderd: $(cut -c1-200 <<<"$line")"
  done < "$RUN_DIR/pan-renderd-$run.jsonl"
  for scen in $SCENARIOS; do
    tessera_pan "$run" "$scen" priority
  done
  for scen in $FIFO; do
    tessera_pan "$run" "$scen" fifo --fifo
  done
  # FIFO behind the backlog waits for the whole z9 world: once, bounded.
  if [ "$run" = 1 ] && [ "$FIFO_C" = 1 ]; then tessera_pan "$run" C-demote fifo --fifo; fi
done

json "{\"kind\":\"meta\",\"date_end\":\"$(date -u '+%Y-%m-%d %H:%M:%S UTC')\",\"load_end\":\"$(load)\"}"
echo
python3 "$HERE/priority_osm_carto_report.py" "$RESULTS"
echo "(raw results: $RESULTS — removed at exit unless RESULTS was set)"
