#!/usr/bin/env python3
"""A real live migration between two vshare "hosts" on this machine, the
layout ready before the VM runs at the destination (paper 001; issue 14).
TAP on stdout.

Two vshared instances, each with its own conf, state and control socket and
the declared 2-node layout the shim tests use (shimlib.HOST_CONF; this
machine has one node). The source runs a 2-node TCG guest; the destination
QEMU is the same command line with -incoming. At the destination the VM is
registered and `vsharectl place mig --apply` asks vshared's layout policy
where it goes with the profile it would have received (here the declared
file CONF/profiles/mig.json: the QMP Transferer, vshared to vshared, is not
built yet), and pins its threads. Then the source migrates over loopback.

Checked independently of vshared: on the destination's own QMP monitor
the test waits for RESUME and then reads every thread's Cpus_allowed_list
in /proc (vCPU threads on their guest cell's pCPUs, the others within the
VM's pCPUs); the guest answers on its shell at the destination; the source
reports the migration completed.

Phase 2, the neighbours (layout-dino; one vCPU per VM so that two fit on
the declared host): a resident VM nb that vshared placed on node 0 runs a
workload. A CPU-bound arrival goes to the free node and moves nobody
(then `place --release` frees its pCPU). A memory-bound arrival takes
node 0: nb's threads are re-pinned to node 1 before the arrival runs
(read in /proc), its workload runs on, and the arrival's threads are on
node 0 at RESUME. nb's memory cannot follow here (declared nodes are not
the kernel's): the answer says so; tests/unit/test-profile.c moves real
pages on this host's one node.

Phase 3, the QMP Transferer: the profile is declared at the source only;
`vsharectl migrate mig3 URI --peer HOST:PORT` starts the migration and
the source's vshared sends the profile to the destination's peer
endpoint (CONF/peer.key on both), which places and pins the -incoming
QEMU before it resumes. The endpoint is also attacked by hand: a wrong
key, a replayed nonce, a control command, a hostile profile, silence.
"""
import base64
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from migratelib import (Incoming, cells_of, declare_profile,  # noqa: E402
                        event_wall, follow, free_port, misplaced,
                        place as vplace, wait_event)
from migratelib import (PeerClient, affinities, stop_daemons,  # noqa: E402
                        teardown, write_key)
from shimlib import SHAPE, Ctl, Daemon, vcpu_threads  # noqa: E402
from vshare_vm import Guest, Shape, Shell, Tap  # noqa: E402


def place(t, dst, dd, dg):
    r = follow(dst, dd, "mig", dg)
    t.ok(r is not None and "mig" in r,
         "destination: the -incoming QEMU registered, vshared follows it",
         r)
    declare_profile(dst, "mig", {"mpki": 12.5, "bandwidth-mbps": 3200})
    p, r = vplace(dst, "mig")
    t.ok(r.get("applied") and len(r.get("cells", [])) == 2,
         "vsharectl place mig --apply: a node and pCPUs per guest cell, "
         "threads pinned", p.stdout + p.stderr)
    log = open(dd.log).read()
    t.ok("arrives on node" in log and "mpki 12.5" in log,
         "the layout policy decided with the declared profile",
         log[-1500:])
    return cells_of(r)


def counter(sh):
    rc, out = sh.run("cat /tmp/cnt", timeout=60)
    return int(out.strip() or 0) if rc == 0 else -1


def migrate(t, sg, dg, port, cells, nodes="0-1", start=None):
    """@start(uri) -> cells: who starts the migration (default: the test
    on the source's QMP, the destination placed beforehand)."""
    vcpus = dg.qmp.cmd("query-cpus-fast")
    node_of = {v["thread-id"]: v["props"]["node-id"] for v in vcpus}
    # the guest's workload: a counter in the guest's RAM, running on
    sg.shell.run("(i=0; while :; do i=$((i+1)); echo $i > /tmp/cnt.t; "
                 "mv /tmp/cnt.t /tmp/cnt; done) >/dev/null 2>&1 &")
    sg.shell.run("until [ -s /tmp/cnt ]; do :; done", timeout=60)
    c0 = counter(sg.shell)
    t0 = time.monotonic()
    if start:
        cells = start(f"tcp:127.0.0.1:{port}")
    else:
        sg.qmp.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    ev = wait_event(dg.qmp, "RESUME", 300)
    bad = misplaced(dg.proc.pid, node_of, cells) if ev else {"": ""}
    secs = time.monotonic() - t0
    t.ok(ev is not None, f"the destination QEMU resumed ({secs:.1f} s "
         "after migrate)", open(dg.path("qemu.log")).read()[-1000:])
    t.ok(cells and not bad,
         "at RESUME every vCPU thread already ran on its guest cell's "
         "pCPUs and every other QEMU thread within the VM's",
         f"cells {cells} vCPU threads {node_of} wrong {bad}")
    st = sg.qmp.cmd("query-migrate")
    t.ok(st.get("status") == "completed",
         f"the source says completed ({st.get('total-time')} ms, downtime "
         f"{st.get('downtime')} ms, "
         f"{st.get('ram', {}).get('transferred', 0) >> 20} MiB)", st)
    sh = Shell(dg.path("shell.sock"))
    sh.connect(60)
    rc, out = sh.run("cat /sys/devices/system/node/online", timeout=60)
    t.ok(rc == 0 and out.strip() == nodes,
         f"the guest runs at the destination (its shell answers, nodes "
         f"{nodes})", out)
    c1 = counter(sh)
    sh.run("end=$(($(date +%s) + 30)); c=$(cat /tmp/cnt); until "
           "[ $(cat /tmp/cnt) -gt $c ]; do [ $(date +%s) -lt $end ] || "
           "break; done", timeout=60)
    c2 = counter(sh)
    t.ok(0 < c0 <= c1 < c2,
         "the guest's workload ran on throughout: its counter went on from "
         f"the source's {c0} to {c1}, then {c2}, at the destination")
    return ev


