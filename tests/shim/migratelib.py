"""Live migration between two vshare "hosts" on this machine (tests/shim's
declared 2-node layout, one vshared each): the destination QEMU, QMP
events, thread affinities. Used by migrate.py and bench-layout.py."""
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "vm"))
from vshare_vm import QMP, Guest, build_initrd, parse_list  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_event(qmp, name, timeout):
    """The first @name event (already seen or arriving) within @timeout;
    the host's monotonic time when it was read is added as "seen"."""
    deadline = time.monotonic() + timeout
    while True:
        for e in qmp.events:
            if e["event"] == name:
                qmp.events.remove(e)
                return e
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            rep = qmp._read(left)
        except TimeoutError:
            return None
        if "event" in rep:
            rep["seen"] = time.monotonic()
            qmp.events.append(rep)


def event_wall(e):
    """An event's QEMU timestamp, seconds since the epoch."""
    ts = e["timestamp"]
    return ts["seconds"] + ts["microseconds"] / 1e6


def affinities(pid):
    """{tid: set of CPUs} of every thread of @pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("Cpus_allowed_list:"):
                        out[int(tid)] = parse_list(line.split()[1])
        except OSError:
            pass  # a thread that ended
    return out


class Incoming(Guest):
    """A destination: the source's command line with -incoming."""

    def start_incoming(self, port):
        initrd = build_initrd(self.kernel, self.agent_bin, qga=self.qga,
                              extra=self.extra_files)
        os.makedirs(self.workdir, exist_ok=True)
        argv = self.qemu_argv(initrd) + ["-incoming",
                                         f"tcp:127.0.0.1:{port}"]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL,
            stdout=open(self.path("qemu.log"), "w"),
            stderr=subprocess.STDOUT)
        self.qmp = QMP(self.path("qmp.sock"))
        return self


def follow(ctl, daemon, name, g):
    """Register QEMU @g as @name at this host and make vshared follow it;
    the reload's answer."""
    p = ctl.run("add", name, "--qmp", g.path("qmp-shim.sock"), "--agent",
                g.path("agent.sock"), "--force")
    if p.returncode:
        raise RuntimeError(f"add {name}: {p.stderr}")
    return daemon.request(b'{"execute": "vshare-host-reload"}\n')


def declare_profile(ctl, name, profile):
    os.makedirs(os.path.join(ctl.conf, "profiles"), exist_ok=True)
    with open(os.path.join(ctl.conf, "profiles", f"{name}.json"), "w") as f:
        json.dump(profile, f)


def place(ctl, name):
    """`vsharectl place NAME --apply --json`: (process, answer or {})."""
    p = ctl.run("place", name, "--apply", "--json")
    return p, (json.loads(p.stdout) if p.returncode == 0 else {})


def cells_of(answer):
    return {c["cell"]: parse_list(c["cpus"])
            for c in answer.get("cells", [])}


def misplaced(pid, vcpu_nodes, cells):
    """Threads of @pid not where the placement put them: vCPU threads
    (@vcpu_nodes: tid -> guest node) on their cell's pCPUs, the others
    within all of them. {} when all are."""
    union = set().union(*cells.values()) if cells else set()
    return {tid: sorted(a) for tid, a in affinities(pid).items()
            if (tid in vcpu_nodes and a != cells.get(vcpu_nodes[tid])) or
            (tid not in vcpu_nodes and not a <= union)}


def write_key(ctl, key):
    """CONF/peer.key of a vshare "host", mode 0600."""
    path = os.path.join(ctl.conf, "peer.key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")


class PeerClient:
    """The peer protocol by hand (docs/migration.md): the greeting, one
    line out, one line back."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.file = self.sock.makefile("rwb")
        self.hello = json.loads(self.file.readline())
        self.nonce = self.hello.get("nonce", "")

    @staticmethod
    def envelope(key, nonce, request):
        mac = hmac.new(key.encode(), (nonce + "\n" + request).encode(),
                       hashlib.sha256).hexdigest()
        return {"request": request, "mac": mac}

    def send(self, obj):
        """@obj (bytes as they are, else JSON) out; the answer (a dict, or
        None when the endpoint closed without one)."""
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.file.write(data + b"\n")
        self.file.flush()
        return self.answer()

    def answer(self):
        line = self.file.readline()
        return json.loads(line) if line else None

    def close(self):
        self.file.close()
        self.sock.close()


def stop_daemons(t, named, what=""):
    """Each (name, vshared) stopped; its exit status is a check (the san
    build: ASan reports a leak as a non-zero exit)."""
    for name, d in named:
        t.ok(d.stop() == 0, f"{what}{name} vshared exit 0 (ASan: no leak)",
             open(d.log).read()[-2000:])


def teardown(daemons, guests):
    """What a failed check left running: vshared killed, guests stopped."""
    for d in daemons:
        if d.proc and d.proc.poll() is None:
            d.proc.kill()
    for g in guests:
        g.stop()
