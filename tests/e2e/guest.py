#!/usr/bin/env python3
"""End-to-end: the real agent in a real 2-node TCG guest, checked over the
independent shell channel. TAP on stdout.

usage: guest.py --cgroup v1|v2 [--tasks N] [--kernel VMLINUZ]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "vm"))
from vshare_vm import AgentError, Guest, Shape, Tap, VMError, parse_list  # noqa: E402

# Every task's allowed CPUs and nodes, with whether it is a kernel thread
# (PF_KTHREAD in /proc/PID/stat's flags). One line per task.
SCAN = r"""for d in /proc/[0-9]*; do
  s=$(cat $d/status 2>/dev/null) || continue
  f=$(cut -d' ' -f9 $d/stat 2>/dev/null) || continue
  k=$(( (f >> 21) & 1 ))
  c=$(echo "$s" | sed -n 's/^Cpus_allowed_list:\t//p')
  m=$(echo "$s" | sed -n 's/^Mems_allowed_list:\t//p')
  echo "${d#/proc/} $k $c $m"
done"""


def scan(g):
    # ~7 forks a task in busybox sh: 300+ tasks take 1-2 min under a
    # loaded TCG guest
    tasks = []
    for line in g.shell.out(SCAN, timeout=400).splitlines():
        f = line.split()
        if len(f) == 4:
            tasks.append((int(f[0]), f[1] == "1", parse_list(f[2]),
                          parse_list(f[3])))
    return tasks


def check_confined(t, g, cpus, mems, what):
    tasks = scan(g)
    user = [x for x in tasks if not x[1]]
    bad = [x for x in user if not x[2] <= cpus or not x[3] <= mems]
    t.ok(not bad, f"{what}: all {len(user)} user tasks within cpus "
         f"{sorted(cpus)} mems {sorted(mems)}", f"outside: {bad[:5]}")
    kthreads = [x for x in tasks if x[1]]
    t.diag(f"{what}: {len(kthreads)} kthreads, "
           f"{sum(1 for x in kthreads if len(x[2]) == 1)} per-CPU")
    return tasks


def snapshot(g):
    """Kernel-side state the agent manages, read without the agent."""
    cg = "/sys/fs/cgroup/vshare" if g.cgroup == "v2" else \
        "/sys/fs/cgroup/cpuset/vshare"
    return g.shell.out(
        f"cat {cg}/cpuset.cpus {cg}/cpuset.mems "
        "/sys/devices/virtual/workqueue/cpumask; "
        "for i in /proc/irq/*/smp_affinity_list; do "
        "echo $i $(cat $i); done")


def cpu_ticks(g, pid):
    """utime + stime of @pid in clock ticks (/proc/PID/stat)."""
    f = g.shell.out(f"cat /proc/{pid}/stat").rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def until(cond, seconds):
    """A guest shell command: poll @cond every 0.1 s for up to @seconds
    (wall clock); exits 0 as soon as it holds, 1 if it never did."""
    return (f"(end=$(($(date +%s) + {seconds})); until {cond}; do "
            f"[ $(date +%s) -ge $end ] && exit 1; sleep 0.1; done)")


def check_hangup(t, g, n=600):
    """The host hangs up with replies pending. On virtio-serial every later
    write gets EAGAIN while poll() says POLLHUP: each reply must be dropped
    at once (one log line for all), with no busy loop, and the next client
    served."""
    ag = g.agent
    pid = g.shell.out("pidof vshare-agent")
    log0 = int(g.shell.out("wc -l < /run/agent.log"))
    new_log = f"tail -n +{log0 + 1} /run/agent.log"
    ag.ls.send(b'{"execute":"guest-info"}\n' * n)
    # The host does not read: the replies fill the port and the socket,
    # and the agent waits in its one-descriptor poll() (syscall 7, nfds 1).
    rc, _ = g.shell.run(until(
        f"[ \"$(cut -d' ' -f1,3 /proc/{pid}/syscall)\" = '7 0x1' ]", 60),
        timeout=120)
    t.ok(rc == 0, "the agent waits for a host that stopped reading")
    c0 = cpu_ticks(g, pid)
    ag.ls.close()
    rc, _ = g.shell.run(until(f"{new_log} | grep -q 'host disconnected'",
                              60), timeout=120)
    ticks = cpu_ticks(g, pid) - c0
    t.ok(rc == 0, "host hung up with replies pending: the agent noticed "
         "and dropped them")
    t.ok(ticks < 100, f"no busy loop: {ticks} ticks of CPU from the "
         "hang-up to the last dropped reply")
    t.eq(g.shell.run(f"{new_log} | grep -c 'host hung up'")[1].strip(),
         "1", "one log line for all the dropped replies")
    ag.connect()
    t.eq(ag.call("guest-ping"), {}, "the next client is served")


def wait_new_agent(g, old_pid):
    """Until busybox init has started another agent and it has its port
    open; then reconnect."""
    g.shell.out(until(f"p=$(pidof vshare-agent) && [ \"$p\" != {old_pid} ] "
                      "&& ls -l /proc/$p/fd | grep -q vport", 60),
                timeout=120)
    g.agent.connect(timeout=30)


def kill_mid_set(g, step, cpus, mems):
    """Send set-allocation to an agent that stops itself after @step
    (--test-stop), SIGKILL it there; its successor starts with no hook."""
    restart_agent(g, f"--test-stop={step}")
    pid = g.shell.out("pidof vshare-agent")
    g.agent.ls.send(json.dumps({"execute": "vshare-set-allocation",
                                "arguments": {"cpus": cpus, "mems": mems}}
                               ).encode() + b"\n")
    g.shell.out(until(f"grep -q '^State:.T' /proc/{pid}/status", 60),
                timeout=120)
    g.shell.out(f"echo > /run/agent.args; kill -9 {pid}")
    wait_new_agent(g, pid)


def check_killed_mid_set(t, g, taken):
    """The agent SIGKILLed in the middle of a change: what the journal
    says is re-applied by its successor, so the guest holds the old
    allocation (killed before the journal step) or the new one (after),
    in full: cgroup, workqueue mask and IRQs together, never half."""
    ag = g.agent
    for step in ("cgroup", "knobs"):
        kill_mid_set(g, step, "2-3", "1")
        al = ag.call("vshare-get-allocation")
        t.ok(al["cpus"] == "0-1" and al["mems"] == "0" and
             snapshot(g) == taken, f"SIGKILL after the {step} step of "
             "a change: the successor restored the old allocation", al)
    kill_mid_set(g, "journal", "2-3", "1")
    al = ag.call("vshare-get-allocation")
    new = snapshot(g)
    ag.call("vshare-set-allocation", cpus="2-3", mems="1")
    t.ok(al["cpus"] == "2-3" and al["mems"] == "1" and snapshot(g) == new,
         "SIGKILL after the journal step: the new allocation, complete "
         "(setting it again changes nothing)", al)
    ag.call("vshare-set-allocation", cpus="0-1", mems="0")
    t.eq(snapshot(g), taken, "and back to the old one exactly")


def irq_list(g):
    return g.shell.out("for i in /proc/irq/*/smp_affinity_list; do "
                       "echo $i $(cat $i); done")


def check_rapid_reconnects(t, ag, n=40):
    """A host that hangs up with a request in flight and connects again at
    once, as vsharectl does between the steps of a change: every new
    connection is answered. (The race where the guest kernel handles the
    close and reopen only after the new request needs a guest busy with
    memory hot-unplug: shim.py's lend round trips cover it.)"""
    answered, err = 0, None
    for _ in range(n):
        ag.ls.send(b'{"execute": "vshare-get-allocation"}\n')
        try:
            ag.connect(timeout=10)
            ag.call("guest-ping", timeout=10)
            answered += 1
        except (TimeoutError, VMError) as e:
            err = e
            break
    t.ok(answered == n, f"{answered} of {n} immediate reconnects, each "
         "after a hang-up with a request in flight, answered", repr(err))
    if err:  # the next checks need a live session
        ag.connect()


def restart_agent(g, extra=""):
    pid = g.shell.out("pidof vshare-agent")
    g.shell.out(f"echo '{extra}' > /run/agent.args; kill {pid}")
    wait_new_agent(g, pid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cgroup", default="v2", choices=["v1", "v2"])
    ap.add_argument("--tasks", type=int, default=320)
    ap.add_argument("--kernel")
    a = ap.parse_args()
    t = Tap()
    g = Guest(Shape(2, 2), cgroup=a.cgroup, kernel=a.kernel)
    try:
        g.start()
    except Exception as e:
        t.ok(False, f"guest boots ({a.cgroup})", e)
        t.diag(g.console()[-3000:])
        t.done()
    try:
        # a timeout or a crash of the test itself is a failure, and the
        # plan is still printed
        with t.section("the checks", lambda: g.shell.out(
                "tail -20 /run/agent.log") if g.shell else g.console()[-3000:]):
            run(t, g, a)
    finally:
        g.stop()
    t.done()


def run(t, g, a):
    t.diag(f"boot to agent-ready: {g.boot_seconds:.1f} s (target ~15 s)")
    ag = g.agent

    # -- protocol basics on the real port
    info = ag.call("guest-info")
    names = {c["name"] for c in info["supported_commands"]}
    t.ok({"guest-sync", "vshare-set-allocation", "vshare-get-cpu-stats"}
         <= names, "guest-info lists the commands")
    try:
        ag.call("guest-set-vcpus", vcpus=[])
        t.ok(False, "unknown command is CommandNotFound")
    except AgentError as e:
        t.eq(e.cls, "CommandNotFound", "unknown command is CommandNotFound")
    big = b'{"execute":"guest-ping","arguments":{"x":"' + b"a" * 70000 + \
        b'"}}\n'
    rep = ag.call_raw(big)
    t.ok("error" in rep and "exceeds" in rep["error"]["desc"],
         "oversized frame rejected", rep)
    ag.sync()
    t.eq(ag.call("guest-ping"), {}, "stream resynchronised after it")

    # -- topology
    topo = ag.call("vshare-get-topology")
    t.eq([(n["id"], n["cpus"]) for n in topo["nodes"]],
         [(0, "0-1"), (1, "2-3")], "topology: 2 nodes x 2 CPUs")
    t.eq(topo["online-cpus"], "0-3", "topology: online CPUs")
    t.eq(sorted(v["node"] for v in topo["virtio-mem"]), [0, 1],
         "topology: a virtio-mem device per node")
    t.ok(all(v["online-bytes"] >= 128 << 20 for v in topo["virtio-mem"]),
         "topology: virtio-mem memory online", topo["virtio-mem"])
    t.eq(topo["cgroup"]["version"], int(a.cgroup[1]), "cgroup version")
    stats = ag.call("vshare-get-cpu-stats")
    t.eq([s["cpu"] for s in stats], [0, 1, 2, 3], "cpu stats per vCPU")

    # -- tasks: most inherit the agent's cgroup, some are born outside it
    # (as kernel-spawned helpers are) and must be swept in.
    root_procs = "/sys/fs/cgroup/cgroup.procs" if a.cgroup == "v2" else \
        "/sys/fs/cgroup/cpuset/cgroup.procs"
    g.shell.out(f"for i in $(seq {a.tasks}); do sleep 100000 & done; "
                f"sh -c 'echo $$ > {root_procs}; "
                "for i in 1 2 3 4 5; do sleep 100000 & done'", timeout=300)
    ntasks = int(g.shell.out("ls -d /proc/[0-9]* | wc -l"))
    t.ok(ntasks >= 300, f"{ntasks} tasks in the guest")

    before = snapshot(g)
    full_irqs = irq_list(g)
    wq_full = g.shell.out("cat /sys/devices/virtual/workqueue/cpumask")

    # -- bad input changes nothing
    for args, why in ((dict(cpus="5"), "absent CPU"),
                      (dict(cpus="0-1", mems="2"), "absent node"),
                      (dict(cpus="x"), "unparsable"),
                      (dict(cpus=""), "empty")):
        try:
            ag.call("vshare-set-allocation", **args)
            t.ok(False, f"{why} refused")
        except AgentError as e:
            t.ok(e.cls == "GenericError", f"{why} refused: {e.desc}")
    t.eq(snapshot(g), before, "refused requests changed nothing")

    # -- take node 1 away
    rep = ag.call("vshare-set-allocation", cpus="0-1", mems="0")
    t.diag(f"take-away: {rep}")
    t.ok(rep["moved-tasks"] >= 5, "stray tasks swept in", rep)
    t.ok(rep["unmovable-kthreads"] > 0 and rep["unmovable-other"] == 0,
         "only kthreads stay out", rep)
    check_confined(t, g, {0, 1}, {0}, "taken")
    t.eq(g.shell.out("cat /sys/devices/virtual/workqueue/cpumask"), "3",
         "unbound workqueues confined")
    irqs = g.shell.out("for i in /proc/irq/*/smp_affinity_list; do "
                       "cat $i; done").split()
    moved = sum(1 for x in irqs if parse_list(x) <= {0, 1})
    t.eq(moved + rep["irqs-refused"], len(irqs),
         "every IRQ confined or counted as refusing")
    alloc = ag.call("vshare-get-allocation")
    t.ok(alloc["cpus"] == "0-1" and alloc["mems"] == "0" and
         not alloc["full"], "get-allocation reports it", alloc)
    # a new process started now inherits the allocation
    # (the mask is the parent's from fork on: nothing to wait for)
    newp = g.shell.out("sleep 100000 & p=$!; "
                       "grep Cpus_allowed_list /proc/$p/status")
    t.ok(newp.endswith("0-1"), "a new process inherits it", newp)

    # -- rollback after an injected failure
    taken = snapshot(g)
    for step in ("cgroup", "knobs", "journal"):
        restart_agent(g, f"--test-fault={step}")
        try:
            ag.call("vshare-set-allocation", cpus="2-3", mems="1")
            t.ok(False, f"fault after {step}: error returned")
        except AgentError as e:
            t.ok("injected fault" in e.desc, f"fault after {step}: error "
                 "returned")
        t.eq(snapshot(g), taken, f"fault after {step}: all rolled back")
    restart_agent(g, "")

    # -- restart keeps the allocation
    pid = g.shell.out("pidof vshare-agent")
    g.shell.out(f"kill -9 {pid}")
    wait_new_agent(g, pid)
    alloc = ag.call("vshare-get-allocation")
    t.ok(alloc["cpus"] == "0-1" and alloc["mems"] == "0",
         "after a SIGKILL and restart the allocation is kept", alloc)
    t.eq(snapshot(g), taken, "kernel state unchanged by the restart")
    check_killed_mid_set(t, g, taken)

    # -- host disconnects and reconnects; no spinning while away
    pid = g.shell.out("pidof vshare-agent")
    ctx = f"grep ctxt_switches /proc/{pid}/status | awk '{{s+=$2}} END {{print s}}'"
    log0 = int(g.shell.out("wc -l < /run/agent.log"))
    ag.ls.close()
    g.shell.out(until(f"tail -n +{log0 + 1} /run/agent.log | "
                      "grep -q 'host disconnected'", 60), timeout=120)
    c0 = int(g.shell.out(ctx))
    time.sleep(3)
    c1 = int(g.shell.out(ctx))
    t.ok(c1 - c0 <= 2, f"no wake-ups while the host is away ({c1 - c0})")
    ag.connect()
    t.eq(ag.call("guest-ping"), {}, "reconnected")
    log = g.shell.out("cat /run/agent.log")
    t.ok("host disconnected" in log and log.count("host connected") >= 2,
         "agent saw the disconnect and the reconnect")
    check_hangup(t, g)
    check_rapid_reconnects(t, ag)

    # -- give everything back
    rep = ag.call("vshare-set-allocation", cpus="0-3", mems="0-1")
    t.diag(f"give-back: {rep}")
    check_confined(t, g, {0, 1, 2, 3}, {0, 1}, "given back")
    t.eq(g.shell.out("for i in /proc/irq/*/smp_affinity_list; do "
                     "echo $i $(cat $i); done"), full_irqs,
         "IRQ affinities restored exactly")
    t.eq(g.shell.out("cat /sys/devices/virtual/workqueue/cpumask"), wq_full,
         "workqueue mask restored")
    t.ok(ag.call("vshare-get-allocation")["full"], "allocation is full")
    t.eq(g.shell.run("test -e /run/vshare-agent/allocation.json")[0], 1,
         "journal cleared")
    # -- the first take-away killed midway (the journal holds the
    # originals and the full set): the successor gives everything back
    kill_mid_set(g, "knobs", "0-1", "0")
    t.ok(ag.call("vshare-get-allocation")["full"] and
         g.shell.out("cat /sys/devices/virtual/workqueue/cpumask") ==
         wq_full and irq_list(g) == full_irqs and
         g.shell.run("test -e /run/vshare-agent/allocation.json")[0] == 1,
         "SIGKILL in the middle of the first take-away: the successor "
         "restored everything and removed the journal")

    t.ok("AddressSanitizer" not in g.shell.out("cat /run/agent.log"),
         "agent log clean")


if __name__ == "__main__":
    main()
