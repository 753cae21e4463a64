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
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from migratelib import (Incoming, cells_of, declare_profile,  # noqa: E402
                        follow, free_port, misplaced, place as vplace,
                        wait_event)
from shimlib import SHAPE, Ctl, Daemon  # noqa: E402
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


def migrate(t, sg, dg, port, cells):
    vcpus = dg.qmp.cmd("query-cpus-fast")
    node_of = {v["thread-id"]: v["props"]["node-id"] for v in vcpus}
    # the guest's workload: a counter in the guest's RAM, running on
    sg.shell.run("(i=0; while :; do i=$((i+1)); echo $i > /tmp/cnt.t; "
                 "mv /tmp/cnt.t /tmp/cnt; done) >/dev/null 2>&1 &")
    sg.shell.run("until [ -s /tmp/cnt ]; do :; done", timeout=60)
    c0 = counter(sg.shell)
    t0 = time.monotonic()
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
    t.ok(rc == 0 and out.strip() == "0-1",
         "the guest runs at the destination (its shell answers, 2 nodes)",
         out)
    c1 = counter(sh)
    sh.run("end=$(($(date +%s) + 30)); c=$(cat /tmp/cnt); until "
           "[ $(cat /tmp/cnt) -gt $c ]; do [ $(date +%s) -lt $end ] || "
           "break; done", timeout=60)
    c2 = counter(sh)
    t.ok(0 < c0 <= c1 < c2,
         "the guest's workload ran on throughout: its counter went on from "
         f"the source's {c0} to {c1}, then {c2}, at the destination")


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
        for name, d in (("source", sd), ("destination", dd)):
            t.ok(d.stop() == 0, f"{name} vshared exit 0 (ASan: no leak)",
                 open(d.log).read()[-2000:])
    finally:
        for d in (sd, dd):
            if d.proc and d.proc.poll() is None:
                d.proc.kill()
        for g in (sg, dg):
            g.stop()
    t.done()


if __name__ == "__main__":
    main()
