#!/usr/bin/env python3
"""Peak memory of expiring tiles (issue #12, point 3): `tile-client expire`
and tile-server against Debian's `render_expired`, on expire lists of
10,000, 100,000 and 1,000,000 tiles.

The lists: that many distinct zoom-17 tiles drawn at random (seed 12) over
Finland (20-32 E, 59.5-70 N), one `z/x/y` a line as osm2pgsql writes them:
scattered edits, the worst case for deduplication. Every run expands them
to zooms 10-18.

touch     `--min-zoom 10 --max-zoom 18 --touch-from 10`: every stored
          metatile is marked stale, none re-rendered (so render_expired
          needs no renderd and the two do the same work).
          - tessera: a fresh tile-server (release build, the demo map, one
            render thread, ext4 temp dir), its store seeded at zooms 10-14
            around Helsinki (`tile-client seed`); then `tile-client expire`.
          - render_expired: `--tile-dir` an empty folder in mod_tile's
            layout (seeding .meta files needs renderd; with nothing stored
            it checks each metatile's file and skips it, which is the whole
            of its work for most of a scattered list).
rerender  tessera only: `--touch-from 15`, so the stored metatiles of
          zooms 10-14 are also queued for a re-render at dirty priority;
          the server's peak is read after the queue has drained (it
          includes drawing those metatiles).

Recorded per run: wall seconds, the client's peak RSS (GNU time's %M:
`tile-client` or `render_expired`), and for tessera the server's
peak RSS (VmHWM) before the expiry (started and seeded) and after it, and
the counts the client printed. Each JSON line carries "runmeta"
(runmeta.py); a dirty tree is refused. Run it with the cargo lock held so
no build runs meanwhile:

    flock /tmp/tessera-cargo.lock python3 benches/scripts/expire_memory.py

Release binaries are built first (cargo build --release, honouring
CARGO_TARGET_DIR).

Usage: python3 benches/scripts/expire_memory.py [--sizes 10000,100000,1000000]
           [--json FILE] [--allow-dirty]
"""
import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import runmeta  # noqa: E402

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
SERVER = os.path.join(TARGET, "release", "tile-server")
CLIENT = os.path.join(TARGET, "release", "tile-client")
RENDER_EXPIRED = "/usr/bin/render_expired"
TIME = "/usr/bin/time"
FINLAND = (20.0, 59.5, 32.0, 70.0)
HELSINKI = "24.8,60.1,25.1,60.25"


def tile_of(lon, lat, z):
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def write_list(path, count):
    """`count` distinct random z17 tiles over Finland, one `17/x/y` a line."""
    west, south, east, north = FINLAND
    x0, y0 = tile_of(west, north, 17)
    x1, y1 = tile_of(east, south, 17)
    rng = random.Random(12)
    seen = set()
    with open(path, "w") as out:
        while len(seen) < count:
            tile = (rng.randint(x0, x1), rng.randint(y0, y1))
            if tile in seen:
                continue
            seen.add(tile)
            out.write("17/%d/%d\n" % tile)


