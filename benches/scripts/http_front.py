#!/usr/bin/env python3
"""tessera's HTTP front against Apache + mod_tile and static nginx, side by
side in one run on the same tiles (issue #13).

Two parts, each ROUNDS rounds in alternating order, one statistic: the
median over the rounds.

cached   Every tile of the demo map's z12-16 screens around central
         Helsinki (SCREENS screens of 1024x768) is seeded first; wrk then
         asks for them in a fixed shuffled order (one Lua list shared by
         every server) for SECONDS seconds with 32 connections. The server
         is pinned to CPU 0 and wrk to CPU 1 (taskset). nginx serves the
         same PNG files statically (1 worker, sendfile, access log off).
         Apache 2.4 with Debian's mod_tile (event MPM, one process of 64
         threads, keep-alive) serves the same tiles from the .meta files
         tessera wrote in the mod_tile layout (`--tile-layout mod_tile`),
         under /tiles/ as mod_tile deployments do; `--no-apache` leaves it
         out.
         Records requests/s, wrk's p50/p99 latency, and the responses that
         were not 2xx/3xx (must be 0).
ondemand A screen of 24 missing tiles (6x4 at z17-20 in the streets of the
         centre, somewhere new each time)
         through HTTP (6 connections, as a browser opens, each asking for
         its tiles one after another) against the same size of screen through
         `tile-client viewport` (one framed connection): seconds until the
         last tile arrived, as the client sees it.

Release binaries are built first (cargo build --release). Each JSON line
carries "runmeta" (runmeta.py); a dirty tree is refused.

Usage: python3 benches/scripts/http_front.py [--rounds 5] [--seconds 10]
           [--json FILE] [--allow-dirty]
"""
import argparse
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import runmeta  # noqa: E402

CENTRE = (24.9414, 60.1699)   # central Helsinki, inside the demo's streets


def tile_of(lon, lat, z):
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def screen_tiles(z, x0, y0, w, h):
    return [(z, x, y) for y in range(y0, y0 + h) for x in range(x0, x0 + w)]


