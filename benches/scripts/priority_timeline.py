#!/usr/bin/env python3
"""The scheduling timeline of one tile-server run, from its debug log
(RUST_LOG=info,render_service::service=debug): when each viewport arrived,
which metatile each worker started and finished, and, seen from the LAST
viewport (the last move of a drag), which renders were already running then
and when the last screen's own metatiles started and ended. Prints one JSON
object (times in seconds, relative to the last viewport). Usage:
    python3 benches/scripts/priority_timeline.py TILE-SERVER.log
Used by priority_osm_carto.sh with TRACE=1.
"""
import json
import re
import sys
from datetime import datetime

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LINE = re.compile(r"^(\S+Z)\s+(\w+)\s+(\S+): (.*)$")
FIELD = re.compile(r"(\w+)=(\"[^\"]*\"|\S+)")
RANGE = re.compile(r"z: (\d+), x_start: (\d+), x_count: (\d+), y_min: (\d+), y_max: (\d+)")


def parse(path):
    events = []
    with open(path, errors="replace") as f:
        for raw in f:
            m = LINE.match(ANSI.sub("", raw.rstrip("\n")))
            if not m or m.group(2) != "DEBUG":
                continue
            t = datetime.strptime(m.group(1)[:26], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
            msg = m.group(4)
            if msg.startswith("viewport"):
                r = RANGE.search(msg)
                events.append(("viewport", t, tuple(int(v) for v in r.groups())))
                continue
            fields = dict(FIELD.findall(msg))
            if msg.startswith("job started"):
                events.append(("start", t, fields))
            elif msg.startswith("job done"):
                events.append(("done", t, fields))
            elif msg.startswith("metatile rendered"):
                events.append(("rendered", t, fields))
    return events


def timeline(path):
    events = parse(path)
    views = [e for e in events if e[0] == "viewport"]
    if not views:
        return {"error": "no viewport in the log (was RUST_LOG set?)"}
    t_last, last_range = views[-1][1], views[-1][2]
    t_first = views[0][1]
    jobs = {}
    for kind, t, f in events:
        if kind == "start":
            jobs[f["job"]] = {"job": int(f["job"]), "metatile": f["metatile"], "class": f["class"],
                              "start": t - t_last}
        elif kind == "done" and f["job"] in jobs:
            jobs[f["job"]]["end"] = t - t_last
        elif kind == "rendered" and f["job"] in jobs:
            jobs[f["job"]]["render_s"] = float(f["ms"]) / 1000
    z, x0, nx, y0, y1 = last_range

    def on_last_screen(meta):
        mz, mx, my = (int(v) for v in meta.split("@")[0].split("/"))
        size = int(meta.split("@")[1])
        return mz == z and mx < x0 + nx and mx + size > x0 and my <= y1 and my + size > y0

    timed = [j for j in jobs.values() if j["metatile"].startswith("%d/" % z)]
    in_flight = [j for j in timed if j["start"] < 0 and j.get("end", 1e9) > 0]
    last_jobs = [j for j in timed if on_last_screen(j["metatile"]) and j.get("end", 1e9) > 0]
    r3 = lambda v: None if v is None else round(v, 3)
    return {
        "drag_s": r3(t_last - t_first),
        "viewports": len(views),
        "jobs": len(jobs),
        "renders_z": {"n": len([j for j in timed if "render_s" in j]),
                      "mean_s": r3(sum(j["render_s"] for j in timed if "render_s" in j)
                                   / max(1, len([j for j in timed if "render_s" in j])))},
        "in_flight_at_last_move": [
            {"metatile": j["metatile"], "class": j["class"], "started": r3(j["start"]), "ends": r3(j.get("end")),
             "last_screen": on_last_screen(j["metatile"])} for j in sorted(in_flight, key=lambda j: j["start"])],
        "last_screen_jobs": [
            {"metatile": j["metatile"], "class": j["class"], "started": r3(j["start"]), "ends": r3(j.get("end")),
             "render_s": r3(j.get("render_s"))} for j in sorted(last_jobs, key=lambda j: j["start"])],
        "started_after_last_move": [
            {"metatile": j["metatile"], "class": j["class"], "started": r3(j["start"]), "ends": r3(j.get("end"))}
            for j in sorted(timed, key=lambda j: j["start"]) if j["start"] >= 0],
    }


if __name__ == "__main__":
    print(json.dumps(timeline(sys.argv[1]), separators=(",", ":")))
