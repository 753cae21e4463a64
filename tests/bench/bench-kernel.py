#!/usr/bin/env python3
"""make bench-kernel: the guest-kernel series, stock vs patched.

Both kernels are built from Debian's linux-source-6.1 with the same trimmed
config (guest-kernel/scripts/build.sh all); the patched one also runs with
its features switched off (NO_SIS_NODE, NO_NI_NODE_KEEP) in the same boot.

Shape, and why: 2 vNUMA nodes x 1 vCPU (one LLC per node, as a full-vNUMA
guest on a 2-socket host), each vCPU thread pinned to its own host core of
this 2-core machine. The guest has exactly as many vCPUs as the host has
cores, so no vCPU waits for another on the host: what differs between the
kernels is where the guest scheduler puts waking threads, not host
contention. Workloads (tests/bench/kernel/omp-wake.c), 3 OpenMP threads
on the 2 vCPUs (more runnable threads than an LLC holds, the situation in
which a waking thread finds its LLC busy while the other node idles):
  wake  barrier loop with short critical sections, GOMP_SPINCOUNT=0
  cpu   the same work per thread, one barrier, 2 threads (the control:
        one thread per vCPU leaves the scheduler nothing to decide)
  lock  open/close of one file by every thread (kernel spinlocks), with
        both vCPUs free and with vCPU 1 throttled on the host
Medians of --repeat runs per kernel; the kernels alternate boots.

BENCH kernel_wake_heavy_patched_vs_stock <r>     target <= 0.85
BENCH kernel_cpu_bound_patched_vs_stock <r>      target <= 1.02
plus /proc/schedstat run-queue wait and the patched kernel's
ttwu_cross_node / newidle_node_kept counters.
"""
import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "vm"))
from vshare_vm import Guest, Shape  # noqa: E402

OMP = os.path.join(REPO, "build", "bench", "omp-wake")
FEATURES = "/sys/kernel/debug/sched/features"


def bench(name, value, unit=""):
    print(f"BENCH {name} {value} {unit}".rstrip(), flush=True)


def build():
    os.makedirs(os.path.dirname(OMP), exist_ok=True)
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror",
                    "-fopenmp", "-static", "-o", OMP,
                    os.path.join(HERE, "kernel", "omp-wake.c")],
                   check=True, stderr=subprocess.DEVNULL)
    p = subprocess.run([os.path.join(REPO, "guest-kernel", "scripts",
                                     "build.sh"), "all"],
                       capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr)
    return [x for x in p.stdout.split() if x.endswith(("stock",
                                                          "patched"))]


def schedstat(g):
    """Sum over CPUs of run_delay (ns waiting on a runqueue)."""
    total = 0
    for line in g.shell.out("cat /proc/schedstat").splitlines():
        f = line.split()
        if f and f[0].startswith("cpu"):
            total += int(f[8])
    return total


def counters(g):
    out = {"ttwu_cross_node": 0, "newidle_node_kept": 0}
    for line in g.shell.out("cat /sys/kernel/debug/sched/debug "
                            "2>/dev/null; true").splitlines():
        for k in out:
            if line.strip().startswith(f".{k}"):
                out[k] += int(line.split(":")[-1])
    return out


THREADS = 3


def run(g, mode, rounds, work):
    # the CPU-bound control runs one thread per vCPU: no placement choice
    # to make, so it shows what the patches cost plain computation
    threads = 2 if mode == "cpu" else THREADS
    env = (f"OMP_NUM_THREADS={threads} GOMP_SPINCOUNT=0 "
           "OMP_WAIT_POLICY=passive")
    out = g.shell.out(f"{env} /bin/omp-wake {mode} {rounds} {work}",
                      timeout=600)
    return float(out.split()[0])


def pin(g):
    tids = [c["thread-id"] for c in sorted(g.qmp.cmd("query-cpus-fast"),
                                           key=lambda c: c["cpu-index"])]
    for i, tid in enumerate(tids):
        os.sched_setaffinity(tid, {i % os.cpu_count()})


class Throttle:
    """Host-side 'vCPU preemption': a CFS quota on one vCPU thread (v1 cpu
    controller, as vsharectl's enforce), 20 ms per 100 ms."""

    def __init__(self, tid):
        self.dir = f"/sys/fs/cgroup/cpu/vshare-bench-{os.getpid()}"
        os.makedirs(self.dir, exist_ok=True)
        self.tid = tid

    def __enter__(self):
        for f, v in (("cpu.cfs_period_us", "100000"),
                     ("cpu.cfs_quota_us", "20000"), ("tasks", self.tid)):
            with open(os.path.join(self.dir, f), "w") as fh:
                fh.write(str(v))
        return self

    def __exit__(self, *exc):
        with open("/sys/fs/cgroup/cpu/tasks", "w") as fh:
            fh.write(str(self.tid))
        os.rmdir(self.dir)


def lock_measure(g, name, args, res):
    """Lock-waiter preemption (patch d's question): a kernel-spinlock-heavy
    loop with both vCPUs free, then with vCPU 1 throttled on the host."""
    tid = sorted(g.qmp.cmd("query-cpus-fast"),
                 key=lambda c: c["cpu-index"])[1]["thread-id"]
    if not os.path.isdir("/sys/fs/cgroup/cpu"):
        return
    for _ in range(args.repeat):
        res.setdefault((name, "lock_free"), []).append(
            run(g, "lock", args.lock_rounds, 1))
    with Throttle(tid):
        for _ in range(args.repeat):
            res.setdefault((name, "lock_preempted"), []).append(
                run(g, "lock", args.lock_rounds, 1))


