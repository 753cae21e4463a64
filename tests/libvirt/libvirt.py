#!/usr/bin/env python3
"""vshared --libvirt-uri against a private libvirtd and two real 2-node TCG
domains, booted once and shared by every check. TAP on stdout.

    tests/libvirt/libvirt.py      # VSHARED / VSHARECTL: default build/san

The test starts virtlogd and libvirtd itself (libvirtlib.py: a private
mount namespace, qemu.conf user/group root, dynamic_ownership = 0,
remember_owner = 0, security_driver = "none"; tests/README.md) and stops
them by pid at the end, also on failure. vshared gets no registry file: it
discovers the domains carrying org.vshare.agent.0 and follows them under
their names. Every effect is checked without vsharectl: virsh vcpupin,
virsh dumpxml (<requested>/<current> of the virtio-mem devices), the
guests' own view over their shell channel (allowed CPUs of every task,
node 1 MemTotal), the ledger file, the journal file, vshared's log.

  1. both domains discovered (status through vshared: driver libvirt,
     agents answer)
  2. cpus A 0-1, lend A -> B pCPU 1 + 128M of node 1 (coop)
  3. virsh destroy B: B leaves the ledger, A keeps pCPU 0
  4. libvirtd SIGKILLed and restarted: vshared reconnects, ledger
     unchanged, later changes of A go through it
  5. libvirtd SIGSTOPped (it accepts and never answers): a change through
     vshared fails within the deadlines instead of hanging, vshared keeps
     answering; after SIGCONT it reconnects and changes go through
  6. B started again (discovered again), vshared SIGKILLed at step 2 of a
     lend, restarted: old or new ledger, journal gone, guests agree
"""
import json
import os
import shutil
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
for d in ("vm", "shim", "e2e"):
    sys.path.insert(0, os.path.join(TESTS, d))
sys.path.insert(0, HERE)
from libvirtlib import Libvirt  # noqa: E402
from shimlib import Ctl, Daemon, wait_for  # noqa: E402
from vshare_vm import REPO, Tap, parse_list  # noqa: E402
from guest import check_confined  # noqa: E402

MiB = 1 << 20
VSHARED = os.environ.get("VSHARED") or \
    os.path.join(REPO, "build", "san", "vshared")
VSHARECTL = os.environ.get("VSHARECTL") or \
    os.path.join(REPO, "build", "san", "vsharectl")


def ledger(ctl):
    """The ledger file through `vsharectl ledger show` (a file read, not
    vshared's word): {name: entry}."""
    return {v["name"]: v for v in ctl.json("ledger", "show")["vms"]}


def lmem(entry, node):
    m = entry.get("vmem-bytes", []) if entry else []
    return m[node] if node < len(m) else 0


def status(ctl):
    p = ctl.run("status", "--json", timeout=60)
    return {v["name"]: v for v in json.loads(p.stdout)["vms"]} \
        if p.returncode == 0 else {}


def discovered(ctl, names):
    st = status(ctl)
    return all(n in st and st[n]["driver"] == "libvirt" and
               st[n]["reachable"] and st[n]["agent"]["reachable"]
               for n in names) and st


def node1_kib(d):
    out = d.shell.out("grep MemTotal /sys/devices/system/node/node1/meminfo")
    return int(out.split()[-2])


def settled_kib(d, want):
    """Node 1 MemTotal in guest @d once it is @want KiB (onlining follows
    the plug), else what it is after 10 s."""
    return wait_for(lambda: node1_kib(d) == want and want, 10) or \
        node1_kib(d)


def settled_vmem(d, node, want):
    """dumpxml: node's virtio-mem requested == @want and current has
    followed (libvirt updates <current> from QEMU's event)."""
    def ok():
        m = d.vmem()[node]
        return (m["requested"], m["current"]) == (want, want) and m
    return wait_for(ok, 15) or d.vmem()[node]


def log_since(dmn, off):
    try:
        with open(dmn.log, errors="replace") as f:
            f.seek(off)
            return f.read()
    except OSError:
        return ""


def log_size(dmn):
    try:
        return os.path.getsize(dmn.log)
    except OSError:
        return 0


