#!/usr/bin/env python3
"""The sanitizer build of vshare-agent on this host's real cgroupfs, inside
a scratch cpuset cgroup (never the host's own processes): it manages only
the tasks of that cgroup (--cgroup-root) and leaves IRQs and workqueues
alone. TAP on stdout."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "vm"))
from vshare_vm import AgentClient, AgentError, Tap  # noqa: E402

AGENT = os.path.join(REPO, "build", "san", "vshare-agent")


def find_cpuset():
    """(version, dir) of a cpuset hierarchy we may create a scratch cgroup in."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, post = line.split(" - ", 1)
            fstype, _, opts = post.split()[:3]
            mnt = pre.split()[4]
            if fstype == "cgroup" and "cpuset" in opts.split(","):
                return 1, mnt
    for line in open("/proc/self/mountinfo"):
        pre, post = line.split(" - ", 1)
        mnt = pre.split()[4]
        if post.startswith("cgroup2 "):
            try:
                ctl = open(os.path.join(mnt, "cgroup.controllers")).read()
            except OSError:
                continue
            if "cpuset" in ctl.split():
                return 2, mnt
    return None, None


def read(path):
    with open(path) as f:
        return f.read().strip()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def allowed(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Cpus_allowed_list:"):
            return line.split()[1]
    return None


class Scratch:
    def __init__(self, version, mnt):
        self.dir = os.path.join(mnt, f"vshare-test-{os.getpid()}")
        self.version = version
        os.mkdir(self.dir)
        if version == 1:
            write(os.path.join(self.dir, "cpuset.cpus"),
                  read(os.path.join(mnt, "cpuset.cpus")))
            write(os.path.join(self.dir, "cpuset.mems"),
                  read(os.path.join(mnt, "cpuset.mems")))
        else:
            write(os.path.join(self.dir, "cgroup.subtree_control"), "+cpuset")
        self.procs = []

    def spawn(self, n, cgroup=None):
        for _ in range(n):
            p = subprocess.Popen(["sleep", "1000"])
            write(os.path.join(cgroup or self.dir, "cgroup.procs"),
                  str(p.pid))
            self.procs.append(p)
        return self.procs[-n:]

    def mkdir(self, name, cpus=None):
        """A cgroup below the scratch one (v1: filled from its parent),
        with its own cpus if given."""
        d = os.path.join(self.dir, name)
        os.mkdir(d)
        if self.version == 1:
            parent = os.path.dirname(d)
            for f in ("cpuset.cpus", "cpuset.mems"):
                write(os.path.join(d, f), read(os.path.join(parent, f)))
        if cpus is not None:
            write(os.path.join(d, "cpuset.cpus"), cpus)
        return d

    def destroy(self):
        for p in self.procs:
            p.kill()
            p.wait()
        dirs = [d for d, _, _ in os.walk(self.dir)]
        for d in reversed(dirs):  # children first
            for _ in range(50):
                try:
                    if os.path.isdir(d):
                        os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.1)


class Agent:
    def __init__(self, scratch, state, *extra, wrapper=(), agent=AGENT):
        self.sock = os.path.join(state, "agent.sock")
        logname = os.path.join(state, "agent.log")
        self.log = open(logname, "ab")
        self.log_from = self.log.tell()  # this run's part of the log
        self.logname = logname
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:exitcode=66")
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = subprocess.Popen(
            [*wrapper, agent, "--listen", self.sock,
             "--cgroup-root", scratch.dir,
             "--no-irqs", "--no-workqueue", "--state-dir", state, *extra],
            stdout=self.log, stderr=self.log, env=env)
        # the socket appears once start-up is done, unless the agent died
        deadline = time.monotonic() + 60
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"agent did not start "
                                   f"(exit {self.proc.poll()})")
            time.sleep(0.02)
        self.client = AgentClient(self.sock)
        self.client.connect(timeout=60)

    def output(self):
        """What this agent logged so far."""
        with open(self.logname, errors="replace") as f:
            f.seek(self.log_from)
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        self.client.ls.close()
        self.proc.send_signal(sig)
        return self.proc.wait(20)


