#!/usr/bin/env python3
"""Turns the JSON lines of priority_osm_carto.sh into the table of
docs/performance.md ("Viewport priority on openstreetmap-carto (issue #11)").
One statistic throughout: the median of the runs (every run is listed below
the table). Per scenario: the last screen's time (seconds from the last move
until every tile of the last screen is answered), the idle screen's time
(scenario A, the same screen with nothing else queued) and their ratio, for
tessera, renderd and tessera --fifo. Usage:
    python3 benches/scripts/priority_osm_carto_report.py RESULTS.jsonl
"""
import json
import statistics
import sys

DESC = {
    "A": "A idle screen",
    "B": "B drag, 10 screens × 0.2 s",
    "C": "C z9 bulk backlog + drag 0.2 s",
    "D": "D drag, 10 screens × 0.02 s",
}
TARGET = {"B": 1.2, "C": 1.2, "D": 1.2}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def f3(v):
    return "-" if v is None else "%.2f" % v


def ratio(a, b):
    return "%.2f×" % (a / b) if a is not None and b else "-"


def main(path):
    recs = [json.loads(line) for line in open(path) if line.strip()]
    pans = [r for r in recs if r.get("kind") == "pan"]
    meta = [r for r in recs if r.get("kind") == "meta"]
    rd, ts = {}, {}
    for r in pans:
        if r["tool"] == "renderd":
            res = r["result"]
            s = res["scenario"]
            last = res["seconds"] if s == "A" else res["last_viewport_s"]
            rd.setdefault(s, []).append((last, res))
        else:
            res = r.get("result")
            ts.setdefault((r["order"], r["scenario"]), []).append(
                (res["last_screen_s"] if res else None, r))
    rd_idle = med([x[0] for x in rd.get("A", [])])
    ts_idle = med([x[0] for x in ts.get(("priority", "A"), [])])
    fifo_idle = med([x[0] for x in ts.get(("fifo", "A"), [])])
    runs = max([len(v) for v in list(rd.values()) + list(ts.values())] or [0])
    for m in meta:
        if "first_bbox" in m:
            print("z%d drag from %s east, last screen = A: %s; %s; %d copies of the extract, %.0f m apart\n" % (
                m["zoom"], m["first_bbox"], m["last_bbox"], m["screens"], m["copies"], m["copy_dx_m"]))
    print("| scenario | tessera last screen s | tessera idle s | tessera last / idle | renderd last screen s "
          "| renderd idle s | renderd last / idle | tessera --fifo last screen s (/ its idle) |")
    print("|---|---|---|---|---|---|---|---|")
    for s in "ABCD":
        keys = sorted(k for k in ts if k[0] == "priority" and k[1].split("-")[0] == s) or [None]
        rd_last = med([x[0] for x in rd.get(s, [])])
        fifo = [k for k in ts if k[0] == "fifo" and k[1].split("-")[0] == s]
        fifo_txt = "; ".join("%s (%s)%s" % (
            f3(med([x[0] for x in ts[k]])), ratio(med([x[0] for x in ts[k]]), fifo_idle),
            "" if len(ts[k]) == runs else ", %d run%s" % (len(ts[k]), "" if len(ts[k]) == 1 else "s"))
            for k in fifo) or "-"
        for i, k in enumerate(keys):
            last = med([x[0] for x in ts[k]]) if k else None
            mode = " (%s)" % k[1].split("-")[1] if k and "-" in k[1] else ""
            r = last / ts_idle if last is not None and ts_idle else None
            verdict = ""
            if s in TARGET and r is not None:
                verdict = " (≤ %.1f×: %s)" % (TARGET[s], "met" if r <= TARGET[s] else "missed")
            first = i == 0
            print("| %s%s | %s | %s | %s%s | %s | %s | %s | %s |" % (
                DESC[s], mode, "**%s**" % f3(last) if last is not None else "-", f3(ts_idle),
                ratio(last, ts_idle), verdict,
                f3(rd_last) if first else "″", f3(rd_idle) if first else "″",
                ratio(rd_last, rd_idle) if first else "″", fifo_txt if first else "″"))
    print("\nStatistic: median of %d runs (tessera --fifo C: as many as were run). Every run:\n" % runs)
    print("| scenario | server | last screen s, each run | notes (medians) |")
    print("|---|---|---|---|")
    for s in "ABCD":
        if s in rd:
            zr = [x[1].get("renders", {}).get("z%d" % x[1]["zoom"]) for x in rd[s]]
            zr = [z for z in zr if z]
            note = ""
            if zr:
                note = "z%d metatiles rendered %s, mean %s s each" % (
                    rd[s][0][1]["zoom"], "%.0f" % med([z["n"] for z in zr]), f3(med([z["mean_s"] for z in zr])))
            if s == "C":
                bl = [x[1].get("backlog", {}) for x in rd[s]]
                note += "; backlog: %s of %s bulk requests answered NotDone at once" % (
                    "%.0f" % med([b.get("notdone_at_once") for b in bl]), bl[0].get("sent"))
            print("| %s | renderd | %s | %s |" % (DESC[s], " / ".join(f3(x[0]) for x in rd[s]), note))
        for k in sorted(k for k in ts if k[1].split("-")[0] == s):
            order, scen = k
            runs_k = ts[k]
            done = [x[1] for x in runs_k if x[1].get("result")]
            notes = []
            if done:
                notes.append("metatiles rendered %.0f" % med([x["metatiles_rendered"] for x in done]))
                notes.append("wall %.1f s" % med([x["wall_s"] for x in done]))
                if s != "A":
                    notes.append("earlier screens: %.0f tiles done, %.0f cancelled" % (
                        med([x["result"]["earlier_done"] for x in done]),
                        med([x["result"]["earlier_cancelled"] for x in done])))
                if "backlog_tiles" in done[0]["result"]:
                    notes.append("backlog %d tiles, rendered during the drag %s" % (
                        done[0]["result"]["backlog_tiles"],
                        "/".join(str(x["result"]["backlog_rendered"]) for x in done)))
            timeouts = [x[1] for x in runs_k if not x[1].get("result")]
            if timeouts:
                notes.append("%d run(s) not complete within %s s" % (len(timeouts), timeouts[0].get("timeout_s")))
            server = "tessera" + (" --fifo" if order == "fifo" else "") + (
                " (%s)" % scen.split("-")[1] if "-" in scen else "")
            print("| %s | %s | %s | %s |" % (
                DESC[s], server, " / ".join(f3(x[0]) if x[0] is not None else "timeout" for x in runs_k),
                "; ".join(notes)))
    timelines(recs)
    loads = [r.get("load") for r in pans if r.get("load")]
    if loads:
        ones = [float(l.split()[0]) for l in loads]
        print("\n1-min load average at the end of each scenario: %.2f-%.2f" % (min(ones), max(ones)))


