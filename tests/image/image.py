#!/usr/bin/env python3
"""A Debian bookworm guest (systemd, cloud-init; tests/image/build-image.sh)
as a 2-node TCG guest with a NoCloud seed whose user-data installs our
.deb (agent/cloud-init/). Everything is checked over the shell channel,
not through the agent. TAP on stdout.

Boot 1 (cgroup v2): cloud-init finished without errors; udev started the
hardened unit; the agent picked the systemd backend; confinement goes
through systemd (`systemctl show` of the top-level units, every task's
Cpus_allowed_list / Mems_allowed_list); no process changed its cgroup; a
service started afterwards inherits the set; the set survives
`systemctl daemon-reload` and a restart of the agent; refused inputs and
an injected failure change nothing; giving back restores everything; a
foreign top-level cgroup (lxc.payload.*, not a unit) is confined through
its own cpuset files.
Boot 2 is a reboot of the same disk with systemd.unified_cgroup_hierarchy=0
(cgroup v1): the agent comes back by itself and confines again.
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "vm"))
from debian_vm import DebianGuest, build_image  # noqa: E402
from vshare_vm import (AgentClient, AgentError, Shape, Tap,
                       parse_list)  # noqa: E402

UNITS = "-.slice system.slice user.slice init.scope"
# pid, PF_* flags, comm, allowed CPUs, allowed nodes, the cgroup systemd
# tracks the task in (v2: "0::", v1: "name=systemd"). In the guest's
# python3 (cloud-init's): a shell loop forks ~7 times per task, which
# costs tens of seconds under TCG.
SCAN = r"""python3 - <<'EOF'
import os
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        st = open(f"/proc/{p}/stat").read()
        status = dict(l.split(":\t", 1) for l in
                      open(f"/proc/{p}/status").read().splitlines()
                      if ":\t" in l)
        cg = [l.split(":", 2)[2] for l in
              open(f"/proc/{p}/cgroup").read().splitlines()
              if l.startswith("0::") or ":name=systemd:" in l]
    except OSError:
        continue
    flags = st[st.rindex(")") + 2:].split()[6]
    print(p, flags, status["Name"].replace(" ", "_"),
          status["Cpus_allowed_list"], status["Mems_allowed_list"],
          (cg or ["/"])[0] or "/", status["State"][0])