def check_discovery(t, ctl, a, b):
    st = wait_for(lambda: discovered(ctl, (a.name, b.name)), 30)
    t.ok(bool(st), "both domains discovered: status through vshared lists "
         f"{a.name} and {b.name}, driver libvirt, agents answer",
         json.dumps(status(ctl), indent=1)[:3000])
    vms = os.path.join(ctl.conf, "vms")
    t.ok(not os.path.isdir(vms) or not os.listdir(vms),
         "no registry file was written (discovered VMs live in vshared)")
    p = ctl.run("status", env={"VSHARE_SOCKET": "/nonexistent"})
    t.ok(p.returncode == 0 and "ledger generation" in p.stdout and
         a.name not in p.stdout,
         "vsharectl alone does not know them (so changes go through "
         "vshared)", p.stdout + p.stderr)


def check_monitor(t, ctl, dmn, lv, a):
    """Paper 001's Monitor and Transferer: with no PMU here, A's declared
    profile (CONF/profiles/A.json) reaches `status`, the metrics and A's
    libvirt <metadata>, live and persistent (what a migration carries)."""
    NS = "urn:vshare:profile:1"
    os.makedirs(os.path.join(ctl.conf, "profiles"), exist_ok=True)
    with open(os.path.join(ctl.conf, "profiles", f"{a.name}.json"),
              "w") as f:
        json.dump({"mpki": 12.5, "bandwidth-mbps": 3200, "node": 1}, f)

    def meta(*extra):
        return lv.virsh("metadata", a.name, "--uri", NS, *extra,
                        check=False) or ""
    live = wait_for(lambda: 'mpki="12.5"' in meta() and meta(), 30)
    t.ok(bool(live) and 'class="memory"' in live and
         'mpki="12.5"' in meta("--config"),
         "A's declared profile is kept in its libvirt <metadata> (live "
         "and persistent), class computed: memory", f"{live!r} "
         f"{meta('--config')!r}")
    st = status(ctl).get(a.name, {})
    prof = st.get("profile", {})
    t.ok(prof.get("mpki") == 12.5 and prof.get("class") == "memory" and
         prof.get("source") == "declared",
         "status through vshared shows A's profile", st.get("profile"))
    line = f'vshare_vm_llc_mpki{{domain="{a.name}",source="declared"}} 12.5'
    t.ok(bool(wait_for(lambda: line in open(dmn.metrics).read(), 10)),
         "metrics: A's LLC misses per kilo-instruction, labelled declared",
         line)
    log = open(dmn.log).read()
    t.ok("monitor: no usable PMU" in log or "monitor:" not in log,
         "no PMU on this host: vshared said so in one line",
         [x for x in log.splitlines() if "monitor" in x][:3])
    os.unlink(os.path.join(ctl.conf, "profiles", f"{a.name}.json"))
    t.ok(bool(wait_for(lambda: "profile" not in status(ctl).get(
        a.name, {"profile": 1}), 15)),
        "profile file removed: no profile shown (never a stale one)")