def timelines(recs):
    """TRACE=1 runs: what held the workers at the last move, and when the
    last screen's metatiles started and ended (seconds after the last move)."""
    rows = [r for r in recs if r.get("kind") == "timeline" and r["scenario"] != "A"]
    if not rows:
        return
    print("\nTimelines (TRACE=1; seconds after the last move; metatiles by x, all z17 y 37936):\n")
    print("| scenario | run | drag s | running at the last move (class it was started in): ends at "
          "| last screen's metatiles: started / ended | then, left-behind work started |")
    print("|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["scenario"], r["order"], r["run"])):
        t = r["timeline"]
        x = lambda j: j["metatile"].split("/")[1]
        cls = lambda j: j["class"].strip('"')
        fly = ", ".join("%s (%s%s): %s" % (x(j), cls(j), ", on the last screen" if j["last_screen"] else "",
                                          f3(j["ends"])) for j in t["in_flight_at_last_move"]) or "nothing"
        last = ", ".join("%s: %s / %s" % (x(j), f3(j["started"]), f3(j["ends"])) for j in t["last_screen_jobs"])
        lastkeys = {j["metatile"] for j in t["last_screen_jobs"]}
        after = [j for j in t["started_after_last_move"] if j["metatile"] not in lastkeys]
        afters = ", ".join("%s (%s) at %s" % (x(j), cls(j), f3(j["started"])) for j in after[:4])
        if len(after) > 4:
            afters += ", ... (%d in all)" % len(after)
        print("| %s%s | %d | %s | %s | %s | %s |" % (
            r["scenario"], " --fifo" if r["order"] == "fifo" else "", r["run"], f3(t["drag_s"]), fly, last,
            afters or "-"))


if __name__ == "__main__":
    main(sys.argv[1])