EOF"""
FOREIGN = "/sys/fs/cgroup/lxc.payload.vshare-test"
KNOBS = ("cat /sys/devices/virtual/workqueue/cpumask; "
         "for i in /proc/irq/*/smp_affinity_list; do "
         "echo $i $(cat $i); done")


class Task:
    def __init__(self, line):
        f = line.split()
        self.pid, self.flags, self.comm = int(f[0]), int(f[1]), f[2]
        self.cpus, self.mems = parse_list(f[3]), parse_list(f[4])
        self.cgroup = f[5]
        # Z/X: exited, not yet reaped; its /proc/PID/cgroup already reads
        # "/" on cgroup v1 (the task left its css_set at exit)
        self.exited = len(f) > 6 and f[6] in "ZX"
        self.kthread = bool(self.flags & 0x00200000)
        self.no_affinity = bool(self.flags & 0x04000000)


def scan(g):
    return {t.pid: t for t in (Task(x) for x in g.shell.out(
        SCAN, timeout=180).splitlines() if len(x.split()) == 7)}


def show(g, units=UNITS, props="AllowedCPUs,AllowedMemoryNodes"):
    """{unit: {prop: value}} from systemctl show."""
    out, cur = {}, None
    names = units.split()
    text = g.shell.out(f"systemctl show -p {props} -- {units}")
    i = 0
    for block in text.split("\n\n"):
        cur = out.setdefault(names[i], {})
        for line in block.splitlines():
            k, _, v = line.partition("=")
            cur[k] = v
        i += 1
    return out


def show_until(g, want, units=UNITS, timeout=60):
    """systemctl show until every unit named in @want has the values in
    its dict (systemd gets the properties asynchronously, after the
    agent's reply); the last show, and whether it got there."""
    deadline = time.monotonic() + timeout
    while True:
        sh = show(g, units, props="AllowedCPUs,AllowedMemoryNodes,"
                                  "EffectiveCPUs,EffectiveMemoryNodes")
        ok = all(sh[u].get(k) == v for u, kv in want.items()
                 for k, v in kv.items())
        if ok or time.monotonic() > deadline:
            return sh, ok
        time.sleep(0.5)


def kernel_cpus(g, units=("system.slice", "user.slice", "init.scope")):
    """The units' cpuset.cpus as the kernel has them."""
    return {u: g.shell.out(f"cat /sys/fs/cgroup/{u}/cpuset.cpus "
                           "2>/dev/null || echo none") for u in units}


class Checks:
    def __init__(self, t, g):
        self.t, self.g = t, g

    def agree(self, cpus, mems, what, allowed=None):
        """systemctl show and the kernel agree: the top-level units'
        AllowedCPUs= / AllowedMemoryNodes= (@allowed: their text, default
        the sets), system.slice's effective sets, and each unit's
        cpuset.cpus. Then the tasks (confined())."""
        fmt, fmt_m = squash(cpus), squash(mems)
        ac, am = allowed or (fmt, fmt_m)
        if allowed is None and cpus == parse_list(self.g.shell.out(
                "cat /sys/devices/system/cpu/online")):
            # everything: the units hold every possible CPU and node
            ac, am = self.g.shell.out(
                "cat /sys/devices/system/cpu/possible "
                "/sys/devices/system/node/possible").split()
        top = [u for u in UNITS.split() if u != "-.slice"]
        want = {u: {"AllowedCPUs": ac, "AllowedMemoryNodes": am}
                for u in top}
        want["system.slice"].update(EffectiveCPUs=squash(cpus),
                                    EffectiveMemoryNodes=squash(mems))
        sh, ok = show_until(self.g, want)
        kc = kernel_cpus(self.g)
        # (a unit without a cgroup, e.g. user.slice with nobody logged
        # in, has no files: systemd starts it with its properties)
        self.t.ok(ok and kc["system.slice"] == ac and
                  all(v in (ac, "none") for v in kc.values()),
                  f"{what}: systemctl show and the kernel agree "
                  f"(AllowedCPUs={ac} AllowedMemoryNodes={am}, effective "
                  f"{fmt}/{fmt_m})", f"show: {sh}\nkernel: {kc}")
        return sh

    def exits(self, pid, timeout=5):
        """@pid gone or a zombie within @timeout s."""
        def state():
            return self.g.shell.out(
                f"s=$(sed 's/.*) //' /proc/{pid}/stat 2>/dev/null | "
                "cut -d' ' -f1); echo ${s:-gone}")
        end = time.monotonic() + timeout
        while True:
            if state() in ("gone", "Z", "X"):
                return True
            if time.monotonic() > end:
                return False
            time.sleep(0.2)

    def confined(self, cpus, mems, what, before=None):
        """Every user task (and every unbound kthread that may be pinned)
        within the set; with @before, no task changed its cgroup."""
        t, tasks = self.t, scan(self.g)
        user = [x for x in tasks.values() if not x.kthread]
        bad = [(x.pid, x.comm, sorted(x.cpus), sorted(x.mems))
               for x in user if not x.cpus <= cpus or not x.mems <= mems]
        t.ok(len(user) >= 8 and not bad,
             f"{what}: all {len(user)} user tasks within cpus "
             f"{sorted(cpus)} mems {sorted(mems)}", f"outside: {bad[:8]}")
        unbound = [x for x in tasks.values() if x.kthread and
                   len(x.cpus) > 1 or (x.kthread and x.cpus == cpus)]
        kbad = [(x.pid, x.comm, sorted(x.cpus)) for x in unbound
                if not x.no_affinity and not x.cpus <= cpus]
        t.ok(not kbad, f"{what}: {len(unbound)} unbound kthreads within "
             "the CPUs (pinned, or following the workqueue mask)",
             f"outside: {kbad[:8]}")
        if before is not None:
            moved = [(p, before[p].comm, before[p].cgroup, x.cgroup)
                     for p, x in tasks.items()
                     if p in before and x.cgroup != before[p].cgroup and
                     not x.exited]
            # the kernel moves an exiting task to the root cgroup
            # (cgroup_exit) before it is a zombie: seen as "/" while still
            # R or D, it is gone or Z moments later (cloud-init at the end
            # of boot, seen once in make check)
            moved = [m for m in moved
                     if m[3] != "/" or not self.exits(m[0])]
            ours = [x.pid for x in tasks.values()
                    if x.cgroup == "/vshare" or
                    x.cgroup.startswith("/vshare/")]
            t.ok(not moved and not ours,
                 f"{what}: no process left its unit "
                 f"({sum(1 for p in tasks if p in before)} compared)",
                 f"moved: {moved[:8]}, in the agent's cgroup: {ours[:8]}")
        return tasks


def squash(ids):
    """{0, 1, 2, 5} -> "0-2,5" (the kernel's and systemd's list form)."""
    out, ids = [], sorted(ids)
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(f"{ids[i]}-{ids[j]}" if j > i else f"{ids[i]}")
        i = j + 1
    return ",".join(out)


def wait_active(g, unit, timeout=120):
    """Poll by wall clock: under TCG one systemctl call can take 0.5 s."""
    return g.shell.run(f"end=$(($(date +%s) + {timeout})); while "
                       f"! systemctl is-active -q {unit}; do "
                       "[ $(date +%s) -lt $end ] || exit 1; sleep 0.5; done",
                       timeout=timeout + 120)[0] == 0


def agent_restarted(g, a, old_pid):
    """Wait for a new agent process with its port open, then resync."""
    for _ in range(300):
        rc, pid = g.shell.run("pidof vshare-agent")
        if rc == 0 and pid.strip() and pid.strip() != old_pid:
            if g.shell.run(f"ls -l /proc/{pid.strip()}/fd | "
                           "grep -q vport")[0] == 0:
                break
        time.sleep(0.2)
    a.connect(60)
    return g.shell.out("pidof vshare-agent")


def boot_v2(t, g, a):
    c = Checks(t, g)
    t.eq(g.shell.out("cat /proc/1/comm"), "systemd", "PID 1 is systemd")
    t.diag(g.shell.out("systemctl --version | head -1"))
    st = g.shell.out("cloud-init status --wait --long", timeout=600)
    t.ok("status: done" in st and "error" not in st.lower(),
         "cloud-init finished without errors", st)
    t.eq(g.shell.out("dpkg-query -W -f='${Status}' vshare-agent"),
         "install ok installed", "the .deb from user-data is installed")
    t.ok(wait_active(g, "vshare-agent"), "the agent's unit is active")
    state = g.shell.out("systemctl show -p ActiveState -p Nice -p "
                        "ProtectSystem -p NoNewPrivileges "
                        "-p RestrictAddressFamilies vshare-agent")
    t.ok("ActiveState=active" in state and "Nice=-10" in state and
         "ProtectSystem=strict" in state and
         "NoNewPrivileges=yes" in state and
         "RestrictAddressFamilies=AF_UNIX" in state,
         "udev started the hardened unit", state)
    # CAP_SYS_ADMIN (bit 21) and CAP_SYS_NICE (23) only: the unit's
    # CapabilityBoundingSet= lines, merged.
    caps = g.shell.out("grep -E '^Cap(Eff|Bnd):' "
                       "/proc/$(pidof vshare-agent)/status")
    t.eq(caps.split(), ["CapEff:", "0000000000a00002",
                        "CapBnd:", "0000000000a00002"],
         "the agent runs with CAP_SYS_ADMIN, CAP_SYS_NICE and "
         "CAP_DAC_OVERRIDE only")
    t.diag(g.shell.out("systemd-analyze security --no-pager vshare-agent "
                       "| tail -1", timeout=120))
    a.connect(120)
    topo = a.call("vshare-get-topology")
    t.ok(len(topo["nodes"]) == 2 and topo["cgroup"]["backend"] == "systemd"
         and topo["cgroup"]["version"] == 2,
         "the agent answers: 2 nodes, systemd backend, cgroup v2",
         topo["cgroup"])
    # /proc/iomem shows real addresses only to CAP_SYS_ADMIN: the reason
    # that capability stays (a region would read as 1 byte without it).
    t.ok(all(v["region-bytes"] >= 1 << 20 and v["node"] in (0, 1)
             for v in topo["virtio-mem"]),
         f"{len(topo['virtio-mem'])} virtio-mem regions read from "
         "/proc/iomem with their sizes and nodes", topo["virtio-mem"])

    # A service that runs before confinement, one that starts after.
    g.shell.out("systemd-run -q --unit=vshare-early sleep 100000")
    # A container manager's cgroup directly below the root, not a unit:
    # its task must be confined where it is, through its own cpuset files.
    g.shell.out(f"mkdir {FOREIGN} && sh -c 'echo $$ > {FOREIGN}/cgroup.procs"
                " && exec sleep 100000' </dev/null >/dev/null 2>&1 & "
                "end=$(($(date +%s) + 60)); "
                # cgroupfs files have size 0: read it
                f"until [ -n \"$(cat {FOREIGN}/cgroup.procs)\" ]; do "
                "[ $(date +%s) -lt $end ] || exit 1; sleep 0.2; done")
    knobs0 = g.shell.out(KNOBS)
    # At start the agent asked systemd for cpuset on the top-level units
    # with every possible CPU and node: unrestricted, and the cpuset files
    # are there for the first take-away.
    c.agree({0, 1}, {0, 1}, "at start (cpuset prepared on the units)")
    props0 = show(g)
    before = scan(g)

    # Refused: nothing changes.
    for args, why in [(dict(cpus=""), "an empty CPU set"),
                      (dict(cpus="0-7"), "absent CPUs"),
                      (dict(cpus="0", mems="3"), "a node without memory")]:
        try:
            a.call("vshare-set-allocation", **args)
            t.ok(False, f"{why} is refused")
        except AgentError as e:
            t.ok(e.cls == "GenericError", f"{why} is refused: {e.desc}")
    t.eq(show(g), props0, "refused requests left the units unchanged")

    rep = a.call("vshare-set-allocation", cpus="0", mems="0")
    t.ok(rep["cpus"] == "0" and rep["mems"] == "0" and
         rep["moved-tasks"] == 0 and rep["workqueue"],
         f"take-away through systemd in {rep['elapsed-us'] / 1000:.1f} ms: "
         f"0 tasks moved, {rep['unmovable-kthreads']} per-CPU kthreads, "
         f"IRQs set {rep['irqs-set']} refused {rep['irqs-refused']}", rep)
    t.diag(f"first take-away steps (us): {rep['steps-us']}")
    c.agree({0}, {0}, "take-away")
    t.ok(g.shell.run("test -s /run/systemd/system.control/system.slice.d/"
                     "50-AllowedCPUs.conf")[0] == 0,
         "runtime drop-ins, nothing under /etc")
    c.confined({0}, {0}, "confined", before)
    t.eq(g.shell.out(f"cat {FOREIGN}/cpuset.cpus {FOREIGN}/cpuset.mems"),
         "0\n0", "a foreign top-level cgroup (lxc.payload.*) confined "
         "through its own cpuset files, its task left where it is")

    g.shell.out("systemd-run -q --unit=vshare-late sleep 100000")
    late = g.shell.out("cat /proc/$(systemctl show -p MainPID --value "
                       "vshare-late)/status | grep -E '^(Cpus|Mems)_allowed_"
                       "list'; systemctl show -p ControlGroup vshare-late")
    t.ok("Cpus_allowed_list:\t0\n" in late and
         "Mems_allowed_list:\t0\n" in late and
         "system.slice/vshare-late.service" in late,
         "a service started afterwards inherits the set, in its own unit",
         late)

    g.shell.out("systemctl daemon-reload", timeout=120)
    c.agree({0}, {0}, "after daemon-reload")
    c.confined({0}, {0}, "after daemon-reload", before)

    # systemd realises a restarted unit's cgroup again: still confined
    early0 = g.shell.out("systemctl show -p MainPID --value vshare-early")
    g.shell.out("systemctl restart vshare-early", timeout=120)
    early = g.shell.out("p=$(systemctl show -p MainPID --value "
                        "vshare-early); echo $p; grep Cpus_allowed_list "
                        "/proc/$p/status")
    t.ok(early.split()[0] != early0 and early.endswith("\t0"),
         "a restarted unit's new process is confined", early)
    c.agree({0}, {0}, "after restarting a unit")

    pid0 = g.shell.out("pidof vshare-agent")
    g.shell.out("systemctl restart vshare-agent")
    pid1 = agent_restarted(g, a, pid0)
    al = a.call("vshare-get-allocation")
    own = g.shell.out(f"grep Cpus_allowed_list /proc/{pid1}/status")
    t.ok(pid1 != pid0 and al["cpus"] == "0" and al["mems"] == "0" and
         own.endswith("\t0"),
         "the agent restarts inside the confined system.slice and keeps "
         f"the allocation ({own.split()[-1]})", al)
    c.agree({0}, {0}, "after an agent restart")
    c.confined({0}, {0}, "after an agent restart")

    # All-or-nothing: an agent that fails after the cgroup step (a
    # runtime drop-in adds --test-fault) changes nothing.
    d = "/run/systemd/system/vshare-agent.service.d"
    g.shell.out(f"mkdir -p {d} && printf '[Service]\\nExecStart=\\n"
                "ExecStart=/usr/sbin/vshare-agent --port org.vshare.agent.0"
                f" --test-fault knobs\\n' > {d}/fault.conf && "
                "systemctl daemon-reload && systemctl restart vshare-agent")
    pid2 = agent_restarted(g, a, pid1)
    knobs1 = g.shell.out(KNOBS)
    try:
        a.call("vshare-set-allocation", cpus="1", mems="0")
        t.ok(False, "an injected failure is reported")
    except AgentError as e:
        t.ok("injected" in e.desc, f"an injected failure is reported: "
             f"{e.desc}")
    sh, ok = show_until(g, {"system.slice": {"AllowedCPUs": "0"}})
    t.ok(ok and g.shell.out(KNOBS) == knobs1 and
         kernel_cpus(g)["system.slice"] == "0",
         "after the failure: units, IRQs and workqueue mask as before", sh)
    c.confined({0}, {0}, "after the failure")
    g.shell.out(f"rm -r {d} && systemctl daemon-reload && "
                "systemctl restart vshare-agent")
    agent_restarted(g, a, pid2)

    rep = a.call("vshare-set-allocation", cpus="0-1", mems="0-1")
    c.agree({0, 1}, {0, 1}, "give-back")
    t.ok(rep["cpus"] == "0-1" and show(g) == props0,
         "give-back: the units' properties are as before", show(g))
    t.eq(g.shell.out(KNOBS), knobs0,
         "give-back: IRQ affinities and workqueue mask as before")
    c.confined({0, 1}, {0, 1}, "given back", before)
    # (v2 refuses an empty set again on a cgroup with tasks: the agent
    # writes every possible CPU / node, which restricts nothing)
    fc = g.shell.out(f"cat {FOREIGN}/cpuset.cpus.effective "
                     f"{FOREIGN}/cpuset.mems.effective")
    t.eq(fc.split(), ["0-1", "0-1"],
         "give-back: the foreign cgroup is unrestricted again")
    tasks = scan(g)
    t.ok(all(x.cpus == {0, 1} for x in tasks.values() if not x.kthread),
         "given back: every user task may use both CPUs again")
    log = g.shell.out("journalctl -u vshare-agent --no-pager -o cat")
    t.ok("systemd backend" in log and "ready" in log,
         "the agent logs to the journal", log[-1000:])


def boot_v1(t, g, a):
    c = Checks(t, g)
    t.ok(g.shell.run("test -d /sys/fs/cgroup/systemd && "
                     "test -d /sys/fs/cgroup/cpuset")[0] == 0,
         "rebooted with systemd.unified_cgroup_hierarchy=0 (cgroup v1)")
    t.ok(wait_active(g, "vshare-agent"),
         "after the reboot udev starts the agent again")
    a.connect(120)
    topo = a.call("vshare-get-topology")
    t.ok(topo["cgroup"]["backend"] == "systemd" and
         topo["cgroup"]["version"] == 1,
         "the agent answers: systemd backend, cgroup v1", topo["cgroup"])
    t.ok(a.call("vshare-get-allocation")["full"],
         "a reboot starts with everything (the allocation lived in /run)")
    sh = show(g)
    t.ok(all(sh[u]["AllowedCPUs"] in ("", "0-1") for u in sh),
         "after the reboot systemctl show restricts no unit", sh)
    c.confined({0, 1}, {0, 1}, "after the reboot")
    g.shell.out("systemd-run -q --unit=vshare-early sleep 100000")
    knobs0 = g.shell.out(KNOBS)
    before = scan(g)
    rep = a.call("vshare-set-allocation", cpus="1", mems="0")
    t.ok(rep["cpus"] == "1", f"v1 take-away in "
         f"{rep['elapsed-us'] / 1000:.1f} ms", rep)
    sh, ok = show_until(g, {"system.slice": {"AllowedCPUs": "1"}})
    t.ok(ok, "systemctl show: AllowedCPUs=1 recorded on system.slice", sh)
    c.confined({1}, {0}, "v1 confined", before)
    g.shell.out("systemd-run -q --unit=vshare-late sleep 100000")
    late = g.shell.out("grep Cpus_allowed_list /proc/$(systemctl show -p "
                       "MainPID --value vshare-late)/status")
    t.ok(late.endswith("\t1"), "v1: a service started afterwards "
         "inherits the set", late)
    a.call("vshare-set-allocation", cpus="0-1", mems="0-1")
    t.eq(g.shell.out(KNOBS), knobs0,
         "v1 give-back: IRQ affinities and workqueue mask as before")
    c.confined({0, 1}, {0, 1}, "v1 given back", before)


def main():
    t = Tap()
    t0 = time.monotonic()
    try:
        img = build_image()
    except RuntimeError as e:
        t.ok(False, "Debian image builds", str(e))
        t.done()
    files = [f for f in ("disk.raw", "vmlinuz", "initrd.img", ".ready")
             if not os.path.exists(os.path.join(img, f))]
    t.ok(not files, f"Debian bookworm image ready ({time.monotonic() - t0:.0f}"
         " s, cached by recipe hash)", f"missing in {img}: {files}")
    p = subprocess.run([os.path.join(REPO, "packaging", "deb", "build.sh"),
                        "agent"],
                       capture_output=True, text=True, check=True)
    deb = p.stdout.split()[-1]
    # gzip'd, as it must be for OpenStack (Nova's 64 KiB): cloud-init
    # unpacks it
    ud = subprocess.run([os.path.join(REPO, "agent", "cloud-init",
                                      "make-user-data.sh"), "--gzip", deb],
                        capture_output=True, check=True).stdout
    g = DebianGuest(img, user_data=ud,
                    shape=Shape(2, 1, mem_mb=512, vmem_max_mb=512,
                                vmem_mb=128))
    a = AgentClient(g.path("agent.sock"))
    # a timeout or a broken guest is a failure, not a crash: `not ok`
    # and the plan
    with t.section("the checks", lambda: "console:\n" + g.console()[-3000:]):
        try:
            g.start(timeout=400)
            boot0 = g.shell.out("cat /proc/sys/kernel/random/boot_id")
            t.ok(len(boot0) == 36, f"boots to the shell channel "
                 f"({g.boot_seconds:.0f} s, boot id {boot0[:8]})", boot0)
            boot_v2(t, g, a)
            g.poweroff()
            g.extra_append = "systemd.unified_cgroup_hierarchy=0"
            g.start(timeout=400)
            boot1 = g.shell.out("cat /proc/sys/kernel/random/boot_id")
            t.ok(boot1 != boot0 and g.shell.run(
                "dpkg-query -W vshare-agent")[0] == 0,
                 f"reboots from the same disk ({g.boot_seconds:.0f} s, "
                 "a new boot id, the package still installed)", boot1)
            boot_v1(t, g, a)
        finally:
            g.stop()
    t.diag(f"wall time {time.monotonic() - t0:.0f} s")
    t.done()


if __name__ == "__main__":
    main()
