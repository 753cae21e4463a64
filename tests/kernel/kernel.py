#!/usr/bin/env python3
"""guest-kernel: the series applies, the patched kernel builds (cached),
boots as a 2-node guest with the agent, passes its KUnit suite, and its
sched features are visible and switchable. TAP on stdout.
"""
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "vm"))
from vshare_vm import Guest, Shape, Tap  # noqa: E402

BUILD = os.path.join(REPO, "guest-kernel", "scripts", "build.sh")
FEATURES = "/sys/kernel/debug/sched/features"


def ktap_suite(console, name):
    """{case: ok} and the suite's own result, from the boot log's KTAP."""
    cases, suite_ok, inside = {}, None, False
    for line in console.splitlines():
        line = re.sub(r"^\[\s*[\d.]+\]\s*", "", line)
        if re.match(rf"\s*# Subtest: {re.escape(name)}$", line):
            inside = True
            continue
        if not inside:
            continue
        m = re.match(r"\s+(not ok|ok) \d+ (\S+)", line)
        if m:
            cases[m.group(2)] = m.group(1) == "ok"
            continue
        m = re.match(rf"(not ok|ok) \d+ {re.escape(name)}$", line)
        if m:
            suite_ok = m.group(1) == "ok"
            break
    return cases, suite_ok


def main():
    t = Tap()
    p = subprocess.run([BUILD, "check"], capture_output=True, text=True)
    t.ok(p.returncode == 0 and p.stdout.count("applies:") == 3,
         "the series applies to Debian's linux-source-6.1",
         p.stdout + p.stderr)
    t0 = time.monotonic()
    p = subprocess.run([BUILD, "patched"], capture_output=True, text=True)
    kernel = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    t.ok(p.returncode == 0 and os.path.exists(kernel),
         f"patched kernel built ({time.monotonic() - t0:.0f} s, cached "
         "when unchanged)", p.stderr[-2000:])
    if not os.path.exists(kernel):
        t.done()
    g = Guest(Shape(2, 2), kernel=kernel, cgroup="v2",
              extra_append="schedstats=enable")
    try:
        with t.section("the checks", lambda: g.console()[-3000:]):
            checks(t, g)
    finally:
        g.stop()
    t.done()


def checks(t, g):
    g.start()
    nodes = g.shell.out("ls -d /sys/devices/system/node/node[0-9]* | "
                        "wc -l")
    rel = g.shell.out("uname -v")
    t.ok(nodes == "2" and "schedstats=enable" in
         g.shell.out("cat /proc/cmdline"),
         f"boots as a 2-node guest ({g.boot_seconds:.1f} s; {rel})",
         f"nodes: {nodes}")
    topo = g.agent.call("vshare-get-topology")
    t.ok(len(topo["nodes"]) == 2 and topo["online-cpus"] == "0-3",
         "the agent answers: 2 nodes, 4 vCPUs", topo)
    rep = g.agent.call("vshare-set-allocation", cpus="0-1", mems="0")
    back = g.agent.call("vshare-set-allocation", cpus="0-3",
                        mems="0-1")
    t.ok(rep["cpus"] == "0-1" and back["cpus"] == "0-3",
         "take-away and give-back work on the patched kernel")
    console = g.console()
    # KUnit logs at KERN_INFO: `quiet` keeps it off the console
    cases, suite_ok = ktap_suite(g.shell.out("dmesg"), "vshare-sched")
    want = {"idle_preempt_off_and_on", "idle_preempt_auto",
            "sis_node_longest_idle", "ni_node_keep"}
    t.ok(set(cases) == want and all(cases.values()) and suite_ok,
         f"KUnit vshare-sched: {sum(cases.values())}/{len(want)} "
         "cases pass (KTAP from the boot log)", cases)
    g.shell.run("mount -t debugfs none /sys/kernel/debug 2>/dev/null")
    feats = g.shell.out(f"cat {FEATURES}").split()
    t.ok("SIS_NODE" in feats and "NI_NODE_KEEP" in feats,
         "sched features SIS_NODE and NI_NODE_KEEP on by default",
         feats)
    g.shell.run(f"echo NO_SIS_NODE > {FEATURES}; "
                f"echo NO_NI_NODE_KEEP > {FEATURES}")
    off = g.shell.out(f"cat {FEATURES}").split()
    g.shell.run(f"echo SIS_NODE > {FEATURES}; "
                f"echo NI_NODE_KEEP > {FEATURES}")
    on = g.shell.out(f"cat {FEATURES}").split()
    t.ok("NO_SIS_NODE" in off and "NO_NI_NODE_KEEP" in off and
         "SIS_NODE" in on and "NI_NODE_KEEP" in on,
         "and switchable at run time")
    dbg = g.shell.out("cat /sys/kernel/debug/sched/debug")
    t.ok(".ttwu_cross_node" in dbg and ".newidle_node_kept" in dbg,
         "per-CPU counters ttwu_cross_node / newidle_node_kept shown")
    t.ok(not re.search(r"BUG:|Oops|WARNING:", console),
         "no BUG/Oops/WARNING in the boot log",
         "\n".join(ln for ln in console.splitlines()
                   if re.search(r"BUG:|Oops|WARNING:", ln))[:2000])


if __name__ == "__main__":
    main()
