#!/usr/bin/env python3
"""make bench, part 2: vsharectl lend against the CPU-hotplug route.

One run on this host, same guest shape (tests/shim/shimlib.py):
  lend      `vsharectl lend --from a --to b --cpus 1` (coop), a running a
            CPU hog on both vCPUs; --repeat times each way, medians.
  hotplug   what libvirt's setvcpus does, on a second pair: QMP device_del
            of vCPU 1 in a2 (the guest ejects it through ACPI) and
            device_add of vCPU 1 in b2 (booted without it), onlined in the
            guest as udev would. Once: under TCG a QEMU cannot plug a
            vCPU slot twice (tcg_max_ctxs), so the anchor is one sample.

BENCH lend_latency_ms      request -> both guests reconfigured
BENCH cpu_freed_ms         request -> the lent vCPU thread idle on the host
BENCH hotplug_latency_ms   device_del + device_add + online
BENCH hotplug_cpu_freed_ms request -> the unplugged vCPU thread gone/idle
BENCH lend_vs_hotplug_ratio

--smoke (make check): one lend each way; the figures are printed, not
judged.
"""
import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "shim"))
from shimlib import (REPO, SHAPE, Ctl, boot_pair, schedstat_ns,  # noqa
                     vcpu_threads)
from vshare_vm import Guest, Shape  # noqa: E402


def bench(name, value, unit=""):
    print(f"BENCH {name} {value} {unit}".rstrip(), flush=True)


class IdleWatch(threading.Thread):
    """Time from start until @tid used < 10% of a CPU over a 20 ms
    window (or exited)."""

    def __init__(self, tid, t0):
        super().__init__(daemon=True)
        self.tid, self.t0, self.result = tid, t0, None

    def run(self):
        samples = []
        while time.monotonic() < self.t0 + 30:
            now = time.monotonic()
            try:
                ns = schedstat_ns(self.tid)
            except (OSError, ValueError):  # the thread exited
                self.result = (now - self.t0) * 1000
                return
            samples.append((now, ns))
            ref = next((x for x in reversed(samples)
                        if now - x[0] >= 0.02), None)
            if ref and (ns - ref[1]) / ((now - ref[0]) * 1e9) < 0.10:
                self.result = (ref[0] - self.t0) * 1000
                return
            time.sleep(0.002)


def lend_once(ctl, src, dst, tid):
    t0 = time.monotonic()
    w = IdleWatch(tid, t0) if tid else None
    if w:
        w.start()
    p = subprocess.run(ctl.argv("lend", "--from", src, "--to", dst,
                                "--cpus", "1", "--mode", "coop"),
                       capture_output=True, text=True)
    ms = (time.monotonic() - t0) * 1000
    if p.returncode:
        raise SystemExit(f"lend failed: {p.stdout}{p.stderr}")
    if w:
        w.join()
    return ms, w.result if w else None


def hotplug(args):
    a2 = Guest(Shape.parse(SHAPE))
    b2 = Guest(Shape.parse(SHAPE), hotplug_cpus=1)
    a2.start()
    b2.start()
    try:
        a2.shell.run("for i in 1 2; do (while :; do :; done) & done")
        time.sleep(1)
        tid = vcpu_threads(a2)[1]
        slot = [c for c in a2.qmp.cmd("query-hotpluggable-cpus")
                if c["props"]["socket-id"] == 1][0]
        free = [c for c in b2.qmp.cmd("query-hotpluggable-cpus")
                if "qom-path" not in c][0]
        t0 = time.monotonic()
        w = IdleWatch(tid, t0)
        w.start()
        a2.qmp.cmd("device_del", id=slot["qom-path"])
        while len(a2.qmp.cmd("query-cpus-fast")) > 1:
            if time.monotonic() - t0 > 30:
                raise SystemExit("a2 did not eject vCPU 1")
            time.sleep(0.005)
        b2.qmp.cmd("device_add", driver=free["type"], id="cpu1",
                   **free["props"])
        # what udev's rule does on a CPU add event
        b2.shell.out("f=/sys/devices/system/cpu/cpu1/online; "
                     "while [ ! -e $f ]; do :; done; echo 1 > $f; "
                     "cat /sys/devices/system/cpu/online")
        ms = (time.monotonic() - t0) * 1000
        w.join()
        return ms, w.result
    finally:
        a2.stop()
        b2.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--smoke", action="store_true",
                    help="one lend each way")
    args = ap.parse_args()
    if args.smoke:
        args.repeat = 1
    ctl = Ctl(binary=os.path.join(REPO, "build", "rel", "vsharectl"))
    g = boot_pair(ctl)
    try:
        a, b = g["a"], g["b"]
        for cmd in (("cpus", "a", "--set", "0-1", "--mode", "coop"),
                    ("cpus", "b", "--set", "none")):
            if ctl.run(*cmd).returncode:
                raise SystemExit(f"setup failed: {cmd}")
        a.shell.run("for i in 1 2; do (while :; do :; done) & done")
        time.sleep(1)
        ta, tb = vcpu_threads(a), vcpu_threads(b)
        lat, freed, back = [], [], []
        for _ in range(args.repeat):
            ms, fr = lend_once(ctl, "a", "b", ta[1])
            lat.append(ms)
            freed.append(fr)
            ms, _ = lend_once(ctl, "b", "a", tb[1])
            back.append(ms)
        p = ctl.run("lend", "--from", "a", "--to", "b", "--cpus", "1",
                    "--node", "1", "--mem", "128M", "--mode", "coop")
        mem_ms = p.seconds * 1000 if p.returncode == 0 else -1
    finally:
        for x in g.values():
            x.stop()
    hp_ms, hp_freed = hotplug(args)
    lend_ms = statistics.median(lat)
    freed_ok = [x for x in freed if x is not None]
    bench("lend_latency_ms", f"{lend_ms:.1f}", "ms")
    bench("lend_back_latency_ms", f"{statistics.median(back):.1f}", "ms")
    bench("cpu_freed_ms", f"{statistics.median(freed_ok):.1f}"
          if freed_ok else "n/a", "ms")
    bench("lend_with_128M_latency_ms", f"{mem_ms:.1f}", "ms")
    bench("hotplug_latency_ms", f"{hp_ms:.1f}", "ms")
    bench("hotplug_cpu_freed_ms",
          f"{hp_freed:.1f}" if hp_freed is not None else "n/a", "ms")
    bench("lend_vs_hotplug_ratio", f"{lend_ms / hp_ms:.3f}", "ratio")
    print(f"# lend samples (ms): {[round(x, 1) for x in lat]}; "
          f"cpu freed: {[round(x, 1) for x in freed_ok]}", flush=True)


if __name__ == "__main__":
    main()
