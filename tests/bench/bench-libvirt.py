#!/usr/bin/env python3
"""make bench: vshared's libvirt route against libvirt's own, and vshared
at rest. A private libvirtd (tests/libvirt/libvirtlib.py), the release
binaries (build/rel), one pair of 2-node x 1-vCPU TCG domains at a time.

  lend       pair a, b (discovered by vshared --libvirt-uri, default
             --metrics-interval 10): `vsharectl cpus A --set 0-1`, `cpus B
             --set none`, then --repeat times `vsharectl lend --from A --to
             B --cpus 1 --mode coop` and back (no memory), each timed from
             the command's start to its exit (vsharectl -> vshared ->
             libvirt pin + both agents). Medians.
  idle       the same vshared with the two domains followed and nothing
             asked of it: voluntary + involuntary context switches of all
             its threads (/proc/PID/task/*/status) over --idle seconds;
             VmRSS and Pss (smaps_rollup) after that.
  setvcpus   libvirt's route for the same move, on a second pair (a2 with
             vCPU 1 hotpluggable, b2 booted with <vcpu current='1'>2 and
             vCPU 1 hotpluggable): `virsh setvcpus A2 1 --live` until the
             guest has ejected vCPU 1 (ACPI; cpu1 gone from its sysfs),
             then `virsh setvcpus B2 2 --live` and the guest onlining cpu1
             (the harness guest has no udev: its shell does what udev's
             rule does, echo 1 > cpu1/online), until B2's shell sees cpus
             0-1 online. One sample: under TCG a QEMU slot cannot be
             plugged twice (tests/bench/bench-shim.py). virsh's unplug
             itself is printed apart: under TCG here QEMU sends no
             DEVICE_DELETED for the vCPU (only for its lapic child), so
             libvirt gives up after its 5 s wait ("vcpu unplug request
             timed out") although the guest ejected it long before.

BENCH libvirt_lend_latency_ms         median, A -> B
BENCH libvirt_lend_back_latency_ms    median, B -> A
BENCH libvirt_setvcpus_ms             unplug in A2 + plug and online in B2
BENCH libvirt_lend_vs_setvcpus_ratio  (target <= 0.25)
BENCH libvirt_setvcpus_unplug_virsh_ms what `virsh setvcpus A2 1` took
BENCH vshared_metrics_interval_s      the anchor of the wake-up count
BENCH vshared_idle_wakeups            over --idle s
BENCH vshared_rss_kib / vshared_pss_kib

--smoke: one lend each way, 2 s idle (make check, about a minute).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
for d in ("vm", "shim", "libvirt"):
    sys.path.insert(0, os.path.join(TESTS, d))
from libvirtlib import Libvirt  # noqa: E402
from shimlib import Ctl, Daemon, wait_for  # noqa: E402
from vshare_vm import REPO  # noqa: E402

REL = os.path.join(REPO, "build", "rel")
INTERVAL = 10  # vshared's default --metrics-interval


def bench(name, value, unit=""):
    print(f"BENCH {name} {value} {unit}".rstrip(), flush=True)


def must(p, what):
    if p.returncode:
        raise SystemExit(f"{what}: exit {p.returncode}: {p.stdout}"
                         f"{p.stderr}")
    return p


def discovered(ctl, names):
    p = ctl.run("status", "--json")
    if p.returncode:
        return False
    st = {v["name"]: v for v in json.loads(p.stdout)["vms"]}
    return all(n in st and st[n]["reachable"] and
               st[n]["agent"]["reachable"] for n in names)


def ctx_switches(pid):
    """{tid: voluntary + nonvoluntary context switches}."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        n = 0
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in ("voluntary_ctxt_switches",
                             "nonvoluntary_ctxt_switches"):
                        n += int(v)
        except OSError:
            continue
        out[tid] = n
    return out


def kib(path, key):
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def lend_pair(args, lv):
    ctl = Ctl(binary=os.path.join(REL, "vsharectl"))
    dmn = Daemon(ctl, binary=os.path.join(REL, "vshared"),
                 interval=INTERVAL, extra=["--libvirt-uri", lv.uri])
    a, b = lv.domain("a"), lv.domain("b")
    try:
        dmn.start()
        if not wait_for(lambda: discovered(ctl, (a.name, b.name)), 60):
            raise SystemExit("vshared did not discover a and b: "
                             + open(dmn.log).read()[-2000:])
        must(ctl.run("cpus", a.name, "--set", "0-1", "--mode", "coop"),
             "cpus a")
        must(ctl.run("cpus", b.name, "--set", "none", "--mode", "coop"),
             "cpus b")
        there, back = [], []
        for _ in range(args.repeat):
            for src, dst, out in ((a, b, there), (b, a, back)):
                p = must(ctl.run("lend", "--from", src.name, "--to",
                                 dst.name, "--cpus", "1", "--mode", "coop"),
                         f"lend {src.short} -> {dst.short}")
                out.append(p.seconds * 1000)
        if a.vcpupin() != {0: "0", 1: "1"}:
            raise SystemExit(f"a not 1:1 after the lends: {a.vcpupin()}")
        # at rest: two domains followed, nothing asked
        pid = dmn.proc.pid
        c0 = prev = ctx_switches(pid)
        per_s = []
        end = time.monotonic() + args.idle
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(1.0, left))  # the measurement window
            c1 = ctx_switches(pid)
            per_s.append(sum(v - prev.get(t, 0) for t, v in c1.items()))
            prev = c1
        wakeups = sum(v - c0.get(t, 0) for t, v in c1.items())
        print(f"# wake-ups per second of the window: {per_s}", flush=True)
        gone = sorted(set(c0) - set(c1))
        rss = kib(f"/proc/{pid}/status", "VmRSS")
        pss = kib(f"/proc/{pid}/smaps_rollup", "Pss")
        print(f"# vshared {pid}: threads {len(c0)} -> {len(c1)}"
              + (f", exited during the window (not counted): {gone}"
                 if gone else ""), flush=True)
        if dmn.stop() != 0:
            raise SystemExit("vshared did not exit 0: "
                             + open(dmn.log).read()[-2000:])
    finally:
        if dmn.proc and dmn.proc.poll() is None:
            dmn.proc.kill()
            dmn.proc.wait()
        a.destroy()
        b.destroy()
    return there, back, wakeups, rss, pss


