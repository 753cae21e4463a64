"""tests/vm: boot real vNUMA guests under QEMU TCG and talk to them.

Used by every test, benchmark and demo (one tool, options, no copies):

    g = Guest(Shape(nodes=2, cpus_per_node=2), cgroup="v2")
    g.start()                       # builds the initramfs (cached), boots
    g.agent.call("vshare-get-topology")
    g.shell.run("cat /proc/self/status")
    g.qmp.cmd("query-cpus-fast")
    g.stop()

Channels (all unix sockets in the work directory):
  qmp.sock    QMP
  agent.sock  virtio-serial port org.vshare.agent.0 (the agent)
  shell.sock  virtio-serial port org.vshare.shell.0 (a root shell, the
              independent second channel tests check the guest with)
  qga.sock    org.qemu.guest_agent.0 (Debian's qemu-ga, when qga=True)
  console.log the serial console
"""
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = os.path.join(REPO, "build", "vm")
MODULES = ["virtio_ring", "virtio", "virtio_pci_modern_dev",
           "virtio_pci_legacy_dev", "virtio_pci", "virtio_console",
           "virtio_mem"]


class VMError(Exception):
    pass


class AgentError(Exception):
    def __init__(self, cls, desc):
        super().__init__(f"{cls}: {desc}")
        self.cls = cls
        self.desc = desc


