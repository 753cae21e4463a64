#!/usr/bin/env python3
"""vshare-host as an operator installs it, under a real systemd as PID 1.
TAP on stdout.

    tests/install/install.py      # builds the .debs with packaging/deb

A Debian 12 root file system (mmdebstrap --variant=minbase, the mirror
from this machine's apt configuration; cached in $VSHARE_CACHE/install by
its package list) is booted with systemd-nspawn (--register=no
--keep-unit: PID 1 of this machine is not systemd; the container shares
the host's network, so node_exporter listens on 127.0.0.1 at a free
port). Everything inside runs through nsenter into the container, as an
operator's shell would:

  1. systemd is running; prometheus-node-exporter (Debian's) is active
  2. `apt-get install ./vshare-host_*.deb`: the package's postinst
     enables and starts vshared; it is active under the shipped unit
     (the unit file byte-identical to host-shim/daemon/vshared.service,
     no drop-in), reached READY, never restarted
  3. libvirtd (Debian's libvirt-daemon-system, started with systemctl)
     runs a TCG guest defined from examples/vshare-domain.xml (its shape
     and its agent channel with no path kept; the disk swapped for the
     harness's kernel and initramfs with the agent, TCG, sizes shrunk:
     domain_xml()); vshared follows it with no registration, `vsharectl
     host-check` finds it fits, the agent confines the guest for a
     `vsharectl cpus` through vshared, the metrics label it by domain
  4. vsharectl talks to it over its socket; two fake VMs (the QMP and
     agent peers of tests/hostile, run inside the container) registered
     with vsharectl add, a lend through vshared: the ledger, the fake
     guest's allocation, the vCPU threads' affinity, the metrics, the
     audit line (fakes: their vCPU threads are the test's to read, and
     a second TCG guest would double the time)
  5. the metrics file is in node_exporter's textfile directory, 0644;
     a scrape of node_exporter returns vshare's families with no textfile
     error; promtool (Debian's prometheus package, unpacked) checks the
     file clean
  6. systemctl restart: a new process, READY again, the ledger kept, the
     libvirt guest's agent reachable again (its socket is libvirt's, not
     in vshared's runtime directory)
  7. an upgrade (the same package at a higher version, apt) restarts it
  8. apt-get remove stops it; its state directory stays
"""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
REPO = os.path.dirname(TESTS)
sys.path.insert(0, os.path.join(TESTS, "vm"))
from vshare_vm import Tap, build_initrd, default_kernel, parse_list  # noqa: E402,E501

CACHE = os.path.join(os.environ.get("VSHARE_CACHE", "/var/cache/vshare"),
                     "install")
# mmdebstrap takes this machine's apt sources as its mirror
SOURCES = next((f for f in ("/etc/apt/sources.list.d/debian.sources",
                            "/etc/apt/sources.list")
                if os.path.exists(f)), None)
# python3: the fake QEMU/agent peers of tests/hostile run inside
BASE = ["systemd", "systemd-sysv", "dbus", "apt", "prometheus-node-exporter",
        "python3", "libvirt-daemon-system", "qemu-system-x86"]
DOMAIN = "vshare-guest"  # examples/vshare-domain.xml's name
# libvirt in a container: no security module, no mount namespace, only
# the cpu hierarchy writable (main() remounts it; libvirt's per-vCPU
# cgroups there are how vshare finds vCPU threads). None of it is a
# setting vshare needs on a real host.
QEMU_CONF = """
# tests/install: a container
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ "cpu" ]
"""
sys.path.insert(0, os.path.join(TESTS, "shim"))
from shimlib import HOST_CONF, wait_for  # noqa: E402
PEERS = os.path.join(TESTS, "hostile", "peers.py")
# the container shares this host's cgroup hierarchies: the fake VMs get
# names of this run's own; main() removes their cgroups at the end
NAMES = (f"in{os.getpid()}a", f"in{os.getpid()}b")


def sh(argv, timeout=600, **kw):
    return subprocess.run(argv, capture_output=True, text=True,
                          timeout=timeout, **kw)