# Phase 2: one vCPU per VM, so that on the declared host (one pCPU per
# node) an arrival and a neighbour fit side by side. (Measured with plain
# QEMU, no vshare: a 1x1 guest with vmem=256M/64M crashed after 2 of 4
# TCG migrations, its stack corrupted; with the 512M/128M device the
# other shapes use, 0 of 3.)
SMALL = "1x1:256M:vmem=512M/128M"


def threads_on(pid, vcpu_tid, cpus):
    """{tid: affinity} of @pid's threads not within @cpus, or whose vCPU
    thread is not exactly on @cpus ({} when all are)."""
    return {tid: sorted(a) for tid, a in affinities(pid).items()
            if (tid == vcpu_tid and a != cpus) or not a <= cpus}


def raw_place(dd, vm):
    """vshare-host-place for a VM vshared does not follow (as the libvirt
    hook asks): its answer, or the error text."""
    req = {"execute": "vshare-host-place",
           "arguments": {"vm": vm, "cells": [
               {"cell": 0, "vcpus": 1, "memory-kib": 262144}]}}
    r = dd.request(json.dumps(req).encode() + b"\n") or "{}"
    return json.loads(r).get("return", r)


def neighbour_of(answer, vm):
    for n in answer.get("neighbours", []):
        if n.get("vm") == vm:
            return n
    return {}


def control(t, dst, dd, nb):
    """A CPU-bound arrival moves nobody (paper 001's control)."""
    declare_profile(dst, "cpu", {"mpki": 0.3, "bandwidth-mbps": 40})
    r = raw_place(dd, "cpu")
    n = neighbour_of(r, "nb") if isinstance(r, dict) else {}
    t.ok(isinstance(r, dict) and r.get("node") == 1 and
         n.get("moved") is False and "stays on node 0" in n.get("note", ""),
         "a CPU-bound arrival (mpki 0.3) goes to the free node; the "
         "neighbour stays", r)
    tid = vcpu_threads(nb)[0]
    t.ok(not threads_on(nb.proc.pid, tid, {0}),
         "the neighbour's threads were not touched (still on pCPU 0)",
         affinities(nb.proc.pid))
    p = dst.run("place", "cpu", "--release")
    t.ok(p.returncode == 0 and "reservation released" in p.stdout,
         "vsharectl place cpu --release: that arrival will not happen, its "
         "pCPU is free again", p.stdout + p.stderr)


def relayout(t, dst, dd, nb, dg):
    """A memory-bound arrival takes the neighbour's node; the neighbour is
    re-pinned to the other one before the arrival runs."""
    r = follow(dst, dd, "mig2", dg)
    t.ok(r is not None and "mig2" in r,
         "destination: the second -incoming QEMU registered", r)
    declare_profile(dst, "mig2", {"mpki": 20.0, "bandwidth-mbps": 4000})
    c0 = counter(nb.shell)
    p, r = vplace(dst, "mig2")
    n = neighbour_of(r, "nb")
    t.ok(r.get("node") == 0 and r.get("applied"),
         "layout-dino: the memory-bound arrival (mpki 20) gets node 0 "
         "(pCPU 0), threads pinned", p.stdout + p.stderr)
    t.ok(n.get("moved") is True and n.get("from") == 0 and
         n.get("node") == 1,
         "the answer: neighbour nb moved from node 0 to node 1 (the lowest "
         "mpki sum)", n)
    tid = vcpu_threads(nb)[0]
    bad = threads_on(nb.proc.pid, tid, {1})
    t.ok(not bad, "in /proc: the neighbour's vCPU thread is on pCPU 1 and "
         "every other thread of its QEMU within it", bad)
    log = open(dd.log).read()
    t.ok("neighbour nb moves from node 0 to node 1" in log and
         "memory stays: the host layout is declared" in n.get("note", ""),
         "vshared logs the move; its memory stays, said plainly (declared "
         "nodes are not the kernel's)", n.get("note", "") + log[-800:])
    sh = nb.shell
    sh.run("c=$(cat /tmp/cnt); end=$(($(date +%s) + 30)); until "
           "[ $(cat /tmp/cnt) -gt $c ]; do [ $(date +%s) -lt $end ] || "
           "break; done", timeout=60)
    c1 = counter(sh)
    t.ok(0 < c0 < c1, f"the neighbour's workload ran on across its re-pin "
         f"(counter {c0} -> {c1})")
    return cells_of(r)


