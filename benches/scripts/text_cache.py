#!/usr/bin/env python3
"""render-core's text caches: shaping a label and drawing it, cold (fresh
caches, as for a name met once) against cached (the caches a worker keeps
between metatiles). The criterion bench `text`; one JSON line per label
(with "runmeta": commit, dirty flag, machine, load average) and the Markdown
table of docs/performance.md. Statistic: criterion's median.

    RESULTS=benches/results/text_cache-DATE.jsonl \\
        python3 benches/scripts/text_cache.py [--allow-dirty] [--cpu N]

Refuses a tree with uncommitted changes unless --allow-dirty or
ALLOW_DIRTY=1. Needs the fonts scripts/install-deps.sh installs.
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import criterion_run  # noqa: E402
import runmeta  # noqa: E402

LABELS = [
    ("latin", "Helsingin päärautatieasema"),
    ("japanese", "東京都千代田区丸の内"),
    ("mixed", "Tokyo 東京 Москва"),
]


def main(argv):
    try:
        meta = runmeta.static(runmeta.allow_dirty_from(argv))
    except runmeta.DirtyTree as e:
        sys.exit("text_cache: %s" % e)
    cpu = int(argv[argv.index("--cpu") + 1]) if "--cpu" in argv else None
    results = os.environ.get("RESULTS") or tempfile.mkstemp(suffix=".jsonl")[1]
    ns = criterion_run.run("text", warm_up_s=1, measurement_s=2, taskset=cpu)
    print("commit %s%s, %s, %d CPUs" % (meta["commit"][:12], " (dirty)" if meta["dirty"] else "",
                                        meta["cpu_model"], meta["cores"]))
    print()
    print("| label | shape cold | shape cached | draw cold | draw cached | draw: cold / cached |")
    print("|---|---|---|---|---|---|")
    with open(results, "a") as out:
        for key, text in LABELS:
            got = {k: ns.get("%s_%s_%s" % (k.split("_")[0], key, k.split("_")[1]))
                   for k in ("shape_cold", "shape_cached", "draw_cold", "draw_cached")}
            if any(v is None for v in got.values()):
                sys.exit("criterion printed no result for %s: %s" % (key, got))
            record = {"tool": "text_cache", "label": key, "text": text, "cpu": cpu,
                      "statistic": "median"}
            record.update({k + "_ns": round(v, 1) for k, v in got.items()})
            out.write(json.dumps(runmeta.stamp(record, meta), ensure_ascii=False) + "\n")
            print("| %s | %.1f µs | %.2f µs | %.1f µs | %.1f µs | %.1f× |" % (
                text, got["shape_cold"] / 1e3, got["shape_cached"] / 1e3,
                got["draw_cold"] / 1e3, got["draw_cached"] / 1e3,
                got["draw_cold"] / got["draw_cached"]))
    print()
    print("(raw results: %s)" % results)


if __name__ == "__main__":
    main(sys.argv[1:])