def build_debs(version=None):
    """packaging/deb/build.sh host; the path of the .deb."""
    env = dict(os.environ)
    if version:
        env["VSHARE_DEB_VERSION"] = version
    p = sh([os.path.join(REPO, "packaging", "deb", "build.sh"), "host"],
           env=env)
    if p.returncode != 0:
        raise RuntimeError(f"build.sh host: {p.stderr[-2000:]}")
    return p.stdout.split()[-1]


def depends_of(deb):
    """The package names of a .deb's Depends (alternatives: the first)."""
    text = sh(["dpkg-deb", "-f", deb, "Depends"]).stdout
    return sorted({re.split(r"[ (]", d.split("|")[0].strip())[0]
                   for d in text.split(",") if d.strip()})


def rootfs_tar(pkgs):
    """A minbase rootfs with @pkgs as a tarball, built once per list."""
    key = hashlib.sha256(("bookworm " + " ".join(sorted(pkgs)))
                         .encode()).hexdigest()[:12]
    tar = os.path.join(CACHE, f"rootfs-{key}.tar")
    if os.path.exists(tar):
        return tar, 0.0
    os.makedirs(CACHE, exist_ok=True)
    t0 = time.monotonic()
    part = tar[:-len(".tar")] + ".part.tar"  # mmdebstrap: format by suffix
    p = sh(["mmdebstrap", "--variant=minbase", "--include=" +
            ",".join(sorted(pkgs)), "bookworm", part, SOURCES], timeout=1200)
    if p.returncode != 0:
        raise RuntimeError(f"mmdebstrap: {p.stderr[-3000:]}")
    os.rename(part, tar)
    return tar, time.monotonic() - t0


def domain_xml(kernel, initrd):
    """examples/vshare-domain.xml for a TCG guest in the container: type
    qemu, 2 vCPUs (one per declared node), 256 MiB + a 512 MiB virtio-mem
    device per node (128 MiB plugged), direct kernel boot of the
    harness's initramfs (its agent) instead of the disk, the serial
    console to a file. Kept as written: the name, the cells' layout, the
    virtio-serial controller and the agent channel with no path."""
    with open(os.path.join(REPO, "examples", "vshare-domain.xml")) as f:
        root = ET.fromstring(f.read())
    root.set("type", "qemu")
    mx = root.find("maxMemory")
    mx.set("unit", "MiB")
    mx.text = "1536"
    mem = root.find("memory")
    mem.set("unit", "MiB")
    mem.text = "512"
    root.find("vcpu").text = "2"
    os_ = root.find("os")
    os_.find("type").attrib.pop("machine", None)
    os_.remove(os_.find("boot"))
    for tag, text in (("kernel", kernel), ("initrd", initrd),
                      ("cmdline", "console=ttyS0 panic=-1 quiet "
                       "memhp_default_state=online_movable "
                       "vshare.cgroup=v2")):
        ET.SubElement(os_, tag).text = text
    cpu = root.find("cpu")
    cpu.set("mode", "maximum")
    cpu.set("migratable", "off")
    cpu.find("topology").set("cores", "1")
    for i, cell in enumerate(cpu.find("numa")):
        cell.set("cpus", str(i))
        cell.set("memory", "256")
        cell.set("unit", "MiB")
    dev = root.find("devices")
    for tag in ("disk", "serial", "console"):
        for e in dev.findall(tag):
            dev.remove(e)
    for m in dev.findall("memory"):
        tg = m.find("target")
        for tag, v in (("size", "512"), ("requested", "128")):
            tg.find(tag).set("unit", "MiB")
            tg.find(tag).text = v
    ET.SubElement(dev, "emulator").text = "/usr/bin/qemu-system-x86_64"
    ser = ET.SubElement(dev, "serial", type="file")
    ET.SubElement(ser, "source", path=f"/var/log/{DOMAIN}.console")
    ET.SubElement(ser, "target", port="0")
    return ET.tostring(root, encoding="unicode")