def start_tessera(store, port, threads=2, cpus="0", layout=None):
    cmd = ["taskset", "-c", cpus, os.path.join(ROOT, "target/release/tile-server"),
           "--tile-dir", store, "--listen", "tcp:127.0.0.1:0",
           *(["--tile-layout", layout] if layout else []),
           "--http-listen", "127.0.0.1:%d" % port, "--threads", str(threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    framed = None
    for line in proc.stdout:
        if line.startswith("tile-server: listening on "):
            framed = line.split("listening on ", 1)[1].strip()
        if line.strip() == "tile-server: ready":
            break
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, framed


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def http_get(conn, path):
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, body


def seed(port, tiles):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    for z, x, y in tiles:
        status, _ = http_get(conn, "/demo/%d/%d/%d.png" % (z, x, y))
        if status != 200:
            sys.exit("seeding /demo/%d/%d/%d.png: HTTP %d" % (z, x, y, status))
    conn.close()


def nginx_conf(run, store, port):
    conf = os.path.join(run, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""
worker_processes 1;
daemon off;
pid %(run)s/nginx.pid;
error_log %(run)s/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    types { image/png png; }
    client_body_temp_path %(run)s/body;
    proxy_temp_path %(run)s/proxy;
    fastcgi_temp_path %(run)s/fastcgi;
    uwsgi_temp_path %(run)s/uwsgi;
    scgi_temp_path %(run)s/scgi;
    server {
        listen 127.0.0.1:%(port)d;
        root %(store)s;
        location / { add_header Cache-Control "public, max-age=3600"; }
    }
}
""" % {"run": run, "store": store, "port": port})
    return conf


MOD_TILE = "/usr/lib/apache2/modules/mod_tile.so"


def apache_conf(run, meta_store, port):
    root = os.path.join(run, "apache")
    os.makedirs(os.path.join(root, "htdocs"), exist_ok=True)
    renderd_conf = os.path.join(root, "renderd.conf")
    with open(renderd_conf, "w") as f:
        f.write("[renderd]\nsocketname=%(run)s/renderd.sock\ntile_dir=%(tiles)s\n\n"
                "[demo]\nURI=/tiles/\nXML=/unused/by/mod_tile.xml\nHOST=localhost\n"
                "TILEDIR=%(tiles)s\nMAXZOOM=20\n" % {"run": run, "tiles": meta_store})
    modules = "/usr/lib/apache2/modules"
    conf = os.path.join(root, "apache.conf")
    with open(conf, "w") as f:
        f.write("""ServerRoot %(root)s
ServerName localhost
Listen 127.0.0.1:%(port)d
PidFile %(root)s/apache.pid
ErrorLog %(root)s/error.log
LogLevel warn
User www-data
Group www-data
LoadModule mpm_event_module %(modules)s/mod_mpm_event.so
ServerLimit 1
StartServers 1
ThreadsPerChild 64
MaxRequestWorkers 64
KeepAlive On
MaxKeepAliveRequests 0
LoadModule authz_core_module %(modules)s/mod_authz_core.so
LoadModule tile_module %(mod_tile)s
DocumentRoot %(root)s/htdocs
LoadTileConfigFile %(renderd_conf)s
ModTileRenderdSocketName %(run)s/renderd.sock
ModTileTileDir %(tiles)s
ModTileRequestTimeout 3
ModTileMissingRequestTimeout 3
""" % {"root": root, "port": port, "modules": modules, "mod_tile": MOD_TILE,
       "renderd_conf": renderd_conf, "run": run, "tiles": meta_store})
    return conf


def wrk(port, lua, seconds):
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c32", "-d%ds" % seconds, "--latency", "-s", lua,
         "http://127.0.0.1:%d" % port], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def latency(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % p, out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if non2xx:
        sys.exit("http_front: %s answered %s requests with an error: fix the set-up"
                 % (port, non2xx.group(1)))
    return {"rps": rps, "p50_ms": latency("50"), "p99_ms": latency("99"),
            "non_2xx": 0,
            "socket_errors": errors.group(1) if errors else ""}


def screen_over_http(port, tiles, connections=6):
    """Seconds until every tile of the screen arrived, 6 connections."""
    queue = list(tiles)
    lock = threading.Lock()
    failures = []

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            with lock:
                if not queue:
                    break
                z, x, y = queue.pop(0)
            status, _ = http_get(conn, "/demo/%d/%d/%d.png" % (z, x, y))
            if status != 200:
                failures.append(status)
        conn.close()
    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        sys.exit("on-demand screen over HTTP: %s" % failures)
    return time.perf_counter() - started


def screen_over_framed(framed, tiles):
    """Seconds until `tile-client viewport` has every tile of the screen."""
    zs = {t[0] for t in tiles}
    z = zs.pop()
    n = 2 ** z
    xs = [t[1] for t in tiles]
    ys = [t[2] for t in tiles]
    # The bbox of the tiles' centres: covers exactly these tiles.
    lon = lambda x: x / n * 360 - 180
    lat = lambda y: math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))
    bbox = "%f,%f,%f,%f" % (lon(min(xs) + 0.5), lat(max(ys) + 0.5), lon(max(xs) + 0.5), lat(min(ys) + 0.5))
    started = time.perf_counter()
    out = subprocess.run([os.path.join(ROOT, "target/release/tile-client"), "--server", framed,
                          "viewport", "--bbox", bbox, "--zoom", str(z), "--ring", "0", "--inline"],
                         capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit("tile-client viewport failed: %s" % out.stderr)
    return elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--screens", type=int, default=6)
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-apache", action="store_true")
    ap.add_argument("--allow-dirty", action="store_true")
    args = ap.parse_args()
    try:
        meta = runmeta.static(runmeta.allow_dirty_from(sys.argv[1:]))
    except runmeta.DirtyTree as e:
        sys.exit("http_front: refusing to record a benchmark: %s" % e)
    apache = not args.no_apache
    if apache and not (os.path.exists(MOD_TILE) and os.path.exists("/usr/sbin/apache2")):
        sys.exit("http_front: apache2 and libapache2-mod-tile are missing (or give --no-apache)")
    for tool in ("wrk", "nginx", "taskset"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            sys.exit("http_front: %s is missing (apt install wrk nginx-light util-linux)" % tool)
    subprocess.run(["cargo", "build", "--release", "-p", "tile-server", "-p", "tile-client"],
                   cwd=ROOT, check=True)
    out = open(args.json, "a") if args.json else None

    def emit(record):
        line = json.dumps(runmeta.stamp(record, meta), separators=(",", ":"))
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    run = tempfile.mkdtemp(prefix="http-front-bench.")
    # nginx's worker runs as another user: it must be able to read the tiles.
    os.chmod(run, 0o755)
    store = os.path.join(run, "tiles")
    port = 18931
    try:
        # The tile set: screens of 4x3 tiles, z12-16, around the centre.
        tiles = []
        for z in range(12, 17):
            cx, cy = tile_of(*CENTRE, z)
            for s in range(args.screens):
                tiles += screen_tiles(z, cx - 2 + 4 * (s % 3) - 4, cy - 1 + 3 * (s // 3) - 3, 4, 3)
        tiles = sorted(set(tiles))
        proc, framed = start_tessera(store, port)
        seed(port, tiles)
        stop(proc)
        servers = ["tessera", "nginx"]
        if apache:
            # The same tiles in the mod_tile layout, for Apache.
            meta_store = os.path.join(run, "meta")
            proc, _ = start_tessera(meta_store, port, layout="mod_tile")
            seed(port, tiles)
            stop(proc)
            subprocess.run(["chmod", "-R", "a+rX", run], check=True)
            aconf = apache_conf(run, meta_store, port + 2)
            servers.append("apache")
        lua_of = {}
        for prefix in ("/demo", "/tiles"):
            paths = ["%s/%d/%d/%d.png" % ((prefix,) + t) for t in tiles]
            random.Random(7).shuffle(paths)
            lua_of[prefix] = os.path.join(run, "paths%s.lua" % prefix.replace("/", "-"))
            with open(lua_of[prefix], "w") as f:
                f.write("local paths = {%s}\nlocal i = 0\nrequest = function()\n"
                        "  i = i %% #paths + 1\n  return wrk.format('GET', paths[i])\nend\n"
                        % ",".join('"%s"' % p for p in paths))
        lua = lua_of["/demo"]
        conf = nginx_conf(run, store, port + 1)
        for rnd in range(args.rounds):
            # Every order in turn: no server always goes first.
            order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
            for server in order:
                if server == "tessera":
                    proc, _ = start_tessera(store, port)
                    result = wrk(port, lua, args.seconds)
                    stop(proc)
                elif server == "nginx":
                    proc = subprocess.Popen(["taskset", "-c", "0", "nginx", "-c", conf, "-p", run],
                                            stderr=subprocess.DEVNULL)
                    time.sleep(0.5)
                    result = wrk(port + 1, lua, args.seconds)
                    stop(proc)
                else:
                    proc = subprocess.Popen(["taskset", "-c", "0", "/usr/sbin/apache2", "-f", aconf,
                                             "-DFOREGROUND"], stderr=subprocess.DEVNULL)
                    time.sleep(1.0)
                    result = wrk(port + 2, lua_of["/tiles"], args.seconds)
                    stop(proc)
                emit({"bench": "http_cached", "server": server, "round": rnd,
                      "tiles": len(paths), "connections": 32, "seconds": args.seconds, **result})

        # On demand: two new 6x4 screens side by side in the streets of
        # the centre, at a new zoom each round (z17 and deeper: nothing
        # stored), each inside one column of metatiles; which client gets
        # which side alternates.
        proc, framed = start_tessera(store, port)
        for rnd in range(args.rounds):
            z = 17 + rnd % 4   # the demo map serves up to z20
            cx, cy = tile_of(*CENTRE, z)
            cy += 8 * (rnd // 4)   # the next row of metatiles
            column = cx // 8 * 8
            sides = [column - 8 + 1, column + 1]
            order = ["http", "framed"] if rnd % 2 == 0 else ["framed", "http"]
            for k, client in enumerate(order):
                screen = screen_tiles(z, sides[k], cy - 2, 6, 4)
                if client == "http":
                    seconds = screen_over_http(port, screen)
                else:
                    seconds = screen_over_framed(framed, screen)
                emit({"bench": "http_on_demand", "client": client, "round": rnd, "zoom": z,
                      "first_tile": list(screen[0]), "tiles": len(screen),
                      "seconds": round(seconds, 4)})
        stop(proc)
    finally:
        shutil.rmtree(run, ignore_errors=True)
        if out:
            out.close()


if __name__ == "__main__":
    main()
