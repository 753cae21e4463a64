"""Harness of the hostile-peer tests and benchmark: fake VMs (peers.py in
their own process), vsharectl runs with a hang guard and their peak RSS,
and snapshots of what vsharectl must not touch (ledger bytes, foreign
processes' affinity and cgroups).

    FakeVm(dir, name)       a fake QEMU + agent process; .set(qmp=, agent=)
    Scene(tap, tag, n)      a private Ctl (tests/shim/shimlib.py) with n
                            fake VMs registered; .baseline() gives the first
                            one pCPUs 0-1 in coop through honest peers
    run(argv, env, guard)   one vsharectl run: rc, out, err, secs, peak RSS
    ProcState(pid)          affinity and cgroups of every thread of a pid
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "shim"))
sys.path.insert(0, os.path.join(TESTS, "vm"))
from shimlib import Ctl  # noqa: E402
from vshare_vm import REPO, Tap  # noqa: E402

PEERS = os.path.join(HERE, "peers.py")
MiB = 1 << 20
VMEM_INIT = 128 * MiB
# stderr that is never a "clear message": sanitizer reports, GLib
# criticals/warnings (a peer's wrong type reached an unchecked accessor)
NOISE = re.compile(r"Sanitizer|runtime error:|-CRITICAL \*\*|-WARNING \*\*")


class HTap(Tap):
    pass  # Tap.skip moved up to the harness


def write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.replace(path + ".tmp", path)


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def wait_for(pred, timeout, step=0.01):
    """Poll an observable condition; its value, or None at the deadline."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


# ---- fake VMs ---

class FakeVm:
    def __init__(self, parent, name):
        self.name = name
        self.dir = os.path.join(parent, "vm-" + name)
        os.makedirs(self.dir)
        self.bfile = os.path.join(self.dir, "behaviour.json")
        write_json(self.bfile, {})
        self.proc = subprocess.Popen(
            # -I -S: stdlib only, and no site start-up (over 1 s with
            # some pyenv installs; there are ~60 fakes per run)
            [sys.executable, "-I", "-S", PEERS, "--dir", self.dir,
             "--behaviour", self.bfile], stdin=subprocess.DEVNULL)
        ready = wait_for(lambda: read_json(
            os.path.join(self.dir, "ready.json")) or
            self.proc.poll() is not None, 20)
        if ready is True:
            ready = None
        if not ready:
            self.stop()
            raise RuntimeError(f"fake VM {name} did not start")
        self.pid = ready["pid"]
        self.tids = ready["vcpu-tids"]
        self.qmp = ready["qmp"]
        self.agent = ready["agent"]

    def set(self, qmp=None, agent=None):
        """Behaviour of the next connections (peers.py's docstring)."""
        write_json(self.bfile, {"qmp": qmp or {"mode": "honest"},
                                "agent": agent or {"mode": "honest"}})

    def honest(self):
        self.set()

    def agent_state(self):
        return read_json(os.path.join(self.dir, "agent-state.json"), {})

    def vmem(self):
        st = read_json(os.path.join(self.dir, "qmp-state.json"), {})
        return {d["node"]: d for d in st.get("devices", [])}

    def log(self):
        try:
            with open(os.path.join(self.dir, "log.jsonl")) as f:
                return [json.loads(x) for x in f if x.strip()]
        except OSError:
            return []

    def wait_request(self, cmd, after=0, timeout=10):
        """The first request named @cmd logged after line @after."""
        def find():
            for e in self.log()[after:]:
                if e.get("what") == "req" and \
                        e.get("req", {}).get("execute") == cmd:
                    return e
            return None
        return wait_for(find, timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


# ---- vsharectl runs ---

class Result:
    def __init__(self, argv):
        self.argv = argv
        self.rc = None
        self.out = self.err = ""
        self.secs = 0.0
        self.rss_kib = 0
        self.killed = False

    def diag(self):
        return (f"argv: {' '.join(self.argv)}\nrc {self.rc} "
                f"{'(killed by the hang guard) ' if self.killed else ''}"
                f"in {self.secs:.2f} s, peak RSS {self.rss_kib} KiB\n"
                f"stdout: {self.out[-1500:]}\nstderr: {self.err[-1500:]}")


class Running:
    """A vsharectl started in the background; finish() reaps it with
    wait4 (exact peak RSS of this child), killing it at the guard."""

    def __init__(self, argv, env=None, user=None):
        if user:
            argv = ["runuser", "-u", user, "--", *argv]
        self.res = Result(argv)
        self.tmp = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=self.tmp[0],
                                     stderr=self.tmp[1], env=env,
                                     stdin=subprocess.DEVNULL)

    def kill(self, sig=signal.SIGKILL):
        if self.proc.returncode is None:
            self.proc.send_signal(sig)

    def finish(self, guard):
        r = self.res
        while True:
            pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - self.t0 > guard:
                r.killed = True
                self.proc.kill()
                pid, status, ru = os.wait4(self.proc.pid, 0)
                break
            time.sleep(0.002)
        r.secs = time.monotonic() - self.t0
        r.rc = self.proc.returncode = os.waitstatus_to_exitcode(status)
        r.rss_kib = ru.ru_maxrss
        for f, attr in zip(self.tmp, ("out", "err")):
            f.seek(0)
            setattr(r, attr, f.read().decode("utf-8", "replace"))
            f.close()
        return r


