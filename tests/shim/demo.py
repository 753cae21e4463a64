#!/usr/bin/env python3
"""make demo: two full-vNUMA TCG guests, A lends node 1 (its vCPU and
128 MiB of virtio-mem) to B and gets it back, all through vsharectl.

The host declares two nodes of one pCPU each (tests/shim/shimlib.py: this
machine is one node; the guests' 2-node vNUMA is real), so each guest has
2 nodes x 1 vCPU: vCPU i runs on pCPU i.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shimlib import REPO, Ctl, SHAPE, boot_pair  # noqa: E402


def show(ctl, *args):
    print(f"\n$ vsharectl {' '.join(args)}", flush=True)
    p = subprocess.run(ctl.argv(*args), text=True, capture_output=True)
    sys.stdout.write(p.stdout)
    sys.stdout.write(p.stderr)
    if p.returncode:
        raise SystemExit(f"vsharectl {' '.join(args)} failed: "
                         f"{p.returncode}")
    return p


def boot_dir():
    """What the host boots from: names, sizes, times of /boot."""
    try:
        return sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns)
                      for e in os.scandir("/boot"))
    except OSError:
        return []


def main():
    boot0 = boot_dir()
    ctl = Ctl(binary=os.path.join(REPO, "build", "rel", "vsharectl"))
    print(f"== host layout (declared, {ctl.conf}/host.conf): node0 = pCPU 0,"
          f" node1 = pCPU 1\n== booting guests a and b ({SHAPE}) under TCG")
    g = boot_pair(ctl)
    try:
        for n, x in g.items():
            print(f"   {n}: ready after {x.boot_seconds:.1f} s, "
                  f"QMP {x.path('qmp-shim.sock')}")
        show(ctl, "list")
        show(ctl, "host-check")
        # a owns the whole host; b is parked until it gets something.
        show(ctl, "cpus", "a", "--set", "0-1")
        show(ctl, "cpus", "b", "--set", "none")
        g["a"].shell.run("for i in 1 2; do (while :; do :; done) & "
                         "echo $! >> /tmp/spin; done")
        g["b"].shell.run("(while :; do :; done) &")
        print("\n== before: a runs a CPU hog on both vCPUs, b is parked")
        show(ctl, "status", "--interval", "1")
        print("== a lends node 1 (pCPU 1 + 128 MiB) to b")
        show(ctl, "lend", "--from", "a", "--to", "b", "--cpus", "1",
             "--node", "1", "--mem", "128M")
        show(ctl, "status", "--interval", "1")
        print("== b gives it back")
        show(ctl, "lend", "--from", "b", "--to", "a", "--cpus", "1",
             "--node", "1", "--mem", "128M")
        show(ctl, "status", "--interval", "1")
        show(ctl, "ledger", "show")
    finally:
        for x in g.values():
            x.stop()
    # the guests' kernel comes out of Debian's package, unpacked in the
    # cache (tests/tools/fetch-kernel.sh): the host's own is never touched
    if boot_dir() != boot0:
        raise SystemExit("the demo changed the host's /boot")
    print("\n== the host's /boot is as it was (the guests' kernel is "
          "unpacked in the cache, not installed)")


if __name__ == "__main__":
    main()