def setvcpus_pair(lv):
    """libvirt's route: (unplug ms, virsh's own unplug ms and error,
    plug + online ms)."""
    a = lv.domain("a2", hotpluggable=(1,))
    b = lv.domain("b2", vcpus_current=1, hotpluggable=(1,))
    try:
        if b.shell.out("cat /sys/devices/system/cpu/online") != "0" or \
                a.shell.out("cat /sys/devices/system/cpu/online") != "0-1":
            raise SystemExit("hotplug pair: wrong vCPUs at boot")
        t0 = time.monotonic()
        virsh = subprocess.Popen(
            ["virsh", "-q", "-c", lv.uri, "setvcpus", a.name, "1",
             "--live"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        # done when the guest has ejected it: QEMU removes the vCPU in
        # the guest's _EJ0 (virsh itself may not know yet, see below)
        a.shell.out("while [ -e /sys/devices/system/cpu/cpu1 ]; do :; "
                    "done", timeout=30)
        t1 = time.monotonic()
        lv.virsh("setvcpus", b.name, "2", "--live")
        # what udev's "cpu add" rule does in a full guest
        online = b.shell.out(
            "f=/sys/devices/system/cpu/cpu1/online; "
            "while [ ! -e $f ]; do :; done; echo 1 > $f; "
            "cat /sys/devices/system/cpu/online")
        t2 = time.monotonic()
        if online != "0-1":
            raise SystemExit(f"b2 did not online cpu1: {online}")
        out = virsh.communicate(timeout=60)[0].strip()
        t3 = time.monotonic()
        left = a.shell.out("cat /sys/devices/system/cpu/present")
        if left != "0":
            raise SystemExit(f"a2 still has cpus {left}")
        return ((t1 - t0) * 1000, (t3 - t0) * 1000, virsh.returncode, out,
                (t2 - t1) * 1000)
    finally:
        a.destroy()
        b.destroy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--smoke", action="store_true",
                    help="one lend each way, 2 s idle")
    args = ap.parse_args()
    if args.smoke:
        args.repeat, args.idle = 1, 2.0
    for f in ("vshared", "vsharectl", "vshare-agent"):
        if not os.access(os.path.join(REL, f), os.X_OK):
            raise SystemExit(f"no build/rel/{f} (make)")
    lv = Libvirt()
    try:
        lv.start()
        there, back, wakeups, rss, pss = lend_pair(args, lv)
        unplug, virsh_ms, virsh_rc, virsh_out, plug = setvcpus_pair(lv)
    finally:
        lv.stop()
    lend = statistics.median(there)
    bench("libvirt_lend_latency_ms", f"{lend:.1f}", "ms")
    bench("libvirt_lend_back_latency_ms", f"{statistics.median(back):.1f}",
          "ms")
    setv = unplug + plug
    bench("libvirt_setvcpus_ms", f"{setv:.1f}", "ms")
    bench("libvirt_lend_vs_setvcpus_ratio", f"{lend / setv:.3f}", "ratio")
    print(f"# target: ratio <= 0.25; setvcpus = unplug in a2 until the "
          f"guest ejected vCPU 1 {unplug:.1f} ms + plug in b2 and online "
          f"{plug:.1f} ms (one sample)", flush=True)
    bench("libvirt_setvcpus_unplug_virsh_ms", f"{virsh_ms:.1f}", "ms")
    print(f"# virsh setvcpus a2 1 --live itself: exit {virsh_rc} after "
          f"{virsh_ms:.0f} ms{': ' + virsh_out if virsh_out else ''}",
          flush=True)
    bench("vshared_metrics_interval_s", INTERVAL, "s")
    bench("vshared_idle_wakeups", wakeups, "wakeups")
    print(f"# wake-ups over {args.idle:g} s with 2 domains followed, "
          "no policy", flush=True)
    bench("vshared_rss_kib", rss, "KiB")
    bench("vshared_pss_kib", pss, "KiB")
    print(f"# lend samples (ms): there {[round(x, 1) for x in there]}, "
          f"back {[round(x, 1) for x in back]}", flush=True)


if __name__ == "__main__":
    main()