def run_measured(cmd, stdin_path=None):
    """Runs cmd to its end; (exit status, wall seconds, peak RSS in KiB,
    stdout, stderr). The peak is GNU time's (%M): a child forked from this
    Python process would count Python's pages until its exec."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    with tempfile.NamedTemporaryFile("r") as peak:
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        started = time.monotonic()
        status = subprocess.call([TIME, "-f", "%M", "-o", peak.name] + cmd, stdin=stdin,
                                 stdout=out, stderr=err)
        wall = time.monotonic() - started
        if stdin_path:
            stdin.close()
        rss = int(peak.read().strip().splitlines()[-1])
    out.seek(0)
    err.seek(0)
    return (status, wall, rss, out.read().decode(errors="replace"),
            err.read().decode(errors="replace"))


def hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM for %d" % pid)


def stat(server, name):
    out = subprocess.run([CLIENT, "--server", server, "stats"], check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return int(value)
    return 0


def start_server(work, cache):
    sock = os.path.join(work, "tessera.sock")
    cmd = [SERVER, "--tile-dir", os.path.join(work, "tiles"), "--listen", "unix:" + sock,
           "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, XDG_CACHE_HOME=cache))
    for line in proc.stdout:
        if line.strip() == "tile-server: ready":
            break
    else:
        raise RuntimeError("tile-server exited before it was ready")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, "unix:" + sock


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def counts_of(stdout):
    counts = {}
    for key, pattern in [("deleted", r"^deleted: (\d+)"), ("touched", r"^marked stale: (\d+)"),
                         ("queued", r"^queued for re-render.*: (\d+)"),
                         ("absent", r"^not in the store: (\d+)"), ("failed", r"^failed: (\d+)"),
                         ("blocks_sent", r"sent (\d+) blocks")]:
        m = re.search(pattern, stdout, re.M)
        counts[key] = int(m.group(1)) if m else None
    return counts


def tessera(list_path, tiles, mode, scratch):
    work = tempfile.mkdtemp(prefix="expire-", dir=scratch)
    try:
        proc, server = start_server(work, os.path.join(scratch, "cache"))
        try:
            seeded = subprocess.run([CLIENT, "--server", server, "seed", "--bbox", HELSINKI,
                                     "--zoom", "10-14"], capture_output=True, text=True)
            if seeded.returncode != 0:
                raise RuntimeError("seed failed: " + seeded.stderr + seeded.stdout)
            before = hwm_kib(proc.pid)
            touch = "10" if mode == "touch" else "15"
            status, wall, rss, out, err = run_measured(
                [CLIENT, "--server", server, "expire", "--map", "demo", "--min-zoom", "10",
                 "--max-zoom", "18", "--touch-from", touch, list_path])
            if status != 0:
                raise RuntimeError("tile-client expire exited %d: %s" % (status, err[-2000:]))
            # The queued re-renders are the server's work too.
            until = time.monotonic() + 600
            while stat(server, "queued_dirty") + stat(server, "running_jobs") > 0:
                if time.monotonic() > until:
                    raise RuntimeError("the dirty queue did not drain")
                time.sleep(0.2)
            after = hwm_kib(proc.pid)
        finally:
            stop_server(proc)
        return {"bench": "expire_memory", "tool": "tessera", "mode": mode, "tiles": tiles,
                "wall_s": round(wall, 3), "client_max_rss_kib": rss,
                "server_hwm_before_kib": before, "server_hwm_after_kib": after,
                "counts": counts_of(out)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def render_expired(list_path, tiles, scratch):
    work = tempfile.mkdtemp(prefix="render-expired-", dir=scratch)
    try:
        os.makedirs(os.path.join(work, "tiles", "default"))
        status, wall, rss, out, err = run_measured(
            [RENDER_EXPIRED, "--tile-dir", os.path.join(work, "tiles"), "--map", "default",
             "--min-zoom", "10", "--max-zoom", "18", "--touch-from", "10"],
            stdin_path=list_path)
        if status != 0:
            raise RuntimeError("render_expired exited %d: %s" % (status, err[-2000:]))
        text = out + err
        expanded = re.search(r"Total tiles expanded from input: (\d+)", text)
        ignored = re.search(r"Total tiles ignored \(not on disk\): (\d+)", text)
        return {"bench": "expire_memory", "tool": "render_expired", "mode": "touch",
                "tiles": tiles, "wall_s": round(wall, 3), "client_max_rss_kib": rss,
                "counts": {"expanded": int(expanded.group(1)) if expanded else None,
                           "absent": int(ignored.group(1)) if ignored else None}}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--json", default=os.path.join(
        ROOT, "benches/results/expire_memory-%s.jsonl" % time.strftime("%Y-%m-%d")))
    parser.add_argument("--allow-dirty", action="store_true")
    args = parser.parse_args()
    try:
        meta = runmeta.static(runmeta.allow_dirty_from(sys.argv[1:]))
    except runmeta.DirtyTree as e:
        sys.exit("expire_memory: %s" % e)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "tile-server", "-p",
                    "tile-client"], cwd=ROOT, check=True)
    for tool, package in [(RENDER_EXPIRED, "renderd"), (TIME, "time")]:
        if not os.path.exists(tool):
            sys.exit("expire_memory: %s is missing (Debian's %s package)" % (tool, package))
    # On the disk (ext4), not a tmpfs: what a tile cache is on.
    scratch = tempfile.mkdtemp(prefix="expire-memory-", dir="/var/tmp")
    try:
        with open(args.json, "a") as results:
            for size in [int(s) for s in args.sizes.split(",")]:
                list_path = os.path.join(scratch, "expire-%d.list" % size)
                write_list(list_path, size)
                for record in (tessera(list_path, size, "touch", scratch),
                               render_expired(list_path, size, scratch),
                               tessera(list_path, size, "rerender", scratch)):
                    line = json.dumps(runmeta.stamp(record, meta), separators=(",", ":"))
                    print(line, flush=True)
                    results.write(line + "\n")
                    results.flush()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
