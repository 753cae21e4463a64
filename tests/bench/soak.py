#!/usr/bin/env python3
"""The soak (issue 25): two real TCG guests, vshared with
elastic.lua, four concurrent vsharectl clients issuing random lends,
reclaims, tunes and status, vshared SIGKILLed and restarted every
@kill_every seconds, for @minutes.

After every operation: no pCPU owned twice in the ledger. At each
quiescent snapshot (no journal, the same ledger generation before and
after reading the guests) and after every restart: each coop guest's
cpuset (read through its serial console, not the agent) is the ledger's
pCPUs, and the journal has been replayed (gone). The clients hold their
next op from a kill until that check (ops under way at the kill meet the
dead daemon); the policy keeps running.

Also prints, per op kind and exit code, the count and the median / p90
latency: where the clients' time goes.

Prints BENCH soak_ops, soak_invariant_violations, soak_kills_survived,
soak_snapshots, vshared_rss_growth_kib (the largest growth of one
vshared's RSS from 10 s after its start to its kill). --smoke: 1 minute,
kills every 20 s (make check); default 10 minutes, kills every 60 s."""
import json
import os
import random
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "shim"))
from shimlib import Ctl, Daemon, boot_pair, wait_for  # noqa: E402
from vshare_vm import REPO  # noqa: E402

VMS = ("a", "b")


def read_ledger(ctl):
    try:
        with open(ctl.ledger_path()) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    led = doc.get("ledger", doc)
    return led.get("generation"), {v["name"]: v for v in led.get("vms", [])}


def cpus_of(text):
    out = set()
    for part in (text or "").split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out.update(range(int(lo), int(hi) + 1))
        elif part.strip():
            out.add(int(part))
    return out


def owned_twice(vms):
    """pCPUs two managed VMs own (an unmanaged entry, one only tuned,
    lists every pCPU: it runs anywhere and owns none)."""
    seen, twice = {}, []
    for name, v in vms.items():
        if v.get("unmanaged"):
            continue
        for c in cpus_of(v.get("pcpus")):
            if c in seen:
                twice.append((c, seen[c], name))
            seen[c] = name
    return twice


def guest_cpuset(g):
    return g.shell.out("cat /sys/fs/cgroup/vshare/cpuset.cpus 2>/dev/null "
                       "|| cat /sys/fs/cgroup/cpuset/vshare/cpuset.cpus")


