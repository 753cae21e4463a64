#!/usr/bin/env python3
"""libvirt's own vCPU commands through vshare-agent --guest-vcpus: the real
`virsh guestvcpus` and `virsh setvcpus --guest` against a private libvirtd
(libvirtlib.py) and one 2-node TCG domain whose org.qemu.guest_agent.0 port
(opened by libvirt itself) is served by vshare-agent, started by hand in
the guest. TAP on stdout; checked in the guest over the shell channel.

  tests/libvirt/guestvcpus.py           # the test (make check)
  tests/libvirt/guestvcpus.py --bench   # BENCH lines (make bench)

--bench: the same domain, `virsh setvcpus DOM 1 --guest` and back to 2,
--repeat times through vshare-agent, then through Debian's qemu-ga on the
same port (it offlines the vCPU in the kernel): medians, and
guest_set_vcpus_confine_vs_qga_ratio (take-away). --smoke: one repetition.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "vm"))
sys.path.insert(0, HERE)
from libvirtlib import Libvirt, LibvirtError  # noqa: E402
from vshare_vm import Tap, parse_list  # noqa: E402

PORT = "/dev/virtio-ports/org.qemu.guest_agent.0"
AGENT = "/usr/sbin/vshare-agent --port org.qemu.guest_agent.0 --guest-vcpus"


def run_agent(d):
    """vshare-agent on qemu-ga's port, in the background; returns once
    libvirt's agent reaches it."""
    d.shell.out(f"{AGENT} >>/run/agent.log 2>&1 & echo $! > /run/ga.pid")
    wait_guest_agent(d)


def run_qga(d):
    d.shell.out("kill $(cat /run/ga.pid); while [ -e /proc/$(cat "
                "/run/ga.pid) ]; do sleep 0.05; done; mkdir -p /run/qga; "
                f"/usr/sbin/qemu-ga -m virtio-serial -p {PORT} -t /run/qga "
                ">>/run/qga.log 2>&1 & echo $! > /run/ga.pid")
    wait_guest_agent(d)


def wait_guest_agent(d, timeout=60):
    end = time.monotonic() + timeout
    while True:
        p = subprocess.run(["virsh", "-q", "-c", d.lv.uri, "guestvcpus",
                            d.name], capture_output=True, text=True)
        if p.returncode == 0:
            return
        if time.monotonic() > end:
            raise LibvirtError(f"no guest agent answers: {p.stderr}")
        time.sleep(0.2)


def guestvcpus(d):
    """virsh guestvcpus: {"vcpus": set, "online": set, "offlinable": set}"""
    out = {}
    for line in d.lv.virsh("guestvcpus", d.name).splitlines():
        k, _, v = line.partition(":")
        if k.strip():
            out[k.strip()] = parse_list(v.strip())
    return out


def allowed(d):
    """Cpus_allowed_list of every user task of the guest (a set of them),
    and cpu1's kernel online state."""
    out = d.shell.out("for s in /proc/[0-9]*/status; do "
                      "grep -q '^VmSize' $s && sed -n "
                      "'s/^Cpus_allowed_list:\\t//p' $s; done | sort -u; "
                      "cat /sys/devices/system/cpu/cpu1/online")
    lines = out.split()
    return set(lines[:-1]), lines[-1]


def virsh_err(d, *args):
    p = subprocess.run(["virsh", "-q", "-c", d.lv.uri, *args],
                       capture_output=True, text=True)
    return p.returncode, p.stderr.strip()


def timed_virsh(d, *args):
    t0 = time.monotonic()
    d.lv.virsh(*args)
    return (time.monotonic() - t0) * 1000


