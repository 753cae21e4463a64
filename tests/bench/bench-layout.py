#!/usr/bin/env python3
"""make bench: migration-aware layout (paper 001; docs/migration.md).

Two vshare "hosts" on this machine (tests/shim's declared 2-node layout,
one vshared each, metrics interval --interval s) and one 2-node x 1-vCPU
TCG guest, live-migrated back and forth over loopback with the same policy
(layout-simple) and the same declared profile:

  proactive  the destination's -incoming QEMU is registered and
             placed (`vsharectl place --apply`) before the migration starts.
  reactive   the anchor, the reactive optimiser: the destination
             QEMU is registered (vshared follows it) but the same policy
             runs only after the VM arrived, at vshared's next monitor
             tick (the metrics file rewritten after RESUME).

Each figure is the median of --runs migrations of each kind (5; --smoke
1), alternating between the hosts (one guest, a new -incoming QEMU each
time).

BENCH layout_lag_ms            placement done minus the destination's
                               RESUME event (QEMU's timestamp; wall clock),
                               proactive; target <= 0 (before it resumes)
BENCH reactive_layout_lag_ms   the same for the reactive run (the anchor)
BENCH migration_downtime_ms_with / _without   query-migrate "downtime"
BENCH migration_downtime_ratio with / without; target <= 1.1
BENCH layout_misplaced_threads threads not on their placed pCPUs at
                               RESUME, proactive, the worst run (0 expected)

This host has one NUMA node: the VM's speed after arrival (paper 001's
table) cannot be measured here; docs/migration.md gives the script for a
multi-socket host. --smoke: one migration of each kind, figures not judged.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "shim"))
from migratelib import (Incoming, cells_of, declare_profile,  # noqa: E402
                        event_wall, follow, free_port, misplaced, place,
                        wait_event)
from shimlib import SHAPE, Ctl, Daemon  # noqa: E402
from vshare_vm import Guest, Shape  # noqa: E402

PROFILE = {"mpki": 12.5, "bandwidth-mbps": 3200}


def bench(name, value, unit):
    print(f"BENCH {name} {value} {unit}", flush=True)


def migrate(src_qmp, dst, timeout=300):
    """Migrate to @dst's port; (RESUME event, source's query-migrate)."""
    src_qmp.cmd("migrate", uri=f"tcp:127.0.0.1:{dst.port}")
    ev = wait_event(dst.qmp, "RESUME", timeout)
    deadline = time.monotonic() + 60
    while True:
        st = src_qmp.cmd("query-migrate")
        if st.get("status") in ("completed", "failed", "cancelled") or \
                time.monotonic() > deadline:
            return ev, st
        time.sleep(0.05)


def incoming(ctl, daemon, name):
    g = Incoming(Shape.parse(SHAPE), connect_agent=False)
    g.port = free_port()
    g.start_incoming(g.port)
    follow(ctl, daemon, name, g)
    declare_profile(ctl, name, PROFILE)
    return g


def next_tick(d, after):
    """Wait for vshared @d to rewrite its metrics file after @after (wall
    clock): its monitor has run since."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if os.stat(d.metrics).st_mtime > after:
                return True
        except OSError:
            pass
        time.sleep(0.01)
    return False


class Host:
    def __init__(self, interval):
        self.ctl = Ctl()
        self.d = Daemon(self.ctl, interval=interval)


def hop(cur, name, dst, mode):
    """Migrate QEMU @cur to a new -incoming QEMU at host @dst, registered
    there as @name; @mode proactive (placed before) or reactive (placed at
    the first monitor tick after RESUME). (QEMU, lag ms, downtime ms,
    misplaced threads at RESUME)."""
    g = incoming(dst.ctl, dst.d, name)
    vcpus = {v["thread-id"]: v["props"]["node-id"]
             for v in g.qmp.cmd("query-cpus-fast")}
    done, r = None, {}
    if mode == "proactive":
        p, r = place(dst.ctl, name)
        done = time.time()
        if not r.get("applied"):
            raise RuntimeError(f"place: {p.stdout}{p.stderr}")
    ev, st = migrate(cur.qmp, g)
    if not ev or st.get("status") != "completed":
        raise RuntimeError(f"{mode} migration: {st}")
    resumed = event_wall(ev)
    bad = misplaced(g.proc.pid, vcpus, cells_of(r)) if r else {}
    if mode == "reactive":
        if not next_tick(dst.d, resumed):
            raise RuntimeError("vshared's monitor did not tick")
        p, r = place(dst.ctl, name)
        done = time.time()
        if not r.get("applied"):
            raise RuntimeError(f"place: {p.stdout}{p.stderr}")
    return g, (done - resumed) * 1000, st.get("downtime", 0), len(bad)


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] +
                                              v[len(v) // 2]) / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--runs", type=int, default=5,
                    help="migrations of each kind (--smoke: 1)")
    ap.add_argument("--interval", type=int, default=1,
                    help="vshared's metrics (monitor) interval, s")
    args = ap.parse_args()
    runs = 1 if args.smoke else args.runs
    hosts = [Host(args.interval), Host(args.interval)]
    cur = Guest(Shape.parse(SHAPE), connect_agent=False)
    fig = {"proactive": ([], [], []), "reactive": ([], [], [])}
    try:
        cur.start()
        for h in hosts:
            h.d.start()
        follow(hosts[0].ctl, hosts[0].d, "vm0", cur)
        at, name = 0, "vm0"
        for i in range(2 * runs):
            mode = ("proactive", "reactive")[i % 2]
            new = f"vm{i + 1}"
            g, lag, down, bad = hop(cur, new, hosts[1 - at], mode)
            hosts[at].ctl.run("remove", name)
            cur.stop()
            # the host it left stops following it (its pCPUs free again)
            hosts[at].d.request(b'{"execute": "vshare-host-reload"}\n')
            cur, at, name = g, 1 - at, new
            for k, v in zip(fig[mode], (lag, down, bad)):
                k.append(v)
            print(f"# {mode}: lag {lag:.1f} ms, downtime {down} ms, "
                  f"misplaced {bad}", flush=True)
        lag, down, bad = (median(v) for v in fig["proactive"])
        rlag, rdown, _ = (median(v) for v in fig["reactive"])
        bench("layout_lag_ms", round(lag, 1), "ms")
        bench("reactive_layout_lag_ms", round(rlag, 1), "ms")
        bench("layout_misplaced_threads", max(fig["proactive"][2]),
              "threads")
        bench("migration_downtime_ms_with", down, "ms")
        bench("migration_downtime_ms_without", rdown, "ms")
        bench("migration_downtime_ratio",
              round(down / rdown, 3) if rdown else "nan", "ratio")
    finally:
        for h in hosts:
            if h.d.proc and h.d.proc.poll() is None:
                h.d.stop()
        cur.stop()


if __name__ == "__main__":
    main()