def procs(cgroup):
    return {int(x) for x in read(os.path.join(cgroup, "cgroup.procs")).split()}


def check_foreign(t, sc, state, ncpu):
    """Cgroups directly below the root that are not the agent's (a
    container manager's): their tasks stay where they are and are confined
    through the cgroups' own cpuset files; the originals are journalled
    (a killed agent's successor restores them exactly) and a cgroup made
    while the guest is confined is confined at the next request."""
    if ncpu < 2:
        t.skip("foreign cgroups", "needs 2 CPUs")
        return
    full, last = f"0-{ncpu - 1}", str(ncpu - 1)
    cpus = lambda d: read(os.path.join(d, "cpuset.cpus"))  # noqa: E731
    a = Agent(sc, state)
    a.client.call("vshare-set-allocation", cpus=full)
    lxc = sc.mkdir("lxc.payload.t", cpus="0")  # its own CPUs: only 0
    lxc_tasks = sc.spawn(2, lxc)
    rep = a.client.call("vshare-set-allocation", cpus=last)
    t.ok(cpus(lxc) == last and
         all(allowed(p.pid) == last for p in lxc_tasks) and
         procs(lxc) == {p.pid for p in lxc_tasks} and
         rep["unmovable-other"] == 0,
         "foreign cgroup: its tasks confined where they are",
         f"cpus {cpus(lxc)}, {rep}")
    other = sc.mkdir("docker")
    other_orig = cpus(other)  # v2: "" (inherits), v1: a copy
    other_tasks = sc.spawn(1, other)
    a.client.call("vshare-set-allocation", cpus=last)
    t.ok(cpus(other) == last and allowed(other_tasks[0].pid) == last,
         "a foreign cgroup made while confined: confined at the next "
         "request", cpus(other))
    a.proc.kill()
    a.proc.wait()
    a = Agent(sc, state)
    t.eq((cpus(lxc), cpus(other)), (last, last),
         "SIGKILL + restart: foreign cgroups still confined")
    check_failed_give_back(t, a, state, [lxc, other], last)
    a.client.call("vshare-set-allocation", cpus=full)
    t.ok(cpus(lxc) == "0" and cpus(other) == other_orig and
         all(allowed(p.pid) == "0" for p in lxc_tasks) and
         allowed(other_tasks[0].pid) == full,
         "give-back restores each foreign cgroup's own value exactly",
         f"{cpus(lxc)!r} {cpus(other)!r}")
    check_foreign_refusal(t, sc, a, full, last)
    a.stop()


def check_failed_give_back(t, a, state, foreign, last):
    """A give-back that fails at its last step (the journal cannot be
    removed: a directory stands in its place) undoes every step, the
    foreign cgroups' knobs included."""
    journal = os.path.join(state, "allocation.json")
    os.rename(journal, journal + ".keep")
    os.mkdir(journal)
    try:
        a.client.call("vshare-set-allocation", cpus=f"0-{last}")
        err = "no error"
    except AgentError as e:
        err = e.desc
    got = [read(os.path.join(d, "cpuset.cpus")) for d in foreign]
    os.rmdir(journal)
    os.rename(journal + ".keep", journal)
    t.ok("cannot remove" in err and got == [last] * len(foreign),
         "a give-back failing at its last step leaves the foreign cgroups "
         "confined too", f"{err}; {got}")


def check_foreign_refusal(t, sc, a, full, last):
    """v1: a cgroup whose child holds CPUs outside the set cannot shrink
    (EBUSY): its tasks are reported, not hidden. v2 has no such rule."""
    parent = sc.mkdir("machine")
    child = sc.mkdir("machine/vm", cpus=full)
    task = sc.spawn(1, child)[0]
    rep = a.client.call("vshare-set-allocation", cpus=last)
    if sc.version == 1:
        t.ok(rep["unmovable-other"] == 1 and "machine" in a.output(),
             "v1: a foreign cgroup that refuses counts its tasks in "
             "unmovable-other", rep)
    else:
        t.ok(rep["unmovable-other"] == 0 and allowed(task.pid) == last,
             "v2: a foreign cgroup's child follows it", rep)
    a.client.call("vshare-set-allocation", cpus=full)
    t.eq(allowed(task.pid), full, f"and is given back ({parent})")
    task.kill()
    task.wait()
    sc.procs.remove(task)
    wait_empty(child)
    os.rmdir(child)
    os.rmdir(parent)