def prepare_libvirt(root):
    """Before the container boots: libvirt's settings for a container,
    the guest's kernel and initramfs, the domain XML."""
    with open(os.path.join(root, "etc", "libvirt", "qemu.conf"), "a") as f:
        f.write(QEMU_CONF)
    kernel = default_kernel()
    initrd = build_initrd(kernel, os.path.join(REPO, "build", "rel",
                                               "vshare-agent"), qga=False)
    img = os.path.join(root, "var", "lib", "libvirt", "images")
    os.makedirs(img, exist_ok=True)
    shutil.copy(kernel, os.path.join(img, "vmlinuz"))
    shutil.copy(initrd, os.path.join(img, "initrd.gz"))
    with open(os.path.join(root, "var", "tmp", f"{DOMAIN}.xml"), "w") as f:
        f.write(domain_xml("/var/lib/libvirt/images/vmlinuz",
                           "/var/lib/libvirt/images/initrd.gz"))


def guest_status(c):
    """vsharectl status of the libvirt guest, as JSON (None: not yet)."""
    p = c.run("vsharectl", "status", DOMAIN, "--json")
    try:
        vms = json.loads(p.stdout)["vms"] if p.returncode == 0 else []
    except ValueError:
        return None
    v = next((v for v in vms if v.get("name") == DOMAIN), None)
    return v if v and (v.get("agent") or {}).get("reachable") else None


def check_libvirt(t, c, port):
    """libvirtd as Debian ships it runs the examples/ domain; vshared
    follows it by its domain name and acts on it through its agent."""
    p = c.run("systemctl", "start", "libvirtd")
    t.ok(p.returncode == 0 and c.out("systemctl", "is-active", "libvirtd")
         == "active", "systemctl start libvirtd (Debian's unit)",
         p.stderr + c.out("journalctl", "-u", "libvirtd", "--no-pager")[-1500:])
    p1 = c.run("virsh", "define", f"/var/tmp/{DOMAIN}.xml")
    p2 = c.run("virsh", "start", DOMAIN, timeout=180)
    t.ok(p1.returncode == 0 and p2.returncode == 0,
         f"virsh define + start {DOMAIN} (examples/vshare-domain.xml, TCG)",
         p1.stdout + p1.stderr + p2.stdout + p2.stderr +
         c.out("journalctl", "-u", "libvirtd", "--no-pager")[-1500:])
    t0 = time.monotonic()
    st = wait_for(lambda: guest_status(c), 240)
    t.ok(st is not None, f"vshared follows {DOMAIN} with no registration: "
         f"status shows it, its agent reachable ({time.monotonic() - t0:.0f}"
         " s after the start)",
         c.out("vsharectl", "status") + "\n" +
         c.out("journalctl", "-u", "vshared", "-o", "cat",
               "--no-pager")[-2000:] + "\nconsole: " +
         c.out("tail", "-c", "1500", f"/var/log/{DOMAIN}.console"))
    p = c.run("vsharectl", "host-check", DOMAIN)
    t.ok(p.returncode == 0 and "fits" in p.stdout,
         f"vsharectl host-check {DOMAIN}: {p.stdout.strip()}", p.stderr)
    p = c.run("vsharectl", "cpus", DOMAIN, "--set", "1", "--mode", "coop")
    st = guest_status(c) or {}
    want = f'vshare_pcpu_owner{{cpu="1",domain="{DOMAIN}",node="1"}} 1'
    t.ok(p.returncode == 0 and (st.get("agent") or {}).get("cpus") == "1"
         and wait_for(lambda: want in scrape(port), 30),
         f"vsharectl cpus {DOMAIN} --set 1 through vshared: the agent "
         "confined the guest to vCPU 1; node_exporter: " + want,
         (p.stdout + p.stderr, st.get("agent")))
    p = c.run("vsharectl", "forget", DOMAIN)
    t.ok(p.returncode == 0 and DOMAIN not in c.out("vsharectl", "ledger",
                                                    "show"),
         f"vsharectl forget {DOMAIN}: its pCPU back in the pool (the fake "
         "VMs' lend needs both)", p.stdout + p.stderr)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Container:
    """systemd-nspawn -b on a root directory; commands through nsenter."""

    def __init__(self, root, log):
        self.root = root
        self.log = log
        self.proc = None
        self.leader = None

    def boot(self, timeout=120):
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--register=no", "--keep-unit", "-q", "-D",
             self.root, "-b", "--console=pipe"],
            stdin=subprocess.DEVNULL, stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT, start_new_session=True)
        self.leader = wait_for(self._leader, 30)
        if not self.leader:
            raise RuntimeError("systemd-nspawn started no PID 1")
        # nsenter works once PID 1 exists; systemctl once its bus does
        state = wait_for(lambda: self.out(
            "systemctl", "is-system-running", "--wait", timeout=timeout),
            timeout)
        return state

    def _leader(self):
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/"
                      "children") as f:
                kids = f.read().split()
        except OSError:
            return None
        for k in kids:
            try:
                if open(f"/proc/{k}/comm").read().strip() == "systemd":
                    return int(k)
            except OSError:
                pass
        return None

    def run(self, *argv, timeout=120):
        return sh(["nsenter", "-t", str(self.leader), "-a", "--", *argv],
                  timeout=timeout)

    def out(self, *argv, timeout=120):
        return self.run(*argv, timeout=timeout).stdout.strip()

    def prop(self, unit, name):
        return self.out("systemctl", "show", "-P", name, unit)

    def stop(self):
        if not self.proc or self.proc.poll() is not None:
            return
        try:
            self.run("systemctl", "poweroff", timeout=30)
            self.proc.wait(60)
        except (subprocess.TimeoutExpired, OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                timeout=10) as r:
        return r.read().decode()


