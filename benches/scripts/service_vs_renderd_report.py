#!/usr/bin/env python3
"""Turns the JSON lines of service_vs_renderd.sh into the markdown tables of
docs/performance.md (section "render-service"). One statistic throughout:
the median of the rounds/runs (every round is listed beside it). Usage:
    python3 benches/scripts/service_vs_renderd_report.py RESULTS.jsonl
"""
import json
import statistics
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def f3(v):
    return "-" if v is None else "%.3f" % v


def throughput(recs):
    rows = [r for r in recs if r.get("kind") == "throughput"]
    if not rows:
        return
    layouts = sorted({r.get("layout", "default") for r in rows if r["tool"] == "tessera"})
    store = "" if layouts == ["default"] else ", %s layout" % "/".join(layouts)
    print("### Throughput (wanted tiles/s per round; ratio of the medians)\n")
    print("| tile set | threads | tessera (tile-server + tile-client seed%s) | renderd (render_list) "
          "| tessera / renderd, medians | target ≥ 2× |" % store)
    print("|---|---|---|---|---|---|")
    names = {"world": "world countries-50m z0-5", "japan": "Japan z8 8×8 block ×10",
             "helsinki": "Helsinki OSM z12-18"}
    for label in ("world", "japan", "helsinki"):
        for n in sorted({r["threads"] for r in rows}):
            rate = {}
            for tool in ("tessera", "renderd"):
                rate[tool] = [r["tiles_wanted"] / r["wall_s"] for r in rows
                              if r["tool"] == tool and r["label"] == label and r["threads"] == n]
            if not rate["tessera"] or not rate["renderd"]:
                continue
            ratio = med(rate["tessera"]) / med(rate["renderd"])
            print("| %s | %d | %s | %s | **%.2f×** | %s |" % (
                names[label], n, " / ".join("%.0f" % v for v in rate["tessera"]),
                " / ".join("%.0f" % v for v in rate["renderd"]), ratio,
                "met" if ratio >= 2 else "missed"))
    print()


def priority(recs):
    pans = [r for r in recs if r.get("kind") == "pan"]
    if not pans:
        return
    # renderd: scenario letter -> list of (first, last) per run
    rd = {}
    for r in pans:
        if r["tool"] != "renderd":
            continue
        res = r["result"]
        s = res["scenario"]
        last = res["seconds"] if s == "A" else res["last_viewport_s"]
        first = res["seconds"] if s == "A" else res["first_viewport_s"]
        rd.setdefault(s, []).append({"last": last, "first": first, "res": res})
    ts = {}
    for r in pans:
        if r["tool"] != "tessera":
            continue
        key = (r["order"], r["scenario"])
        res = r.get("result")
        ts.setdefault(key, []).append(res)
    rd_idle = med([x["last"] for x in rd.get("A", [])])
    ts_idle = med([x["last_screen_s"] for x in ts.get(("priority", "A"), []) if x])
    fifo_idle = med([x["last_screen_s"] for x in ts.get(("fifo", "A"), []) if x])
    print("### Priority: seconds until the last screen is complete (median of runs; all runs listed)\n")
    print("| scenario | server | runs | last screen s, median | × its idle screen | target | runs (s) | notes |")
    print("|---|---|---|---|---|---|---|---|")
    desc = {"A": "A idle screen (24 tiles)", "B": "B drag, 10 screens × 0.2 s",
            "C": "C z9 bulk backlog + drag 0.2 s", "D": "D drag, 10 screens × 0.02 s"}
    targets = {"A": "", "B": "≤ 1.2×", "C": "≤ 1.5×", "D": "≤ 1.2×"}
    limit = {"B": 1.2, "C": 1.5, "D": 1.2}
    for s in "ABCD":
        runs = rd.get(s, [])
        if runs:
            m = med([x["last"] for x in runs])
            note = ""
            if s == "C":
                bl = [x["res"].get("backlog", {}) for x in runs]
                note = "backlog: %s metatile requests sent, %s answered NotDone at once, %s kept" % (
                    "/".join(str(b.get("sent")) for b in bl),
                    "/".join(str(b.get("notdone_at_once")) for b in bl),
                    "/".join(str(b.get("kept_waiting")) for b in bl))
            print("| %s | renderd | %d | %s | %s | | %s | %s |" % (
                desc[s], len(runs), f3(m), "%.2f×" % (m / rd_idle) if m and rd_idle else "-",
                " / ".join(f3(x["last"]) for x in runs), note))
        for order, idle in (("priority", ts_idle), ("fifo", fifo_idle)):
            for key in sorted(k for k in ts if k[0] == order and k[1].startswith(s)):
                runs = ts[key]
                done = [x for x in runs if x]
                m = med([x["last_screen_s"] for x in done])
                timeouts = len(runs) - len(done)
                ratio = m / idle if m and idle else None
                target = targets[s] if order == "priority" else "(comparison)"
                if order == "priority" and s in limit and ratio is not None:
                    target += " met" if ratio <= limit[s] else " missed"
                notes = []
                if done and s != "A":
                    notes.append("earlier screens: %s tiles done, %s cancelled (median)" % (
                        "%.0f" % med([x["earlier_done"] for x in done]),
                        "%.0f" % med([x["earlier_cancelled"] for x in done])))
                if done and "backlog_tiles" in done[0]:
                    notes.append("backlog %d tiles, refused %s, rendered during the drag %s" % (
                        done[0]["backlog_tiles"], "/".join(str(x["backlog_refused"]) for x in done),
                        "/".join(str(x["backlog_rendered"]) for x in done)))
                if timeouts:
                    notes.append("%d run(s) not complete within %s s" % (
                        timeouts, [r for r in pans if r["tool"] == "tessera" and r["order"] == order
                                   and r["scenario"] == key[1]][0].get("timeout_s", "?")))
                server = "tessera" + (" --fifo" if order == "fifo" else "") + " (%s)" % key[1].split("-", 1)[-1] \
                    if "-" in key[1] else "tessera" + (" --fifo" if order == "fifo" else "")
                print("| %s | %s | %d | %s | %s | %s | %s | %s |" % (
                    desc[s], server, len(runs), f3(m), "%.2f×" % ratio if ratio else "-", target,
                    " / ".join(f3(x["last_screen_s"]) if x else "timeout" for x in runs), "; ".join(notes)))
    print()


