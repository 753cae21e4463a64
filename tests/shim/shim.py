#!/usr/bin/env python3
"""vsharectl against two real TCG guests (2 vNUMA nodes x 1 vCPU each) and
this host's real cgroups. TAP on stdout.

Checked independently of vsharectl: pinning in /proc/TID/status, throttling
in /proc/TID/schedstat and in the guest, confinement of every guest task
over the guest's shell channel, virtio-mem over the test's own QMP
connection and in the guest's node meminfo.
"""
import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
from shimlib import (Ctl, Daemon, boot_pair, cpu_share,  # noqa: E402
                     pinned, vcpu_threads, vmem, wait_for)
from vshare_vm import Tap  # noqa: E402
from guest import check_confined  # noqa: E402

MiB = 1 << 20


def ledger(ctl):
    return {v["name"]: v for v in ctl.json("ledger", "show")["vms"]}


def lmem(led, vm, node):
    m = led[vm]["vmem-bytes"]
    return m[node] if node < len(m) else 0


def node_total_kib(g, node):
    out = g.shell.out(f"grep MemTotal /sys/devices/system/node/node{node}/"
                      "meminfo")
    return int(out.split()[-2])


def cli_checks(t, ctl):
    """Bad input without guests: clear errors, documented exit codes."""
    cases = [
        (["frobnicate"], 2, "unknown command"),
        (["cpus"], 2, "expected one VM name"),
        (["cpus", "a"], 2, "--set LIST is required"),
        (["cpus", "../x", "--set", "0"], 2, "invalid VM name"),
        (["cpus", "nosuch", "--set", "0"], 2, "unknown VM 'nosuch'"),
        (["mem", "a", "--node", "0", "--size", "12Q"], 2, "bad size"),
        (["lend", "--from", "a", "--to", "a", "--cpus", "1"], 2,
         "same VM"),
        (["lend", "--from", "a", "--to", "b"], 2, "are required"),
        (["cpus", "a", "--set", "0", "--mode", "magic"], 2,
         "coop, enforce or auto"),
        (["status", "--interval", "-1"], 2, "--interval"),
        (["status", "nosuch"], 2, "unknown VM 'nosuch'"),
        (["cpus", "a", "--set", "0", "--json"], 2, "Unknown option --json"),
        (["tune", "a", "-n", "5"], 2, "Unknown option -n"),
        (["policy", "log", "-n", "5"], 2, "Unknown option -n"),
    ]
    for args, rc, msg in cases:
        p = ctl.run(*args)
        t.ok(p.returncode == rc and msg in p.stderr,
             f"`vsharectl {' '.join(args)}` -> exit {rc}, says '{msg}'",
             f"rc {p.returncode}: {p.stderr}")
    p = ctl.run("lend", "--help")
    t.ok(p.returncode == 0 and "--help-common" in p.stdout and
         "--conf-dir" not in p.stdout and "--from" in p.stdout,
         "a command's --help lists its own options; the shared ones are "
         "in --help-common", p.stdout)
    p = ctl.run("--version")
    t.ok(p.returncode == 0 and p.stdout.startswith("vsharectl "),
         f"vsharectl --version: {p.stdout.strip()}", p.stdout + p.stderr)
    p = ctl.run("ple", "show")
    t.ok(p.returncode == 6 and "no kvm_intel or kvm_amd" in p.stderr,
         "ple show without kvm_intel/kvm_amd says why (exit 6)",
         p.stderr)
    # PLE on a faked sysfs (no VMX here: the fake the docs mention)
    fake = os.path.join(ctl.work, "fakesys")
    pdir = os.path.join(fake, "module", "kvm_intel", "parameters")
    os.makedirs(pdir)
    for k, v in (("ple_gap", 128), ("ple_window", 4096),
                 ("ple_window_grow", 2), ("ple_window_shrink", 0),
                 ("ple_window_max", 4294967295)):
        with open(os.path.join(pdir, k), "w") as f:
            f.write(f"{v}\n")
    env = {"VSHARE_SYSFS": fake}
    p = ctl.run("ple", "show", "--json", env=env)
    j = json.loads(p.stdout) if p.returncode == 0 else {}
    t.ok(j.get("module") == "kvm_intel" and
         j["parameters"]["ple_window"] == 4096 and j["enabled"],
         "ple show --json reads kvm_intel's parameters", p.stdout)
    mp = os.path.join(ctl.work, "modprobe.d")
    p = ctl.run("ple", "set", "--gap", "0", "--window", "8192",
                "--modprobe-dir", mp, env=env)
    conf = open(os.path.join(mp, "vshare-ple.conf")).read() \
        if p.returncode == 0 else ""
    t.ok("options kvm_intel ple_gap=0 ple_window=8192" in conf and
         "modprobe -r kvm_intel" in p.stdout,
         "ple set writes modprobe.d and says a reload is needed", conf)
    trace = os.path.join(ctl.work, "trace")
    os.makedirs(trace)
    with open(os.path.join(trace, "trace_pipe"), "w") as f:
        for _ in range(3):
            f.write(" CPU 1/KVM-4242 [001] d.... 10.5: kvm_exit: vcpu 1 "
                    "reason PAUSE_INSTRUCTION rip 0x0 info 0 0\n")
    p = ctl.run("ple", "watch", "--seconds", "1",
                env=dict(env, VSHARE_TRACEFS=trace))
    t.ok(p.returncode == 0 and "(thread 4242): 3" in p.stdout,
         "ple watch counts PAUSE exits per thread (fake trace_pipe)",
         p.stdout + p.stderr)
    # a trace_pipe that never delivers (a FIFO nobody writes): watch
    # still ends at --seconds
    quiet = os.path.join(ctl.work, "quiet")
    os.makedirs(quiet)
    os.mkfifo(os.path.join(quiet, "trace_pipe"))
    p = ctl.run("ple", "watch", "--seconds", "1", timeout=30,
                env=dict(env, VSHARE_TRACEFS=quiet))
    t.ok(p.returncode == 0 and p.seconds < 5,
         f"ple watch without input ends at --seconds ({p.seconds:.1f} s)",
         p.stdout + p.stderr)
    p = ctl.run("host-check", "--json")
    checks = {c["check"]: c for c in json.loads(p.stdout)} \
        if p.returncode == 0 else {}
    t.ok({"kvm", "steal-time preempted", "halt polling", "NUMA balancing",
          "transparent hugepages", "cgroup for enforce"} <= set(checks),
         "host-check reports KVM, steal time, halt polling, NUMA "
         "balancing, THP, cgroups", p.stdout[:500])
    # QEMU gone: a stale socket nobody listens on
    stale = os.path.join(ctl.work, "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(stale)
    s.close()
    ctl.run("add", "ghost", "--qmp", stale, "--agent", stale)
    p = ctl.run("cpus", "ghost", "--set", "0")
    t.ok(p.returncode == 1 and "cannot connect" in p.stderr and
         not os.path.exists(ctl.journal_path()),
         "QEMU gone: clear error, no journal left", p.stderr)
    ctl.run("remove", "ghost")


def fault_checks(t, ctl, g):
    """Ledger damage, lock contention."""
    a = g["a"]
    # two vsharectl at once: one holds the lock
    os.makedirs(ctl.state, exist_ok=True)
    with open(os.path.join(ctl.state, "lock"), "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write("99999\n")
        f.flush()
        p = ctl.run("cpus", "a", "--set", "0-1", "--wait", "0.5")
        fcntl.flock(f, fcntl.LOCK_UN)
    # the holder is named from /proc/locks, not from what the file says
    t.ok(p.returncode == 7 and f"(pid {os.getpid()}) holds" in p.stderr,
         "a second vsharectl waits, then says who holds the lock (exit 7)",
         p.stderr)
    # two real runs racing for the same pCPU: exactly one wins
    ctl.run("cpus", "a", "--set", "0", "--mode", "coop")
    procs = [subprocess.Popen(ctl.argv("cpus", vm, "--set", "1",
                                       "--mode", "coop"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=ctl.env)
             for vm in ("a", "b")]
    outs = [(p.wait(120), p.stderr.read()) for p in procs]
    rcs = sorted(o[0] for o in outs)
    led = ledger(ctl)
    owners = [n for n, v in led.items() if "1" in v["pcpus"].split(",")
              or v["pcpus"] in ("1", "0-1")]
    t.ok(rcs == [0, 3] and len(owners) == 1,
         "two concurrent claims of pCPU 1: one wins, one is refused "
         "(exit 3)", f"{outs} ledger {led}")
    # restore a known state: a owns 0-1, b forgotten
    for vm in ("a", "b"):
        if vm in led:
            ctl.run("forget", vm)
    ctl.run("cpus", "a", "--set", "0-1", "--mode", "coop")
    # corrupt ledger: truncated, then edited
    path = ctl.ledger_path()
    good = open(path).read()
    for what, text in (("truncated", good[:len(good) // 2]),
                       ("edited", good.replace('"pcpus" : "0-1"',
                                               '"pcpus" : "0"'))):
        with open(path, "w") as f:
            f.write(text)
        p = ctl.run("cpus", "a", "--set", "0", "--mode", "coop")
        t.ok(p.returncode == 5 and "refusing to guess" in p.stderr and
             open(path).read() == text,
             f"{what} ledger: refused (exit 5), file untouched", p.stderr)
    with open(path, "w") as f:
        f.write(good)
    t.ok(ctl.run("ledger", "show").returncode == 0,
         "restored ledger is accepted again")
    del a


def main():
    t = Tap()
    ctl = Ctl()
    cli_checks(t, ctl)
    try:
        g = boot_pair(ctl)
    except Exception as e:
        t.ok(False, f"two guests boot ({type(e).__name__})", repr(e))
        t.done()
    try:
        # each part on its own: a timeout in one is a `not ok` and the
        # next part runs; the plan is always printed
        for part in (run, fault_checks, crash_checks, round_trips,
                     daemon_checks):
            with t.section(part.__name__, lambda: "\n".join(
                    f"{n}: {x.console()[-1500:]}" for n, x in g.items())):
                part(t, ctl, g)
    finally:
        for x in g.values():
            x.stop()
    t.done()


def run(t, ctl, g):
    a, b = g["a"], g["b"]
    ta, tb = vcpu_threads(a), vcpu_threads(b)
    st = ctl.json("status")
    t.ok([v["name"] for v in st["vms"]] == ["a", "b"] and
         all(v["agent"]["reachable"] and v["mode"] == "unmanaged"
             for v in st["vms"]),
         "status: both VMs reachable, agents answer, unmanaged")

    # -- coop: a owns both pCPUs
    p = ctl.run("cpus", "a", "--set", "0-1", "--mode", "coop")
    t.ok(p.returncode == 0, "cpus a --set 0-1 (coop)", p.stderr)
    t.ok([pinned(x) for x in ta] == ["0", "1"],
         "a's vCPU threads pinned 1:1 (/proc/TID/status)",
         [pinned(x) for x in ta])
    p = ctl.run("cpus", "b", "--set", "1")
    t.ok(p.returncode == 3 and "owned by VM a" in p.stderr,
         "b cannot take a's pCPU (exit 3)", p.stderr)

    # -- lend node 1's pCPU a -> b under load (coop), then its memory
    a_tot1 = node_total_kib(a, 1)
    b_tot1 = node_total_kib(b, 1)
    a.shell.run("for i in 1 2; do (while :; do :; done) & "
                "echo $! >> /tmp/loops; done")
    # the hogs are running when a's vCPU 1 thread is busy on the host
    wait_for(lambda: cpu_share(ta[1], 0.2) > 0.5, 30)
    busy_before = cpu_share(ta[1], 1.0)
    p = ctl.run("lend", "--from", "a", "--to", "b", "--cpus", "1",
                "--mode", "coop")
    t.ok(p.returncode == 0, f"lend a->b pCPU 1 under load ({p.seconds:.2f} s)",
         p.stdout + p.stderr)
    check_confined(t, a, {0}, {0, 1}, "a after lending node 1")
    check_confined(t, b, {1}, {0, 1}, "b after receiving node 1")
    busy_after = cpu_share(ta[1], 1.0)
    t.ok(busy_before > 0.3 and busy_after < 0.1,
         f"a's lent vCPU thread went idle on the host "
         f"({busy_before:.2f} -> {busy_after:.2f} of a CPU)")
    # Memory moves with a quiet giver: a virtio-mem shrink in a guest whose
    # remaining vCPU is saturated by hogs stalled > 30 s in 2 of ~10 runs
    # here (docs/vsharectl.md, limits).
    a.shell.run("kill $(cat /tmp/loops); rm -f /tmp/loops")
    p1 = ctl.run("mem", "a", "--node", "1", "--size", "0")
    p2 = ctl.run("mem", "b", "--node", "1", "--size", "256M")
    t.ok(p1.returncode == 0 and p2.returncode == 0,
         "memory of node 1 moved a -> b (mem a 0, mem b 256M)",
         p1.stdout + p1.stderr + p2.stdout + p2.stderr)
    led = ledger(ctl)
    t.ok(led["a"]["pcpus"] == "0" and led["b"]["pcpus"] == "1" and
         lmem(led, "b", 1) == 256 * MiB and lmem(led, "a", 1) == 0,
         "ledger: a owns 0, b owns 1 and 256M of node 1", led)
    ma, mb = vmem(a), vmem(b)
    t.ok(ma[1]["size"] == 0 and mb[1]["size"] == 256 * MiB,
         "QMP: a's node-1 virtio-mem 0, b's 256M",
         (ma[1]["size"], mb[1]["size"]))
    t.ok(node_total_kib(a, 1) == a_tot1 - 128 * 1024 and
         node_total_kib(b, 1) == b_tot1 + 128 * 1024,
         "guests' node 1 MemTotal moved by 128 MiB",
         (a_tot1, node_total_kib(a, 1), b_tot1, node_total_kib(b, 1)))
    a.shell.run("for i in 1 2; do (while :; do :; done) & "
                "echo $! >> /tmp/loops; done")
    st = {v["name"]: v for v in ctl.json("status")["vms"]}
    t.ok([v["in-allocation"] for v in st["a"]["vcpus"]] == [True, False]
         and [v["pcpu-owner"] for v in st["b"]["vcpus"]] == ["a", "b"],
         "status shows allocation and owners")

    # -- give back: b is left with no pCPU (parked)
    p = ctl.run("lend", "--from", "b", "--to", "a", "--cpus", "1",
                "--node", "1", "--mem", "128M", "--mode", "coop")
    t.ok(p.returncode == 0 and "parked" in p.stdout,
         "lend b->a back: b owns nothing and is parked",
         p.stdout + p.stderr)
    b.shell.ls.send(b"(while :; do :; done) & echo $! > /tmp/hog\n")
    shares = [cpu_share(x, 1.5) for x in tb]
    t.ok(all(s < 0.05 for s in shares),
         f"parked b's vCPU threads throttled on the host "
         f"(schedstat: {shares[0]:.3f}, {shares[1]:.3f} of a CPU)")
    led = ledger(ctl)
    t.ok(led["a"]["pcpus"] == "0-1" and led["b"]["pcpus"] == "" and
         lmem(led, "a", 1) == 128 * MiB,
         "ledger: a owns 0-1 and its 128M again, b parked",
         led)
    # a's guest runs on both vCPUs again
    t.ok(cpu_share(ta[1], 1.0) > 0.3,
         "a's vCPU 1 busy again after the give-back")
    check_confined(t, a, {0, 1}, {0, 1}, "a after the give-back")

    # -- enforce on a: vCPU 1 throttled, seen in the guest too: a counter
    # loop pinned to vCPU 1 advances far slower per wall-clock second
    a.shell.run("kill $(cat /tmp/loops)")
    a.shell.run("taskset -c 1 sh -c 'i=0; while :; do i=$((i+1)); "
                "echo $i > /tmp/cnt; done' & echo $! > /tmp/busy")

    def rate():
        get = ('c=; while [ -z "$c" ]; do c=$(cat /tmp/cnt); done; '
               'echo $c')
        c0 = int(a.shell.out(get))
        t0 = time.monotonic()
        time.sleep(2)
        c1 = int(a.shell.out(get))
        return (c1 - c0) / (time.monotonic() - t0)
    # the counter runs once it has written its file
    a.shell.out("end=$(($(date +%s) + 30)); until [ -s /tmp/cnt ]; do "
                "[ $(date +%s) -lt $end ] || exit 1; sleep 0.05; done",
                timeout=60)
    free = rate()
    p = ctl.run("cpus", "a", "--set", "0", "--mode", "enforce")
    t.ok(p.returncode == 0, "cpus a --set 0 --mode enforce", p.stderr)
    ctl.run("cpus", "b", "--set", "1", "--mode", "enforce")
    b.shell.run("kill $(cat /tmp/hog)")  # the parked check's hog
    share = cpu_share(ta[1], 2.0)
    slow = rate()
    t.ok(share < 0.05, f"enforce: a's vCPU 1 thread gets {share:.3f} of a "
         "CPU (quota 1%)")
    t.ok(free > 0 and slow < free * 0.2,
         f"enforce: inside a, a loop pinned to vCPU 1 ran {slow:.0f}/s, "
         f"{free:.0f}/s before")
    a.shell.run("kill $(cat /tmp/busy)")

    # -- auto with a hung agent: falls back to enforce
    b.shell.run("kill -STOP $(pidof vshare-agent)")
    p = ctl.run("cpus", "b", "--set", "1", "--mode", "auto",
                "--timeout", "1")
    t.ok(p.returncode == 0 and "enforcing from the host" in p.stdout and
         ledger(ctl)["b"]["mode"] == "enforce",
         "auto: hung agent -> enforce", p.stdout + p.stderr)
    p = ctl.run("cpus", "b", "--set", "1", "--mode", "coop",
                "--timeout", "1")
    t.ok(p.returncode == 1 and "no answer" in p.stderr,
         "coop with a hung agent fails clearly (exit 1)", p.stderr)
    b.shell.run("kill -CONT $(pidof vshare-agent)")
    p = ctl.run("cpus", "b", "--set", "1", "--mode", "auto")
    t.ok(p.returncode == 0 and ledger(ctl)["b"]["mode"] == "coop",
         "auto with the agent back: coop", p.stdout + p.stderr)
    t.ok(cpu_share(tb[0], 1.0) < 0.05 and
         b.shell.out("grep Cpus_allowed_list /proc/self/status")
         .endswith("1"), "b confined by its agent again")

    # -- mem: grow/shrink, refusal, paused guest
    ctl.run("cpus", "a", "--set", "0", "--mode", "coop")
    p = ctl.run("mem", "a", "--node", "0", "--size", "256M")
    t.ok(p.returncode == 0 and vmem(a)[0]["size"] == 256 * MiB,
         "mem a node 0 -> 256M (QMP size)", p.stdout + p.stderr)
    p = ctl.run("mem", "a", "--node", "0", "--size", "2G")
    t.ok(p.returncode == 3 and vmem(a)[0]["requested-size"] == 256 * MiB,
         "mem beyond the pool: refused, unchanged", p.stderr)
    p = ctl.run("mem", "a", "--node", "0", "--size", "3M")
    t.ok(p.returncode == 2 and "block size" in p.stderr,
         "mem not a multiple of the block size: refused", p.stderr)
    a.qmp.cmd("stop")
    p = ctl.run("mem", "a", "--node", "0", "--size", "0",
                "--mem-timeout", "2", "--timeout", "0.5")
    a.qmp.cmd("cont")
    d = vmem(a)[0]
    t.ok(p.returncode == 4 and "reached only 256 of 0 MiB" in p.stdout and
         d["requested-size"] == 256 * MiB and
         lmem(ledger(ctl), "a", 0) == 256 * MiB,
         "guest that does not release: size reached reported (exit 4), "
         "request and ledger = what it holds", p.stdout + p.stderr)
    p = ctl.run("mem", "a", "--node", "0", "--size", "128M")
    t.ok(p.returncode == 0 and vmem(a)[0]["size"] == 128 * MiB,
         "mem a node 0 shrink -> 128M", p.stdout + p.stderr)


def guest_state(t, g):
    """What a guest was doing when a check on it failed: the console's
    tail (hung tasks, OOM), and through the shell port the agent's state
    and virtio-mem's view, each bounded by a timeout of its own."""
    t.diag("guest console, last lines:\n" + "\n".join(
        g.console().splitlines()[-30:]))
    for cmd in ("for p in $(pidof vshare-agent); do "
                "grep -E 'State|Cpus_allowed_list|Mems_allowed_list' "
                "/proc/$p/status; cat /proc/$p/wchan; echo; "
                "cat /proc/$p/stack; done",
                "grep -h . /sys/devices/system/node/node1/meminfo | "
                "head -5; dmesg | tail -20"):
        try:
            t.diag(f"guest$ {cmd}\n" + g.shell.out(cmd, timeout=20))
        except Exception as e:  # the shell may hang with the guest
            t.diag(f"guest$ {cmd}: {e}")


def crash_checks(t, ctl, g):
    """vsharectl killed at each point of a lend; recover restores a
    consistent state: the old ownership or the new, never half."""
    a, b = g["a"], g["b"]
    ctl.run("forget", "b")
    ctl.run("cpus", "a", "--set", "0-1", "--mode", "coop")
    dumped = False
    for point in ("intent", "step1", "step2", "step3", "step4", "commit"):
        before = ledger(ctl)
        p = ctl.run("lend", "--from", "a", "--to", "b", "--cpus", "1",
                    "--node", "1", "--mem", "128M", "--mode", "coop",
                    env={"VSHARE_TEST_CRASH": point})
        killed = p.returncode == -9
        journal = os.path.exists(ctl.journal_path())
        r = ctl.run("recover")
        after = ledger(ctl)
        st = {v["name"]: v for v in ctl.json("status")["vms"]}
        new = point == "commit"
        want = {"a": "0", "b": "1"} if new else \
            {k: v["pcpus"] for k, v in before.items()}
        got = {k: v["pcpus"] for k, v in after.items()}
        alloc_a = st["a"]["agent"]["cpus"]
        mem_ok = vmem(a)[1]["size"] == lmem(after, "a", 1)
        t.diag(p.stdout + p.stderr) if not killed else None
        good = killed and journal and r.returncode == 0 and \
            got == want and not os.path.exists(ctl.journal_path()) and \
            alloc_a == ("0" if new else "0-1") and mem_ok
        if not good and not dumped:
            dumped = True
            guest_state(t, a)
        t.ok(good,
             f"killed at {point}: recover -> "
             f"{'new' if new else 'old'} ownership, guests agree",
             f"rc {p.returncode} journal {journal} recover "
             f"{r.returncode} {r.stdout} {r.stderr} ledger {got} want "
             f"{want} a's guest cpus {alloc_a} mem_ok {mem_ok}")
        if new:
            ctl.run("lend", "--from", "b", "--to", "a", "--cpus", "1",
                    "--node", "1", "--mem", "128M", "--mode", "coop")
            ctl.run("forget", "b")


def round_trips(t, ctl, g, n=15):
    """Lends with memory and back, @n times: each connects to a's agent
    right after a virtio-mem resize of a's node 1 that keeps the guest's
    kernel busy, so the port's close and reopen may reach the guest after
    the next request. Every step must be answered."""
    done, p = 0, None
    ctl.run("forget", "b")
    ctl.run("cpus", "a", "--set", "0-1", "--mode", "coop")
    t0 = time.monotonic()
    for _ in range(n):
        p = ctl.run("lend", "--from", "a", "--to", "b", "--cpus", "1",
                    "--node", "1", "--mem", "128M", "--mode", "coop")
        if p.returncode:
            break
        p = ctl.run("lend", "--from", "b", "--to", "a", "--cpus", "1",
                    "--node", "1", "--mem", "128M", "--mode", "coop")
        if p.returncode:
            break
        ctl.run("forget", "b")
        done += 1
    t.ok(done == n, f"{done} of {n} lend round trips with memory, each "
         f"step answered ({time.monotonic() - t0:.1f} s)",
         p.stdout + p.stderr if p else "")
    ctl.run("forget", "b")


def metric(d, needle):
    try:
        return needle in open(d.metrics).read()
    except OSError:
        return False


def socket_abuse(t, d):
    """Garbage, oversized and deep frames, a non-root peer: refused,
    the daemon keeps serving."""
    r = d.request(b"garbage that is not json\n")
    t.ok(r is not None and "GenericError" in r and d.ping(),
         "control socket: garbage gets an error, daemon alive", r)
    r = d.request(b'{"execute": "guest-ping", "x": "' + b"a" * 100000 +
                  b'"}\n')
    t.ok(r is not None and "exceeds" in r and d.ping(),
         "control socket: a 100 KB frame is refused, daemon alive", r)
    r = d.request(b'{"a":' * 1000 + b"\n")
    t.ok(r is not None and "nesting" in r and d.ping(),
         "control socket: 1000-deep nesting refused, daemon alive", r)
    # vshared answers a non-root peer with one refusal line and closes
    code = ("import socket,sys; s=socket.socket(socket.AF_UNIX); "
            "s.connect(sys.argv[1]); print(s.recv(4096))")
    # let nobody reach the socket file: vshared itself must refuse it
    os.chmod(d.ctl.work, 0o755)
    os.chmod(d.ctl.socket, 0o666)
    p = subprocess.run(["runuser", "-u", "nobody", "--", "python3", "-c",
                        code, d.ctl.socket], capture_output=True,
                       text=True, timeout=30)
    os.chmod(d.ctl.socket, 0o600)
    os.chmod(d.ctl.work, 0o700)
    t.ok("only root" in p.stdout and "generation" not in p.stdout and
         d.ping(), "control socket: a non-root peer is refused "
         "(SO_PEERCRED), daemon alive", p.stdout + p.stderr)
    # a copy nobody can reach (the checkout may sit under a 0700
    # directory, as mktemp -d makes them)
    nb = os.path.join(d.ctl.work, "vsharectl-nobody")
    shutil.copy(d.ctl.bin, nb)
    os.chmod(d.ctl.work, 0o755)
    p = subprocess.run(["runuser", "-u", "nobody", "--",
                        nb, "status", "--conf-dir", d.ctl.conf,
                        "--state-dir", d.ctl.state],
                       capture_output=True, text=True, timeout=60,
                       env=d.ctl.env)
    os.chmod(d.ctl.work, 0o700)
    os.unlink(nb)
    t.ok(p.returncode == 1 and "needs root" in p.stderr,
         "non-root vsharectl: clear error (exit 1)", p.stderr)


def guard_check(t, ctl, a):
    """A guest that keeps running on a vCPU it lent (a task escaped its
    agent's cpuset into the root cgroup) is switched to enforce by
    vshared within two metrics ticks."""
    ta = vcpu_threads(a)
    # a child that leaves the agent's cpuset for the root cgroup, then
    # pins a busy loop to vCPU 1 (lent to b)
    a.shell.run("for f in /sys/fs/cgroup/cgroup.procs "
                "/sys/fs/cgroup/cpuset/tasks; do [ -e $f ] && break; done; "
                "sh -c \"echo \\$\\$ > $f; exec taskset -c 1 sh -c "
                "'while :; do :; done'\" & echo $! > /tmp/escaped")
    flipped = wait_for(lambda: ledger(ctl)["a"]["mode"] == "enforce", 20)
    share = cpu_share(ta[1], 1.0) if flipped else None
    t.ok(flipped and share < 0.05,
         "guard: a coop guest using its lent vCPU 1 is enforced by "
         f"vshared (vCPU 1 thread now {share})", ledger(ctl))
    a.shell.run("kill $(cat /tmp/escaped)")
    p = ctl.run("cpus", "a", "--set", "0", "--mode", "coop")
    t.ok(p.returncode == 0 and ledger(ctl)["a"]["mode"] == "coop",
         "a back to coop", p.stdout + p.stderr)


def promtool_check(t, d):
    """vshared's metrics file with two VMs as Prometheus reads it: the
    promtool of Debian's prometheus package (unpacked, not installed, by
    tests/tools/fetch-tool.sh)."""
    f = subprocess.run([os.path.join(TESTS, "tools", "fetch-tool.sh"),
                        "prometheus", "usr/bin/promtool"],
                       capture_output=True, text=True, timeout=600)
    if f.returncode != 0:
        t.ok(False, "promtool from Debian's prometheus package", f.stderr)
        return
    text = open(d.metrics).read()
    p = subprocess.run([f.stdout.strip(), "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=60)
    fams = re.findall(r"^# TYPE (\S+) ", text, re.M)
    t.ok(p.returncode == 0 and not (p.stdout + p.stderr).strip() and
         len(fams) == len(set(fams)) and 'domain="a"' in text and
         'domain="b"' in text,
         f"promtool check metrics: clean, {len(fams)} families, one block "
         "each, both VMs", (p.returncode, p.stdout + p.stderr, text[:3000]))
    mode = os.stat(d.metrics).st_mode & 0o777
    t.ok(mode == 0o644, f"metrics file mode {mode:o} (0644: node_exporter "
         "runs unprivileged)")


def daemon_checks(t, ctl, g):
    """vshared over the same guests: vsharectl goes through it, the
    socket refuses abuse, a SIGKILL mid-lend recovers at restart, a
    destroyed VM frees its pCPUs."""
    a, b = g["a"], g["b"]
    d = Daemon(ctl).start()
    p = ctl.run("lend", "--from", "a", "--to", "b", "--cpus", "1",
                "--mode", "coop")
    t.ok(p.returncode == 0 and "step 2 (b CPUs)" in p.stdout and
         ledger(ctl)["b"]["pcpus"] == "1",
         "vsharectl lend through vshared: done, ledger b owns 1",
         p.stdout + p.stderr)
    check_confined(t, b, {1}, {0, 1}, "b after a lend through vshared")
    t.ok(wait_for(lambda: metric(
        d, 'vshare_pcpu_owner{cpu="1",node="1",domain="b"} 1')),
         "metrics file: pCPU 1 owned by b")
    promtool_check(t, d)
    st = ctl.json("status")
    t.ok(sorted(v["name"] for v in st["vms"]) == ["a", "b"] and
         all(v["reachable"] for v in st["vms"]),
         "status through vshared: both VMs", st)
    p = ctl.run("cpus", "a", "--set", "1")
    t.ok(p.returncode == 3 and "owned by VM b" in p.stderr,
         "a refusal through vshared keeps its exit code (3)", p.stderr)
    guard_check(t, ctl, a)
    socket_abuse(t, d)
    t.ok(d.stop() == 0, "vshared stops on SIGTERM, exit 0 (ASan: no "
         "leak)", open(d.log).read()[-3000:])
    # killed mid-lend, restarted: old ownership, guests agree
    before = ledger(ctl)
    d.start(env={"VSHARE_TEST_CRASH": "step2"})
    p = ctl.run("lend", "--from", "b", "--to", "a", "--cpus", "1",
                "--mode", "coop")
    d.proc.wait(30)
    t.ok(p.returncode == 1 and d.proc.returncode == -9 and
         os.path.exists(ctl.journal_path()),
         "vshared SIGKILLed mid-lend: vsharectl says so, journal left",
         p.stdout + p.stderr)
    d.start()
    t.ok(wait_for(lambda: not os.path.exists(ctl.journal_path())) and
         ledger(ctl) == before,
         "restarted vshared rolled back: ledger as before", ledger(ctl))
    check_confined(t, b, {1}, {0, 1}, "b after the roll-back")
    # b destroyed under vshared: its pCPU returns to the pool
    b.stop()
    t.ok(wait_for(lambda: "b" not in ledger(ctl)) and wait_for(
        lambda: metric(d, 'vshare_pcpu_owner{cpu="1",node="1",domain=""} 1')),
         "b's QEMU gone: vshared forgets it, pCPU 1 free",
         (ledger(ctl), open(d.log).read()[-1000:]))
    t.ok(d.stop() == 0, "vshared exit 0 at the end",
         open(d.log).read()[-3000:])


if __name__ == "__main__":
    main()