def promtool():
    p = sh([os.path.join(TESTS, "tools", "fetch-tool.sh"), "prometheus",
            "usr/bin/promtool"])
    return p.stdout.strip() if p.returncode == 0 else None


def ready_count(c):
    j = c.out("journalctl", "-u", "vshared", "-o", "cat", "--no-pager")
    return len(re.findall(r"^ready: ", j, re.M))


def put(c, deb):
    """@deb into the container (its /tmp is a tmpfs of its own)."""
    d = os.path.join(c.root, "var", "tmp")
    shutil.copy(deb, d)
    return "/var/tmp/" + os.path.basename(deb)


APT = ["apt-get", "install", "-y", "--no-install-recommends",
       # the test's own host.conf is there first: keep it
       "-o", "Dpkg::Options::=--force-confold"]


def check_installed(t, c, deb):
    p = c.run(*APT, put(c, deb), timeout=300)
    t.ok(p.returncode == 0, f"apt-get install ./{os.path.basename(deb)}",
         p.stdout[-2000:] + p.stderr[-2000:])
    active = wait_for(lambda: c.out("systemctl", "is-active", "vshared")
                      == "active", 30)
    shipped = open(os.path.join(REPO, "host-shim", "daemon",
                                "vshared.service"), "rb").read()
    unit = open(os.path.join(c.root, "lib", "systemd", "system",
                             "vshared.service"), "rb").read()
    status = c.out("systemctl", "status", "--no-pager", "-l", "vshared")
    t.diag("systemctl status vshared:\n" + status)
    t.ok(active and c.out("systemctl", "is-enabled", "vshared") ==
         "enabled", "the package enabled and started vshared",
         status)
    t.ok(unit == shipped and not c.prop("vshared", "DropInPaths"),
         "under the unit as shipped (byte-identical, no drop-in)",
         c.prop("vshared", "DropInPaths"))
    t.ok(wait_for(lambda: ready_count(c) == 1, 30) and
         c.prop("vshared", "NRestarts") == "0" and
         c.prop("vshared", "StatusErrno") in ("0", ""),
         "vshared said READY once and was never restarted (NRestarts 0)",
         c.out("journalctl", "-u", "vshared", "--no-pager"))