def wait_empty(cgroup):
    """Until a killed task has left @cgroup (its exit is asynchronous)."""
    deadline = time.monotonic() + 10
    while procs(cgroup) and time.monotonic() < deadline:
        time.sleep(0.01)


UNIT = os.path.join(REPO, "agent", "systemd", "vshare-agent.service")


def unit_caps():
    """The capability names of the unit's CapabilityBoundingSet= lines."""
    caps = []
    for line in open(UNIT):
        if line.startswith("CapabilityBoundingSet="):
            caps += line.split("=", 1)[1].split()
    return caps


def check_unit_caps(t, sc, state, ncpu):
    """The agent under the unit's bounding set (and nothing else) still
    does its cgroupfs work: sweep, confine, a foreign cgroup, journal,
    give-back. Guards the reduction against a missing capability."""
    caps = unit_caps()
    if not shutil.which("setpriv"):
        t.ok(False, "setpriv installed (util-linux)")
        return
    full, last = f"0-{ncpu - 1}", str(ncpu - 1)
    bset = ",".join(["-all"] + ["+" + c.lower()[4:] for c in caps])
    a = Agent(sc, state, wrapper=("setpriv", f"--bounding-set={bset}"))
    eff = [ln.split()[1] for ln in open(f"/proc/{a.proc.pid}/status")
           if ln.startswith("CapEff:")][0]
    want = sum(1 << CAP_BITS[c] for c in caps)
    lxc = os.path.join(sc.dir, "lxc.payload.t")
    sc.spawn(1)  # a stray task to sweep in
    rep = a.client.call("vshare-set-allocation", cpus=last)
    ok = (rep["moved-tasks"] == 1 and
          all(allowed(p.pid) == last for p in sc.procs) and
          read(os.path.join(lxc, "cpuset.cpus")) == last)
    a.client.call("vshare-set-allocation", cpus=full)
    ok = ok and all(allowed(p.pid) in (full, "0") for p in sc.procs)
    t.ok(int(eff, 16) == want and ok,
         f"with only {' '.join(caps)} (CapEff {eff}): sweep, confine, a "
         "foreign cgroup, give-back", rep)
    t.eq(a.stop(), 0, "clean exit")


# linux/capability.h
CAP_BITS = {"CAP_DAC_OVERRIDE": 1, "CAP_SYS_ADMIN": 21, "CAP_SYS_NICE": 23}

BAD_JOURNALS = {
    "not JSON": '{"cpus": "0", "mems":',
    "not an object": '["cpus", "0"]',
    "no knobs": '{"cpus": "0", "mems": "0"}',
    "cpus not a string": '{"cpus": 0, "mems": "0", "knobs": []}',
    "unparsable cpus": '{"cpus": "0-", "mems": "0", "knobs": []}',
    "knob without path": '{"cpus": "0", "mems": "0", "knobs": '
                         '[{"mask": false, "orig": "0"}]}',
    "knob path of another file": '{"cpus": "0", "mems": "0", "knobs": '
                                 '[{"path": "/etc/hostname", '
                                 '"mask": false, "orig": "0"}]}',
    "knob mask not a bool": '{"cpus": "0", "mems": "0", "knobs": '
                            '[{"path": "/proc/irq/1/smp_affinity_list", '
                            '"mask": "no", "orig": "0"}]}',
    "knob not an object": '{"cpus": "0", "mems": "0", "knobs": [7]}',
}


