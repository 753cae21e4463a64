#!/usr/bin/env python3
"""A real libvirt-to-libvirt live migration on this machine, the layout
written by the vshare hook before the VM runs at the destination (paper
001, issue 14). TAP on stdout.

Two private libvirtd instances (libvirtlib: each in its own mount
namespace, own sockets, run, state and log directories), with distinct
host_uuid (libvirt refuses a migration to "the same host" by that UUID).
The destination's qemu.conf has cgroup_controllers = []: both instances
share this host's cgroup tree and would both call the domain's cgroup
machine/qemu-1-NAME. Each "host" has its own vshared with the declared
2-node layout (tests/shim): the source's follows libvirt A and keeps the
VM's declared profile in its <metadata>; the destination's answers the
hook, installed in B as /etc/libvirt/hooks/qemu.d/vshare (a wrapper that
names the test's vshared socket; libvirt clears a hook's environment).

`virsh migrate --live` (client-managed, over loopback) with --xml: the
channel sockets get B's paths (both QEMUs run on one machine). Checked
without vshared's word: B's vcpupin and every vCPU thread's affinity in
/proc, the metadata at B, the guest's counter, the domain gone at A.
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
for d in ("vm", "shim"):
    sys.path.insert(0, os.path.join(TESTS, d))
sys.path.insert(0, HERE)
from libvirtlib import Libvirt  # noqa: E402
from migratelib import (affinities, declare_profile,  # noqa: E402
                        free_port, stop_daemons, teardown)
from shimlib import HOST_CONF, Ctl, Daemon  # noqa: E402
from vshare_vm import REPO, Shell, Tap  # noqa: E402

HOOK = os.environ.get("VSHARE_HOOK") or \
    os.path.join(REPO, "build", "san", "vshare-libvirt-hook")
NS = "urn:vshare:profile:1"
# The destination: node 1 offers more memory, so layout-asymsched sends
# an arriving VM there: its cell 0 on pCPU 1, cell 1 on pCPU 0 (not what
# libvirt would do by itself: every vCPU on 0-1).
DST_CONF = HOST_CONF.replace("[node1]\ncpus=1\nvmem=1G",
                             "[node1]\ncpus=1\nvmem=2G")


def wait_for(cond, timeout):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.2)


def profile_at(lv, name):
    p = subprocess.run(["virsh", "-q", "-c", lv.uri, "metadata", name,
                        "--uri", NS], capture_output=True, text=True)
    return p.stdout if p.returncode == 0 and "mpki" in p.stdout else ""


def vcpu_tids(lv, name):
    r = json.loads(lv.virsh("qemu-monitor-command", name,
                            '{"execute": "query-cpus-fast"}'))
    return {c["cpu-index"]: c["thread-id"] for c in r["return"]}


def counter(sh):
    rc, out = sh.run("cat /tmp/cnt", timeout=60)
    return int(out.strip() or 0) if rc == 0 else -1


def dest_xml(a, b, name):
    """The migratable XML with B's paths for the channels and console."""
    xml = a.virsh("dumpxml", "--migratable", name)
    os.makedirs(b.path("dom", name), exist_ok=True)
    path = b.path("dom", name, "incoming.xml")
    with open(path, "w") as f:
        f.write(xml.replace(a.path("dom"), b.path("dom")))
    return path