def check_lend(t, ctl, a, b, base):
    A, B = a.name, b.name
    p = ctl.run("cpus", A, "--set", "0-1", "--mode", "coop")
    t.ok(p.returncode == 0, f"cpus {A} --set 0-1 --mode coop",
         p.stdout + p.stderr)
    req = {d.short: d.vmem()[1]["requested"] for d in (a, b)}
    p = ctl.run("lend", "--from", A, "--to", B, "--cpus", "1", "--node",
                "1", "--mem", "128M", "--mode", "coop")
    t.ok(p.returncode == 0, f"lend {A} -> {B}: pCPU 1 and 128M of node 1 "
         f"({p.seconds:.2f} s)", p.stdout + p.stderr)
    pb, pa = b.vcpupin(), a.vcpupin()
    t.eq(pb.get(1), "1", "virsh vcpupin: B's vCPU 1 on pCPU 1")
    t.eq(pa, {0: "0", 1: "1"},
         "virsh vcpupin: A's vCPUs still 1:1 (coop: A's guest gives "
         "vCPU 1 up, its thread keeps its pin)")
    check_confined(t, a, {0}, {0, 1}, "guest A after lending node 1")
    check_confined(t, b, {1}, {0, 1}, "guest B after receiving node 1")
    ma = settled_vmem(a, 1, req["a"] - 128 * MiB)
    mb = settled_vmem(b, 1, req["b"] + 128 * MiB)
    t.ok(ma["requested"] == req["a"] - 128 * MiB and
         ma["current"] == ma["requested"],
         "virsh dumpxml: A's node-1 virtio-mem <requested> down 128 MiB, "
         "<current> followed", (req["a"], ma))
    t.ok(mb["requested"] == req["b"] + 128 * MiB and
         mb["current"] == mb["requested"],
         "virsh dumpxml: B's node-1 virtio-mem <requested> up 128 MiB, "
         "<current> followed", (req["b"], mb))
    ka = settled_kib(a, base["a"] - 128 * 1024)
    kb = settled_kib(b, base["b"] + 128 * 1024)
    t.ok(ka == base["a"] - 128 * 1024 and kb == base["b"] + 128 * 1024,
         "guests: node 1 MemTotal A -128 MiB, B +128 MiB",
         (base, ka, kb))
    led = ledger(ctl)
    t.ok(led.get(A, {}).get("pcpus") == "0" and
         led.get(B, {}).get("pcpus") == "1" and
         not os.path.exists(ctl.journal_path()),
         "ledger file: A owns 0, B owns 1; no journal left", led)


def check_destroy(t, ctl, dmn, a, b):
    A, B = a.name, b.name
    off = log_size(dmn)
    out = b.stop(check=True)
    t.diag(f"virsh destroy {B}: {out.strip()}")
    gone = wait_for(lambda: B not in ledger(ctl), 30)
    t.ok(gone, f"virsh destroy {B}: the ledger file drops it (within 30 s)",
         (ledger(ctl), log_since(dmn, off)))
    led = ledger(ctl)
    t.ok(led.get(A, {}).get("pcpus") == "0" and
         a.vcpupin().get(0) == "0",
         "A still owns pCPU 0 (ledger) and its vCPU 0 stays on it "
         "(virsh vcpupin)", (led, a.vcpupin()))
    t.ok("QEMU is gone" in log_since(dmn, off),
         "vshared's log says B is gone", log_since(dmn, off))


def check_libvirtd_restart(t, ctl, dmn, lv, a, base):
    A = a.name
    before = open(ctl.ledger_path(), "rb").read()
    off = log_size(dmn)
    old = lv.libvirtd.pid
    lv.stop_libvirtd(signal.SIGKILL)
    lost = wait_for(lambda: "connection to" in log_since(dmn, off) and
                    "lost" in log_since(dmn, off), 30)
    t.ok(lost, f"libvirtd (pid {old}) SIGKILLed: vshared notices",
         log_since(dmn, off))
    lv.start()
    back = wait_for(lambda: "reconnected" in log_since(dmn, off), 30)
    t.ok(back and dmn.proc.poll() is None,
         f"libvirtd restarted (pid {lv.libvirtd.pid}): vshared's log "
         "says it reconnected", log_since(dmn, off))
    t.ok(open(ctl.ledger_path(), "rb").read() == before and
         not os.path.exists(ctl.journal_path()),
         "ledger file byte-identical across the libvirtd restart")
    p = ctl.run("cpus", A, "--set", "0-1", "--mode", "coop")
    t.ok(p.returncode == 0 and ledger(ctl)[A]["pcpus"] == "0-1",
         f"later `cpus {A} --set 0-1 --mode coop` through vshared",
         p.stdout + p.stderr)
    t.eq(a.vcpupin(), {0: "0", 1: "1"}, "virsh vcpupin: A 1:1")
    check_confined(t, a, {0, 1}, {0, 1}, "guest A after the restart")
    p = ctl.run("mem", A, "--node", "1", "--size", "128M")
    m = settled_vmem(a, 1, 128 * MiB)
    kib = settled_kib(a, base["a"])
    t.ok(p.returncode == 0 and m["requested"] == 128 * MiB and
         m["current"] == 128 * MiB and kib == base["a"],
         f"`mem {A} --node 1 --size 128M` through the reconnected driver "
         "(dumpxml and guest MemTotal)",
         (p.stdout + p.stderr, m, kib, base["a"]))