def check_bad_journals(t, sc, state, ncpu):
    """A malformed journal is moved aside with one log line and the agent
    starts with the full set (here: the scratch cgroup confined by hand
    before, full after)."""
    journal = os.path.join(state, "allocation.json")
    sub = os.path.join(sc.dir, "vshare")
    full = f"0-{ncpu - 1}" if ncpu > 1 else "0"
    for what, text in BAD_JOURNALS.items():
        for f in os.listdir(state):
            if f.startswith("allocation.json.bad."):
                os.unlink(os.path.join(state, f))
        write(os.path.join(sub, "cpuset.cpus"), str(ncpu - 1))
        write(journal, text)
        try:
            a = Agent(sc, state)
        except RuntimeError as e:
            t.ok(False, f"malformed journal ({what}): the agent starts", e)
            continue
        bad = [f for f in os.listdir(state)
               if f.startswith("allocation.json.bad.")]
        moved = len(bad) == 1 and not os.path.exists(journal) and \
            read(os.path.join(state, bad[0])) == text
        lines = [x for x in a.output().splitlines() if "malformed" in x]
        alloc = a.client.call("vshare-get-allocation")
        t.ok(moved and len(lines) == 1 and alloc["full"] and
             read(os.path.join(sub, "cpuset.cpus")) == full and
             all(allowed(p.pid) == full for p in sc.procs),
             f"malformed journal ({what}): moved aside, one log line, "
             "started with the full set",
             f"moved {moved} {bad}, lines {lines}, {alloc}")
        t.eq(a.stop(), 0, f"malformed journal ({what}): clean exit")


def check_guest_vcpus(t, sc, state, ncpu):
    """qemu-ga's guest-get-vcpus / guest-set-vcpus, served by confinement
    only with --guest-vcpus, with qemu-ga's checks and texts."""
    last = ncpu - 1
    full = f"0-{last}"

    def err(cl, vcpus):
        try:
            return cl.call("guest-set-vcpus", vcpus=vcpus)
        except AgentError as e:
            return e

    def vc(i, on):
        return {"logical-id": i, "online": on}

    a = Agent(sc, state)
    e = err(a.client, [vc(last, False)])
    en = {c["name"]: c["enabled"] for c in
          a.client.call("guest-info")["supported_commands"]}
    t.ok(isinstance(e, AgentError) and e.cls == "CommandNotFound" and
         not en["guest-get-vcpus"] and not en["guest-set-vcpus"],
         "without --guest-vcpus the vCPU commands are disabled "
         "(qemu-ga keeps their meaning)", e)
    a.stop()
    a = Agent(sc, state, "--guest-vcpus")
    cl = a.client
    got = cl.call("guest-get-vcpus")
    switch = {i: os.path.exists(f"/sys/devices/system/cpu/cpu{i}/online")
              for i in range(ncpu)}
    t.eq(got, [{"logical-id": i, "online": True, "can-offline": switch[i]}
               for i in range(ncpu)],
         "guest-get-vcpus: every vCPU online, can-offline as qemu-ga")
    t.eq(cl.call("guest-set-vcpus", vcpus=[]), 0, "an empty list: 0")
    if ncpu < 2 or not switch[last]:
        t.diag(f"skipped the take-away checks: cpu{last} has no online "
               "switch")
        a.stop()
        return
    t.eq(cl.call("guest-set-vcpus", vcpus=[vc(last, False)]), 1,
         f"guest-set-vcpus offlines vCPU {last}: 1 processed")
    rest = "0" if last == 1 else f"0-{last - 1}"
    t.ok(all(allowed(p.pid) == rest for p in sc.procs) and
         read(f"/sys/devices/system/cpu/cpu{last}/online") == "1",
         f"served by confinement: every task on {rest}, the kernel keeps "
         f"cpu{last} online")
    t.eq([x["online"] for x in cl.call("guest-get-vcpus")],
         [i != last for i in range(ncpu)],
         f"guest-get-vcpus: vCPU {last} reads offline")
    e = err(cl, [vc(ncpu + 40, False)])
    t.ok(isinstance(e, AgentError) and e.cls == "GenericError" and
         e.desc == f'open("/sys/devices/system/cpu/cpu{ncpu + 40}/"): '
                   "No such file or directory",
         "an unknown id: qemu-ga's error", e)
    if not switch[0]:
        e = err(cl, [vc(0, False)])
        t.ok(isinstance(e, AgentError) and
             e.desc == "logical processor #0 can't be offlined",
             "vCPU 0: qemu-ga's error", e)
    for vcpus, why, want in (
            ("x", "not an array",
             "Invalid parameter type for 'vcpus', expected: array"),
            ([{"online": False}], "no logical-id",
             "Parameter 'vcpus[0].logical-id' is missing"),
            ([{"logical-id": 1, "online": 0}], "a non-boolean online",
             "Invalid parameter type for 'vcpus[0].online', "
             "expected: boolean"),
            ([{"logical-id": 1, "online": True, "x": 1}], "an unknown key",
             "Parameter 'vcpus[0].x' is unexpected")):
        e = err(cl, vcpus)
        t.ok(isinstance(e, AgentError) and e.desc == want,
             f"argument check, {why}: {want}", e)
    # the checked prefix is applied; the error after it is dropped
    t.eq(cl.call("guest-set-vcpus", vcpus=[vc(last, True),
                                           vc(ncpu + 40, True)]), 1,
         "a bad entry after a good one: the prefix (1) is applied")
    t.ok(all(allowed(p.pid) == full for p in sc.procs),
         f"vCPU {last} given back")
    cl.call("vshare-set-allocation", cpus=str(last))
    e = err(cl, [vc(last, False)])
    t.ok(isinstance(e, AgentError) and
         e.desc == f"logical processor #{last} can't be offlined" and
         all(allowed(p.pid) == str(last) for p in sc.procs),
         "offlining the last vCPU of the allocation is refused, "
         "nothing changes", e)
    cl.call("vshare-set-allocation", cpus=full)
    t.eq(a.stop(), 0, "--guest-vcpus: clean exit, no leaks (ASan)")


