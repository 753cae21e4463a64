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
import traceback

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
          (cg or ["/"])[0] or "/")
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
        self.kthread = bool(self.flags & 0x00200000)
        self.no_affinity = bool(self.flags & 0x04000000)


def scan(g):
    return {t.pid: t for t in (Task(x) for x in g.shell.out(
        SCAN, timeout=180).splitlines() if len(x.split()) == 6)}


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


class Checks:
    def __init__(self, t, g):
        self.t, self.g = t, g

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
                     if p in before and x.cgroup != before[p].cgroup]
            ours = [x.pid for x in tasks.values()
                    if x.cgroup == "/vshare" or
                    x.cgroup.startswith("/vshare/")]
            t.ok(not moved and not ours,
                 f"{what}: no process left its unit "
                 f"({sum(1 for p in tasks if p in before)} compared)",
                 f"moved: {moved[:8]}, in the agent's cgroup: {ours[:8]}")
        return tasks


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
    sh = show(g, props="AllowedCPUs,AllowedMemoryNodes,EffectiveCPUs,"
                       "EffectiveMemoryNodes")
    top = [u for u in UNITS.split() if u != "-.slice"]
    t.ok(all(sh[u]["AllowedCPUs"] == "0" and
             sh[u]["AllowedMemoryNodes"] == "0" for u in top) and
         sh["system.slice"]["EffectiveCPUs"] == "0" and
         sh["system.slice"]["EffectiveMemoryNodes"] == "0",
         "systemctl show: AllowedCPUs=0 AllowedMemoryNodes=0 on "
         f"{', '.join(top)}, in effect", sh)
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
    t.ok(show(g)["system.slice"]["AllowedCPUs"] == "0",
         "daemon-reload keeps the properties")
    c.confined({0}, {0}, "after daemon-reload", before)

    pid0 = g.shell.out("pidof vshare-agent")
    g.shell.out("systemctl restart vshare-agent")
    pid1 = agent_restarted(g, a, pid0)
    al = a.call("vshare-get-allocation")
    own = g.shell.out(f"grep Cpus_allowed_list /proc/{pid1}/status")
    t.ok(pid1 != pid0 and al["cpus"] == "0" and al["mems"] == "0" and
         own.endswith("\t0"),
         "the agent restarts inside the confined system.slice and keeps "
         f"the allocation ({own.split()[-1]})", al)

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
    t.ok(show(g)["system.slice"]["AllowedCPUs"] == "0" and
         g.shell.out(KNOBS) == knobs1,
         "after the failure: units, IRQs and workqueue mask as before")
    c.confined({0}, {0}, "after the failure")
    g.shell.out(f"rm -r {d} && systemctl daemon-reload && "
                "systemctl restart vshare-agent")
    agent_restarted(g, a, pid2)

    rep = a.call("vshare-set-allocation", cpus="0-1", mems="0-1")
    t.ok(rep["cpus"] == "0-1" and show(g) == props0,
         "give-back: the units' properties are as before", show(g))
    t.eq(g.shell.out(KNOBS), knobs0,
         "give-back: IRQ affinities and workqueue mask as before")
    c.confined({0, 1}, {0, 1}, "given back", before)
    t.ok(g.shell.run(f"test -z \"$(cat {FOREIGN}/cpuset.cpus "
                     "2>/dev/null)\"")[0] == 0,
         "give-back: the foreign cgroup inherits everything again")
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
    g.shell.out("systemd-run -q --unit=vshare-early sleep 100000")
    knobs0 = g.shell.out(KNOBS)
    before = scan(g)
    rep = a.call("vshare-set-allocation", cpus="1", mems="0")
    t.ok(rep["cpus"] == "1", f"v1 take-away in "
         f"{rep['elapsed-us'] / 1000:.1f} ms", rep)
    sh = show(g)
    t.ok(sh["system.slice"]["AllowedCPUs"] == "1",
         "systemctl show: AllowedCPUs=1 recorded on system.slice", sh)
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
    t.ok(True, f"Debian bookworm image ready ({time.monotonic() - t0:.0f} s,"
         " cached by recipe hash)")
    p = subprocess.run([os.path.join(REPO, "packaging", "deb", "build.sh"),
                        "agent"],
                       capture_output=True, text=True, check=True)
    deb = p.stdout.split()[-1]
    ud = subprocess.run([os.path.join(REPO, "agent", "cloud-init",
                                      "make-user-data.sh"), deb],
                        capture_output=True, text=True, check=True).stdout
    g = DebianGuest(img, user_data=ud,
                    shape=Shape(2, 1, mem_mb=512, vmem_max_mb=512,
                                vmem_mb=128))
    a = AgentClient(g.path("agent.sock"))
    try:
        g.start(timeout=400)
        t.ok(True, f"boots to the shell channel ({g.boot_seconds:.0f} s)")
        boot_v2(t, g, a)
        g.poweroff()
        g.extra_append = "systemd.unified_cgroup_hierarchy=0"
        g.start(timeout=400)
        t.ok(True, f"reboots from the same disk ({g.boot_seconds:.0f} s)")
        boot_v1(t, g, a)
    except Exception as e:  # a broken guest is a failure, not a crash
        t.ok(False, f"the test ran to its end: {type(e).__name__}",
             traceback.format_exc() + "\nconsole:\n" + g.console()[-3000:])
    finally:
        g.stop()
    t.diag(f"wall time {time.monotonic() - t0:.0f} s")
    t.done()


if __name__ == "__main__":
    main()
