#!/usr/bin/env python3
"""make bench: vshare-agent against Debian's qemu-ga in one TCG guest run.

Prints `BENCH <name> <value> <unit>` lines. Latencies are measured on the
host from request sent to reply received, median of --repeat runs. Under
TCG absolute figures mean little: compare only within one run (the ratios).
--smoke (make check): one repetition at 200 tasks, qemu-ga at the same
point, 1 s idle; the figures are printed, not judged.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "vm"))
from vshare_vm import Guest, Shape  # noqa: E402


def timed(fn):
    t0 = time.monotonic()
    fn()
    return (time.monotonic() - t0) * 1000.0


def bench(name, value, unit):
    print(f"BENCH {name} {value} {unit}", flush=True)


def status_field(g, pid, field):
    return int(g.shell.out(
        f"sed -n 's/^{field}:[^0-9]*\\([0-9]*\\).*/\\1/p' /proc/{pid}/status"))


def smaps_rollup(g, pid):
    """{field: KiB} of /proc/PID/smaps_rollup."""
    out = {}
    for line in g.shell.out(f"cat /proc/{pid}/smaps_rollup").splitlines():
        w = line.split()
        if len(w) == 3 and w[2] == "kB":
            out[w[0].rstrip(":")] = int(w[1])
    return out


def bench_memory(g, apid, qpid, prefix=""):
    """RSS, private memory (what the process alone costs the guest) and
    Pss of the agent and of qemu-ga."""
    for who, pid in (("agent", apid), ("qga", qpid)):
        m = smaps_rollup(g, pid)
        bench(f"{prefix}{who}_rss_kib", m["Rss"], "KiB")
        bench(f"{prefix}{who}_private_kib",
              m["Private_Clean"] + m["Private_Dirty"], "KiB")
        bench(f"{prefix}{who}_pss_kib", m["Pss"], "KiB")
        print(f"# {who}: " + ", ".join(f"{k} {v}" for k, v in m.items()
                                       if k.startswith(("Private", "Pss",
                                                        "Anon"))),
              flush=True)


def ctxt(g, pid):
    return status_field(g, pid, "voluntary_ctxt_switches") + \
        status_field(g, pid, "nonvoluntary_ctxt_switches")


def set_tasks(g, n):
    """Exactly @n sleeping helper processes in the guest."""
    g.shell.out("killall sleep 2>/dev/null; sleep 0.5; true", timeout=300)
    g.shell.out(f"i=0; while [ $i -lt {n} ]; do sleep 100000 & "
                "i=$((i+1)); done", timeout=1200)
    return int(g.shell.out("ls -d /proc/[0-9]* | wc -l"))


def vcpus(ids, online):
    return [{"logical-id": i, "online": online} for i in ids]


def agent_cycles(ag, take, give, repeat):
    """@repeat take-away / give-back pairs through the agent: latencies
    (ms) of each, and the agent's own step timings of each take-away."""
    tk, gb, steps = [], [], []
    for _ in range(repeat):
        tk.append(timed(lambda: steps.append(ag.call(
            "vshare-set-allocation", **take)["steps-us"])))
        gb.append(timed(lambda: ag.call("vshare-set-allocation", **give)))
    return tk, gb, steps


def qga_cycles(qga, ids, repeat):
    """@repeat offline / online pairs of vCPUs @ids through qemu-ga."""
    off, on = [], []
    for _ in range(repeat):
        off.append(timed(lambda: qga.call("guest-set-vcpus",
                                          vcpus=vcpus(ids, False))))
        on.append(timed(lambda: qga.call("guest-set-vcpus",
                                         vcpus=vcpus(ids, True))))
    return off, on


def print_agent_runs(tk, gb, steps, prefix="# "):
    print(f"{prefix}take-away runs {[round(x, 1) for x in tk]}, give-back "
          f"{[round(x, 1) for x in gb]}", flush=True)
    print("# take-away inside the agent (median us): " + ", ".join(
        f"{k} {statistics.median(x[k] for x in steps):.0f}"
        for k in steps[0]), flush=True)


def print_qga_runs(off, on):
    print(f"# qemu-ga offline runs {[round(x, 1) for x in off]}, "
          f"online {[round(x, 1) for x in on]}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tasks", default="100,1000,5000")
    ap.add_argument("--anchor", type=int, default=1000,
                    help="task count where qemu-ga is measured")
    ap.add_argument("--idle", type=float, default=10.0,
                    help="seconds of idle wake-up counting")
    ap.add_argument("--kernel")
    ap.add_argument("--agent", help="the agent binary (default "
                    "build/rel/vshare-agent), e.g. a baseline build")
    ap.add_argument("--smoke", action="store_true",
                    help="one repetition at 200 tasks, 1 s idle")
    a = ap.parse_args()
    if a.smoke:
        a.repeat, a.tasks, a.anchor, a.idle = 1, "200", 200, 1.0
    g = Guest(Shape(2, 2, mem_mb=1024), cgroup="v2", kernel=a.kernel,
              agent=a.agent, qga=True)
    with g:
        print(f"# guest up in {g.boot_seconds:.1f} s ({g.shape}, cgroup v2, "
              f"TCG)", flush=True)
        ag, qga = g.agent, g.qga_client
        take = dict(cpus="0-1")  # 2 of 4 vCPUs, memory nodes unchanged
        give = dict(cpus="0-3")

        # Idle: wake-ups (connected, no requests) over a.idle seconds,
        # reported per 10 s.
        apid = g.shell.out("pidof vshare-agent")
        qpid = g.shell.out("pidof qemu-ga")
        c0 = ctxt(g, apid)
        time.sleep(a.idle)
        c1 = ctxt(g, apid)
        bench("agent_idle_wakeups", round((c1 - c0) * 10 / a.idle),
              "switches/10s")

        results = {}
        for n in [int(x) for x in a.tasks.split(",")]:
            total = set_tasks(g, n)
            tk, gb, steps = agent_cycles(ag, take, give, a.repeat)
            results[n] = (statistics.median(tk), statistics.median(gb))
            bench(f"takeaway_ms_{n}_tasks", f"{results[n][0]:.1f}", "ms")
            bench(f"giveback_ms_{n}_tasks", f"{results[n][1]:.1f}", "ms")
            print_agent_runs(tk, gb, steps,
                             prefix=f"# {total} tasks in the guest; ")
            if n != a.anchor:
                continue
            off, on = qga_cycles(qga, [2, 3], a.repeat)
            qoff, qon = statistics.median(off), statistics.median(on)
            bench(f"qga_offline_ms_{n}_tasks", f"{qoff:.1f}", "ms")
            bench(f"qga_online_ms_{n}_tasks", f"{qon:.1f}", "ms")
            print_qga_runs(off, on)
            bench("takeaway_vs_qga_offline_ratio",
                  f"{results[n][0] / qoff:.3f}", "ratio")
            bench("giveback_vs_qga_online_ratio",
                  f"{results[n][1] / qon:.3f}", "ratio")
        bench_memory(g, apid, qpid)


if __name__ == "__main__":
    main()
