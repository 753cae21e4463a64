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
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from shimlib import SHAPE, Ctl, Daemon  # noqa: E402
from vshare_vm import (QMP, Guest, Shape, Shell, Tap,  # noqa: E402
                       build_initrd, parse_list)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_event(qmp, name, timeout):
    """The first @name event (already seen or arriving) within @timeout."""
    deadline = time.monotonic() + timeout
    while True:
        for e in qmp.events:
            if e["event"] == name:
                qmp.events.remove(e)
                return e
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            rep = qmp._read(left)
        except TimeoutError:
            return None
        if "event" in rep:
            qmp.events.append(rep)


def affinities(pid):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("Cpus_allowed_list:"):
                        out[int(tid)] = parse_list(line.split()[1])
        except OSError:
            pass  # a thread that ended
    return out


class Incoming(Guest):
    """The destination: the source's command line with -incoming."""

    def start_incoming(self, port):
        initrd = build_initrd(self.kernel, self.agent_bin, qga=self.qga,
                              extra=self.extra_files)
        os.makedirs(self.workdir, exist_ok=True)
        argv = self.qemu_argv(initrd) + ["-incoming",
                                         f"tcp:127.0.0.1:{port}"]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL,
            stdout=open(self.path("qemu.log"), "w"),
            stderr=subprocess.STDOUT)
        self.qmp = QMP(self.path("qmp.sock"))
        return self


def place(t, dst, dd, dg):
    p = dst.run("add", "mig", "--qmp", dg.path("qmp-shim.sock"), "--agent",
                dg.path("agent.sock"), "--force")
    t.ok(p.returncode == 0, "destination: the -incoming QEMU registered",
         p.stderr)
    r = dd.request(b'{"execute": "vshare-host-reload"}\n')
    t.ok(r is not None and "mig" in r,
         "destination vshared follows the incoming QEMU", r)
    os.makedirs(os.path.join(dst.conf, "profiles"), exist_ok=True)
    with open(os.path.join(dst.conf, "profiles", "mig.json"), "w") as f:
        json.dump({"mpki": 12.5, "bandwidth-mbps": 3200}, f)
    p = dst.run("place", "mig", "--apply", "--json")
    ok = p.returncode == 0
    r = json.loads(p.stdout) if ok else {}
    t.ok(ok and r.get("applied") and len(r.get("cells", [])) == 2,
         "vsharectl place mig --apply: a node and pCPUs per guest cell, "
         "threads pinned", p.stdout + p.stderr)
    log = open(dd.log).read()
    t.ok("arrives on node" in log and "mpki 12.5" in log,
         "the layout policy decided with the declared profile",
         log[-1500:])
    return {c["cell"]: parse_list(c["cpus"]) for c in r.get("cells", [])}


def migrate(t, sg, dg, port, cells):
    vcpus = dg.qmp.cmd("query-cpus-fast")
    node_of = {v["thread-id"]: v["props"]["node-id"] for v in vcpus}
    t0 = time.monotonic()
    sg.qmp.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    ev = wait_event(dg.qmp, "RESUME", 300)
    seen = affinities(dg.proc.pid) if ev else {}
    secs = time.monotonic() - t0
    t.ok(ev is not None, f"the destination QEMU resumed ({secs:.1f} s "
         "after migrate)", open(dg.path("qemu.log")).read()[-1000:])
    union = set().union(*cells.values()) if cells else set()
    bad = {tid: sorted(a) for tid, a in seen.items()
           if (tid in node_of and a != cells.get(node_of[tid])) or
           (tid not in node_of and not a <= union)}
    t.ok(seen and not bad and all(tid in seen for tid in node_of),
         "at RESUME every vCPU thread already ran on its guest cell's "
         "pCPUs and every other QEMU thread within the VM's",
         f"cells {cells} vCPU threads {node_of} wrong {bad}")
    st = sg.qmp.cmd("query-migrate")
    t.ok(st.get("status") == "completed",
         f"the source says completed ({st.get('total-time')} ms, "
         f"{st.get('ram', {}).get('transferred', 0) >> 20} MiB)", st)
    sh = Shell(dg.path("shell.sock"))
    sh.connect(60)
    rc, out = sh.run("cat /sys/devices/system/node/online", timeout=60)
    t.ok(rc == 0 and out.strip() == "0-1",
         "the guest runs at the destination (its shell answers, 2 nodes)",
         out)


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
