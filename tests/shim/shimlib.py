"""Helpers shared by the vsharectl tests, the demo and the benchmark.

    hostconf(dir)            the declared 2-node host (a documented fake:
                             this machine has one node; the guests' vNUMA
                             is real)
    Ctl(workdir)             runs vsharectl with its own registry/state
    boot_pair(ctl)           guests a and b, 2 nodes x 1 vCPU, registered
"""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "vm"))
from vshare_vm import REPO, Guest, Shape  # noqa: E402

# One vCPU per pCPU: the host declares node0 = pCPU 0, node1 = pCPU 1.
SHAPE = "2x1:256M:vmem=512M/128M"
HOST_CONF = """# Declared host layout (tests): this machine is one node with two
# pCPUs; vshare's model needs a vNUMA shape equal to the host's, so the
# tests declare each pCPU a node. Pinning and throttling are real.
[node0]
cpus=0
vmem=1G
[node1]
cpus=1
vmem=1G
"""


class Ctl:
    def __init__(self, workdir=None, binary=None):
        self.work = workdir or tempfile.mkdtemp(prefix="vsharectl-")
        self.conf = os.path.join(self.work, "etc")
        self.state = os.path.join(self.work, "state")
        os.makedirs(self.conf, exist_ok=True)
        with open(os.path.join(self.conf, "host.conf"), "w") as f:
            f.write(HOST_CONF)
        self.bin = binary or os.environ.get("VSHARECTL") or \
            os.path.join(REPO, "build", "san", "vsharectl")
        # never a system vshared: this run's own socket (daemon tests
        # start a vshared on it)
        self.socket = os.path.join(self.work, "vshared.sock")
        self.env = dict(os.environ,
                        ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
                        VSHARE_SOCKET=self.socket)

    def argv(self, *args):
        # TCG guests under a loaded CI host: agent calls get 20 s unless a
        # test says otherwise (a later --timeout wins)
        head = [args[0], "--timeout", "20"] if args and \
            args[0] in ("cpus", "mem", "lend", "recover", "status") else \
            list(args[:1])
        return [self.bin, *head, *args[1:], "--conf-dir", self.conf,
                "--state-dir", self.state]

    def run(self, *args, env=None, timeout=120):
        e = dict(self.env, **(env or {}))
        t0 = time.monotonic()
        p = subprocess.run(self.argv(*args), capture_output=True, text=True,
                           env=e, timeout=timeout)
        p.seconds = time.monotonic() - t0
        return p

    def json(self, *args):
        p = self.run(*args, "--json")
        if p.returncode != 0:
            raise RuntimeError(f"vsharectl {' '.join(args)}: "
                               f"{p.returncode}: {p.stderr}")
        return json.loads(p.stdout)

    def ledger_path(self):
        return os.path.join(self.state, "ledger.json")

    def journal_path(self):
        return os.path.join(self.state, "journal.json")


class Daemon:
    """vshared on the Ctl's registry and state, its socket, a metrics
    file; started and stopped by pid."""

    def __init__(self, ctl, binary=None, interval=1, extra=()):
        self.ctl = ctl
        self.extra = list(extra)  # more vshared options (--libvirt-uri)
        self.bin = binary or os.path.join(REPO, "build", "san", "vshared")
        self.metrics = os.path.join(ctl.work, "vshare.prom")
        self.log = os.path.join(ctl.work, "vshared.log")
        self.interval = interval
        self.proc = None

    def argv(self):
        return [self.bin, "--conf-dir", self.ctl.conf, "--state-dir",
                self.ctl.state, "--socket", self.ctl.socket,
                "--metrics-file", self.metrics, "--metrics-interval",
                str(self.interval), "--policies",
                os.path.join(REPO, "host-shim", "policies"),
                # never the machine's own libvirtd (vshared follows it
                # by default when its socket exists)
                *([] if "--libvirt-uri" in self.extra
                  else ["--libvirt-uri", "none"]), *self.extra]

    def start(self, env=None, timeout=30):
        if os.path.exists(self.ctl.socket):
            os.unlink(self.ctl.socket)
        self.proc = subprocess.Popen(
            self.argv(), env=dict(self.ctl.env, **(env or {})),
            stdout=subprocess.DEVNULL, stderr=open(self.log, "a"))
        t0 = time.monotonic()
        while not self.ping():
            if self.proc.poll() is not None:
                raise RuntimeError(f"vshared exited {self.proc.returncode}"
                                   f": {open(self.log).read()[-2000:]}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError("vshared did not answer")
            time.sleep(0.05)
        return self

    def request(self, text, timeout=10):
        """Raw bytes in, the first reply line out (None: no reply)."""
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        try:
            s.connect(self.ctl.socket)
            s.sendall(text)
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            return buf.decode(errors="replace") or None
        except OSError:
            return None
        finally:
            s.close()

    def ping(self):
        r = self.request(b'{"execute": "guest-ping"}\n', timeout=2)
        return r is not None and '"return"' in r

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        return self.proc.returncode if self.proc else None


def boot_pair(ctl, names=("a", "b"), **kw):
    guests = {}
    try:
        for n in names:
            g = Guest(Shape.parse(SHAPE), connect_agent=False, **kw)
            g.start()
            guests[n] = g
            p = ctl.run("add", n, "--qmp", g.path("qmp-shim.sock"),
                        "--agent", g.path("agent.sock"), "--force")
            if p.returncode:
                raise RuntimeError(p.stderr)
    except Exception:
        for g in guests.values():
            g.stop()
        raise
    return guests


def wait_for(cond, timeout=30.0, step=0.1):
    """Poll @cond (its truth lives in another process: a file, a guest, a
    daemon) until it holds or @timeout seconds pass; its last value."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def pinned(tid):
    """Cpus_allowed_list of a host thread (/proc/TID/status)."""
    with open(f"/proc/{tid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split()[1]
    return None


def vcpu_threads(guest):
    return [c["thread-id"] for c in
            sorted(guest.qmp.cmd("query-cpus-fast"),
                   key=lambda c: c["cpu-index"])]


def schedstat_ns(tid):
    with open(f"/proc/{tid}/schedstat") as f:
        return int(f.read().split()[0])


def cpu_share(tid, seconds=1.0):
    a = schedstat_ns(tid)
    time.sleep(seconds)
    return (schedstat_ns(tid) - a) / (seconds * 1e9)


def vmem(guest):
    return {d["data"]["node"]: d["data"] for d in
            guest.qmp.cmd("query-memory-devices")
            if d["type"] == "virtio-mem"}