def _die_with_parent():
    """In the QEMU child: SIGKILL when the Python parent dies, so a
    crashed or interrupted test never leaves a guest spinning."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG


def default_kernel():
    """$VSHARE_GUEST_KERNEL, else Debian's newest linux-image-amd64
    unpacked into the cache (tests/tools/fetch-kernel.sh: never installed,
    the host's /boot untouched), else the newest /boot/vmlinuz-*. Any
    Debian kernel boots the tests: its version is not pinned."""
    if os.environ.get("VSHARE_GUEST_KERNEL"):
        return os.environ["VSHARE_GUEST_KERNEL"]
    global _fetched
    if _fetched is None:
        p = subprocess.run([os.path.join(HERE, "..", "tools",
                                         "fetch-kernel.sh")],
                           capture_output=True, text=True)
        _fetched = p.stdout.strip() if p.returncode == 0 else ""

    if _fetched:
        return _fetched

    def key(k):  # "6.1.0-9" < "6.1.0-41"
        return [int(x) if x.isdigit() else x
                for x in re.split(r"(\d+)", k)]
    ks = sorted((k for k in os.listdir("/boot")
                 if k.startswith("vmlinuz-")), key=key)
    if not ks:
        raise VMError("no guest kernel: tests/tools/fetch-kernel.sh failed "
                      "and there is no /boot/vmlinuz-*")
    return os.path.join("/boot", ks[-1])


_fetched = None


def modules_of(kernel):
    """The module tree of @kernel: beside it when it was unpacked from a
    package (ROOT/boot/vmlinuz-V -> ROOT/lib/modules/V), else the host's."""
    version = os.path.basename(kernel).replace("vmlinuz-", "")
    root = os.path.dirname(os.path.dirname(os.path.abspath(kernel)))
    beside = os.path.join(root, "lib", "modules", version)
    if os.path.basename(os.path.dirname(os.path.abspath(kernel))) == "boot" \
            and os.path.isdir(beside):
        return beside
    return f"/lib/modules/{version}"


# ---- initramfs ---------------------------------------------------------

class Cpio:
    """A newc cpio archive written directly (device nodes without mknod)."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1
        self.seen = set()

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        name = name.lstrip("/")
        if name in self.seen:
            return
        self.seen.add(name)
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1],
            len(name) + 1, 0))
        self.ino += 1
        self.buf.write(hdr.encode() + name.encode() + b"\0")
        self.buf.write(b"\0" * (-self.buf.tell() % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-self.buf.tell() % 4))

    def dir(self, name):
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            self._entry("/".join(parts[:i]), stat.S_IFDIR | 0o755)

    def file(self, name, data, mode=0o755):
        self.dir(os.path.dirname(name))
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self.dir(os.path.dirname(name))
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor):
        self.dir(os.path.dirname(name))
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def host_file(self, path, dest=None):
        """Copy a host file, following symlinks, keeping the name."""
        with open(path, "rb") as f:
            self.file(dest or path, f.read(), os.stat(path).st_mode & 0o777)

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def shared_libs(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True,
                         check=True).stdout
    libs = []
    for line in out.splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def add_binary(cpio, path, dest):
    cpio.host_file(path, dest)
    for lib in shared_libs(path):
        cpio.host_file(lib, lib)
        real = os.path.realpath(lib)
        if real != lib:
            cpio.host_file(real, real)


def build_initrd(kernel, agent, qga=True, extra=()):
    """Build (or reuse) the initramfs for @kernel with @agent; returns its
    path. Cached by the hash of everything that goes in. @extra: (host
    path, path in the guest) of more files, e.g. a benchmark binary."""
    version = os.path.basename(kernel).replace("vmlinuz-", "")
    moddir = os.path.join(modules_of(kernel), "kernel")
    inputs = [agent, shutil.which("busybox") or "/bin/busybox"]
    rootfs = os.path.join(HERE, "rootfs")
    rootfiles = sorted(os.path.join(d, f) for d, _, fs in os.walk(rootfs)
                       for f in fs)
    mods = []
    for m in MODULES:
        found = subprocess.run(["find", moddir, "-name", f"{m}.ko*"],
                               capture_output=True, text=True).stdout.split()
        mods += found[:1]
    qga_bin = "/usr/sbin/qemu-ga" if qga and os.path.exists(
        "/usr/sbin/qemu-ga") else None
    h = hashlib.sha256(version.encode())
    for p in inputs + rootfiles + mods + ([qga_bin] if qga_bin else []) + \
            [e[0] for e in extra]:
        with open(p, "rb") as f:
            h.update(p.encode() + f.read())
    for _, dest in extra:
        h.update(dest.encode())
    os.makedirs(CACHE, exist_ok=True)
    out = os.path.join(CACHE, f"initrd-{h.hexdigest()[:16]}.gz")
    if os.path.exists(out):
        return out
    c = Cpio()
    for d in ("dev", "proc", "sys", "run", "tmp", "bin", "sbin", "usr/sbin",
              "lib/modules", "sys/fs/cgroup"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3)
    c.host_file(inputs[1], "bin/busybox")
    c.symlink("init", "bin/busybox")
    c.symlink("sbin/init", "../bin/busybox")
    c.symlink("bin/sh", "busybox")
    for f in rootfiles:
        c.host_file(f, os.path.relpath(f, rootfs))
    for m in mods:
        data = open(m, "rb").read()
        if m.endswith(".xz"):
            data = subprocess.run(["xz", "-dc", m], capture_output=True,
                                  check=True).stdout
        elif m.endswith(".zst"):
            data = subprocess.run(["zstd", "-dc", m], capture_output=True,
                                  check=True).stdout
        name = os.path.basename(m).split(".ko")[0]
        c.file(f"lib/modules/{name}.ko", data, 0o644)
    add_binary(c, agent, "usr/sbin/vshare-agent")
    for src, dest in extra:
        c.host_file(src, dest.lstrip("/"))
    if qga_bin:
        add_binary(c, qga_bin, "usr/sbin/qemu-ga")
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(gzip.compress(c.finish(), compresslevel=1))
    os.rename(tmp, out)
    return out


# ---- clients -----------------------------------------------------------

def connect_unix(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise VMError(f"cannot connect to {path}")
            time.sleep(0.05)


class LineSock:
    def __init__(self, path):
        self.path = path
        self.sock = connect_unix(path)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def read_until(self, pred, timeout):
        """Read until pred(buf) returns an index (end of the wanted part)."""
        deadline = time.monotonic() + timeout
        while True:
            end = pred(self.buf)
            if end is not None:
                out, self.buf = self.buf[:end], self.buf[end:]
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.path}: no reply in {timeout}s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise VMError(f"{self.path}: connection closed")
            self.buf += chunk

    def readline(self, timeout):
        return self.read_until(
            lambda b: b.index(b"\n") + 1 if b"\n" in b else None, timeout)

    def close(self):
        self.sock.close()


class AgentClient:
    """A QGA-protocol client (works for vshare-agent and qemu-ga)."""

    def __init__(self, path):
        self.path = path
        self.ls = None
        self.next_id = int(time.time()) % 100000 * 1000

    def connect(self, timeout=30.0):
        if self.ls:
            self.ls.close()
        self.ls = LineSock(self.path)
        self.sync(timeout)

    def sync(self, timeout=30.0):
        """guest-sync-delimited: drop stale bytes up to our sentinel."""
        self.next_id += 1
        want = self.next_id
        req = {"execute": "guest-sync-delimited", "arguments": {"id": want}}
        deadline = time.monotonic() + timeout
        self.ls.send(b"\xff" + json.dumps(req).encode() + b"\n")
        while True:
            left = deadline - time.monotonic()
            self.ls.read_until(
                lambda b: b.index(b"\xff") + 1 if b"\xff" in b else None,
                max(left, 0.01))
            line = self.ls.readline(max(deadline - time.monotonic(), 0.01))
            try:
                if json.loads(line).get("return") == want:
                    return
            except ValueError:
                pass

    def call_raw(self, data, timeout=60.0):
        self.ls.send(data)
        return json.loads(self.ls.readline(timeout))

    def call(self, name, timeout=60.0, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        rep = self.call_raw(json.dumps(req).encode() + b"\n", timeout)
        if "error" in rep:
            raise AgentError(rep["error"]["class"], rep["error"]["desc"])
        return rep["return"]


class Shell:
    """Runs commands on the guest's second channel (a plain sh)."""

    def __init__(self, path):
        self.path = path
        self.ls = None
        self.n = 0

    def connect(self, timeout=30.0):
        self.ls = LineSock(self.path)
        self.run("true", timeout=timeout)

    def run(self, cmd, timeout=60.0, check=False):
        self.n += 1
        mark = f"__VSHARE_END_{self.n}__"
        self.ls.send(f"{cmd}\n__rc=$?; echo; echo {mark} $__rc\n".encode())
        pat = re.compile(rf"\n{mark} (\d+)\n".encode())

        def pred(b):
            m = pat.search(b)
            return m.end() if m else None
        out = self.ls.read_until(pred, timeout)
        m = pat.search(out)
        rc = int(m.group(1))
        text = out[:m.start()].decode(errors="replace")
        if check and rc != 0:
            raise VMError(f"guest command failed ({rc}): {cmd}\n{text}")
        return rc, text

    def out(self, cmd, timeout=60.0):
        return self.run(cmd, timeout, check=True)[1].strip()


class QMP:
    def __init__(self, path):
        self.ls = LineSock(path)
        self.events = []
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self, timeout=30.0):
        return json.loads(self.ls.readline(timeout))

    def cmd(self, name, timeout=30.0, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.ls.send(json.dumps(req).encode() + b"\n")
        while True:
            rep = self._read(timeout)
            if "event" in rep:
                self.events.append(rep)
                continue
            if "error" in rep:
                raise VMError(f"QMP {name}: {rep['error']['desc']}")
            return rep["return"]


# ---- the guest ---------------------------------------------------------

class Shape:
    """vNUMA shape: nodes x cpus_per_node, mem_mb of boot RAM per node, and
    a virtio-mem device per node of vmem_max_mb (vmem_mb plugged at boot)."""

    def __init__(self, nodes=2, cpus_per_node=2, mem_mb=512, vmem_max_mb=512,
                 vmem_mb=128):
        self.nodes = nodes
        self.cpus_per_node = cpus_per_node
        self.mem_mb = mem_mb
        self.vmem_max_mb = vmem_max_mb
        self.vmem_mb = vmem_mb

    @classmethod
    def parse(cls, text):
        """"2x2" or "2x2:512M" or "2x2:512M:vmem=512M/128M"."""
        m = re.fullmatch(r"(\d+)x(\d+)(?::(\d+)M)?(?::vmem=(\d+)M/(\d+)M)?",
                         text)
        if not m:
            raise VMError(f"bad shape {text!r} (e.g. 2x2:512M:vmem=512M/128M)")
        s = cls(int(m.group(1)), int(m.group(2)))
        if m.group(3):
            s.mem_mb = int(m.group(3))
        if m.group(4):
            s.vmem_max_mb, s.vmem_mb = int(m.group(4)), int(m.group(5))
        return s

    @property
    def cpus(self):
        return self.nodes * self.cpus_per_node

    def __str__(self):
        return (f"{self.nodes}x{self.cpus_per_node}:{self.mem_mb}M:"
                f"vmem={self.vmem_max_mb}M/{self.vmem_mb}M")


class Guest:
    def __init__(self, shape=None, cgroup="v2", kernel=None, agent=None,
                 workdir=None, qga=False, agent_args=(), start_agent=True,
                 extra_append="", connect_agent=True, hotplug_cpus=0,
                 extra_files=()):
        self.shape = shape or Shape()
        self.cgroup = cgroup
        self.kernel = kernel or os.environ.get("VSHARE_KERNEL") or \
            default_kernel()
        self.agent_bin = agent or os.path.join(REPO, "build", "rel",
                                               "vshare-agent")
        self.workdir = workdir or tempfile.mkdtemp(prefix="vshare-vm-")
        self.qga = qga
        self.agent_args = list(agent_args)
        self.start_agent = start_agent
        self.extra_append = extra_append
        # False: leave agent.sock to another client (vsharectl); the
        # harness then only waits for the agent through the shell.
        self.connect_agent = connect_agent
        # vCPUs left out at boot (the highest ones), for device_add.
        self.hotplug_cpus = hotplug_cpus
        self.extra_files = list(extra_files)
        self.proc = None
        self.qmp = self.agent = self.shell = self.qga_client = None
        self.boot_seconds = None

    def path(self, name):
        return os.path.join(self.workdir, name)

    def qemu_argv(self, initrd):
        s = self.shape
        total = s.nodes * s.mem_mb
        maxmem = total + s.nodes * s.vmem_max_mb
        argv = ["qemu-system-x86_64", "-accel", "tcg,thread=multi",
                "-cpu", "max",
                "-m", f"{total}M,slots=2,maxmem={maxmem}M" if s.vmem_max_mb
                else f"{total}M",
                "-smp", f"{s.cpus - self.hotplug_cpus},maxcpus={s.cpus},"
                        f"sockets={s.nodes},cores={s.cpus_per_node},"
                        "threads=1",
                "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
                "-serial", f"file:{self.path('console.log')}",
                "-qmp", f"unix:{self.path('qmp.sock')},server=on,wait=off",
                # a second monitor for vsharectl (a QMP socket takes one
                # client at a time)
                "-qmp", f"unix:{self.path('qmp-shim.sock')},server=on,"
                        "wait=off",
                "-device", "virtio-serial-pci,id=vser0"]
        for n in range(s.nodes):
            first = n * s.cpus_per_node
            argv += ["-object", f"memory-backend-ram,id=m{n},size={s.mem_mb}M",
                     "-numa", f"node,nodeid={n},cpus={first}-"
                              f"{first + s.cpus_per_node - 1},memdev=m{n}"]
            if s.vmem_max_mb:
                argv += ["-object", f"memory-backend-ram,id=vmem{n},"
                                    f"size={s.vmem_max_mb}M",
                         "-device", f"virtio-mem-pci,id=vm{n},memdev=vmem{n},"
                                    f"node={n},requested-size={s.vmem_mb}M"]
        ports = [("ag", "agent.sock", "org.vshare.agent.0"),
                 ("sh", "shell.sock", "org.vshare.shell.0")]
        if self.qga:
            ports.append(("qga", "qga.sock", "org.qemu.guest_agent.0"))
        for cid, sock, name in ports:
            argv += ["-chardev", f"socket,id={cid},path={self.path(sock)},"
                                 "server=on,wait=off",
                     "-device", f"virtserialport,chardev={cid},name={name}"]
        append = ["console=ttyS0", "panic=-1", "quiet",
                  "memhp_default_state=online_movable",
                  f"vshare.cgroup={self.cgroup}"]
        if self.qga:
            append.append("vshare.qga=1")
        if not self.start_agent:
            append.append("vshare.agent=0")
        if self.agent_args:
            append.append("vshare.agentargs=" + ",".join(self.agent_args))
        if self.extra_append:
            append.append(self.extra_append)
        argv += ["-kernel", self.kernel, "-initrd", initrd,
                 "-append", " ".join(append)]
        return argv

    def start(self, timeout=120.0):
        initrd = build_initrd(self.kernel, self.agent_bin, qga=self.qga,
                              extra=self.extra_files)
        os.makedirs(self.workdir, exist_ok=True)
        t0 = time.monotonic()
        argv = self.qemu_argv(initrd)
        with open(self.path("qemu.cmdline"), "w") as f:
            f.write(" ".join(argv) + "\n")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=open(self.path("qemu.log"), "w"),
                                     stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        try:
            self.qmp = QMP(self.path("qmp.sock"))
            self.shell = Shell(self.path("shell.sock"))
            self.shell.connect(timeout)
            if self.start_agent and self.connect_agent:
                self.agent = AgentClient(self.path("agent.sock"))
                self.agent.connect(timeout)
            elif self.start_agent:
                self.wait_agent(timeout)
            if self.qga:
                self.qga_client = AgentClient(self.path("qga.sock"))
                self.qga_client.connect(timeout)
        except Exception as e:
            self.stop()
            log = ""
            try:
                with open(self.path("qemu.log"), errors="replace") as f:
                    log = f.read()[-2000:]
            except OSError:
                pass
            if log.strip():
                raise VMError(f"{e}; QEMU said: {log.strip()}") from e
            raise
        self.boot_seconds = time.monotonic() - t0
        return self

    def wait_agent(self, timeout=60.0):
        """Wait until the agent has opened its port (seen from the
        shell), without connecting to agent.sock."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc, _ = self.shell.run("pidof vshare-agent >/dev/null && "
                                   "ls -l /proc/$(pidof vshare-agent)/fd"
                                   " | grep -q vport")
            if rc == 0:
                return
            time.sleep(0.2)
        raise VMError("vshare-agent did not open its port")

    def console(self):
        try:
            with open(self.path("console.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if not self.proc:
            return
        try:
            if self.qmp:
                self.qmp.cmd("quit", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    # `with guest:` waits this long for the shell channel
    boot_timeout = 120.0

    def __enter__(self):
        return self.start(self.boot_timeout)

    def __exit__(self, *exc):
        self.stop()


def parse_list(text):
    """A kernel CPU/node list ("0-2,5") as a set."""
    out = set()
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.update(range(int(a), int(b) + 1))
        elif part:
            out.add(int(part))
    return out


# ---- TAP ---------------------------------------------------------------

class Tap:
    """Minimal TAP producer for prove."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        print(f"{'ok' if cond else 'not ok'} {self.n} - {name}", flush=True)
        if not cond:
            self.failed += 1
            if diag:
                self.diag(diag)
        return cond

    def eq(self, got, want, name):
        return self.ok(got == want, name, f"got {got!r}, want {want!r}")

    def diag(self, text):
        for line in str(text).splitlines():
            print(f"# {line}", flush=True)

    def skip(self, name, why):
        """A check that cannot run here: counted, said as a skip."""
        self.n += 1
        print(f"ok {self.n} - {name} # SKIP {why}", flush=True)

    @contextlib.contextmanager
    def section(self, name, diag=None):
        """Checks that belong together. An exception inside (a guest
        command that times out, a connection lost) becomes one `not ok`
        naming the section and the exception, with @diag() (e.g. the
        guest's console or the agent's log) as diagnostics; the file then
        goes on and ends with its plan, so prove counts a failure, not a
        crash."""
        try:
            yield
        except Exception as e:
            extra = ""
            if diag:
                try:
                    extra = "\n" + str(diag())
                except Exception as d:  # the guest may be gone
                    extra = f"\n(no diagnostics: {d!r})"
            self.ok(False, f"{name}: ran to its end ({type(e).__name__}: "
                    f"{str(e)[:200]})", traceback.format_exc() + extra)

    def skip_all(self, why):
        print(f"1..0 # SKIP {why}", flush=True)
        raise SystemExit(0)

    def done(self):
        print(f"1..{self.n}", flush=True)
        raise SystemExit(1 if self.failed else 0)
