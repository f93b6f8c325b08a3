#!/usr/bin/env python3
"""Redis 7 against NATS 2.9 JetStream as tessera's scale-out engine
(issue #14): the cost of one metatile job's lifecycle, measured on real
servers started here on loopback.

Redis   the five Lua scripts of crates/render-service/src/cluster/lua/,
        run as tessera runs them: a front publishes (publish.lua), a render
        node waits on the bell (BRPOP), claims (claim.lua), renews its lease
        once (renew.lua) and completes (complete.lua, "done"); the front reads
        the completion from its stream (XREAD on <prefix>done:<front>).
NATS    the closest JetStream design: one work-queue stream per priority
        class (a stream has no priority inside it); the front publishes with
        Nats-Msg-Id (duplicates merge inside the window) and subscribes to
        the job's completion subject; the node pulls one message (no_wait
        next request, top class first), sends +WPI (the lease is ack_wait),
        publishes the completion on core NATS and acks. The job sits in the
        top class, the cheapest case for NATS (each empty higher class
        would cost a node one more round trip).

Phases, each R rounds (engines alternate which goes first), one statistic:
the median over the rounds.

lifecycle  N jobs one after another, one front and one node connection:
           client round trips (a request whose reply the client waits
           for), wire bytes (kernel TCP counters of the server's client
           sockets, `ss -ti`, the same for both; the servers' own counters,
           Redis INFO total_net_*_bytes and NATS /varz in/out_bytes, are
           recorded too), server CPU seconds (/proc/<pid>/stat utime+stime
           for both), and wall-clock latency per lifecycle.
rerank     N queued jobs each given a new priority: Redis publishes again
           with a new score; NATS deletes the message by sequence and
           publishes it to the next class.
cancel     N queued jobs withdrawn: Redis withdraw.lua; NATS deletes by
           sequence.
ceiling    P client processes (default 4), each running C concurrent
           whole lifecycles (publish .. completion) for S seconds: jobs/s
           and server CPU utilisation. Whole lifecycles per process keep
           the job mix the same for both engines without a separate
           front/node balance to tune. The machine has 2 cores shared by
           the clients and the server, so the ceiling is the machine's, and
           the server CPU per job there says which engine would saturate
           first.

A few semantic checks run first on each engine (merge across fronts,
withdraw, lease expiry, cancel of a delivered job) and are recorded as
"semantics" lines.

Every JSON line carries "runmeta" (runmeta.py); a dirty tree is refused.

Usage: python3 benches/scripts/engine_choice.py [--jobs 2000] [--rounds 5]
           [--seconds 8] [--procs 4] [--concurrency 8] [--json FILE]
           [--allow-dirty]
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import runmeta  # noqa: E402

try:
    import redis.asyncio as aioredis
    import nats
    from nats.js.api import (AckPolicy, ConsumerConfig, RetentionPolicy, StorageType,
                             StreamConfig)
except ImportError as e:
    sys.exit("engine_choice: %s (pip install redis nats-py)" % e)

LUA_DIR = os.path.join(ROOT, "crates/render-service/src/cluster/lua")
PREFIX = "tessera:bench:"
QNAME = "demo@abc123"
QUEUE = PREFIX + "q:" + QNAME
RUNNING = PREFIX + "running"
BELL = PREFIX + "bell"
LEASE_MS = 30000
STREAM_CAP = 10000
CLASSES = 4                       # NATS priority classes, one stream each
NATS_SUBJ = "tessera.bench.jobs.p%d"
NATS_STREAM = "TESSERA_JOBS_P%d"
NATS_DONE = "tessera.bench.done."
CONSUMER = "render"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- servers

class ServerError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process in its own process group and temp dir; stop()
    kills the group and removes the dir."""

    def __init__(self, name, cmd, tmp, port):
        self.name, self.tmp, self.port = name, tmp, port
        self.errlog = open(os.path.join(tmp, "stderr.log"), "w+")
        self.proc = subprocess.Popen(cmd, cwd=tmp, stdout=self.errlog, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def fail(self, why):
        self.errlog.flush()
        self.errlog.seek(0)
        tail = self.errlog.read()[-2000:]
        raise ServerError("%s did not start (%s); its output:\n%s" % (self.name, why, tail))

    def cpu_seconds(self):
        # utime + stime of every thread of the process, in clock ticks.
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wire_bytes(self):
        """TCP payload bytes (received from, sent to clients) summed over the
        server's established client sockets: kernel counters, the same for
        both engines."""
        out = subprocess.run(["ss", "-tinH", "state", "established",
                              "( sport = :%d )" % self.port],
                             capture_output=True, text=True, check=True).stdout
        rx = tx = 0
        for tok in out.split():
            if tok.startswith("bytes_received:"):
                rx += int(tok.split(":")[1])
            elif tok.startswith("bytes_acked:"):
                tx += int(tok.split(":")[1])
        return rx + tx

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        self.errlog.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_until(server, ready, what):
    deadline = time.time() + 15
    while time.time() < deadline:
        if server.proc.poll() is not None:
            server.fail("exited with status %d" % server.proc.returncode)
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.1)
    server.fail("no %s within 15 s" % what)


