#!/usr/bin/env python3
"""ipc-proto codec cost per message: the criterion bench `ipc_codec`
(encode and decode of five representative messages), one JSON line per
message (with "runmeta": commit, dirty flag, machine, load average) and the
Markdown table of docs/performance.md. Statistic: criterion's median.

    RESULTS=benches/results/ipc_codec-DATE.jsonl \\
        python3 benches/scripts/ipc_codec.py [--allow-dirty] [--cpu N]

--cpu N pins the measurement to CPU N. Refuses a tree with uncommitted
changes unless --allow-dirty or ALLOW_DIRTY=1. About a minute after the build.
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import criterion_run  # noqa: E402
import runmeta  # noqa: E402

MESSAGES = [
    ("ping", "`Ping`"),
    ("render_one", "`RenderRequest`, one tile"),
    ("render_list_64", "`RenderRequest`, 64 tiles"),
    ("tile_done_path", "`TileDone` with a store path"),
    ("tile_done_png_4k", "`TileDone` with a 4 KiB PNG inline"),
]


def main(argv):
    try:
        meta = runmeta.static(runmeta.allow_dirty_from(argv))
    except runmeta.DirtyTree as e:
        sys.exit("ipc_codec: %s" % e)
    cpu = int(argv[argv.index("--cpu") + 1]) if "--cpu" in argv else None
    results = os.environ.get("RESULTS") or tempfile.mkstemp(suffix=".jsonl")[1]
    ns = criterion_run.run("ipc_codec", warm_up_s=1, measurement_s=2, taskset=cpu)
    print("commit %s%s, %s, %d CPUs" % (meta["commit"][:12], " (dirty)" if meta["dirty"] else "",
                                        meta["cpu_model"], meta["cores"]))
    print()
    print("| message | encode | decode |")
    print("|---|---|---|")
    with open(results, "a") as out:
        for key, label in MESSAGES:
            enc, dec = ns.get("ipc_encode/" + key), ns.get("ipc_decode/" + key)
            if enc is None or dec is None:
                sys.exit("criterion printed no result for %s (encode %s, decode %s)" % (key, enc, dec))
            record = {"tool": "ipc_codec", "message": key, "encode_ns": round(enc, 3),
                      "decode_ns": round(dec, 3), "cpu": cpu, "statistic": "median"}
            out.write(json.dumps(runmeta.stamp(record, meta)) + "\n")
            print("| %s | %.0f ns | %.0f ns |" % (label, enc, dec))
    print()
    print("(raw results: %s)" % results)


if __name__ == "__main__":
    main(sys.argv[1:])
