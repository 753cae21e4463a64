#!/usr/bin/env python3
"""The libvirt VM driver (through tests/libvirt/drvtest) against a pair of
real domains of a private libvirtd; every effect checked without the
driver: virsh vcpupin / dumpxml, /proc/TID/status and schedstat, libvirt's
vcpuN cgroup files, the guest's own node meminfo over its shell channel.
libvirtd is restarted while drvtest holds its connection (reconnect). TAP.

    tests/libvirt/drvcheck.py        # DRVTEST=path, default build/san/drvtest
"""
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "vm"))
from libvirtlib import Libvirt, channel_path  # noqa: E402
from vshare_vm import REPO, AgentClient, Tap  # noqa: E402

BLOCK = 2 << 20
DRVTEST = os.environ.get("DRVTEST") or \
    os.path.join(REPO, "build", "san", "drvtest")


def drvtest_argv(lv, d, *extra):
    return [DRVTEST, lv.uri, d.name, d.pidfile, *extra]


def tids(out):
    return {int(m.group(1)): int(m.group(2))
            for m in re.finditer(r"^vCPU (\d+) node \d+ tid (\d+)$", out,
                                 re.M)}


def allowed(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        return re.search(r"Cpus_allowed_list:\s*(\S+)", f.read()).group(1)


def share(pid, tid, seconds=2.0):
    def ns():
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            return int(f.read().split()[0])
    a = ns()
    time.sleep(seconds)
    return (ns() - a) / (seconds * 1e9)


def quotas(pid):
    """libvirt's vcpuN cgroups of QEMU @pid (cgroup v1 cpu here)."""
    with open(f"/proc/{pid}/cgroup") as f:
        rel = re.search(r"^\d+:(?:[^:]*,)?cpu(?:,[^:]*)?:(\S+)$", f.read(),
                        re.M).group(1)
    dom = "/sys/fs/cgroup/cpu" + rel.removesuffix("/emulator")
    return {v: int(open(f"{dom}/vcpu{v}/cpu.cfs_quota_us").read())
            for v in (0, 1)}


def node1_kib(d):
    out = d.shell.out("grep MemTotal /sys/devices/system/node/node1/meminfo")
    return int(out.split()[-2])


def agent_sync(t, d):
    """The agent answers guest-sync on the socket the live XML names."""
    path = channel_path(d.dumpxml())
    t.eq(path, d.agent_path, f"{d.short}: agent channel from dumpxml")
    c = AgentClient(path)
    c.connect(30)  # guest-sync-delimited
    info = c.call("guest-info")
    c.ls.close()
    t.ok(isinstance(info, dict) and info.get("version"),
         f"{d.short}: guest-sync-delimited, then guest-info over {path} "
         f"(agent {info.get('version') if isinstance(info, dict) else info})",
         info)


def paused_run(t, lv, a):
    """drvtest a --pause: pinned, then libvirtd restarted under it."""
    p = subprocess.Popen(drvtest_argv(lv, a, "--pause"), text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    head = ""
    for line in p.stdout:
        head += line
        if line.startswith("PAUSED") or "FAILED" in line:
            break
    t.ok("PAUSED" in head, "drvtest opened and pinned", head)
    t.ok(f"agent {a.agent_path}\n" in head, "driver: agent path from XML")
    th = tids(head)
    pid = a.qemu_pid()
    t.eq(a.vcpupin(), {0: "0-1", 1: "1"}, "virsh vcpupin: vCPU 1 on pCPU 1")
    t.eq(allowed(pid, th.get(1)), "1", "/proc: vCPU 1 thread allowed pCPU 1")
    lv.stop_libvirtd()
    lv.start()
    t.diag("libvirtd restarted while drvtest holds its connection")
    out, _ = p.communicate("\n", timeout=120)
    t.eq(p.returncode, 0, "drvtest went on after the restart (reconnect)")
    t.diag(head + out)
    return th, out


def main():
    t = Tap()
    if not os.access(DRVTEST, os.X_OK):
        t.skip_all(f"no {DRVTEST} (tests/README.md: building drvtest)")
    lv = Libvirt()
    try:
        lv.start()
        a, b = lv.domain("a"), lv.domain("b")
        for d in (a, b):
            agent_sync(t, d)
        pid = a.qemu_pid()
        before = a.vmem()[1]
        kib0 = node1_kib(a)
        th, out = paused_run(t, lv, a)
        m = re.search(r"after (\d+) ms, (\d+) wait", out)
        t.ok(m and int(m.group(2)) <= 3,
             "resize reached with at most 3 event waits, no polling "
             f"({m.group(0) if m else out})")
        t.eq(a.vcpupin(), {0: "0-1", 1: "1"}, "pin survived the restart")
        t.eq(quotas(pid), {0: -1, 1: 1000},
             "vcpuN cgroups: vCPU 1 quota 1000, vCPU 0 unlimited")
        a.shell.out("for i in 1 2; do (while :; do :; done) & "
                    "echo $! >> /tmp/spin; done")
        s1, s0 = share(pid, th[1]), share(pid, th[0])
        a.shell.out("kill $(cat /tmp/spin); rm /tmp/spin")
        t.ok(s1 < 0.05, f"throttled vCPU 1 ran {s1:.3f} CPU under load")
        t.ok(s0 > 0.2, f"vCPU 0 ran {s0:.3f} CPU under load")
        after = a.vmem()[1]
        t.eq((after["requested"], after["current"]),
             (before["requested"] + BLOCK,) * 2,
             "dumpxml: node 1 requested and current one block more")
        t.eq(node1_kib(a) - kib0, BLOCK // 1024,
             "guest: node 1 MemTotal grew by one block")
        t.eq(b.vcpupin(), {0: "0-1", 1: "0-1"}, "domain b untouched")
        p = subprocess.run(drvtest_argv(lv, a, "--undo"), text=True,
                           capture_output=True, timeout=120)
        t.eq(p.returncode, 0, "drvtest --undo")
        t.diag(p.stdout)
        t.eq(quotas(pid), {0: -1, 1: -1}, "unthrottled: both unlimited")
        t.eq(a.vmem()[1]["current"], before["current"],
             "dumpxml: node 1 back to its size")
        lv.virsh("destroy", b.name)
        p = subprocess.run(drvtest_argv(lv, b), text=True,
                           capture_output=True, timeout=60)
        t.ok(p.returncode == 1 and "unreachable" in p.stdout,
             "destroyed domain: open fails as unreachable", p.stdout)
    finally:
        lv.stop()
    t.done()


if __name__ == "__main__":
    main()