def overhead(recs):
    rows = [r for r in recs if r.get("kind") == "overhead"]
    if not rows:
        return
    print("### Overhead: request → TileDone for a stored tile, against Ping/Pong (µs)\n")
    print("| transport | N | request p50 | request p99 | ping p50 | ping p99 | request − ping, p50 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        q, p = r["request"], r["ping"]
        print("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f |" % (
            r["label"], q["n"], q["p50_us"], q["p99_us"], p["p50_us"], p["p99_us"],
            q["p50_us"] - p["p50_us"]))
    print()


def memory(recs):
    q = [r for r in recs if r.get("kind") == "queue"]
    s = [r for r in recs if r.get("kind") == "soak"]
    if q:
        print("### Memory: tiles queued\n")
        print("| requests | tiles sent | queued_bulk at measurement | rendered meanwhile | busy | seconds to queue "
              "| RSS before | RSS queued | RSS after disconnect | target ≤ 200 MB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in q:
            mb = r["rss_queued_kib"] / 1024
            print("| %d | %d | %d | %d | %d | %.1f | %.1f MB | **%.1f MB** | %.1f MB | %s |" % (
                r["requests"], r["tiles_sent"], r["queued_bulk"], r["rendered_meanwhile"], r["busy"],
                r["seconds_to_queue"], r["rss_before_kib"] / 1024, mb, r["rss_after_disconnect_kib"] / 1024,
                "met" if mb <= 200 else "missed"))
        print()
    for r in s:
        samples = r["rss_samples_kib"]
        half = samples[len(samples) // 3:]
        # least-squares slope over the last two thirds, MB per minute
        n = len(half)
        if n >= 2:
            mt = sum(t for t, _ in half) / n
            mk = sum(k for _, k in half) / n
            den = sum((t - mt) ** 2 for t, _ in half) or 1
            slope = sum((t - mt) * (k - mk) for t, k in half) / den * 60 / 1024
        else:
            slope = float("nan")
        print("### Memory: soak\n")
        print("%d connections, %d requests (%d waited for, the rest left queued by a vanishing client) in %.0f s. "
              "RSS (MB) at t = %s s: %s. Slope over the last two thirds: %.2f MB/min.\n" % (
                  r["connections"], r["requests"], r["requests_waited"], r["seconds"],
                  ", ".join("%.0f" % t for t, _ in samples), ", ".join("%.1f" % (k / 1024) for _, k in samples),
                  slope))


def main():
    recs = load(sys.argv[1])
    for r in recs:
        if r.get("kind") == "meta":
            print("<!-- %s -->" % json.dumps({k: v for k, v in r.items() if k != "runmeta"}))
    stamped = [r["runmeta"] for r in recs if "runmeta" in r]
    if stamped:
        print("<!-- commit %s; load average (1 min) %.2f-%.2f over %d lines -->" % (
            ", ".join(sorted({m["commit"] + (" (dirty: %s)" % ", ".join(m["dirty_paths"])
                                             if m["dirty"] else "") for m in stamped})),
            min(m["loadavg"][0] for m in stamped), max(m["loadavg"][0] for m in stamped),
            len(stamped)))
    else:
        print("<!-- no run metadata: these lines predate runmeta.py (commit and tree state "
              "unknown) -->")
    print()
    throughput(recs)
    priority(recs)
    overhead(recs)
    memory(recs)


if __name__ == "__main__":
    main()
