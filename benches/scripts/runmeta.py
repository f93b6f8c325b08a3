#!/usr/bin/env python3
"""Run metadata for every benchmark result line (stdlib only).

Every JSON line a benchmark writes carries a "runmeta" object:

    "runmeta": {"commit": "<git HEAD>", "dirty": false, "dirty_paths": [],
            "cpu_model": "...", "cores": 2, "kernel": "6.18.0 x86_64",
            "started": "2026-12-04 07:10:00 UTC",
            "loadavg": [0.41, 0.52, 0.60], "time": 1796368200.5}

commit, dirty, the machine and `started` are taken once when the run
starts; `loadavg` (1, 5, 15 min) and `time` (Unix seconds) when the line is
written. A tree with uncommitted changes (tracked files modified, staged, or
untracked files outside target/) is refused unless the run is told
`--allow-dirty` or `ALLOW_DIRTY=1`; it then records "dirty": true and the
paths, so a number can be traced to exactly what was measured.

This file is the one implementation. The shell scripts use it through
`runmeta.sh`; the Rust bench binaries (benches/src/lib.rs) read the static
part from the RUNMETA environment variable that `runmeta.sh` exports, or run
`runmeta.py static` themselves when started by hand.

    runmeta.py static [--allow-dirty]   # prints the static part; exit 3 if dirty and not allowed
    runmeta.py stamp < lines > lines    # adds "runmeta" (RUNMETA from the environment, or computed)
    runmeta.py tee FILE < out > out     # passes every line through; JSON-object lines also
                                        # go to FILE, stamped, as they arrive
"""
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DIRTY_EXIT = 3
# Where runs write, not what they measure: not counted as dirty.
OUTPUTS = ("target/", "benches/results/")


class DirtyTree(Exception):
    pass


def _git(*args):
    return subprocess.run(["git", "-C", ROOT, *args], check=True, capture_output=True,
                          text=True).stdout


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def allow_dirty_from(argv=()):
    """True when `--allow-dirty` is in argv or ALLOW_DIRTY=1."""
    return "--allow-dirty" in argv or os.environ.get("ALLOW_DIRTY") == "1"


def static(allow_dirty=False):
    """The part of "runmeta" that is fixed for a run. Raises DirtyTree if the
    working tree has uncommitted changes and allow_dirty is false."""
    commit = _git("rev-parse", "HEAD").strip()
    paths = [line[3:] for line in _git("status", "--porcelain", "--untracked-files=all").splitlines()
             if line[3:] and not line[3:].startswith(OUTPUTS)]
    if paths and not allow_dirty:
        raise DirtyTree(
            "the working tree has uncommitted changes (%s%s); commit them, or record a dirty run "
            "with --allow-dirty or ALLOW_DIRTY=1" % (", ".join(paths[:5]),
                                                     ", ..." if len(paths) > 5 else ""))
    uname = platform.uname()
    return {
        "commit": commit,
        "dirty": bool(paths),
        "dirty_paths": paths,
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": "%s %s" % (uname.release, uname.machine),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]


def from_env_or_static(allow_dirty=False):
    """RUNMETA from the environment (set once by runmeta.sh), or static()."""
    env = os.environ.get("RUNMETA")
    return json.loads(env) if env else static(allow_dirty)


def stamp(record, meta):
    """record (a dict) with "runmeta": meta + the load average and time now."""
    run = dict(meta)
    run["loadavg"] = loadavg()
    run["time"] = round(time.time(), 3)
    out = dict(record)
    out["runmeta"] = run
    return out


def main(argv):
    if not argv or argv[0] not in ("static", "stamp", "tee") or (argv[0] == "tee" and len(argv) < 2):
        sys.exit(__doc__)
    allow = allow_dirty_from(argv[1:])
    try:
        meta = static(allow) if argv[0] == "static" else from_env_or_static(allow)
    except DirtyTree as e:
        print("runmeta: refusing to record a benchmark: %s" % e, file=sys.stderr)
        sys.exit(DIRTY_EXIT)
    if argv[0] == "static":
        print(json.dumps(meta, separators=(",", ":")))
        return
    if argv[0] == "tee":
        with open(argv[1], "a") as out:
            for line in sys.stdin:
                sys.stdout.write(line)
                sys.stdout.flush()
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    if "runmeta" not in record:
                        record = stamp(record, meta)
                    out.write(json.dumps(record, separators=(",", ":")) + "\n")
                    out.flush()
        return
    for line in sys.stdin:
        if not line.strip():
            continue
        record = json.loads(line)
        if "runmeta" not in record:
            record = stamp(record, meta)
        print(json.dumps(record, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
