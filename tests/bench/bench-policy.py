#!/usr/bin/env python3
"""make bench: the policy engine. Release binaries (build/rel), one pair of
2-node x 1-vCPU TCG guests on the declared 2-node host (tests/shim), the
guests' shells for the workloads.

  elastic   out-of-phase busy/idle phases: in phase k the busy VM (a, b,
            a, ...) runs two CPU-bound workers counting work units (a unit
            = 2000 iterations of a shell loop) for --phase seconds, the
            other VM idles. Static: a owns pCPU 0, b pCPU 1 (coop), no
            policy. Elastic: the same start with vshared running
            elastic.lua (interval 0.25 s, floor 0 so an idle VM may lend
            its only pCPU). Work units of both runs, same boot.
            At the start of each phase after the first, from the host
            sending the busy VM its workers to the ledger showing the VM's
            own pCPU back with it (the file, polled every 10 ms): that VM
            was parked, so this includes its guest starting the workers
            at 1 % of a pCPU.
  reaction  elastic.lua as shipped (floor 1): a owns both pCPUs, b parked
            with a hog borrows a's idle pCPU 1; a's hog starts: the time
            to the ledger giving pCPU 1 back to a, --reactions times.
  vshared   its CPU time (/proc/PID/stat utime+stime) over the elastic
            run, and the median elastic.lua run (vsharectl policy list).
  paper003  a throughput VM (a: the same workers) beside a CPU-bound VM
            (b: two endless loops), both unmanaged, each vCPU thread
            sharing its pCPU with the other VM's (the paper's setting:
            VMs as CFS peers). b starts at nice 1, a at 0 (b is the lower
            priority). Off: --phase2 s of a's work with loadavg-priority
            disabled; on: the same with it enabled at a 1 s interval on
            the 1-minute load average (window=1: the paper's 15-minute
            average needs a quarter of an hour to rise; the decision is
            the paper's): it raises the lowest-priority VM's nice while
            the load is above 90 % of the pCPUs, which the two VMs keep
            it at. Then the same with loadavg-weight.lua (b starts at
            weight 90, a at 100): with each VM's vCPU threads in their own
            cgroup (vshare's, libvirt's), nice only orders threads within
            a cgroup, and the weight is the knob that acts between VMs.
  unit      build/rel/bench-policy --bench: one elastic.lua run on a fake
            host of 2 and of 100 VMs (200 pCPUs, full vNUMA: 20,000
            vCPUs).

BENCH elastic_work_units_static / elastic_work_units_elastic
BENCH elastic_vs_static_work_ratio      (target >= 1.3)
BENCH elastic_reaction_ms               median (target <= 1000 at 250 ms)
BENCH elastic_reaction_parked_owner_ms  median, the phases' owners
BENCH vshared_cpu_pct                   % of one CPU, elastic at 4 Hz
BENCH policy_run_us                     median elastic run, 2 real VMs
BENCH policy_run_us_2vms / _100vms      the unit benchmark (fake driver)
BENCH loadavg_policy_gain_ratio         a's work, policy on / off (nice)
BENCH loadavg_weight_policy_gain_ratio  the same with loadavg-weight.lua

--smoke: 3 s phases (2 of them), 5 s paper-003 phases.
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
for d in ("vm", "shim"):
    sys.path.insert(0, os.path.join(TESTS, d))
from shimlib import Ctl, Daemon, boot_pair  # noqa: E402
from vshare_vm import REPO  # noqa: E402

REL = os.path.join(REPO, "build", "rel")

WORKER = ("w() { end=$(($(date +%s) + $1)); n=0; "
          "while [ $(date +%s) -lt $end ]; do j=0; "
          "while [ $j -lt 2000 ]; do j=$((j+1)); done; n=$((n+1)); done; "
          "echo $n >> /tmp/work; }; ")


def bench(name, value, unit):
    print(f"BENCH {name} {value} {unit}", flush=True)


def owners(ctl):
    try:
        with open(ctl.ledger_path()) as f:
            led = json.load(f)["ledger"]
    except (OSError, ValueError, KeyError):
        return {}
    return {v["name"]: v["pcpus"] for v in led["vms"]}


def start_work(g, seconds):
    """Two workers in the background; the send does not wait for the
    guest (a parked guest reads its shell slowly)."""
    g.shell.ls.send((WORKER + f"w {seconds} & w {seconds} &\n").encode())


def work_done(g):
    out = g.shell.out("cat /tmp/work 2>/dev/null; rm -f /tmp/work",
                      timeout=120)
    return sum(int(x) for x in out.split() if x.isdigit())


def phases(ctl, g, n, seconds, measure):
    """n phases of @seconds, a busy first; the reaction times when
    @measure (the VM's own pCPU: a 0, b 1)."""
    home = {"a": "0", "b": "1"}
    react = []
    for k in range(n):
        vm = "a" if k % 2 == 0 else "b"
        t0 = time.monotonic()
        start_work(g[vm], seconds)
        if measure and k > 0:
            while time.monotonic() - t0 < seconds:
                if home[vm] in owners(ctl).get(vm, "").split(","):
                    react.append((time.monotonic() - t0) * 1000)
                    break
                time.sleep(0.01)
        time.sleep(max(0, seconds + 1.5 - (time.monotonic() - t0)))
    return react


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def split(ctl, g):
    for vm, cpus in (("a", "0"), ("b", "1")):
        p = ctl.run("cpus", vm, "--set", cpus, "--mode", "coop")
        if p.returncode:
            raise RuntimeError(p.stderr)
    for x in g.values():
        x.shell.run("rm -f /tmp/work")


def elastic(ctl, g, args):
    split(ctl, g)
    phases(ctl, g, args.phases, args.phase, False)
    static = work_done(g["a"]) + work_done(g["b"])
    split(ctl, g)
    with open(os.path.join(ctl.conf, "policies.conf"), "w") as f:
        f.write("[elastic]\nenabled=true\ninterval=0.25\nfloor=0\n")
    d = Daemon(ctl, binary=os.path.join(REL, "vshared"), interval=10)
    d.start()
    try:
        hz = os.sysconf("SC_CLK_TCK")
        c0, t0 = cpu_ticks(d.proc.pid), time.monotonic()
        react = phases(ctl, g, args.phases, args.phase, True)
        cpu = (cpu_ticks(d.proc.pid) - c0) / hz / (time.monotonic() - t0)
        pol = {p["name"]: p for p in
               ctl.json("policy", "list")["policies"]}["elastic"]
        log = ctl.run("policy", "log", "--count", "20").stdout
    finally:
        d.stop()
    work = work_done(g["a"]) + work_done(g["b"])
    bench("elastic_work_units_static", static, "units")
    bench("elastic_work_units_elastic", work, "units")
    bench("elastic_vs_static_work_ratio",
          f"{work / static:.3f}" if static else "nan", "ratio")
    bench("elastic_reaction_parked_owner_ms",
          f"{statistics.median(react):.0f}" if react else "nan",
          f"ms (median of {len(react)}: "
          f"{', '.join(f'{x:.0f}' for x in react)}; the owner lent its "
          "only pCPU and starts its work at 1 % CPU)")
    bench("vshared_cpu_pct", f"{cpu * 100:.1f}", "% of one CPU")
    bench("policy_run_us", f"{pol['run-us-median']:.0f}",
          f"us (median of {pol['runs']} elastic runs, 2 VMs)")
    for line in log.splitlines():
        print("# " + line)


def reaction(ctl, g, args):
    """elastic.lua as shipped (floor 1): a owns both pCPUs, b is parked
    and runs a hog, so a's idle node-1 pCPU goes to b; then a gets busy:
    from the host sending a its hog to the ledger giving pCPU 1 back."""
    a, b = g["a"], g["b"]
    for vm, cpus in (("b", "none"), ("a", "0-1")):
        p = ctl.run("cpus", vm, "--set", cpus, "--mode", "coop")
        if p.returncode:
            raise RuntimeError(p.stderr)
    with open(os.path.join(ctl.conf, "policies.conf"), "w") as f:
        f.write("[elastic]\nenabled=true\ninterval=0.25\n")
    d = Daemon(ctl, binary=os.path.join(REL, "vshared"), interval=10)
    d.start()
    react = []
    try:
        b.shell.ls.send(b"(while :; do :; done) & echo $! > /tmp/bhog\n")
        for _ in range(args.reactions):
            end = time.monotonic() + 60
            while owners(ctl) != {"a": "0", "b": "1"}:
                if time.monotonic() > end:
                    raise RuntimeError(f"no lend to b: {owners(ctl)}")
                time.sleep(0.05)
            time.sleep(1)
            t0 = time.monotonic()
            a.shell.ls.send(b"(while :; do :; done) & "
                            b"echo $! > /tmp/ahog\n")
            while owners(ctl).get("a") != "0-1":
                if time.monotonic() - t0 > 30:
                    raise RuntimeError(f"no reclaim: {owners(ctl)}")
                time.sleep(0.01)
            react.append((time.monotonic() - t0) * 1000)
            a.shell.run("kill $(cat /tmp/ahog)")
        b.shell.run("kill $(cat /tmp/bhog)", timeout=120)
    finally:
        d.stop()
    bench("elastic_reaction_ms", f"{statistics.median(react):.0f}",
          f"ms (median of {len(react)}: "
          f"{', '.join(f'{x:.0f}' for x in react)}; interval 250 ms)")


def unshare(ctl):
    """Both VMs unmanaged, allocation all vCPUs, pinned 1:1 (as the
    previous part left them): each pCPU shared by one vCPU of each."""
    steps = [("forget", "a"), ("forget", "b")]
    for vm in ("a", "b"):
        steps += [("cpus", vm, "--set", "0-1", "--mode", "coop"),
                  ("forget", vm)]
    for args in steps:
        p = ctl.run(*args)
        if p.returncode:
            raise RuntimeError(p.stderr)


def a_work(ctl, g, args, conf):
    """a's work units over --phase2 s with vshared running @conf."""
    with open(os.path.join(ctl.conf, "policies.conf"), "w") as f:
        f.write(conf)
    d = Daemon(ctl, binary=os.path.join(REL, "vshared"), interval=10)
    d.start()
    try:
        start_work(g["a"], args.phase2)
        time.sleep(args.phase2 + 1.5)
    finally:
        d.stop()
    work = work_done(g["a"])
    with open(ctl.ledger_path()) as f:
        knobs = {v["name"]: (v.get("nice", 0), v.get("weight", 100))
                 for v in json.load(f)["ledger"]["vms"]}
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"# paper003 [{conf.splitlines()[0]}] "
          f"{'on' if 'enabled=true' in conf else 'off'}: a did {work} "
          f"units; (nice, weight) now {knobs}; loadavg {load}", flush=True)
    return work


