#!/usr/bin/env python3
"""tests/libvirt: a private libvirtd and 2-node TCG domains running the agent.

    lv = Libvirt()                  # state under build/libvirt/ (flocked)
    lv.start()                      # virtlogd + libvirtd, waits for the socket
    a = lv.domain("a")              # define + start + shell/agent ready
    a.shell.out("cat /proc/cmdline")
    a.agent_path                    # org.vshare.agent.0, from the live XML
    lv.vcpupin("a")                 # {vcpu: "cpu list"} as virsh says
    a.destroy()
    lv.stop()                       # destroys leftovers, stops daemons by pid

A private instance: this machine has no systemd, and another engineer may
run a libvirtd of their own. A root libvirtd takes its qemu.conf, run, state,
cache and log directories from compiled-in paths (/etc/libvirt,
/run/libvirt, /var/{lib,cache,log}/libvirt; only libvirtd.conf, via
--config, and its pid file, via --pid-file, can be moved), and virtlogd's
socket is fixed too. So both daemons run in one private mount namespace
(unshare -m) where those five directories are bind mounts of
ROOT/{etc,run,lib,cache,log}. Clients stay outside: the URI names the
socket (qemu:///system?socket=ROOT/run/libvirt-sock), QEMU's pid files are
ROOT/run/qemu/NAME.pid, and the channel sockets live in ROOT/dom/NAME/,
which is the same path inside and out. What is shared with the host:
cgroups (libvirt's machine/qemu-ID-NAME.libvirt-qemu; domain names carry a
per-run prefix so two instances never meet there), empty mount points
created once under /run and /var, and the libvirt-qemu user and group
(created when missing, as libvirt's packages would).

Started in the foreground (no -d), so their pids are known without pid
files; both get PR_SET_PDEATHSIG(SIGTERM): a crashed test leaves no daemon.
QEMU survives libvirtd by design: stop() destroys every domain through
libvirtd first (so libvirt removes their cgroups), and the first start()
does the same for what a crashed run left, falling back to the pid files
(QEMU's, libvirtd's, virtlogd's; each checked against /proc/PID/cmdline).

CLI: libvirtlib.py selftest | boot | stop
"""
import ctypes
import fcntl
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "vm"))
from vshare_vm import (REPO, AgentClient, Shape, Shell, VMError,  # noqa: E402
                       build_initrd, default_kernel)

AGENT_PORT = "org.vshare.agent.0"
SHELL_PORT = "org.vshare.shell.0"
# As tests/shim: 2 nodes x 1 vCPU, 256 MiB per node, virtio-mem 512M/128M.
SHAPE = "2x1:256M:vmem=512M/128M"
# /etc/libvirt etc. inside the namespace <- ROOT/<key> outside.
BINDS = {"etc": "/etc/libvirt", "run": "/run/libvirt",
         "lib": "/var/lib/libvirt", "cache": "/var/cache/libvirt",
         "log": "/var/log/libvirt"}
QEMU_CONF = """# tests/libvirt: root QEMU, no relabelling (no systemd, no
# SELinux/AppArmor here); LIBVIRT-FACTS.md
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
"""
LIBVIRTD_CONF = """# tests/libvirt: root-only unix sockets without polkit
auth_unix_ro = "none"
auth_unix_rw = "none"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""


class LibvirtError(Exception):
    pass


def _pdeathsig():
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _kill_wait(pid, sig=signal.SIGTERM, timeout=15.0):
    """Signal @pid and wait for it to go (pidfd: no sleeping loop)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        os.kill(pid, sig)
        if not select.select([fd], [], [], timeout)[0]:
            os.kill(pid, signal.SIGKILL)
            select.select([fd], [], [], 5.0)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)