def start_redis():
    tmp = tempfile.mkdtemp(prefix="engine-choice-redis.")
    port = free_port()
    srv = Server("redis-server", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", tmp,
                                  "--daemonize", "no"], tmp, port)

    def ready():
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    try:
        wait_until(srv, ready, "PONG")
    except ServerError:
        srv.stop()
        raise
    return srv


def start_nats(storage):
    tmp = tempfile.mkdtemp(prefix="engine-choice-nats.")
    port, mport = free_port(), free_port()
    srv = Server("nats-server", ["nats-server", "-a", "127.0.0.1", "-p", str(port),
                                 "-m", str(mport), "-js", "-sd", tmp], tmp, port)
    srv.monitor = "http://127.0.0.1:%d" % mport
    srv.storage = storage

    def ready():
        with urllib.request.urlopen(srv.monitor + "/jsz", timeout=1) as r:
            return json.load(r).get("config") is not None
    try:
        wait_until(srv, ready, "JetStream on /jsz")
    except ServerError:
        srv.stop()
        raise
    return srv


def nats_varz_bytes(srv):
    with urllib.request.urlopen(srv.monitor + "/varz", timeout=2) as r:
        v = json.load(r)
    return v["in_bytes"] + v["out_bytes"]


async def redis_info_bytes(r):
    s = await r.info("stats")
    return s["total_net_input_bytes"] + s["total_net_output_bytes"]


# ---------------------------------------------------------------- redis