def phase2(t):
    dst = Ctl()
    dd = Daemon(dst, extra=("--layout-policy", "layout-dino"))
    nb = Guest(Shape.parse(SMALL), connect_agent=False)
    sg = Guest(Shape.parse(SMALL), connect_agent=False)
    dg = Incoming(Shape.parse(SMALL), connect_agent=False)
    try:
        nb.start()
        sg.start()
        dd.start()
        follow(dst, dd, "nb", nb)
        declare_profile(dst, "nb", {"mpki": 8.0, "bandwidth-mbps": 900})
        p, r = vplace(dst, "nb")
        t.ok(r.get("node") == 0 and cells_of(r) == {0: {0}},
             "a resident neighbour nb (mpki 8) placed by vshared on node 0",
             p.stdout + p.stderr)
        nb.shell.run("(i=0; while :; do i=$((i+1)); echo $i > /tmp/cnt.t; "
                     "mv /tmp/cnt.t /tmp/cnt; done) >/dev/null 2>&1 &")
        nb.shell.run("until [ -s /tmp/cnt ]; do :; done", timeout=60)
        with t.section("control", lambda: open(dd.log).read()[-2000:]):
            control(t, dst, dd, nb)
        port = free_port()
        dg.start_incoming(port)
        cells = {}
        with t.section("relayout", lambda: open(dd.log).read()[-2000:]):
            cells = relayout(t, dst, dd, nb, dg)
        with t.section("migrate2", lambda: dg.console()[-1500:]):
            migrate(t, sg, dg, port, cells, nodes="0")
        stop_daemons(t, (("destination", dd),), "phase 2: ")
    finally:
        teardown((dd,), (nb, sg, dg))


# Phase 3: the QMP Transferer (docs/migration.md): the profile is
# declared at the source only and reaches the destination's vshared over
# the authenticated peer endpoint while the memory is being copied.
def hostile(t, dd, pport, key):
    """The peer endpoint refuses what does not prove the key, and what a
    peer may not ask; nothing is placed by it."""
    def once(obj, make=None):
        c = PeerClient(pport)
        try:
            return c, c.send(make(c) if make else obj)
        finally:
            c.close()

    c, r = once({"request": 1, "mac": "00"})
    t.ok(c.hello.get("vshare-peer") == 1 and len(c.nonce) == 64 and
         "expected" in json.dumps(r),
         "peer endpoint: a greeting with a fresh 64-hex nonce; an envelope "
         "of the wrong shape refused", (c.hello, r))
    req = json.dumps({"execute": "vshare-peer-profile", "arguments": {
        "vm": "mig3", "profile": {"mpki": 99.0}}})
    _, r = once(None, lambda c: PeerClient.envelope("x" * 44, c.nonce, req))
    t.ok("MAC does not match" in json.dumps(r),
         "a request signed with another key: refused", r)
    first = PeerClient(pport)
    stale = PeerClient.envelope(key, first.nonce, req)
    first.close()
    _, r = once(stale)
    t.ok("MAC does not match" in json.dumps(r),
         "a request signed for another connection's nonce (a replay): "
         "refused", r)
    other = json.dumps({"execute": "vshare-host-change", "arguments": {}})
    _, r = once(None, lambda c: PeerClient.envelope(key, c.nonce, other))
    t.ok("may only send vshare-peer-profile" in json.dumps(r),
         "the right key but a control command: refused", r)
    bad = json.dumps({"execute": "vshare-peer-profile", "arguments": {
        "vm": "mig3", "profile": {"mpki": -5}}})
    _, r = once(None, lambda c: PeerClient.envelope(key, c.nonce, bad))
    t.ok("error" in (r or {}) and "mpki" in json.dumps(r),
         "the right key, a hostile profile (mpki -5): refused by the "
         "profile's checks", r)
    ghost = json.dumps({"execute": "vshare-peer-profile", "arguments": {
        "vm": "ghost", "profile": {"mpki": 3.0}, "from": "test"}})
    _, r = once(None, lambda c: PeerClient.envelope(key, c.nonce, ghost))
    ret = (r or {}).get("return", {})
    t.ok(ret.get("stored") is False and "placed" not in ret and
         "ignored" in ret.get("note", "") and
         "profile of ghost from test ignored" in open(dd.log).read(),
         "a verified profile of a VM unknown here: ignored, with a log "
         "line, nothing placed", r)
    c = PeerClient(pport)
    t0 = time.monotonic()
    r = c.answer()
    c.close()
    t.ok(r and "no request within 5 s" in json.dumps(r),
         f"a silent peer: closed with an error after "
         f"{time.monotonic() - t0:.1f} s", r)
    log = open(dd.log).read()
    t.ok("mig3 arrives" not in log and log.count("refused: ") >= 4,
         "none of these placed mig3; each refusal is logged with the "
         "peer's address", log[-1500:])


