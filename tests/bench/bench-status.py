#!/usr/bin/env python3
"""vshared's status with many VMs (issue 25): N fake VMs of
tests/hostile/peers.py (real processes and vCPU threads, honest QMP and
agent that answer at once, so what is measured is vshared's own cost),
registered, vshared (release build) following them. Measures
`vsharectl status --json` end to end (median of 5), the same request on
the raw socket, and the first status after a change (every VM observed
again). --smoke: 20 VMs; default 200.

    BENCH status_200vms_ms       vsharectl status, cached observation
    BENCH status_200vms_raw_ms   the request on the socket alone
    BENCH status_200vms_cold_ms  after a change: all VMs observed again
"""
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "hostile"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "shim"))
from hostilelib import Scene  # noqa: E402
from shimlib import Daemon  # noqa: E402
from vshare_vm import REPO  # noqa: E402


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return (time.monotonic() - t0) * 1000, r


def main():
    n = 20 if "--smoke" in sys.argv else 200
    t0 = time.monotonic()
    sc = Scene("st", n=n, binary=os.path.join(REPO, "build", "rel",
                                               "vsharectl"), guard=120)
    print(f"# {n} fake VMs registered in {time.monotonic() - t0:.0f} s",
          flush=True)
    d = Daemon(sc.ctl, binary=os.path.join(REPO, "build", "rel", "vshared"),
               interval=10)
    rc = 1
    try:
        d.start(timeout=300)
        req = b'{"execute": "vshare-host-status"}\n'
        ms, first = timed(lambda: d.request(req, timeout=300))
        doc = json.loads(first)["return"]
        print(f"# first status (observes all {len(doc['vms'])} VMs): "
              f"{ms:.0f} ms", flush=True)
        cli, raw = [], []
        for _ in range(5):
            ms, r = timed(lambda: sc.run("status", "--json"))
            cli.append(ms)
            ms, line = timed(lambda: d.request(req, timeout=60))
            raw.append(ms)
        got = len(json.loads(r.out)["vms"]) if r.rc == 0 else -1
        ms_cold, r2 = timed(lambda: (
            sc.run("tune", sc.names[0], "--weight", "150"),
            d.request(req, timeout=300))[1])
        print(f"BENCH status_{n}vms_ms {statistics.median(cli):.0f} ms")
        print(f"BENCH status_{n}vms_raw_ms {statistics.median(raw):.1f} ms")
        print(f"BENCH status_{n}vms_cold_ms {ms_cold:.0f} ms "
              "(a tune, then the status that observes every VM again)",
              flush=True)
        rc = 0 if got == n and r2 and '"return"' in r2 else 1
        if rc:
            print(f"# status listed {got} VMs of {n}: {r.err[-500:]}")
    finally:
        d.stop()
        sc.close()
    sys.exit(rc)


if __name__ == "__main__":
    main()