def check_libvirtd_stopped(t, ctl, dmn, lv, a):
    """A hung libvirtd: the open has a deadline (a helper thread), a call
    in flight is cut by the keepalive (run by vshared's loop)."""
    A = a.name
    pid = lv.libvirtd.pid
    before = ledger(ctl)
    off = log_size(dmn)
    os.kill(pid, signal.SIGSTOP)
    try:
        p = ctl.run("cpus", A, "--set", "0", "--mode", "coop", timeout=150)
        t.ok(p.returncode != 0 and p.seconds < 90 and
             "libvirt" in p.stderr,
             f"libvirtd SIGSTOPped: `cpus {A} --set 0` through vshared "
             f"fails in {p.seconds:.1f} s (< 90) naming libvirt",
             (p.returncode, p.stdout + p.stderr, log_since(dmn, off)))
        t0 = time.monotonic()
        alive = dmn.ping()
        s = ctl.run("status", timeout=150)
        t.ok(alive and s.seconds < 30 and dmn.proc.poll() is None,
             f"vshared still answers: ping, then status in {s.seconds:.1f}"
             f" s (< 30; rc {s.returncode}), {time.monotonic() - t0:.1f} "
             "s in all", (s.stdout + s.stderr)[-2000:])
    finally:
        os.kill(pid, signal.SIGCONT)
    back = wait_for(lambda: "reconnected" in log_since(dmn, off), 60)
    t.ok(back, "libvirtd SIGCONTed: vshared's log says it reconnected",
         log_since(dmn, off))
    settled = wait_for(lambda: not os.path.exists(ctl.journal_path()), 60)
    led = ledger(ctl)
    t.ok(settled and led.get(A, {}).get("pcpus") in
         ("0", before[A]["pcpus"]),
         f"no journal left; A's pCPUs in the ledger are the old or the "
         f"new set ({led.get(A, {}).get('pcpus')})", (before, led))
    p = ctl.run("cpus", A, "--set", "0-1", "--mode", "coop")
    t.ok(p.returncode == 0 and ledger(ctl)[A]["pcpus"] == "0-1",
         f"after SIGCONT: `cpus {A} --set 0-1 --mode coop` through vshared",
         p.stdout + p.stderr + log_since(dmn, off)[-2000:])
    t.eq(a.vcpupin(), {0: "0", 1: "1"}, "virsh vcpupin: A 1:1 again")
    check_confined(t, a, {0, 1}, {0, 1}, "guest A after libvirtd resumed")


def guests_agree(t, ctl, a, b, base, what):
    """Each guest's allowed CPUs and node-1 memory are what the ledger
    file says (a VM not in the ledger: unconfined, its own 128M)."""
    led = ledger(ctl)
    for d in (a, b):
        e = led.get(d.name)
        # declared host: pCPU i is node i's, vCPU i runs there
        cpus = parse_list(e["pcpus"]) if e else {0, 1}
        check_confined(t, d, cpus, {0, 1}, f"{what}: guest {d.short} "
                       "as the ledger says")
        want = lmem(e, 1) if e else 128 * MiB
        m = settled_vmem(d, 1, want)
        kib_want = base[d.short] + (want - 128 * MiB) // 1024
        kib = settled_kib(d, kib_want)
        t.ok(m["requested"] == want and m["current"] == want and
             kib == kib_want,
             f"{what}: {d.short}'s node-1 virtio-mem and guest MemTotal "
             f"match the ledger ({want // MiB} MiB)", (e, m, kib))