def phase3(t):
    key = base64.b64encode(os.urandom(33)).decode()
    src, dst = Ctl(), Ctl()
    for c in (src, dst):
        write_key(c, key)
    pport = free_port()
    sd = Daemon(src)
    dd = Daemon(dst, extra=("--peer-listen", f"127.0.0.1:{pport}"))
    sg = Guest(Shape.parse(SHAPE), connect_agent=False)
    dg = Incoming(Shape.parse(SHAPE), connect_agent=False)
    done = {}

    def start(uri):
        p = src.run("migrate", "mig3", uri, "--peer", f"127.0.0.1:{pport}",
                    "--json")
        done["wall"] = time.time()
        r = json.loads(p.stdout) if p.returncode == 0 else {}
        placed = r.get("answer", {}).get("placed", {})
        t.ok(r.get("sent") is True and placed.get("applied") is True,
             f"vsharectl migrate mig3 {uri} --peer: under way "
             f"({r.get('status')}), the profile sent, the destination "
             f"placed it: {r.get('answer', {}).get('note')}",
             p.stdout + p.stderr)
        return cells_of(placed)

    try:
        sg.start()
        p = src.run("add", "mig3", "--qmp", sg.path("qmp-shim.sock"),
                    "--agent", sg.path("agent.sock"), "--force")
        declare_profile(src, "mig3", {"mpki": 15.0, "bandwidth-mbps": 2500})
        sd.start()
        dd.start()
        port = free_port()
        dg.start_incoming(port)
        r = follow(dst, dd, "mig3", dg)
        t.ok(p.returncode == 0 and r is not None and "mig3" in r and
             f"peer endpoint: 127.0.0.1:{pport}" in open(dd.log).read(),
             "phase 3: the source follows mig3 (its profile declared there "
             "only); the destination follows the -incoming QEMU and "
             "listens for peers", p.stderr + open(dd.log).read()[-800:])
        with t.section("peer endpoint", lambda: open(dd.log).read()[-2000:]):
            hostile(t, dd, pport, key)
        with t.section("transfer", lambda: open(dd.log).read()[-2000:]):
            ev = migrate(t, sg, dg, port, {}, start=start)
            t.ok(ev and event_wall(ev) > done.get("wall", 1e12),
                 "the placement was answered before the destination "
                 "resumed", (ev, done))
        dlog, slog = open(dd.log).read(), open(sd.log).read()
        t.ok("profile of mig3 from" in dlog and "mpki 15.0" in dlog and
             "mig3 arrives on node" in dlog and
             "profile sent to" in slog,
             "the destination placed mig3 with the source's profile "
             "(mpki 15.0), which it had no other way to know",
             dlog[-1200:] + slog[-600:])
        stop_daemons(t, (("source", sd), ("destination", dd)), "phase 3: ")
    finally:
        teardown((sd, dd), (sg, dg))


def main():
    t = Tap()
    src, dst = Ctl(), Ctl()
    sd, dd = Daemon(src), Daemon(dst)
    sg = Guest(Shape.parse(SHAPE), connect_agent=False)
    dg = Incoming(Shape.parse(SHAPE), connect_agent=False)
    try:
        sg.start()
        p = src.run("add", "mig", "--qmp", sg.path("qmp-shim.sock"),
                    "--agent", sg.path("agent.sock"), "--force")
        sd.start()
        dd.start()
        t.ok(p.returncode == 0 and sd.ping() and dd.ping(),
             "two vshared instances, own state and sockets, the source VM "
             "registered at the source", p.stderr)
        port = free_port()
        dg.start_incoming(port)
        cells = {}
        with t.section("place", lambda: open(dd.log).read()[-2000:]):
            cells = place(t, dst, dd, dg)
        with t.section("migrate", lambda: dg.console()[-1500:]):
            migrate(t, sg, dg, port, cells)
        stop_daemons(t, (("source", sd), ("destination", dd)))
    finally:
        teardown((sd, dd), (sg, dg))
    phase2(t)
    phase3(t)
    t.done()


if __name__ == "__main__":
    main()