class ResumeWatch:
    """`virsh event --loop` on B: at the lifecycle event "Resumed" (the
    migrated VM runs), every thread's affinity of B's QEMU is read at
    once, before anything else looks."""

    def __init__(self, b, name):
        self.b, self.name, self.snapshot, self.line = b, name, None, None
        self.proc = subprocess.Popen(
            ["virsh", "-c", b.uri, "event", "--loop", "--event",
             "lifecycle"], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        for line in self.proc.stdout:
            # "event 'lifecycle' for domain 'NAME': Resumed Migrated"
            if f"'{self.name}'" in line and "Resumed" in line:
                pid = int(open(self.b.pidfile(self.name)).read().split()[0])
                self.snapshot, self.line = affinities(pid), line.strip()
                return

    def wait(self, timeout):
        self.thread.join(timeout)
        self.proc.kill()
        self.proc.wait()
        return self.snapshot


def migrate(t, a, b, dom, dd):
    name = dom.name
    dom.shell.run("(i=0; while :; do i=$((i+1)); echo $i > /tmp/cnt.t; "
                  "mv /tmp/cnt.t /tmp/cnt; done) >/dev/null 2>&1 &")
    dom.shell.run("until [ -s /tmp/cnt ]; do :; done", timeout=60)
    c0 = counter(dom.shell)
    xml = dest_xml(a, b, name)
    watch = ResumeWatch(b, name)
    t0 = time.monotonic()
    p = subprocess.run(["virsh", "-c", a.uri, "migrate", "--live", name,
                        b.uri, "--migrateuri",
                        f"tcp://127.0.0.1:{free_port()}", "--xml", xml],
                       capture_output=True, text=True, timeout=300)
    secs = time.monotonic() - t0
    t.ok(p.returncode == 0,
         f"virsh migrate --live from libvirtd A to B: done in {secs:.1f} s",
         p.stderr + b.log_tail(1500))
    log = open(dd.log).read()
    t.ok(f"layout layout-asymsched: {name} arrives on node 1" in log and
         "3200 MB/s" in log,
         "B's libvirtd ran the hook at migrate begin; the destination's "
         "vshared placed the VM with the profile from its <metadata>",
         log[-1500:])
    pins = b.vcpupin(name)
    t.ok(pins == {0: "1", 1: "0"},
         "virsh vcpupin at B: guest cell 0's vCPU on pCPU 1 (node 1), "
         "cell 1's on pCPU 0: the hook's XML, not libvirt's default", pins)
    tids = vcpu_tids(b, name)
    aff = watch.wait(30) or {}
    t.ok(aff.get(tids.get(0)) == {1} and aff.get(tids.get(1)) == {0},
         "in /proc, read on B's lifecycle event Resumed: vCPU 0 already on "
         "pCPU 1 and vCPU 1 on pCPU 0", (watch.line, tids, aff))
    t.ok(bool(profile_at(b, name)),
         "the profile arrived inside the domain XML (virsh metadata at B)")
    sh = Shell(b.path("dom", name, "shell.sock"))
    sh.connect(60)
    c1 = counter(sh)
    sh.run("c=$(cat /tmp/cnt); end=$(($(date +%s) + 30)); until "
           "[ $(cat /tmp/cnt) -gt $c ]; do [ $(date +%s) -lt $end ] || "
           "break; done", timeout=60)
    c2 = counter(sh)
    sh.ls.close()
    t.ok(0 < c0 <= c1 < c2, f"the guest's workload ran on: counter {c0} at "
         f"A, {c1} then {c2} at B")
    running = a.virsh("list", "--name").split()
    t.ok(name not in running, "the domain no longer runs at A", running)


def main():
    t = Tap()
    for tool in ("virsh", "libvirtd", "virtlogd"):
        if not shutil.which(tool):
            t.skip_all(f"{tool} is not installed (tests/setup-host.sh)")
    src, dst = Ctl(), Ctl()
    with open(os.path.join(dst.conf, "host.conf"), "w") as f:
        f.write(DST_CONF)
    wrapper = (f"#!/bin/sh\n# tests/libvirt/migrate.py: the test's vshared\n"
               f"VSHARE_SOCKET={dst.socket} exec {HOOK} \"$@\"\n")
    a = Libvirt(root=os.path.join(REPO, "build", "libvirt-mig-a"),
                prefix="mig-", host_uuid=str(uuid.uuid4()))
    b = Libvirt(root=os.path.join(REPO, "build", "libvirt-mig-b"),
                prefix="mig-", host_uuid=str(uuid.uuid4()), cgroups=False,
                hook=wrapper)
    sd = Daemon(src, extra=["--libvirt-uri", a.uri])
    dd = Daemon(dst, extra=["--layout-policy", "layout-asymsched"])
    try:
        a.start()
        b.start()
        dom = a.domain("vm")
        declare_profile(src, dom.name, {"mpki": 12.5,
                                        "bandwidth-mbps": 3200})
        sd.start()
        dd.start()
        meta = wait_for(lambda: profile_at(a, dom.name), 30)
        t.ok("12.5" in meta,
             "two libvirtd (own namespaces, host_uuid), a 2-node domain at "
             "A; A's vshared keeps its declared profile in <metadata>",
             meta + open(sd.log).read()[-1000:])
        with t.section("migrate", lambda: b.log_tail(2000)):
            migrate(t, a, b, dom, dd)
        stop_daemons(t, (("source", sd), ("destination", dd)))
    finally:
        teardown((sd, dd), ())
        for lv in (b, a):
            lv.stop()
    t.done()


if __name__ == "__main__":
    main()
