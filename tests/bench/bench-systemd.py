#!/usr/bin/env python3
"""make bench: vshare-agent's systemd backend against Debian's qemu-ga in
one run of the Debian bookworm guest (tests/image: systemd, cgroup v2,
cloud-init installs our .deb; qemu-guest-agent from the image).

Same vCPUs, same guest run: take-away of node 1's two vCPUs (2 of 4) and
give-back through the agent, against qemu-ga's guest-set-vcpus offlining
and onlining the same two. Latency is measured on the host, request sent to
reply received, median of --repeat runs. Prints `BENCH <name> <value>
<unit>` lines; only the ratios mean anything under TCG.

The first take-away after boot is timed on its own
(systemd_first_takeaway_ms, against the median of the later ones), and the
memory of both agents is read from /proc/PID/smaps_rollup. --smoke (make
check): one repetition at 100 tasks; the figures are printed, not judged.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "image"))
sys.path.insert(0, os.path.join(REPO, "tests", "vm"))
from debian_vm import DebianGuest, build_image  # noqa: E402
from vshare_vm import AgentClient, Shape  # noqa: E402
from bench import (agent_cycles, bench, bench_memory,  # noqa: E402
                   print_agent_runs, print_qga_runs, qga_cycles, timed)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--smoke", action="store_true",
                    help="one repetition at 100 tasks")
    a = ap.parse_args()
    if a.smoke:
        a.repeat, a.tasks = 1, 100
    img = build_image()
    deb = subprocess.run([os.path.join(REPO, "packaging", "deb",
                                       "build.sh"), "agent"],
                         capture_output=True,
                         text=True, check=True).stdout.split()[-1]
    ud = subprocess.run([os.path.join(REPO, "agent", "cloud-init",
                                      "make-user-data.sh"), deb],
                        capture_output=True, text=True, check=True).stdout
    g = DebianGuest(img, user_data=ud, qga=True,
                    shape=Shape(2, 2, mem_mb=512, vmem_max_mb=512,
                                vmem_mb=128))
    with g:
        g.shell.out("cloud-init status --wait", timeout=900)
        g.shell.out("for i in $(seq 300); do systemctl is-active -q "
                    "vshare-agent && break; sleep 0.2; done")
        ag, qga = AgentClient(g.path("agent.sock")), g.qga_client
        ag.connect(120)
        backend = ag.call("vshare-get-topology")["cgroup"]
        # as many tasks as the cgroupfs bench's anchor point, in a unit of
        # their own (a real service would hold them)
        g.shell.out(f"systemd-run -q --unit=vshare-load sh -c 'i=0; while "
                    f"[ $i -lt {a.tasks} ]; do sleep 100000 & i=$((i+1)); "
                    "done; wait'")
        for _ in range(600):
            n = int(g.shell.out("ls -d /proc/[0-9]* 2>/dev/null | wc -l"))
            if n >= a.tasks:
                break
            time.sleep(0.5)
        print(f"# Debian guest up in {g.boot_seconds:.1f} s ({g.shape}, "
              f"backend {backend['backend']}, cgroup v{backend['version']},"
              f" {n} tasks, TCG)", flush=True)
        first = timed(lambda: ag.call("vshare-set-allocation", cpus="0-1"))
        ag.call("vshare-set-allocation", cpus="0-3")
        tk, gb, steps = agent_cycles(ag, dict(cpus="0-1"), dict(cpus="0-3"),
                                     a.repeat)
        off, on = qga_cycles(qga, [2, 3], a.repeat)
        take, give = statistics.median(tk), statistics.median(gb)
        qoff, qon = statistics.median(off), statistics.median(on)
        print_agent_runs(tk, gb, steps)
        print_qga_runs(off, on)
        bench("systemd_first_takeaway_ms", f"{first:.1f}", "ms")
        bench("systemd_takeaway_ms", f"{take:.1f}", "ms")
        bench("systemd_giveback_ms", f"{give:.1f}", "ms")
        bench("systemd_qga_offline_ms", f"{qoff:.1f}", "ms")
        bench("systemd_qga_online_ms", f"{qon:.1f}", "ms")
        bench("systemd_takeaway_vs_qga_offline_ratio", f"{take / qoff:.3f}",
              "ratio")
        bench("systemd_giveback_vs_qga_online_ratio", f"{give / qon:.3f}",
              "ratio")
        bench_memory(g, g.shell.out("pidof vshare-agent"),
                     g.shell.out("pidof qemu-ga"), prefix="systemd_")


if __name__ == "__main__":
    main()