def ensure_accounts():
    """Groups kvm and libvirt-qemu and the user libvirt-qemu, which
    libvirt's qemu driver looks up at start even with user = root."""
    def exists(db, name):
        return subprocess.run(["getent", db, name],
                              capture_output=True).returncode == 0
    for g in ("kvm", "libvirt-qemu"):
        if not exists("group", g):
            subprocess.run(["groupadd", "--system", g], check=True)
    if not exists("passwd", "libvirt-qemu"):
        subprocess.run(["useradd", "--system", "--gid", "libvirt-qemu",
                        "--groups", "kvm", "--home-dir", "/var/lib/libvirt",
                        "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "libvirt-qemu"], check=True)


class Libvirt:
    def __init__(self, root=None, prefix=None, host_uuid=None, cgroups=True,
                 hook=None):
        """@host_uuid: libvirtd.conf's (two instances migrating between
        them need distinct ones); @cgroups False: qemu.conf's
        cgroup_controllers = [] (a second instance on this host would
        name its domains' cgroups as the first does); @hook: the text of
        /etc/libvirt/hooks/qemu.d/vshare inside the namespace."""
        self.host_uuid = host_uuid
        self.cgroups = cgroups
        self.hook = hook
        self.root = os.path.abspath(
            root or os.environ.get("VSHARE_LIBVIRT_ROOT") or
            os.path.join(REPO, "build", "libvirt"))
        # Domain names are prefixed: libvirt's cgroup and machine names
        # (qemu-ID-NAME) are host-wide, the instance is not.
        self.prefix = prefix if prefix is not None else f"vs{os.getpid()}-"
        self.sock = self.path("run", "libvirt-sock")
        self.uri = f"qemu:///system?socket={self.sock}"
        self.virtlogd = self.libvirtd = None
        self.lock_fd = None
        self.domains = {}

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    # ---- daemons ----------------------------------------------------------

    def _lock(self):
        os.makedirs(self.root, exist_ok=True)
        self.lock_fd = os.open(self.path("lock"), os.O_RDWR | os.O_CREAT,
                               0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LibvirtError(f"{self.root} is in use by another test")

    def _prepare(self):
        for d in list(BINDS) + ["dom"]:
            os.makedirs(self.path(d), mode=0o700, exist_ok=True)
        for target in BINDS.values():
            os.makedirs(target, exist_ok=True)  # mount points, host-wide
        with open(self.path("etc", "qemu.conf"), "w") as f:
            f.write(QEMU_CONF)
            if not self.cgroups:
                f.write("cgroup_controllers = [ ]\n")
        with open(self.path("libvirtd.conf"), "w") as f:
            f.write(LIBVIRTD_CONF)
            if self.host_uuid:
                f.write(f'host_uuid = "{self.host_uuid}"\n')
        hooks = self.path("etc", "hooks", "qemu.d")
        if self.hook:  # read by libvirtd at its start
            os.makedirs(hooks, exist_ok=True)
            with open(os.path.join(hooks, "vshare"), "w") as f:
                f.write(self.hook)
            os.chmod(os.path.join(hooks, "vshare"), 0o755)
        elif os.path.exists(os.path.join(hooks, "vshare")):
            os.unlink(os.path.join(hooks, "vshare"))

    def _ns_script(self):
        binds = " && ".join(f"mount --bind {self.path(k)} {v}"
                            for k, v in BINDS.items())
        return (f"{binds} && exec virtlogd "
                f"--pid-file {self.path('run', 'virtlogd.pid')}")

    def start(self, timeout=60.0):
        """virtlogd, then libvirtd in its mount namespace; returns when
        libvirtd answers on its socket. Idempotent."""
        if self.libvirtd and self.libvirtd.poll() is None:
            return self
        if self.lock_fd is None:
            self._lock()
            self._teardown()  # what a crashed run left
        ensure_accounts()
        self._prepare()
        if not self.virtlogd or self.virtlogd.poll() is not None:
            self.virtlogd = self._spawn(
                ["unshare", "--mount", "--propagation", "private", "--",
                 "sh", "-c", self._ns_script()], "virtlogd.out")
            self._wait_socket(self.path("run", "virtlogd-sock"),
                              self.virtlogd, timeout)
        self.libvirtd = self._spawn(
            ["nsenter", f"--target={self.virtlogd.pid}", "--mount", "--",
             "libvirtd", "--config", self.path("libvirtd.conf"),
             "--pid-file", self.path("run", "libvirtd.pid")],
            "libvirtd.out")
        self._wait_socket(self.sock, self.libvirtd, timeout)
        # Connected is not ready: the daemon accepts clients only once its
        # drivers are up; virsh blocks until then.
        self.virsh("uri", timeout=timeout)
        return self

    def _spawn(self, argv, log):
        out = open(self.path("log", log), "ab")
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT,
                                preexec_fn=_pdeathsig)

    def _wait_socket(self, path, proc, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise LibvirtError(f"{proc.args[0]} exited "
                                   f"{proc.returncode}: {self.log_tail()}")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise LibvirtError(f"no socket {path} after {timeout}s")
            finally:
                s.close()
            time.sleep(0.05)

    def log_tail(self, n=2000):
        text = ""
        for name in ("virtlogd.out", "libvirtd.out", "libvirtd.log"):
            try:
                with open(self.path("log", name), errors="replace") as f:
                    text += f"[{name}] " + f.read()[-n:]
            except OSError:
                pass
        return text

    def answers(self, timeout=10.0):
        """A libvirtd (ours, or one restarted by hand) serves the socket."""
        try:
            return subprocess.run(["virsh", "-c", self.uri, "uri"],
                                  capture_output=True,
                                  timeout=timeout).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _pid_of(self, name, want):
        try:
            with open(self.path("run", f"{name}.pid")) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        argv0 = (_cmdline(pid) or [b""])[0]
        return pid if want in argv0 and _alive(pid) else None

    def stop_libvirtd(self, sig=signal.SIGTERM):
        """Stop libvirtd alone (domains keep running), by pid: ours, or
        the one its pid file names."""
        if self.libvirtd:
            _kill_wait(self.libvirtd.pid, sig)
            self.libvirtd.wait()
            self.libvirtd = None
        pid = self._pid_of("libvirtd", b"libvirtd")
        if pid:
            _kill_wait(pid, sig)

    def _teardown(self):
        """Destroy every domain of this instance (while libvirtd can still
        clean up after them: cgroups, sockets), stop libvirtd, then
        virtlogd, by pid: ours, else the pid files' (checked)."""
        if os.path.exists(self.sock) and self.answers():
            for name in self.virsh("list", "--all", "--name").split():
                self.virsh("destroy", name, check=False)
                self.virsh("undefine", name, check=False)
        self.domains.clear()
        self.stop_libvirtd()
        if self.virtlogd:
            _kill_wait(self.virtlogd.pid)
            self.virtlogd.wait()
            self.virtlogd = None
        self.cleanup_leftovers()

    def stop(self):
        if self.lock_fd is None:
            return
        self._teardown()
        os.close(self.lock_fd)
        self.lock_fd = None

    def cleanup_leftovers(self):
        """QEMUs and daemons an earlier (crashed) run left, by pid file;
        only processes whose command line is what the file claims."""
        qdir = self.path("run", "qemu")
        files = [(os.path.join(qdir, f), b"qemu-system")
                 for f in (os.listdir(qdir) if os.path.isdir(qdir) else [])
                 if f.endswith(".pid")]
        files += [(self.path("run", "libvirtd.pid"), b"libvirtd"),
                  (self.path("run", "virtlogd.pid"), b"virtlogd")]
        for pidfile, want in files:  # QEMUs first: no libvirtd to ask
            try:
                pid = int(open(pidfile).read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            argv0 = (_cmdline(pid) or [b""])[0]
            if want in argv0 and _alive(pid):
                _kill_wait(pid)

    # ---- virsh -----------------------------------------------------------

    def virsh(self, *args, check=True, timeout=120.0):
        p = subprocess.run(["virsh", "-q", "-c", self.uri, *args],
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode:
            raise LibvirtError(f"virsh {' '.join(args)}: {p.stderr.strip()}")
        return p.stdout

    def vcpupin(self, name, vcpu=None, cpulist=None):
        """virsh vcpupin (--live): set when @cpulist is given; returns
        {vcpu: "cpu list"} as virsh reports it."""
        args = ["vcpupin", name, "--live"]
        if vcpu is not None:
            args.append(str(vcpu))
            if cpulist is not None:
                args.append(str(cpulist))
        out = self.virsh(*args)
        pins = {}
        for line in out.splitlines():
            m = re.match(r"\s*(\d+)\s+(\S+)\s*$", line)
            if m:
                pins[int(m.group(1))] = m.group(2)
        return pins

    def dumpxml(self, name, inactive=False):
        return self.virsh("dumpxml", name,
                          *(["--inactive"] if inactive else []))

    def domain(self, name, shape=SHAPE, **kw):
        d = Domain(self, name, Shape.parse(shape), **kw)
        self.domains[d.name] = d
        d.start()
        return d

    def pidfile(self, name):
        """Where this instance's libvirt writes QEMU's pid (for a driver
        opened from outside the namespace)."""
        return self.path("run", "qemu", f"{name}.pid")


def vmem_of(xml_text):
    """{node: {alias, size, requested, current, block}} in bytes, of the
    virtio-mem devices of a domain XML."""
    units = {"b": 1, "bytes": 1, "k": 1024, "KiB": 1024, "M": 1 << 20,
             "MiB": 1 << 20, "G": 1 << 30, "GiB": 1 << 30}
    out = {}
    for m in ET.fromstring(xml_text).findall(
            "./devices/memory[@model='virtio-mem']"):
        t = m.find("target")
        d = {k: int(e.text) * units[e.get("unit", "KiB")]
             for k in ("size", "requested", "current", "block")
             if (e := t.find(k)) is not None}
        a = m.find("alias")
        d["alias"] = a.get("name") if a is not None else None
        out[int(t.find("node").text)] = d
    return out


def channel_path(xml_text, port=AGENT_PORT):
    for c in ET.fromstring(xml_text).findall("./devices/channel[@type='unix']"):
        t = c.find("target")
        if t is not None and t.get("name") == port:
            return c.find("source").get("path")
    return None


class Domain:
    """A 2-node TCG domain booting the harness initramfs (vshare-agent on
    org.vshare.agent.0, a root shell on org.vshare.shell.0), direct kernel
    boot, a virtio-mem device per node."""

    def __init__(self, lv, name, shape, kernel=None, agent=None,
                 cgroup="v2", connect_agent=False, vcpus_current=None,
                 hotpluggable=(), qga_port=False, agent_args=(),
                 start_agent=True):
        self.lv = lv
        self.short = name
        self.name = lv.prefix + name
        self.shape = shape
        self.kernel = kernel or os.environ.get("VSHARE_KERNEL") or \
            default_kernel()
        self.agent_bin = agent or os.path.join(REPO, "build", "rel",
                                               "vshare-agent")
        self.cgroup = cgroup
        self.connect_agent = connect_agent
        # CPU hotplug (tests/bench/bench-libvirt.py): vCPUs present at
        # boot (<vcpu current=>) and those libvirt may plug or unplug
        # (<vcpus><vcpu hotpluggable='yes'>); vCPU 0 never is.
        self.vcpus_current = vcpus_current
        self.hotpluggable = set(hotpluggable)
        # qemu-ga's port org.qemu.guest_agent.0, which libvirt itself
        # opens (virsh guestvcpus, setvcpus --guest); the initramfs then
        # carries Debian's qemu-ga too (started by hand: the port has one
        # agent at a time). @agent_args: extra vshare-agent arguments
        # (e.g. --port org.qemu.guest_agent.0 --guest-vcpus).
        self.qga_port = qga_port
        self.agent_args = list(agent_args)
        self.start_agent = start_agent
        self.dir = lv.path("dom", self.name)
        self.shell = self.agent = None

    def path(self, name):
        return os.path.join(self.dir, name)

    @property
    def agent_path(self):
        return self.path("agent.sock")

    @property
    def pidfile(self):
        return self.lv.pidfile(self.name)

    def xml(self, initrd):
        s = self.shape
        vmem = s.nodes * s.vmem_max_mb
        cells = "".join(
            f"<cell id='{n}' cpus='{n * s.cpus_per_node}-"
            f"{(n + 1) * s.cpus_per_node - 1}' memory='{s.mem_mb}' "
            "unit='MiB'/>" for n in range(s.nodes))
        mems = "".join(
            "<memory model='virtio-mem'><target>"
            f"<size unit='MiB'>{s.vmem_max_mb}</size><node>{n}</node>"
            "<block unit='KiB'>2048</block>"
            f"<requested unit='MiB'>{s.vmem_mb}</requested>"
            "</target></memory>" for n in range(s.nodes) if vmem)
        chans = "".join(
            f"<channel type='unix'><source mode='bind' path='{self.path(f)}'"
            f"/><target type='virtio' name='{port}'/></channel>"
            for f, port in (("agent.sock", AGENT_PORT),
                            ("shell.sock", SHELL_PORT)))
        if self.qga_port:
            chans += ("<channel type='unix'><target type='virtio' "
                      "name='org.qemu.guest_agent.0'/></channel>")
        append = ("console=ttyS0 panic=-1 quiet "
                  "memhp_default_state=online_movable "
                  f"vshare.cgroup={self.cgroup}")
        if self.agent_args:
            append += " vshare.agentargs=" + ",".join(self.agent_args)
        if not self.start_agent:
            append += " vshare.agent=0"
        maxmem = (f"<maxMemory slots='{s.nodes}' unit='MiB'>"
                  f"{s.nodes * s.mem_mb + vmem}</maxMemory>" if vmem else "")
        cur = self.vcpus_current if self.vcpus_current is not None \
            else s.cpus
        current = f" current='{cur}'" if cur != s.cpus else ""
        vcpus = ""
        if self.hotpluggable or cur != s.cpus:
            vcpus = "<vcpus>" + "".join(
                f"<vcpu id='{i}' enabled='{'yes' if i < cur else 'no'}' "
                f"hotpluggable='{'yes' if i in self.hotpluggable else 'no'}'"
                + (f" order='{i + 1}'" if i < cur else "") + "/>"
                for i in range(s.cpus)) + "</vcpus>"
        return f"""<domain type='qemu'>
  <name>{self.name}</name>
  {maxmem}
  <memory unit='MiB'>{s.nodes * s.mem_mb}</memory>
  <vcpu placement='static'{current}>{s.cpus}</vcpu>
  {vcpus}
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>{self.kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{append}</cmdline>
  </os>
  <cpu mode='maximum' migratable='off'>
    <topology sockets='{s.nodes}' dies='1' cores='{s.cpus_per_node}'
              threads='1'/>
    <numa>{cells}</numa>
  </cpu>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='{self.path("console.log")}'/>
      <target port='0'/></serial>
    <controller type='virtio-serial' index='0'/>
    {chans}
    {mems}
    <memballoon model='none'/>
  </devices>
</domain>
"""

    def start(self, timeout=120.0):
        """Define, start, and wait for the guest's shell and agent."""
        initrd = build_initrd(self.kernel, self.agent_bin,
                              qga=self.qga_port)
        os.makedirs(self.dir, exist_ok=True)
        with open(self.path("domain.xml"), "w") as f:
            f.write(self.xml(initrd))
        self.lv.virsh("define", self.path("domain.xml"))
        return self.boot(timeout)

    def boot(self, timeout=120.0):
        """virsh start of the defined domain (again, after stop()); waits
        for the guest's shell and agent."""
        for f in ("agent.sock", "shell.sock"):
            if os.path.exists(self.path(f)):
                os.unlink(self.path(f))
        t0 = time.monotonic()
        self.lv.virsh("start", self.name)
        try:
            self.shell = Shell(self.path("shell.sock"))
            self.shell.connect(timeout)
            if self.start_agent:
                self.wait_agent(timeout)
            if self.connect_agent:
                self.agent = AgentClient(self.agent_path)
                self.agent.connect(timeout)
        except Exception as e:
            raise VMError(f"{self.name}: {e}; console: "
                          f"{self.console()[-1500:]}") from e
        self.boot_seconds = time.monotonic() - t0
        return self

    def wait_agent(self, timeout):
        """The agent has opened its port, seen from the shell (the agent
        socket is left to the caller's client)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc, _ = self.shell.run("ls -l /proc/$(pidof vshare-agent)/fd "
                                   "2>/dev/null | grep -q vport")
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

    def dumpxml(self):
        return self.lv.dumpxml(self.name)

    def vcpupin(self, vcpu=None, cpulist=None):
        return self.lv.vcpupin(self.name, vcpu, cpulist)

    def vmem(self):
        return vmem_of(self.dumpxml())

    def qemu_pid(self):
        with open(self.pidfile) as f:
            return int(f.read().split()[0])

    def stop(self, check=False):
        """virsh destroy (the definition stays: boot() starts it again)."""
        for c in (self.shell, self.agent):
            if c and c.ls:
                c.ls.close()
        self.shell = self.agent = None
        return self.lv.virsh("destroy", self.name, check=check)

    def destroy(self):
        self.stop()
        self.lv.virsh("undefine", self.name, check=False)
        self.lv.domains.pop(self.name, None)


# ---- CLI ------------------------------------------------------------------

def selftest():
    """One pair: a command in each guest over the shell channel, a
    guest-sync over the agent socket read from the live XML."""
    lv = Libvirt()
    try:
        lv.start()
        print(f"libvirtd up: {lv.uri}")
        doms = [lv.domain(n) for n in ("a", "b")]
        for d in doms:
            xml = d.dumpxml()
            ag = channel_path(xml)
            print(f"{d.name}: booted in {d.boot_seconds:.1f} s, "
                  f"qemu pid {d.qemu_pid()}, agent {ag}")
            print(f"  shell: {d.shell.out('grep -c ^processor /proc/cpuinfo; ls /sys/devices/system/node | grep node')!r}")
            c = AgentClient(ag)
            c.connect(30)
            print(f"  agent: guest-sync ok, topology nodes "
                  f"{[n['id'] for n in c.call('vshare-get-topology')['nodes']]}")
            c.ls.close()
            print(f"  vcpupin: {d.vcpupin()}  vmem: {d.vmem()}")
    finally:
        lv.stop()
    print("stopped")


def boot():
    """A pair, left running until Ctrl-C (for drvtest and manual work)."""
    lv = Libvirt(prefix="boot-")
    lv.start()
    try:
        for n in ("a", "b"):
            d = lv.domain(n)
            d.shell.ls.close()
            print(f"{d.name}: agent {d.agent_path} shell {d.path('shell.sock')}"
                  f" pidfile {d.pidfile}")
        print(f"URI {lv.uri}\nCtrl-C stops", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK,
                               [signal.SIGINT, signal.SIGTERM])
        signal.sigwait([signal.SIGINT, signal.SIGTERM])
    finally:
        lv.stop()


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else "selftest"
    if cmd == "selftest":
        selftest()
    elif cmd == "boot":
        boot()
    elif cmd == "stop":
        lv = Libvirt()
        lv._lock()
        lv.stop()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