VARIANTS = {
    # name suffix: features written before measuring
    "": [],
    "-sis-only": ["NO_NI_NODE_KEEP"],
    "-features-off": ["NO_SIS_NODE", "NO_NI_NODE_KEEP"],
}


def ab_interleaved(g, label, args, res):
    """Features on and off, alternating run by run in one boot: drift
    within a boot (TCG's translation cache, the guest settling) cancels."""
    for i in range(2 * args.repeat):
        on = i % 2 == 0
        for feat in ("SIS_NODE", "NI_NODE_KEEP"):
            g.shell.run(f"echo {'' if on else 'NO_'}{feat} > {FEATURES}")
        res.setdefault((label + ("-ab-on" if on else "-ab-off"), "wake"),
                       []).append(run(g, "wake", args.rounds, args.work))


def measure(kernel, label, args, res, variants=("",)):
    g = Guest(Shape(2, 1, mem_mb=256, vmem_max_mb=0), kernel=kernel,
              extra_files=[(OMP, "/bin/omp-wake")],
              extra_append="schedstats=enable")
    g.start()
    try:
        pin(g)
        g.shell.run("mount -t debugfs none /sys/kernel/debug 2>/dev/null")
        # TCG translates code on first use: warm every workload up once
        for mode, rounds in (("wake", args.rounds), ("cpu", args.rounds),
                             ("lock", args.lock_rounds)):
            run(g, mode, rounds, 1 if mode == "lock" else args.work)
        for suffix in variants:
            name = label + suffix
            for feat in VARIANTS[suffix]:
                g.shell.run(f"echo {feat} > {FEATURES}")
            d0, c0 = schedstat(g), counters(g)
            for _ in range(args.repeat):
                res.setdefault((name, "wake"), []).append(
                    run(g, "wake", args.rounds, args.work))
            d1, c1 = schedstat(g), counters(g)
            res.setdefault((name, "rq_wait_ms"), []).append(
                (d1 - d0) / 1e6 / args.repeat)
            for k in c0:
                res.setdefault((name, k), []).append(
                    (c1[k] - c0[k]) / args.repeat)
            for _ in range(args.repeat):
                res.setdefault((name, "cpu"), []).append(
                    run(g, "cpu", args.rounds, args.work))
            if not suffix:
                lock_measure(g, name, args, res)
        if len(variants) > 1:
            ab_interleaved(g, label, args, res)
    finally:
        g.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--work", type=int, default=100)
    ap.add_argument("--lock-rounds", type=int, default=20000)
    ap.add_argument("--boots", type=int, default=2,
                    help="boots per kernel, alternating")
    args = ap.parse_args()
    global THREADS
    THREADS = args.threads
    stock = os.path.join(REPO, "build", "guest-kernel", "bzImage-stock")
    patched = os.path.join(REPO, "build", "guest-kernel", "bzImage-patched")
    build()
    res = {}
    for b in range(args.boots):
        order = [(stock, "stock"), (patched, "patched")]
        for kernel, label in (order if b % 2 == 0 else order[::-1]):
            measure(kernel, label, args, res,
                    variants=tuple(VARIANTS) if label == "patched" else
                    ("",))
    med = {k: statistics.median(v) for k, v in res.items()}
    for (name, what), v in sorted(med.items()):
        print(f"# {name:24s} {what:18s} median {v:10.3f}   "
              f"runs {[round(x, 3) for x in res[(name, what)]]}")
    bench("kernel_wake_heavy_stock_s", f"{med[('stock', 'wake')]:.3f}", "s")
    bench("kernel_wake_heavy_patched_s", f"{med[('patched', 'wake')]:.3f}",
          "s")
    bench("kernel_wake_heavy_patched_vs_stock",
          f"{med[('patched', 'wake')] / med[('stock', 'wake')]:.3f}",
          "ratio")
    bench("kernel_wake_heavy_features_off_vs_stock",
          f"{med[('patched-features-off', 'wake')] / med[('stock', 'wake')]:.3f}",
          "ratio")
    bench("kernel_wake_heavy_sis_only_vs_stock",
          f"{med[('patched-sis-only', 'wake')] / med[('stock', 'wake')]:.3f}",
          "ratio")
    bench("kernel_wake_heavy_features_on_vs_off_interleaved",
          f"{med[('patched-ab-on', 'wake')] / med[('patched-ab-off', 'wake')]:.3f}",
          "ratio")
    bench("kernel_cpu_bound_patched_vs_stock",
          f"{med[('patched', 'cpu')] / med[('stock', 'cpu')]:.3f}", "ratio")
    bench("kernel_rq_wait_ms_per_run_stock",
          f"{med[('stock', 'rq_wait_ms')]:.1f}", "ms")
    bench("kernel_rq_wait_ms_per_run_patched",
          f"{med[('patched', 'rq_wait_ms')]:.1f}", "ms")
    bench("kernel_cross_node_wakeups_per_run_patched",
          f"{med[('patched', 'ttwu_cross_node')]:.0f}", "")
    bench("kernel_newidle_node_kept_per_run_patched",
          f"{med[('patched', 'newidle_node_kept')]:.0f}", "")
    for k in ("stock", "patched"):
        if (k, "lock_free") in med:
            bench(f"kernel_lock_heavy_preempted_vs_free_{k}",
                  f"{med[(k, 'lock_preempted')] / med[(k, 'lock_free')]:.3f}",
                  "ratio")


if __name__ == "__main__":
    main()