def main():
    t = Tap()
    if os.geteuid() != 0:
        t.skip_all("needs root for cgroupfs")
    version, mnt = find_cpuset()
    if not version:
        t.skip_all("no cpuset controller mounted")
    ncpu = os.cpu_count()
    state = tempfile.mkdtemp(prefix="vshare-agent-test-")
    sc = Scratch(version, mnt)
    try:
        run(t, sc, state, version, ncpu)
    except Exception as e:
        t.ok(False, "test ran to the end", repr(e))
    finally:
        sc.destroy()
        t.diag(open(os.path.join(state, "agent.log")).read()[-3000:])
    t.done()


def run(t, sc, state, version, ncpu):
    sc.spawn(20)
    a = Agent(sc, state)
    cl = a.client
    sub = os.path.join(sc.dir, "vshare")
    t.eq(len(read(os.path.join(sub, "cgroup.procs")).split()), 20,
         f"cgroup v{version}: the 20 scratch tasks moved into vshare/")
    t.eq(read(os.path.join(sc.dir, "cgroup.procs")), "",
         "none left in the scratch root")
    last = str(ncpu - 1)
    rep = cl.call("vshare-set-allocation", cpus=last)
    t.eq(rep["cpus"], last, "set-allocation replies with the set")
    t.ok(all(allowed(p.pid) == last for p in sc.procs),
         "every task's Cpus_allowed_list follows one cpuset write")
    t.eq(os.getpid() in [int(x) for x in
                         read(os.path.join(sub, "cgroup.procs")).split()],
         False, "the host's own processes were not touched")
    # a task born outside (a kernel-spawned helper) is swept in on request
    sc.spawn(1)
    rep = cl.call("vshare-set-allocation", cpus=last)
    t.eq(rep["moved-tasks"], 1, "stray task swept in at the next request")
    t.eq(allowed(sc.procs[-1].pid), last, "and confined")
    for args in (dict(cpus=str(ncpu + 3)), dict(cpus="0", mems="7"),
                 dict(cpus="0-"), dict(cpus="")):
        try:
            cl.call("vshare-set-allocation", **args)
            t.ok(False, f"refused: {args}")
        except AgentError as e:
            t.ok(e.cls == "GenericError", f"refused: {args}: {e.desc}")
    t.eq(read(os.path.join(sub, "cpuset.cpus")), last,
         "refusals changed nothing")
    # Journal: a restart keeps the allocation.
    t.eq(a.stop(), 0, "SIGTERM: clean exit, no leaks (ASan)")
    a = Agent(sc, state)
    t.eq(a.client.call("vshare-get-allocation")["cpus"], last,
         "restarted agent reports the journalled allocation")
    a.stop()
    # Rollback: fail after the cgroup step.
    a = Agent(sc, state, "--test-fault=cgroup")
    try:
        a.client.call("vshare-set-allocation", cpus=f"0-{ncpu - 1}")
        t.ok(False, "injected fault reported")
    except AgentError as e:
        t.ok("injected" in e.desc, "injected fault reported")
    t.eq(read(os.path.join(sub, "cpuset.cpus")), last,
         "cgroup rolled back after the fault")
    a.stop()
    # --block-rpcs / --allow-rpcs
    a = Agent(sc, state, "--block-rpcs=vshare-set-allocation")
    try:
        a.client.call("vshare-set-allocation", cpus="0")
        t.ok(False, "blocked command refused")
    except AgentError as e:
        t.eq(e.cls, "CommandNotFound", "blocked command refused")
    a.stop()
    a = Agent(sc, state, "--allow-rpcs=guest-sync-delimited,guest-info")
    en = {c["name"]: c["enabled"] for c in
          a.client.call("guest-info")["supported_commands"]}
    t.ok(en["guest-info"] and not en["guest-ping"], "allow-rpcs applied")
    a.stop()
    bad = subprocess.run([AGENT, "--block-rpcs=nope", "--listen", "/x"],
                         capture_output=True, text=True)
    t.ok(bad.returncode != 0 and "nope" in bad.stderr,
         "unknown name in --block-rpcs is an error", bad.stderr)
    check_foreign(t, sc, state, ncpu)
    check_unit_caps(t, sc, state, ncpu)
    check_bad_journals(t, sc, state, ncpu)
    check_guest_vcpus(t, sc, state, ncpu)
    # Give everything back, then exit.
    a = Agent(sc, state)
    a.client.call("vshare-set-allocation", cpus=f"0-{ncpu - 1}")
    t.ok(all(allowed(p.pid) == f"0-{ncpu - 1}" for p in sc.procs),
         "give-back restores every task")
    t.ok(not os.path.exists(os.path.join(state, "allocation.json")),
         "journal cleared when everything is given back")
    # Garbage, half frames and a dead peer do not kill it.
    a.client.ls.send(b'\x00\x01garbage{"execute":')
    a.client.ls.close()
    a.client.connect()  # guest-sync-delimited: answered once it is back
    t.eq(a.client.call("guest-ping"), {}, "alive after garbage + hang-up")
    t.eq(a.stop(), 0, "clean exit")
    # The release build under valgrind: no errors, no definite leaks.
    if not shutil.which("valgrind"):
        t.ok(False, "valgrind installed")
        return
    a = Agent(sc, state, "--guest-vcpus", wrapper=(
        "valgrind", "--error-exitcode=99", "--leak-check=full",
        "--errors-for-leak-kinds=definite", "-q"),
        agent=os.path.join(REPO, "build", "rel", "vshare-agent"))
    a.client.call("vshare-get-topology")
    a.client.call("guest-get-vcpus")
    a.client.call_raw(b'{"execute":"guest-set-vcpus","arguments":'
                      b'{"vcpus":[{"logical-id":99,"online":false}]}}\n')
    a.client.call("vshare-set-allocation", cpus=last)
    a.client.call("vshare-get-cpu-stats")
    a.client.call_raw(b'{"execute":"nope"}\n')
    a.client.call("vshare-set-allocation", cpus=f"0-{ncpu - 1}")
    t.eq(a.stop(), 0, "valgrind: no errors, no definite leaks")


if __name__ == "__main__":
    main()