def check_metrics(t, c, port):
    path = os.path.join(c.root, "var", "lib", "prometheus", "node-exporter",
                        "vshare.prom")
    t.ok(wait_for(lambda: os.path.exists(path), 30) and
         os.stat(path).st_mode & 0o777 == 0o644,
         "vshared wrote /var/lib/prometheus/node-exporter/vshare.prom, "
         "mode 0644")
    text = wait_for(lambda: (lambda s: s if "vshare_build_info" in s
                             else None)(scrape(port)), 30) or ""
    lines = [ln for ln in text.splitlines() if ln.startswith("vshare_")]
    t.diag(f"node_exporter on 127.0.0.1:{port}, its vshare lines:\n" +
           "\n".join(lines[:12]))
    t.ok("vshare_pcpu_owner{" in text and
         "node_textfile_scrape_error 0" in text,
         f"Debian's prometheus-node-exporter serves vshare's metrics "
         f"({len(lines)} samples), no textfile error", text[-2000:])
    tool = promtool()
    if not tool:
        t.ok(False, "promtool from Debian's prometheus package")
        return
    p = sh([tool, "check", "metrics"], input=open(path).read())
    t.ok(p.returncode == 0 and not (p.stdout + p.stderr).strip(),
         "promtool check metrics: the file is clean", p.stdout + p.stderr)