class Soak:
    def __init__(self, ctl, guests, d, seconds, kill_every):
        self.ctl, self.g, self.d = ctl, guests, d
        self.seconds, self.kill_every = seconds, kill_every
        self.lock = threading.Lock()
        self.ops = 0
        self.rcs = {}
        self.violations = []
        self.kills = 0
        self.survived = 0
        self.snapshots = 0
        self.rss_growth = 0
        self.lat = {}    # op kind -> [seconds]
        self.snap_s = [0.0, 0]  # time in snapshots, their count
        self.stop = threading.Event()
        self.go = threading.Event()  # cleared: clients hold their next op
        self.go.set()

    def violation(self, what):
        with self.lock:
            self.violations.append(what)
        try:
            with open(self.ctl.ledger_path()) as f:
                led = f.read()
        except OSError as e:
            led = str(e)
        print(f"# VIOLATION {what}\n# the ledger now: "
              + led.replace("\n", " "), flush=True)

    def op(self, rnd):
        led = read_ledger(self.ctl)
        vms = led[1] if led else {}
        k = rnd.random()
        kind = "lend" if k < 0.45 else "reclaim" if k < 0.65 else \
            "tune" if k < 0.85 else "status"
        if k < 0.45:  # a lend of a random pCPU from its owner
            pc = rnd.choice((0, 1))
            owner = next((n for n, v in vms.items()
                          if pc in cpus_of(v.get("pcpus"))), "a")
            other = "b" if owner == "a" else "a"
            args = ("lend", "--from", owner, "--to", other, "--cpus",
                    str(pc), "--mode", "coop", "--timeout", "5")
        elif k < 0.65:  # a reclaim: everything b holds back to a
            held = vms.get("b", {}).get("pcpus") or "1"
            args = ("lend", "--from", "b", "--to", "a", "--cpus", held,
                    "--mode", "coop", "--timeout", "5")
        elif k < 0.85:
            vm = rnd.choice(VMS)
            args = ("tune", vm, "--weight", str(rnd.randint(50, 400)))
        else:
            args = ("status", "--json", "--timeout", "5")
        t0 = time.monotonic()
        p = self.ctl.run(*args, timeout=120)
        took = time.monotonic() - t0
        after = read_ledger(self.ctl)
        with self.lock:
            self.lat.setdefault(f"{kind} rc {p.returncode}", []).append(took)
            self.ops += 1
            self.rcs[p.returncode] = self.rcs.get(p.returncode, 0) + 1
        if after and owned_twice(after[1]):
            self.violation(f"after {' '.join(args)}: pCPU owned twice "
                           f"{owned_twice(after[1])}")

    def client(self, seed):
        rnd = random.Random(seed)
        while not self.stop.is_set():
            self.go.wait()
            self.op(rnd)

    def snapshot(self, must=False):
        """Guests against the ledger at a quiescent point; False when no
        quiescent point came (changes kept running)."""
        t0 = time.monotonic()
        try:
            return self._snapshot(must)
        finally:
            self.snap_s[0] += time.monotonic() - t0
            self.snap_s[1] += 1

    def _snapshot(self, must):
        for _ in range(40 if must else 5):
            before = read_ledger(self.ctl)
            j1 = os.path.exists(self.ctl.journal_path())
            sets = {n: guest_cpuset(g) for n, g in self.g.items()}
            after = read_ledger(self.ctl)
            j2 = os.path.exists(self.ctl.journal_path())
            if not before or not after or j1 or j2 or \
                    before[0] != after[0]:
                time.sleep(0.2)
                continue
            vms = after[1]
            for n, s in sets.items():
                v = vms.get(n)
                if not v or v.get("unmanaged") or v.get("mode") != "coop" \
                        or not v.get("pcpus"):
                    continue
                if cpus_of(s) != cpus_of(v["pcpus"]):
                    self.violation(f"guest {n} cpuset {s!r} but the ledger "
                                   f"says {v['pcpus']!r} (generation "
                                   f"{after[0]})")
            with self.lock:
                self.snapshots += 1
            return True
        if must:
            self.violation("no quiescent point within 8 s")
        return False

    def rss(self):
        try:
            with open(f"/proc/{self.d.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None

    def run(self):
        threads = [threading.Thread(target=self.client, args=(i,),
                                    daemon=True) for i in range(4)]
        for th in threads:
            th.start()
        start = time.monotonic()
        end = start + self.seconds
        while time.monotonic() < end:
            born = time.monotonic()
            warm = None
            next_kill = start + (self.kills + 1) * self.kill_every
            while time.monotonic() < min(next_kill, end):
                time.sleep(2)
                if warm is None and time.monotonic() - born > 10:
                    warm = self.rss()
                self.snapshot()
            last = self.rss()
            if warm and last:
                self.rss_growth = max(self.rss_growth, last - warm)
            if time.monotonic() >= end:
                break
            self.d.proc.send_signal(signal.SIGKILL)
            self.d.proc.wait(30)
            self.kills += 1
            # the clients' ops under way meet the dead or restarting
            # daemon; no new ones until the recovery is checked
            self.go.clear()
            self.d.start(timeout=120)
            # recovery at start: the journal replayed, guests agree
            if wait_for(lambda: not os.path.exists(
                    self.ctl.journal_path()), 60) and self.snapshot(True):
                self.survived += 1
            else:
                self.violation(f"after kill {self.kills}: journal not "
                               "replayed or no consistent state")
            self.go.set()
        self.stop.set()
        self.go.set()
        for th in threads:
            th.join(180)


def main():
    smoke = "--smoke" in sys.argv
    seconds, kill_every = (60, 20) if smoke else (600, 60)
    # the clients: the release vsharectl (the ASan one spends its time
    # starting); vshared: ASan in the smoke (make check), release in the
    # bench (its RSS is the figure)
    ctl = Ctl(binary=os.path.join(REPO, "build", "rel", "vsharectl"))
    local = os.path.join(ctl.conf, "policies.conf")
    with open(local, "w") as f:
        f.write("[elastic]\nenabled=true\n")
    guests = boot_pair(ctl)
    d = Daemon(ctl, binary=os.path.join(REPO, "build", "san" if smoke else
                                        "rel", "vshared"))
    try:
        for vm, cpus in (("a", "0-1"), ("b", "none")):
            p = ctl.run("cpus", vm, "--set", cpus, "--mode", "coop")
            if p.returncode:
                raise RuntimeError(p.stderr)
        d.start(timeout=120)
        s = Soak(ctl, guests, d, seconds, kill_every)
        t0 = time.monotonic()
        s.run()
        ok = s.snapshot(True)
        print(f"# {time.monotonic() - t0:.0f} s; exit codes {s.rcs}",
              flush=True)
        for kind, ts in sorted(s.lat.items()):
            ts.sort()
            print(f"# {kind}: {len(ts)} ops, median {ts[len(ts) // 2]:.3f}"
                  f" s, p90 {ts[len(ts) * 9 // 10]:.3f} s, total "
                  f"{sum(ts):.0f} s", flush=True)
        print(f"# snapshots: {s.snap_s[1]} tries, {s.snap_s[0]:.0f} s",
              flush=True)
        print(f"BENCH soak_ops {s.ops} ops")
        print(f"BENCH soak_invariant_violations {len(s.violations)} "
              "violations")
        print(f"BENCH soak_kills_survived {s.survived} of {s.kills} kills")
        print(f"BENCH soak_snapshots {s.snapshots} snapshots")
        print(f"BENCH vshared_rss_growth_kib {s.rss_growth} KiB", flush=True)
        rc = 0 if ok and not s.violations and s.survived == s.kills and \
            s.snapshots > 0 else 1
        if d.stop() != 0:
            print("# vshared did not stop cleanly: "
                  + open(d.log).read()[-2000:])
            rc = 1
        sys.exit(rc)
    finally:
        if d.proc and d.proc.poll() is None:
            d.proc.kill()
        for g in guests.values():
            g.stop()


if __name__ == "__main__":
    main()