def check_crash(t, ctl, dmn, a, b, base):
    A, B = a.name, b.name
    t.ok(dmn.stop() == 0, "vshared stops on SIGTERM, exit 0",
         open(dmn.log).read()[-3000:])
    before = ledger(ctl)
    dmn.start(env={"VSHARE_TEST_CRASH": "step2"})
    wait_for(lambda: discovered(ctl, (A, B)), 30)
    p = ctl.run("lend", "--from", A, "--to", B, "--cpus", "1", "--node",
                "1", "--mem", "128M", "--mode", "coop")
    try:
        rc = dmn.proc.wait(30)
    except Exception:
        rc = None
    t.ok(p.returncode != 0 and rc == -9 and
         os.path.exists(ctl.journal_path()),
         "vshared SIGKILLed at step 2 of a lend: vsharectl fails, "
         "journal left", (p.returncode, rc, p.stdout + p.stderr))
    journal = open(ctl.journal_path()).read() \
        if os.path.exists(ctl.journal_path()) else ""
    try:
        dmn.start()
    except RuntimeError as e:
        t.ok(False, "vshared restarts with the journal left", e)
        return
    gone = wait_for(lambda: not os.path.exists(ctl.journal_path()), 60)
    after = ledger(ctl)
    old = {k: v["pcpus"] for k, v in before.items()}
    new = {A: "0", B: "1"}
    got = {k: v["pcpus"] for k, v in after.items()}
    which = "old" if got == old else "new" if got == new else "neither"
    t.ok(gone and which != "neither",
         f"restarted vshared recovered: journal gone, ledger is the {which}"
         " one", (got, old, new, journal, open(dmn.log).read()[-2000:]))
    guests_agree(t, ctl, a, b, base, f"after recovery ({which})")


def main():
    t = Tap()
    for tool in ("virsh", "libvirtd", "virtlogd"):
        if not shutil.which(tool):
            t.skip_all(f"no {tool} (tests/setup-host.sh installs libvirt)")
    for b in (VSHARED, VSHARECTL):
        if not os.access(b, os.X_OK):
            t.skip_all(f"no {b} (make)")
    if os.geteuid() != 0:
        t.skip_all("needs root (libvirtd, cgroups)")
    lv = Libvirt()
    ctl = Ctl(binary=VSHARECTL)
    dmn = Daemon(ctl, binary=VSHARED, extra=["--libvirt-uri", lv.uri])
    pids = []
    try:
        lv.start()
        pids = [lv.virtlogd.pid, lv.libvirtd.pid]
        t.diag(f"libvirtd {lv.libvirtd.pid}, virtlogd {lv.virtlogd.pid}: "
               f"{lv.uri}")
        a, b = lv.domain("a"), lv.domain("b")
        t.diag(f"booted {a.name} in {a.boot_seconds:.1f} s, {b.name} in "
               f"{b.boot_seconds:.1f} s")
        base = {d.short: node1_kib(d) for d in (a, b)}
        dmn.start()
        check_discovery(t, ctl, a, b)
        check_monitor(t, ctl, dmn, lv, a)
        check_lend(t, ctl, a, b, base)
        check_destroy(t, ctl, dmn, a, b)
        check_libvirtd_restart(t, ctl, dmn, lv, a, base)
        pids.append(lv.libvirtd.pid)
        check_libvirtd_stopped(t, ctl, dmn, lv, a)
        b.boot()
        base["b"] = node1_kib(b)  # a fresh boot: its own baseline
        t.ok(bool(wait_for(lambda: discovered(ctl, (a.name, b.name)), 60)),
             f"{b.name} started again: vshared discovers it again",
             open(dmn.log).read()[-2000:])
        check_crash(t, ctl, dmn, a, b, base)
        if dmn.proc.poll() is None:  # (check_crash said if it died)
            t.ok(dmn.stop() == 0, "vshared exit 0 at the end (ASan: no "
                 "leak)", open(dmn.log).read()[-3000:])
    except Exception as e:
        t.ok(False, f"unexpected {type(e).__name__}: {e}",
             log_since(dmn, 0)[-3000:] + lv.log_tail())
    finally:
        if dmn.proc and dmn.proc.poll() is None:
            dmn.proc.kill()
            dmn.proc.wait()
        lv.stop()
    left = [p for p in pids if os.path.exists(f"/proc/{p}")]
    t.ok(pids and not left, f"libvirtd and virtlogd stopped by pid {pids}",
         left)
    t.done()


if __name__ == "__main__":
    main()