def run(argv, env=None, guard=60, user=None):
    return Running(argv, env, user).finish(guard)


# ---- what must not change ---

def _mounts():
    """(cpu v1 mount, cgroup2 mount) from mountinfo."""
    v1 = v2 = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            f_ = line.split()
            sep = f_.index("-")
            fstype, opts = f_[sep + 1], f_[sep + 3].split(",")
            if fstype == "cgroup" and "cpu" in opts and not v1:
                v1 = f_[4]
            elif fstype == "cgroup2" and not v2:
                v2 = f_[4]
    return v1, v2


CPU_V1, CG_V2 = _mounts()


def _field(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split(None, 1)[1].strip()
    except OSError:
        return None
    return None


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


class ProcState:
    """Cpus_allowed_list and /proc/.../cgroup of every thread of @pid."""

    def __init__(self, pid):
        self.pid = pid
        self.tasks = {}
        for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
            base = f"/proc/{pid}/task/{tid}"
            self.tasks[int(tid)] = (_field(base + "/status",
                                           "Cpus_allowed_list"),
                                    _read(base + "/cgroup"))

    def __eq__(self, other):
        return self.tasks == other.tasks

    def diff(self, other):
        return {t: (v, other.tasks.get(t)) for t, v in self.tasks.items()
                if other.tasks.get(t) != v}

    def restore(self):
        """Undo what a defective vsharectl did to these threads."""
        for tid, (cpus, cg) in self.tasks.items():
            try:
                os.sched_setaffinity(tid, _cpulist(cpus))
            except (OSError, ValueError):
                pass
            for line in (cg or "").splitlines():
                _, ctrl, path = line.split(":", 2)
                if CPU_V1 and "cpu" in ctrl.split(","):
                    _write(os.path.join(CPU_V1, path.lstrip("/"), "tasks"),
                           tid)
                elif ctrl == "" and CG_V2 and not CPU_V1:
                    _write(os.path.join(CG_V2, path.lstrip("/"),
                                        "cgroup.procs"), self.pid)


def _cpulist(text):
    out = set()
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


def _write(path, value):
    try:
        with open(path, "w") as f:
            f.write(f"{value}\n")
    except OSError:
        pass


def thread_quota(pid, tid):
    """(cpu cgroup path, quota text) of a thread: cpu.cfs_quota_us on v1,
    cpu.max on v2."""
    cg = _read(f"/proc/{pid}/task/{tid}/cgroup") or ""
    for line in cg.splitlines():
        _, ctrl, path = line.split(":", 2)
        if CPU_V1 and "cpu" in ctrl.split(","):
            return path, (_read(os.path.join(
                CPU_V1, path.lstrip("/"), "cpu.cfs_quota_us")) or "").strip()
        if not CPU_V1 and ctrl == "":
            return path, (_read(os.path.join(
                CG_V2, path.lstrip("/"), "cpu.max")) or "").strip()
    return None, None


def pinned(tid):
    return _field(f"/proc/{tid}/status", "Cpus_allowed_list")


def remove_vm_cgroups(name):
    """rmdir vsharectl's CPU/vshare/NAME/vcpuN once the fake is gone."""
    for mount in (CPU_V1, CG_V2):
        if not mount:
            continue
        top = os.path.join(mount, "vshare", name)
        if not os.path.isdir(top):
            continue
        for _ in range(50):
            try:
                for d in os.listdir(top):
                    if os.path.isdir(os.path.join(top, d)):
                        os.rmdir(os.path.join(top, d))
                os.rmdir(top)
                break
            except OSError:
                time.sleep(0.02)


# ---- a scene: private state + fake VMs ---

def ledger_bytes(ctl):
    try:
        with open(ctl.ledger_path(), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def ledger_body(ctl):
    j = read_json(ctl.ledger_path())
    return j["ledger"] if j else None


def cpulist(s):
    return _cpulist(s) if s else set()


class Scene:
    """A private vsharectl registry/state and @n fake VMs named
    hx<pid>-<tag>[-i] (names are global: they name cgroups)."""

    # set-up runs (add, baseline) skip leak checking: it doubles the
    # start-up of the ASan build and they are not what is tested
    QUICK = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0"}

    def __init__(self, tag, n=1, binary=None, guard=60):
        self.guard = guard
        self.work = tempfile.mkdtemp(prefix="vshare-hostile-")
        self.ctl = Ctl(self.work, binary)
        self.names = [f"hx{os.getpid()}-{tag}" + (f"-{i}" if n > 1 else "")
                      for i in range(n)]
        self.vms = {}
        self.extra_args = []
        try:
            for nm in self.names:
                self.vms[nm] = FakeVm(self.work, nm)
                r = self.run("add", nm, "--qmp", self.vms[nm].qmp,
                             "--agent", self.vms[nm].agent, env=self.QUICK)
                if r.rc:
                    raise RuntimeError(r.diag())
        except Exception:
            self.close()
            raise
        self.name = self.names[0]
        self.vm = self.vms[self.name]

    def argv(self, *args):
        return self.ctl.argv(*args)

    def run(self, *args, guard=None, env=None, user=None):
        e = dict(self.ctl.env, **(env or {}))
        return run(self.argv(*args), e, guard or self.guard, user)

    def start(self, *args, env=None, user=None):
        return Running(self.argv(*args), dict(self.ctl.env, **(env or {})),
                       user)

    def baseline(self, pcpus="0-1", mode="coop"):
        """The first VM owns @pcpus through honest peers: a ledger exists."""
        r = self.run("cpus", self.name, "--set", pcpus, "--mode", mode,
                     env=self.QUICK)
        if r.rc:
            raise RuntimeError("baseline failed: " + r.diag())
        return r

    def journal(self):
        return os.path.exists(self.ctl.journal_path())

    def close(self):
        for vm in self.vms.values():
            vm.stop()
        for nm in self.names:
            remove_vm_cgroups(nm)
        shutil.rmtree(self.work, ignore_errors=True)


def vsharectl_binary():
    return os.environ.get("VSHARECTL") or \
        os.path.join(REPO, "build", "san", "vsharectl")


def has_option(binary, cmd, opt):
    p = subprocess.run([binary, cmd, "--help"], capture_output=True,
                       text=True)
    return opt in p.stdout + p.stderr
