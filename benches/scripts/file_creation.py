#!/usr/bin/env python3
"""What creating tile files costs on this machine's file systems: the numbers
behind "on this ext4, creating 20,000 files where 20,000 were just deleted
took 6.3 s against 1.2 s in a new directory (and 0.35 s on tmpfs)" in
docs/performance.md (render-service).

Each round, with N small files written as tessera's store writes tiles
(a temporary name, then a rename; 64 files a directory, as a metatile):
  new_dir             create N files in a new directory under PARENT (default /tmp)
  delete              rm -rf that directory
  where_just_deleted  create N files again, at the same paths
  tmpfs_new_dir       create N files in a new directory under /dev/shm
Directories are removed at the end. Medians over ROUNDS rounds; one JSON
line per round and measure, with "runmeta" (commit, dirty flag, machine,
load average), to RESULTS (default: a temp file, printed at the end).
A tree with uncommitted changes is refused unless --allow-dirty or
ALLOW_DIRTY=1.

    RESULTS=benches/results/file_creation-DATE.jsonl \\
        python3 benches/scripts/file_creation.py [--allow-dirty]
Knobs (env): N=20000 ROUNDS=3 PARENT=/tmp. About 10-60 s.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runmeta  # noqa: E402

PAYLOAD = b"\x89PNG\r\n\x1a\n" + bytes(95)  # ~ a single-colour png8 tile


def create(root, n):
    """n files under root, 64 a directory, each through a temp name + rename."""
    start = time.perf_counter()
    for i in range(n):
        d = os.path.join(root, str(i // 64))
        if i % 64 == 0:
            os.makedirs(d, exist_ok=True)
        final = os.path.join(d, "%d.png" % (i % 64))
        tmp = final + ".tmp"
        with open(tmp, "wb") as f:
            f.write(PAYLOAD)
        os.rename(tmp, final)
    return time.perf_counter() - start


def fs_type(path):
    out = subprocess.run(["df", "-T", path], capture_output=True, text=True).stdout.splitlines()
    return out[1].split()[1] if len(out) > 1 else "?"


def main(argv):
    try:
        meta = runmeta.static(runmeta.allow_dirty_from(argv))
    except runmeta.DirtyTree as e:
        sys.exit("file_creation: %s" % e)
    n = int(os.environ.get("N", "20000"))
    rounds = int(os.environ.get("ROUNDS", "3"))
    parent = os.environ.get("PARENT", "/tmp")
    results = os.environ.get("RESULTS") or tempfile.mkstemp(suffix=".jsonl")[1]
    keep = [tempfile.mkdtemp(prefix="file-creation.", dir=parent),
            tempfile.mkdtemp(prefix="file-creation.", dir="/dev/shm")]
    base, shm = keep
    fs = {"parent": fs_type(parent), "tmpfs": fs_type("/dev/shm")}
    times = {}
    try:
        with open(results, "a") as out:
            for r in range(1, rounds + 1):
                d = os.path.join(base, "round%d" % r)
                measured = {"new_dir": create(d, n)}
                t0 = time.perf_counter()
                shutil.rmtree(d)
                measured["delete"] = time.perf_counter() - t0
                measured["where_just_deleted"] = create(d, n)
                measured["tmpfs_new_dir"] = create(os.path.join(shm, "round%d" % r), n)
                for what, s in measured.items():
                    times.setdefault(what, []).append(s)
                    record = {"tool": "file_creation", "measure": what, "round": r, "files": n,
                              "seconds": round(s, 4), "parent": parent,
                              "fs": fs["tmpfs"] if what.startswith("tmpfs") else fs["parent"]}
                    out.write(json.dumps(runmeta.stamp(record, meta)) + "\n")
                print("round %d: %s" % (r, ", ".join("%s %.2f s" % kv for kv in measured.items())),
                      flush=True)
    finally:
        for d in keep:
            shutil.rmtree(d, ignore_errors=True)
    print()
    print("| %d files (temp + rename, 64 a dir) | file system | seconds, each round | median |" % n)
    print("|---|---|---|---|")
    for what, label in (("new_dir", "in a new directory"), ("delete", "rm -rf of them"),
                        ("where_just_deleted", "again, where they were just deleted"),
                        ("tmpfs_new_dir", "in a new directory on /dev/shm")):
        ts = times[what]
        print("| %s | %s | %s | **%.2f s** |" % (
            label, fs["tmpfs"] if what.startswith("tmpfs") else "%s (%s)" % (fs["parent"], parent),
            " / ".join("%.2f" % t for t in ts), statistics.median(ts)))
    print()
    print("(raw results: %s)" % results)


if __name__ == "__main__":
    main(sys.argv[1:])