def job_name(rnd, i):
    # <map>@<version>/<size>/<z>/<x>/<y>; the round is in x so no two rounds
    # share a job (NATS would merge them inside its duplicate window).
    return "%s/8/12/%d/%d" % (QNAME, rnd * 100000 + (i // 512) * 8, (i % 512) * 8)


class RedisSide:
    """One front and one render node, each with its own connection; every
    call that waits for a reply counts as a round trip."""

    def __init__(self, srv, front="f1", node="n1"):
        self.srv, self.front_id, self.node_id = srv, front, node
        self.rt = 0
        self.last_id = b"0-0"

    async def open(self):
        kw = dict(host="127.0.0.1", port=self.srv.port, single_connection_client=True)
        self.front = aioredis.Redis(**kw)
        self.node = aioredis.Redis(**kw)
        self.sha = {}
        # As tessera loads them: the shared helpers first (engine.rs).
        with open(os.path.join(LUA_DIR, "common.lua")) as f:
            common = f.read()
        for name in ("publish", "withdraw", "claim", "renew", "complete"):
            with open(os.path.join(LUA_DIR, name + ".lua")) as f:
                self.sha[name] = await self.front.script_load(common + "\n" + f.read())
        return self

    async def close(self):
        await self.front.aclose()
        await self.node.aclose()

    async def call(self, conn, name, keys, args):
        self.rt += 1
        return await conn.evalsha(self.sha[name], len(keys), *keys, *args)

    async def publish(self, job, score, front=None):
        return await self.call(self.front, "publish",
                               [QUEUE, PREFIX + "want:" + job, RUNNING, PREFIX + "force:" + job, BELL],
                               [front or self.front_id, job, score, "0"])

    async def withdraw(self, job, front=None):
        return await self.call(self.front, "withdraw",
                               [QUEUE, PREFIX + "want:" + job, PREFIX + "force:" + job],
                               [front or self.front_id, job])

    async def wait_bell(self):
        self.rt += 1
        return await self.node.brpop([BELL], timeout=1)

    async def claim(self, lease_ms=LEASE_MS):
        return await self.call(self.node, "claim", [RUNNING, QUEUE],
                               [self.node_id, lease_ms, PREFIX])

    async def renew(self, job):
        return await self.call(self.node, "renew",
                               [RUNNING, PREFIX + "lease:" + job, PREFIX + "want:" + job],
                               [self.node_id, job, LEASE_MS])

    async def complete(self, job, status="done"):
        return await self.call(self.node, "complete",
                               [RUNNING, PREFIX + "lease:" + job, PREFIX + "want:" + job, QUEUE,
                                PREFIX + "force:" + job],
                               [self.node_id, job, status, "", 12, STREAM_CAP, PREFIX])

    async def read_done(self, front=None):
        self.rt += 1
        key = PREFIX + "done:" + (front or self.front_id)
        res = await self.front.xread({key: self.last_id}, count=1, block=10000)
        if not res:
            raise RuntimeError("redis: no completion on " + key)
        self.last_id, fields = res[0][1][0]
        return fields[b"job"].decode(), fields[b"status"].decode()

    async def lifecycle(self, job, score):
        assert await self.publish(job, score) == b"queued"
        await self.wait_bell()
        got = await self.claim()
        assert got and got[0].decode() == job, got
        assert await self.renew(job) == 1
        assert await self.complete(job) == 1
        assert await self.read_done() == (job, "done")

    async def assert_empty(self):
        # Every lifecycle must leave nothing behind but the stream.
        for key in (QUEUE, RUNNING):
            n = await self.front.zcard(key)
            assert n == 0, "%s holds %d after the phase" % (key, n)
        left = [k for k in await self.front.keys(PREFIX + "*")
                if not k.startswith((PREFIX + "done:").encode()) and not k.startswith(
                    (PREFIX + "stat:").encode()) and k != BELL.encode()]
        assert not left, left[:5]


async def redis_semantics(srv):
    """Quick functional checks of the Lua scripts as tessera relies on them."""
    r = await RedisSide(srv).open()
    out = {}
    await r.front.flushall()
    job = QNAME + "/8/12/8/8"
    # Two fronts want one job: one queue entry at the better score, and one
    # completion on each front's stream.
    await r.publish(job, 500, front="fa")
    await r.publish(job, 100, front="fb")
    out["merge_one_entry"] = await r.front.zcard(QUEUE) == 1
    out["merge_best_score"] = await r.front.zscore(QUEUE, job) == 100
    # Re-rank by one front moves the job (the lower score wins).
    await r.publish(job, 50, front="fa")
    out["rerank_within_queue"] = await r.front.zscore(QUEUE, job) == 50
    # One front withdraws: the job stays for the other, at its score.
    await r.withdraw(job, front="fa")
    out["withdraw_keeps_for_other"] = await r.front.zscore(QUEUE, job) == 100
    await r.publish(job, 50, front="fa")
    # A node claims with a 50 ms lease and dies: the next claim reaps it
    # and hands it out again.
    got = await r.claim(lease_ms=50)
    await asyncio.sleep(0.12)
    r.node_id = "n2"
    got2 = await r.claim()
    out["lease_expiry_requeues"] = bool(got and got2 and got[0] == got2[0] == job.encode())
    # The dead node finishing late must not steal n2's lease.
    r.node_id = "n1"
    await r.renew(job)
    out["late_renew_refused"] = await r.renew(job) == 0
    r.node_id = "n2"
    told = await r.complete(job)
    streams = [await r.front.xlen(PREFIX + "done:" + f) for f in ("fa", "fb")]
    out["completion_to_both_fronts"] = told == 2 and streams == [1, 1]
    # Cancel of a running job: the node's next renew says stop.
    await r.publish(job, 10, front="fa")
    await r.claim()
    await r.withdraw(job, front="fa")
    out["cancel_running_renew_stops"] = await r.renew(job) == 0
    await r.complete(job, status="stopped")
    await r.assert_empty()
    await r.front.flushall()
    await r.close()
    return out


async def redis_lifecycle(srv, rnd, n):
    r = await RedisSide(srv).open()
    await r.front.delete(BELL)
    lat = []
    b0, i0, c0 = srv.wire_bytes(), await redis_info_bytes(r.front), srv.cpu_seconds()
    rt0 = r.rt
    for i in range(n):
        t = time.perf_counter()
        await r.lifecycle(job_name(rnd, i), 1000 + i)
        lat.append(time.perf_counter() - t)
    c1, i1, b1 = srv.cpu_seconds(), await redis_info_bytes(r.front), srv.wire_bytes()
    await r.assert_empty()
    await r.front.delete(PREFIX + "done:" + r.front_id)
    await r.close()
    return summarise(n, r.rt - rt0, b1 - b0, i1 - i0, c1 - c0, lat)


async def redis_rerank_cancel(srv, rnd, n):
    r = await RedisSide(srv).open()
    jobs = [job_name(rnd, i) for i in range(n)]
    for i, job in enumerate(jobs):
        await r.publish(job, 5000 + i)
    res = {}
    for phase in ("rerank", "cancel"):
        lat = []
        b0, i0, c0 = srv.wire_bytes(), await redis_info_bytes(r.front), srv.cpu_seconds()
        rt0 = r.rt
        for i, job in enumerate(jobs):
            t = time.perf_counter()
            if phase == "rerank":
                assert await r.publish(job, 100 + i) == b"queued"
            else:
                assert await r.withdraw(job) == 0
            lat.append(time.perf_counter() - t)
        c1, i1, b1 = srv.cpu_seconds(), await redis_info_bytes(r.front), srv.wire_bytes()
        res[phase] = summarise(n, r.rt - rt0, b1 - b0, i1 - i0, c1 - c0, lat)
    await r.assert_empty()
    await r.front.delete(BELL)
    await r.close()
    return res


# ---------------------------------------------------------------- nats

class NatsSide:
    """One front and one render node connection to JetStream."""

    def __init__(self, srv):
        self.srv = srv
        self.rt = 0

    async def open(self):
        url = "nats://127.0.0.1:%d" % self.srv.port
        self.fnc = await nats.connect(url)
        self.nnc = await nats.connect(url)
        self.js = self.fnc.jetstream()
        self.inbox = await self.node_inbox()
        return self

    async def node_inbox(self):
        # JetStream delivers a pulled message under its own subject, routed by
        # subscription id, so nats-py's request() (which matches replies by
        # subject) never sees it: each puller gets an inbox subscription.
        return await self.nnc.subscribe(self.nnc.new_inbox())

    async def close(self):
        await self.fnc.close()
        await self.nnc.close()

    async def setup_streams(self):
        storage = StorageType.MEMORY if self.srv.storage == "memory" else StorageType.FILE
        for c in range(CLASSES):
            await self.js.add_stream(StreamConfig(
                name=NATS_STREAM % c, subjects=[NATS_SUBJ % c],
                retention=RetentionPolicy.WORK_QUEUE, storage=storage, duplicate_window=120))
            # One durable pull consumer per class stream, shared by every node;
            # ack_wait is the lease.
            await self.js.add_consumer(NATS_STREAM % c, ConsumerConfig(
                durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT,
                ack_wait=LEASE_MS / 1000, max_ack_pending=-1))

    async def publish(self, job, score, cls=0, msg_id=None):
        """Returns the PubAck (stream sequence, duplicate flag)."""
        self.rt += 1
        return await self.js.publish(NATS_SUBJ % cls, ("%s %d" % (job, score)).encode(),
                                     headers={"Nats-Msg-Id": msg_id or job})

    async def delete(self, cls, seq):
        self.rt += 1
        return await self.js.delete_msg(NATS_STREAM % cls, seq)

    async def claim(self, streams=None, inbox=None):
        """Top class first, no_wait so an empty class answers at once (one
        reply per request: the message or a 404 status)."""
        inbox = inbox or self.inbox
        for stream in streams or [NATS_STREAM % c for c in range(CLASSES)]:
            self.rt += 1
            await self.nnc.publish("$JS.API.CONSUMER.MSG.NEXT.%s.%s" % (stream, CONSUMER),
                                   b'{"batch":1,"no_wait":true}', reply=inbox.subject)
            msg = await inbox.next_msg(timeout=2)
            if msg.headers and msg.headers.get("Status"):
                continue      # 404 no messages / 408: try the next class
            return msg
        return None

    async def lifecycle(self, job, score):
        sub = await self.fnc.subscribe(NATS_DONE + job)   # SUB: no reply awaited
        ack = await self.publish(job, score)
        assert not ack.duplicate
        msg = await self.claim()
        assert msg is not None and msg.data.split()[0].decode() == job, msg
        await msg.in_progress()                           # the renew: +WPI, no reply
        await self.nnc.publish(NATS_DONE + job, b"done\n\n12")
        await msg.ack()                                   # fire and forget
        self.rt += 1                                      # the front waits for the completion
        done = await sub.next_msg(timeout=2)
        assert done.data.startswith(b"done")
        await sub.unsubscribe()

    async def assert_empty(self):
        for c in range(CLASSES):
            info = await self.js.stream_info(NATS_STREAM % c)
            assert info.state.messages == 0, (c, info.state.messages)


async def nats_semantics(srv):
    ns = await NatsSide(srv).open()
    out = {}
    job = QNAME + "/8/12/8/8-sem"
    # Two fronts publish one job inside the window: merged, but the second
    # front's better priority is dropped with the duplicate.
    a = await ns.publish(job, 500, cls=1)
    b = await ns.publish(job, 100, cls=1)
    out["merge_in_window_duplicate"] = b.duplicate and a.seq == b.seq
    out["merge_promotes_priority"] = False   # by construction: the duplicate is dropped
    # Re-rank: delete from class 1, publish to class 0 (a different stream,
    # so the same Msg-Id is accepted).
    await ns.delete(1, a.seq)
    c = await ns.publish(job, 50, cls=0)
    out["rerank_to_other_class"] = not c.duplicate
    # Moving back into class 1 inside the window is taken for a duplicate.
    await ns.delete(0, c.seq)
    d = await ns.publish(job, 500, cls=1)
    out["rerank_back_within_window_lost"] = bool(d.duplicate)
    # Lease: a node pulls and dies; after ack_wait the message comes back.
    # A work-queue stream takes one consumer per subject, so this uses a
    # stream of its own with a 200 ms ack_wait.
    await ns.js.add_stream(StreamConfig(name="TESSERA_SEM", subjects=["tessera.bench.sem"],
                                        retention=RetentionPolicy.WORK_QUEUE,
                                        storage=StorageType.MEMORY))
    await ns.js.add_consumer("TESSERA_SEM", ConsumerConfig(
        durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT, ack_wait=0.2))
    await ns.js.publish("tessera.bench.sem", job.encode())
    first = await ns.claim(streams=["TESSERA_SEM"])
    await asyncio.sleep(0.4)
    again = await ns.claim(streams=["TESSERA_SEM"])
    out["lease_expiry_redelivers"] = bool(first and again and again.data == first.data)
    await again.ack_sync()
    await ns.js.delete_stream("TESSERA_SEM")
    # Cancel of a delivered (running) message: deleting it succeeds, but
    # the node is not told; its +WPI and ack still go through silently.
    e = await ns.publish(job + "-run", 10, cls=2)
    m = await ns.claim(streams=[NATS_STREAM % 2])
    await ns.delete(2, e.seq)
    await m.in_progress()
    out["cancel_running_node_told"] = False   # +WPI has no reply; nothing tells the node
    await m.ack()
    await ns.fnc.flush()
    await ns.nnc.flush()
    await ns.assert_empty()
    await ns.close()
    return out


async def nats_lifecycle(srv, rnd, n):
    ns = await NatsSide(srv).open()
    lat = []
    await ns.fnc.flush()
    b0, v0, c0 = srv.wire_bytes(), nats_varz_bytes(srv), srv.cpu_seconds()
    rt0 = ns.rt
    for i in range(n):
        t = time.perf_counter()
        await ns.lifecycle(job_name(rnd, i), 1000 + i)
        lat.append(time.perf_counter() - t)
    await ns.nnc.flush()     # the last ack is on the wire
    c1, v1, b1 = srv.cpu_seconds(), nats_varz_bytes(srv), srv.wire_bytes()
    await ns.assert_empty()
    await ns.close()
    return summarise(n, ns.rt - rt0, b1 - b0, v1 - v0, c1 - c0, lat)


async def nats_rerank_cancel(srv, rnd, n):
    ns = await NatsSide(srv).open()
    jobs = [job_name(rnd, i) + "-q" for i in range(n)]
    seqs = [(await ns.publish(job, 5000 + i, cls=1)).seq for i, job in enumerate(jobs)]
    res = {}
    for phase in ("rerank", "cancel"):
        lat = []
        b0, v0, c0 = srv.wire_bytes(), nats_varz_bytes(srv), srv.cpu_seconds()
        rt0 = ns.rt
        for i, job in enumerate(jobs):
            t = time.perf_counter()
            if phase == "rerank":
                # No priority inside a stream: move the job to the class above.
                assert await ns.delete(1, seqs[i])
                seqs[i] = (await ns.publish(job, 100 + i, cls=0)).seq
            else:
                assert await ns.delete(0, seqs[i])
            lat.append(time.perf_counter() - t)
        c1, v1, b1 = srv.cpu_seconds(), nats_varz_bytes(srv), srv.wire_bytes()
        res[phase] = summarise(n, ns.rt - rt0, b1 - b0, v1 - v0, c1 - c0, lat)
    await ns.assert_empty()
    await ns.close()
    return res


# ---------------------------------------------------------------- ceiling

async def redis_ceiling_worker(port, wid, conc, start_at, end_at):
    sides = []
    for k in range(conc):
        srv = type("S", (), {"port": port})()
        s = RedisSide(srv, front="cf%d-%d" % (wid, k), node="cn%d-%d" % (wid, k))
        sides.append(await s.open())
        # Each coroutine is a front reading its own stream from the start:
        # an earlier round's entries must not be there.
        await s.front.delete(PREFIX + "done:" + s.front_id)
    done = 0

    async def loop(k, s):
        nonlocal done
        i = 0
        await asyncio.sleep(max(0.0, start_at - time.time()))
        while time.time() < end_at:
            job = "%s/8/13/%d/%d-%d" % (QNAME, wid * 1000 + k, i * 8, int(start_at))
            assert await s.publish(job, 1000) == b"queued"
            await s.wait_bell()
            got = None
            # Every coroutine publishes before it claims, so the queue holds
            # at least one job per coroutine between the two: never empty,
            # and the loop is only a guard.
            while not got:
                got = await s.claim()
            claimed = got[0].decode()
            assert await s.renew(claimed) == 1
            await s.complete(claimed)
            j, _ = await s.read_done()
            assert j == job
            if time.time() < end_at:
                done += 1
            i += 1
    await asyncio.gather(*(loop(k, s) for k, s in enumerate(sides)))
    for s in sides:
        await s.close()
    return done


async def nats_ceiling_worker(port, wid, conc, start_at, end_at):
    srv = type("S", (), {"port": port})()
    ns = await NatsSide(srv).open()   # one front and one node connection per process
    done = 0

    async def loop(k):
        nonlocal done
        i = 0
        inbox = await ns.node_inbox()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        while time.time() < end_at:
            job = "%s/8/13/%d/%d-%d" % (QNAME, wid * 1000 + k, i * 8, int(start_at))
            sub = await ns.fnc.subscribe(NATS_DONE + job)
            await ns.publish(job, 1000)
            msg = None
            while msg is None:
                msg = await ns.claim(inbox=inbox)
            claimed = msg.data.split()[0].decode()
            await msg.in_progress()
            await ns.nnc.publish(NATS_DONE + claimed, b"done\n\n12")
            await msg.ack()
            await sub.next_msg(timeout=10)
            await sub.unsubscribe()
            if time.time() < end_at:
                done += 1
            i += 1
    await asyncio.gather(*(loop(k) for k in range(conc)))
    await ns.close()
    return done


def ceiling_proc(engine, port, wid, conc, start_at, end_at, q):
    fn = redis_ceiling_worker if engine == "redis" else nats_ceiling_worker
    try:
        q.put(("ok", asyncio.run(fn(port, wid, conc, start_at, end_at))))
    except Exception as e:   # reported to the parent, which fails the run
        q.put(("error", "%s: %r" % (engine, e)))


def ceiling(engine, srv, procs, conc, seconds):
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    start_at = time.time() + 2.0       # time for the processes to start and connect
    end_at = start_at + seconds
    ps = [ctx.Process(target=ceiling_proc, args=(engine, srv.port, w, conc, start_at, end_at, q))
          for w in range(procs)]
    for p in ps:
        p.start()
    time.sleep(max(0.0, start_at - time.time()))
    c0 = srv.cpu_seconds()
    time.sleep(max(0.0, end_at - time.time()))
    c1 = srv.cpu_seconds()
    results = [q.get(timeout=60) for _ in ps]
    for p in ps:
        p.join(30)
    errors = [r[1] for r in results if r[0] != "ok"]
    if errors:
        raise RuntimeError("ceiling worker failed: " + "; ".join(errors))
    jobs = sum(r[1] for r in results)
    return {"jobs_per_s": jobs / seconds, "server_cpu_util": (c1 - c0) / seconds,
            "server_cpu_us_per_job": 1e6 * (c1 - c0) / max(jobs, 1)}


# ---------------------------------------------------------------- report

def summarise(n, rts, wire, own, cpu, lat):
    lat = sorted(lat)
    return {"round_trips_per_job": rts / n, "wire_bytes_per_job": wire / n,
            "server_counter_bytes_per_job": own / n, "server_cpu_us_per_job": 1e6 * cpu / n,
            "latency_us_p50": 1e6 * lat[len(lat) // 2],
            "latency_us_p99": 1e6 * lat[int(len(lat) * 0.99)]}


def medians(rounds):
    keys = rounds[0].keys()
    return {k: round(statistics.median(r[k] for r in rounds), 2) for k in keys}


async def one_round(engine, srv, rnd, n):
    if engine == "redis":
        life = await redis_lifecycle(srv, rnd, n)
        rc = await redis_rerank_cancel(srv, rnd, n)
    else:
        life = await nats_lifecycle(srv, rnd, n)
        rc = await nats_rerank_cancel(srv, rnd, n)
    return {"lifecycle": life, **rc}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--nats-storage", choices=("memory", "file"), default="memory",
                    help="memory matches Redis run without persistence (the default)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--allow-dirty", action="store_true")
    args = ap.parse_args()
    try:
        meta = runmeta.static(runmeta.allow_dirty_from(sys.argv[1:]))
    except runmeta.DirtyTree as e:
        sys.exit("engine_choice: refusing to record a benchmark: %s" % e)
    for tool in ("redis-server", "nats-server", "ss"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            sys.exit("engine_choice: %s is missing (apt install redis-server nats-server iproute2)" % tool)
    out = open(args.json, "a") if args.json else None

    def emit(record):
        line = json.dumps(runmeta.stamp(record, meta), separators=(",", ":"))
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    common = {"bench": "engine_choice", "jobs": args.jobs, "rounds": args.rounds,
              "statistic": "median", "nats_storage": args.nats_storage}
    servers = {}
    try:
        servers["redis"] = start_redis()
        servers["nats"] = start_nats(args.nats_storage)
        log("redis-server pid %d port %d; nats-server pid %d port %d (%s storage)" % (
            servers["redis"].proc.pid, servers["redis"].port, servers["nats"].proc.pid,
            servers["nats"].port, args.nats_storage))
        asyncio.run(_setup_nats(servers["nats"]))
        # 1. Semantics (not timed).
        for engine, fn in (("redis", redis_semantics), ("nats", nats_semantics)):
            sem = asyncio.run(fn(servers[engine]))
            log("%s semantics: %s" % (engine, sem))
            emit({**common, "engine": engine, "phase": "semantics", "checks": sem})
        # 2. Cost per operation, R rounds, engines alternating first.
        per = {e: {"lifecycle": [], "rerank": [], "cancel": []} for e in servers}
        for rnd in range(args.rounds):
            order = ("redis", "nats") if rnd % 2 == 0 else ("nats", "redis")
            for engine in order:
                res = asyncio.run(one_round(engine, servers[engine], rnd, args.jobs))
                for phase, v in res.items():
                    per[engine][phase].append(v)
                    log("round %d %-5s %-9s %s" % (rnd, engine, phase, json.dumps(
                        {k: round(x, 1) for k, x in v.items()})))
        summary = {}
        for engine in servers:
            for phase, rounds in per[engine].items():
                m = medians(rounds)
                summary[(engine, phase)] = m
                emit({**common, "engine": engine, "phase": phase, **m,
                      "per_round": rounds})
        # 3. Throughput ceiling.
        ceil = {e: [] for e in servers}
        for rnd in range(args.rounds):
            order = ("redis", "nats") if rnd % 2 == 0 else ("nats", "redis")
            for engine in order:
                c = ceiling(engine, servers[engine], args.procs, args.concurrency, args.seconds)
                ceil[engine].append(c)
                log("round %d %-5s ceiling   %s" % (rnd, engine, json.dumps(
                    {k: round(x, 2) for k, x in c.items()})))
        for engine in servers:
            m = medians(ceil[engine])
            summary[(engine, "ceiling")] = m
            emit({**common, "engine": engine, "phase": "ceiling", "procs": args.procs,
                  "concurrency": args.concurrency, "seconds": args.seconds, **m,
                  "per_round": ceil[engine]})
        # 4. Ratios NATS / Redis of the medians.
        ratios = {}
        for phase in ("lifecycle", "rerank", "cancel", "ceiling"):
            r, n = summary[("redis", phase)], summary[("nats", phase)]
            ratios[phase] = {k: round(n[k] / r[k], 2) if r[k] else None for k in r}
        emit({**common, "engine": "nats/redis", "phase": "ratios", **ratios})
        log("ratios nats/redis: %s" % json.dumps(ratios))
    except ServerError as e:
        sys.exit("engine_choice: %s" % e)
    finally:
        for srv in servers.values():
            srv.stop()
        if out:
            out.close()


async def _setup_nats(srv):
    ns = await NatsSide(srv).open()
    await ns.setup_streams()
    await ns.close()


if __name__ == "__main__":
    main()