def paper003(ctl, g, args):
    unshare(ctl)
    for vm, knobs in (("a", ("--nice", "0", "--weight", "100")),
                      ("b", ("--nice", "1", "--weight", "90"))):
        p = ctl.run("tune", vm, *knobs)
        if p.returncode:
            raise RuntimeError(p.stderr)
    g["b"].shell.run("for i in 1 2; do (while :; do :; done) & "
                     "echo $! >> /tmp/hogs; done")
    g["a"].shell.run("rm -f /tmp/work")
    for name, policy in (("loadavg_policy_gain_ratio", "loadavg-priority"),
                         ("loadavg_weight_policy_gain_ratio",
                          "loadavg-weight")):
        work = {}
        for on in (False, True):
            work[on] = a_work(ctl, g, args,
                              f"[{policy}]\nenabled={str(on).lower()}\n"
                              "interval=1\nwindow=1\n")
        for vm, knobs in (("a", ("--nice", "0", "--weight", "100")),
                          ("b", ("--nice", "1", "--weight", "90"))):
            ctl.run("tune", vm, *knobs)
        bench(name, f"{work[True] / work[False]:.3f}" if work[False]
              else "nan", f"ratio (a's work units {work[True]} on / "
              f"{work[False]} off, {args.phase2} s each, {policy})")
    g["b"].shell.run("kill $(cat /tmp/hogs); rm -f /tmp/hogs")


def unit(args):
    out = subprocess.run([os.path.join(REL, "bench-policy"), "--bench",
                          str(args.unit_runs)], capture_output=True,
                         text=True, check=True).stdout
    print(out, end="", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--phase", type=int, default=30)
    ap.add_argument("--phases", type=int, default=4)
    ap.add_argument("--phase2", type=int, default=30)
    ap.add_argument("--unit-runs", type=int, default=400)
    ap.add_argument("--reactions", type=int, default=5)
    args = ap.parse_args()
    if args.smoke:
        args.phase, args.phases, args.phase2, args.unit_runs = 3, 2, 5, 20
        args.reactions = 2
    unit(args)
    ctl = Ctl(binary=os.path.join(REL, "vsharectl"))
    g = boot_pair(ctl)
    try:
        elastic(ctl, g, args)
        reaction(ctl, g, args)
        paper003(ctl, g, args)
    finally:
        for x in g.values():
            x.stop()


if __name__ == "__main__":
    main()
