#!/usr/bin/env python3
"""render-core's image cache: drawing one SVG marker from the raster made
once (cache hit, the renderer's way for markers that do not turn), painted
from the vector each time (markers turned along a line), and with no cache
at all (the file read and parsed each time). The criterion bench `images`;
one JSON line per scale factor (with "runmeta": commit, dirty flag, machine,
load average) and the Markdown table of docs/performance.md. Statistic:
criterion's median.

    RESULTS=benches/results/image_cache-DATE.jsonl \\
        python3 benches/scripts/image_cache.py [--allow-dirty] [--cpu N]

Refuses a tree with uncommitted changes unless --allow-dirty or
ALLOW_DIRTY=1.
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import criterion_run  # noqa: E402
import runmeta  # noqa: E402

SCALES = ["1", "2"]


def main(argv):
    try:
        meta = runmeta.static(runmeta.allow_dirty_from(argv))
    except runmeta.DirtyTree as e:
        sys.exit("image_cache: %s" % e)
    cpu = int(argv[argv.index("--cpu") + 1]) if "--cpu" in argv else None
    results = os.environ.get("RESULTS") or tempfile.mkstemp(suffix=".jsonl")[1]
    ns = criterion_run.run("images", warm_up_s=1, measurement_s=2, taskset=cpu)
    print("commit %s%s, %s, %d CPUs" % (meta["commit"][:12], " (dirty)" if meta["dirty"] else "",
                                        meta["cpu_model"], meta["cores"]))
    print()
    print("| scale factor | cached raster | vector each time | no cache | vector / cached | no cache / cached |")
    print("|---|---|---|---|---|---|")
    with open(results, "a") as out:
        for scale in SCALES:
            got = {k: ns.get("marker_%s_x%s" % (k, scale)) for k in ("cached", "vector", "uncached")}
            if any(v is None for v in got.values()):
                sys.exit("criterion printed no result for x%s: %s" % (scale, got))
            record = {"tool": "image_cache", "scale_factor": float(scale), "cpu": cpu,
                      "statistic": "median"}
            record.update({k + "_ns": round(v, 1) for k, v in got.items()})
            out.write(json.dumps(runmeta.stamp(record, meta)) + "\n")
            print("| %s | %.2f µs | %.2f µs | %.2f µs | %.1f× | %.1f× |" % (
                scale, got["cached"] / 1e3, got["vector"] / 1e3, got["uncached"] / 1e3,
                got["vector"] / got["cached"], got["uncached"] / got["cached"]))
    print()
    print("(raw results: %s)" % results)


if __name__ == "__main__":
    main(sys.argv[1:])
