#!/usr/bin/env python3
"""The agent's cost with the guest's size (issue 26, item 4): take-away
and give-back through vshare-agent in TCG guests of 2, 4 and 8 vCPUs (two
vNUMA nodes, the same number of sleeping tasks), one guest at a time.
The take-away confines the guest to node 0's vCPUs, the give-back returns
them all. Latencies from request sent to reply received, median of
--repeat runs; the agent's own step timings beside them.

Prints BENCH agent_takeaway_ms_{N}vcpus, agent_giveback_ms_{N}vcpus and
the growth from the smallest to the largest guest. --smoke (make check):
the 2-vCPU guest only, 200 tasks, one repetition; printed, not judged."""
import argparse
import math
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "vm"))
from bench import agent_cycles, bench, print_agent_runs, set_tasks  # noqa
from vshare_vm import Guest, Shape  # noqa: E402


def one(n, tasks, repeat, kernel=None):
    per = n // 2
    g = Guest(Shape(2, per, mem_mb=512), cgroup="v2", kernel=kernel)
    with g:
        total = set_tasks(g, tasks)
        print(f"# {n} vCPUs: guest up in {g.boot_seconds:.1f} s, {total} "
              "tasks", flush=True)
        take = dict(cpus=f"0-{per - 1}" if per > 1 else "0")
        give = dict(cpus=f"0-{n - 1}")
        tk, gb, steps = agent_cycles(g.agent, take, give, repeat)
        print_agent_runs(tk, gb, steps, prefix=f"# {n} vCPUs: ")
        return statistics.median(tk), statistics.median(gb)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vcpus", default="2,4,8")
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--kernel")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    if a.smoke:
        a.vcpus, a.tasks, a.repeat = "2", 200, 1
    sizes = [int(x) for x in a.vcpus.split(",")]
    if any(n < 2 or n % 2 for n in sizes):
        sys.exit("--vcpus: even counts of at least 2 (two vNUMA nodes)")
    got = {}
    for n in sizes:
        got[n] = one(n, a.tasks, a.repeat, a.kernel)
        bench(f"agent_takeaway_ms_{n}vcpus", f"{got[n][0]:.1f}", "ms")
        bench(f"agent_giveback_ms_{n}vcpus", f"{got[n][1]:.1f}", "ms")
    lo, hi = min(sizes), max(sizes)
    if hi > lo:
        for i, what in ((0, "takeaway"), (1, "giveback")):
            exp = math.log(got[hi][i] / got[lo][i]) / math.log(hi / lo)
            bench(f"agent_{what}_growth_exponent_{lo}_{hi}vcpus",
                  f"{exp:.2f}", "exponent")


if __name__ == "__main__":
    main()