class FakeVm:
    """tests/hostile/peers.py inside the container: a QMP monitor and a
    vshare agent (honest), two idle "vCPU" threads whose affinity the test
    reads; the lend needs two VMs and a second TCG guest would double the
    test's time (check_libvirt has the real one)."""

    def __init__(self, c, name):
        self.c = c
        self.name = name
        self.dir = f"/var/lib/vshare-test/{name}"  # seen by the host too
        host = c.root + self.dir
        os.makedirs(host)
        with open(host + ".json", "w") as f:
            f.write("{}")
        self.proc = subprocess.Popen(
            ["nsenter", "-t", str(c.leader), "-a", "--", "python3", "-I",
             "-S", "/var/tmp/peers.py", "--dir", self.dir, "--behaviour",
             self.dir + ".json"], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ready = wait_for(lambda: self._json("ready.json"), 30)
        if not self.ready:
            raise RuntimeError(f"fake VM {name} did not start")

    def _json(self, f):
        try:
            with open(os.path.join(self.c.root + self.dir, f)) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def allowed(self):
        """The fake vCPU threads' affinity, read in the container."""
        out = {}
        for tid in self.ready["vcpu-tids"]:
            st = self.c.out("cat", f"/proc/{tid}/status")
            m = re.search(r"^Cpus_allowed_list:\s*(\S+)", st, re.M)
            out[tid] = parse_list(m.group(1)) if m else None
        return out

    def stop(self):
        self.c.run("kill", str(self.ready["pid"])) if self.ready else None
        self.proc.kill()
        self.proc.wait()


def check_lend(t, c, port):
    """Two fake VMs registered with vsharectl, a lend through vshared as
    the unit runs it: the ledger, the fakes' guest allocation, the vCPU
    threads' affinity (read in the container), the metrics, the audit."""
    shutil.copy(PEERS, os.path.join(c.root, "var", "tmp", "peers.py"))
    vms = {}
    a, b = NAMES
    try:
        for n in (a, b):
            vms[n] = FakeVm(c, n)
            p = c.run("vsharectl", "add", n, "--qmp", vms[n].ready["qmp"],
                      "--agent", vms[n].ready["agent"])
            t.ok(p.returncode == 0, f"vsharectl add {n} (QMP and agent "
                 "sockets of a fake VM in the container)", p.stderr)
        p1 = c.run("vsharectl", "cpus", a, "--set", "0-1", "--mode",
                   "coop")
        p2 = c.run("vsharectl", "lend", "--from", a, "--to", b,
                   "--cpus", "1", "--mode", "coop")
        led = c.out("vsharectl", "ledger", "show")
        a_alloc = vms[a]._json("agent-state.json") or {}
        t.ok(p1.returncode == 0 and p2.returncode == 0,
             "vsharectl cpus a 0-1, then lend a -> b pCPU 1, through "
             "vshared under its unit", p1.stdout + p1.stderr + p2.stdout +
             p2.stderr + c.out("journalctl", "-u", "vshared", "-o", "cat",
                               "--no-pager")[-2000:])
        t.diag(led)
        b_alloc = vms[b]._json("agent-state.json") or {}
        pins = [vms[b].allowed().get(tid)
                for tid in vms[b].ready["vcpu-tids"]]
        t.ok(a_alloc.get("cpus") == "0" and b_alloc.get("cpus") == "1" and
             pins == [{0}, {1}],
             "the givers' and the receiver's guests confined by their "
             "agents (a to vCPU 0, b to vCPU 1), b's vCPU threads pinned "
             "1:1 (sched_setaffinity under the unit's hardening)",
             (a_alloc, b_alloc, pins, led))
        want = f'vshare_pcpu_owner{{cpu="1",domain="{b}",node="1"}} 1'
        t.ok(wait_for(lambda: want in scrape(port), 30),
             "node_exporter serves the lend: " + want)
        j = c.out("journalctl", "-u", "vshared", "-o", "cat", "--no-pager")
        t.ok(re.search(r"change by uid 0 pid \d+ \(vsharectl\): "
                       r'\{"op":"lend"', j),
             "the journal has the lend with who asked (uid, pid, command)",
             j[-1500:])
    finally:
        for v in vms.values():
            v.stop()


def drop_domain_cgroups():
    """libvirt's cgroups of the test's domain in the cpu hierarchy the
    container shares with this host (machine/*DOMAIN*.libvirt-qemu)."""
    top = "/sys/fs/cgroup/cpu/machine"
    if not os.path.isdir(top):
        return
    for d in os.listdir(top):
        if DOMAIN in d and d.endswith(".libvirt-qemu"):
            for sub_, _, _ in sorted(os.walk(os.path.join(top, d)),
                                     key=lambda w: -len(w[0])):
                try:
                    os.rmdir(sub_)
                except OSError:
                    pass


def drop_cgroups(name):
    """What vshared made for @name in the cpu hierarchy the container
    shares with this host (vshare/NAME/vcpuN), bottom-up."""
    top = f"/sys/fs/cgroup/cpu/vshare/{name}"
    if not os.path.isdir(top):
        return
    for d, subs, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
        try:
            os.rmdir(d)
        except OSError:
            pass


def main_pid(c):
    return c.prop("vshared", "MainPID")


def check_restart(t, c):
    old = main_pid(c)
    led = c.out("cat", "/var/lib/vshare/ledger.json")
    p = c.run("systemctl", "restart", "vshared")
    back = wait_for(lambda: ready_count(c) == 2, 30)
    t.ok(p.returncode == 0 and back and main_pid(c) not in (old, "0") and
         c.out("systemctl", "is-active", "vshared") == "active" and
         c.out("cat", "/var/lib/vshare/ledger.json") == led,
         f"systemctl restart vshared: new process ({old} -> "
         f"{main_pid(c)}), READY again, the ledger kept", p.stderr)
    t.ok(wait_for(lambda: guest_status(c), 60) is not None,
         f"after the restart {DOMAIN}'s agent is reachable again (libvirt's "
         "channel socket survives vshared)",
         c.out("vsharectl", "status"))


def check_upgrade(t, c, version):
    deb = build_debs(version)
    old = main_pid(c)
    p = c.run(*APT, put(c, deb), timeout=300)
    now = c.out("dpkg-query", "-W", "-f", "${Version}", "vshare-host")
    t.ok(p.returncode == 0 and now == version and
         wait_for(lambda: main_pid(c) not in (old, "0") and
                  c.out("systemctl", "is-active", "vshared") == "active",
                  30),
         f"upgrade to {version} with apt restarts vshared ({old} -> "
         f"{main_pid(c)})", p.stdout[-1500:] + p.stderr[-1500:])


def check_remove(t, c):
    pid = main_pid(c)
    p = c.run("apt-get", "remove", "-y", "vshare-host", timeout=300)
    t.ok(p.returncode == 0 and
         c.out("systemctl", "is-active", "vshared") != "active" and
         not c.run("kill", "-0", pid).returncode == 0,
         f"apt-get remove stops vshared (pid {pid} gone)",
         p.stdout[-1500:] + p.stderr[-1500:])
    t.ok(os.path.isdir(os.path.join(c.root, "var", "lib", "vshare")),
         "the state directory /var/lib/vshare stays after remove")


def main():
    t = Tap()
    if os.geteuid() != 0:
        t.skip_all("needs root (systemd-nspawn)")
    if not SOURCES:
        t.skip_all("no Debian apt sources on this machine for mmdebstrap")
    for tool in ("systemd-nspawn", "mmdebstrap", "nsenter", "dpkg-deb"):
        if not shutil.which(tool):
            t.skip_all(f"no {tool} (tests/setup-host.sh installs it)")
    work = tempfile.mkdtemp(prefix="vshare-install-")
    c = Container(os.path.join(work, "root"), os.path.join(work, "boot.log"))
    try:
        deb = build_debs()
        pkgs = sorted(set(BASE) | set(depends_of(deb)))
        tar, secs = rootfs_tar(pkgs)
        t.diag(f"rootfs {os.path.basename(tar)} "
               f"({'built in %.0f s' % secs if secs else 'cached'}): "
               + " ".join(pkgs))
        os.makedirs(c.root)
        p = sh(["tar", "-C", c.root, "-xf", tar])
        if p.returncode != 0:
            raise RuntimeError(f"tar: {p.stderr}")
        prepare_libvirt(c.root)
        # the declared 2-node host of every test (tests/shim/shimlib.py)
        os.makedirs(os.path.join(c.root, "etc", "vshare"), exist_ok=True)
        with open(os.path.join(c.root, "etc", "vshare", "host.conf"),
                  "w") as f:
            f.write(HOST_CONF)
        port = free_port()
        with open(os.path.join(c.root, "etc", "default",
                               "prometheus-node-exporter"), "w") as f:
            f.write(f'ARGS="--web.listen-address=127.0.0.1:{port}"\n')
        state = c.boot()
        t.ok(state in ("running", "degraded") and
             c.out("systemctl", "is-active", "prometheus-node-exporter")
             == "active",
             f"systemd is PID 1 in the container ({state}); "
             "prometheus-node-exporter active",
             c.out("systemctl", "--failed", "--no-pager"))
        # nspawn mounts the cgroup hierarchies read-only in a container
        # whose host has no systemd to delegate a subtree: the cpu one is
        # made writable (as root has it on a real host) for vshared's
        # throttle files
        p = c.run("mount", "-o", "remount,bind,rw", "/sys/fs/cgroup/cpu")
        t.diag(f"cpu cgroup hierarchy remounted read-write: rc "
               f"{p.returncode} {p.stderr.strip()}")
        check_installed(t, c, deb)
        p = c.run("vsharectl", "status")
        t.ok(p.returncode == 0, "vsharectl status through vshared's socket",
             p.stdout + p.stderr)
        check_metrics(t, c, port)
        check_libvirt(t, c, port)
        check_lend(t, c, port)
        check_restart(t, c)
        ver = c.out("dpkg-query", "-W", "-f", "${Version}", "vshare-host")
        check_upgrade(t, c, ver + "+upgrade1")
        check_remove(t, c)
    except Exception as e:
        t.ok(False, f"unexpected {type(e).__name__}: {e}",
             open(c.log).read()[-2000:] if os.path.exists(c.log) else "")
    finally:
        if c.leader:
            c.run("virsh", "destroy", DOMAIN, timeout=60)
        c.stop()
        for n in NAMES:
            drop_cgroups(n)
        drop_domain_cgroups()
        build_debs()  # build/deb's host package at its own version again
        shutil.rmtree(work, ignore_errors=True)
    t.ok(c.proc is None or c.proc.poll() is not None,
         "the container powered off")
    t.done()


if __name__ == "__main__":
    main()