def test(t, d):
    run_agent(d)
    g = guestvcpus(d)
    t.ok(g.get("vcpus") == {0, 1} and g.get("online") == {0, 1},
         "virsh guestvcpus through vshare-agent: vCPUs 0-1, online 0-1", g)
    d.lv.virsh("guestvcpus", d.name, "1", "--disable")
    g = guestvcpus(d)
    tasks, online = allowed(d)
    t.ok(g.get("online") == {0} and tasks == {"0"} and online == "1",
         "virsh guestvcpus --disable 1: reads offline, every task on "
         "CPU 0, the kernel keeps cpu1 online", (g, tasks, online))
    d.lv.virsh("setvcpus", d.name, "2", "--guest")
    g = guestvcpus(d)
    tasks, online = allowed(d)
    t.ok(g.get("online") == {0, 1} and tasks == {"0-1"},
         "virsh setvcpus 2 --guest: given back", (g, tasks))
    d.lv.virsh("setvcpus", d.name, "1", "--guest")
    tasks, online = allowed(d)
    t.ok(guestvcpus(d).get("online") == {0} and tasks == {"0"} and
         online == "1", "virsh setvcpus 1 --guest: taken away by "
         "confinement", (tasks, online))
    rc, err = virsh_err(d, "guestvcpus", d.name, "0", "--disable")
    # libvirt refuses it itself, from guest-get-vcpus' "can-offline":
    # false, as with qemu-ga (the agent's own error: tests/agent)
    t.ok(rc != 0 and "vCPU '0' is not offlinable" in err,
         "vCPU 0: refused as with qemu-ga (can-offline false)", err)
    rc, err = virsh_err(d, "guestvcpus", d.name, "7", "--enable")
    t.ok(rc != 0, "an id the guest does not have is refused", err)
    d.lv.virsh("setvcpus", d.name, "2", "--guest")
    t.eq(allowed(d)[0], {"0-1"}, "and back")
    log = d.shell.out("cat /run/agent.log")
    t.ok("AddressSanitizer" not in log and "CRITICAL" not in log,
         "agent log clean", log[-1500:])


def bench(d, repeat):
    def cycles():
        off, on = [], []
        for _ in range(repeat):
            off.append(timed_virsh(d, "setvcpus", d.name, "1", "--guest"))
            on.append(timed_virsh(d, "setvcpus", d.name, "2", "--guest"))
        return statistics.median(off), statistics.median(on), off, on

    def line(name, value, unit):
        print(f"BENCH {name} {value} {unit}", flush=True)

    run_agent(d)
    a_off, a_on, ao, an = cycles()
    run_qga(d)
    q_off, q_on, qo, qn = cycles()
    print(f"# vshare-agent off {[round(x) for x in ao]} on "
          f"{[round(x) for x in an]}; qemu-ga off {[round(x) for x in qo]} "
          f"on {[round(x) for x in qn]} (ms, virsh start to exit)",
          flush=True)
    line("guest_set_vcpus_confine_ms", f"{a_off:.1f}", "ms")
    line("guest_set_vcpus_confine_back_ms", f"{a_on:.1f}", "ms")
    line("guest_set_vcpus_qga_offline_ms", f"{q_off:.1f}", "ms")
    line("guest_set_vcpus_qga_online_ms", f"{q_on:.1f}", "ms")
    line("guest_set_vcpus_confine_vs_qga_ratio", f"{a_off / q_off:.3f}",
         "ratio")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    if a.smoke:
        a.bench, a.repeat = True, 1
    t = Tap()
    if os.geteuid() != 0:
        t.skip_all("needs root (libvirtd)")
    lv = Libvirt()
    try:
        lv.start()
        d = lv.domain("g", qga_port=True, start_agent=False)
        if a.bench:
            bench(d, a.repeat)
            return
        with t.section("virsh against vshare-agent",
                       lambda: d.console()[-2000:]):
            test(t, d)
    except Exception as e:
        if a.bench:
            raise
        t.ok(False, f"libvirt and the domain start ({type(e).__name__})",
             repr(e))
    finally:
        lv.stop()
    if not a.bench:
        t.done()


if __name__ == "__main__":
    main()
