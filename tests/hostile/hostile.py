#!/usr/bin/env python3
"""vsharectl against hostile peers (issue 11): fake QMP monitors and fake
guest agents (tests/hostile/peers.py, no QEMU, no guest) that flood, stall,
lie, send 8 MB, forge thread ids or send the wrong JSON types; a local
non-root user against the lock; vsharectl killed at every crash point and
during a slow agent call. TAP on stdout.

Written to the fixed vsharectl's contract (issue 11, docs/vsharectl.md):
every peer call has one deadline (--timeout for the agent, --qmp-timeout
for QMP); replies are capped (agent 256 KiB, QMP a few MiB); vCPU thread ids
must be threads of the QMP peer's process (SO_PEERCRED); exit codes 1
failed/unreachable, 3 refused, 5 corrupt, 7 busy. Checked from outside
vsharectl: the ledger's bytes, the journal, /proc of foreign processes (a
`sleep` child and this runner), the fakes' own record of what the guest and
QEMU hold, and vsharectl's peak RSS (wait4).

The hang guard of every run is the configured timeout + 5 s; a run that
hits it is killed and fails. Tests needing --qmp-timeout are skipped, with
the reason, by a vsharectl that does not know the option.
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostilelib import (CG_V2, CPU_V1, MiB, NOISE, VMEM_INIT,  # noqa: E402
                        HTap, ProcState, Scene, cpulist, has_option,
                        ledger_body, ledger_bytes, pinned, read_json,
                        thread_quota, vsharectl_binary)

BIN = vsharectl_binary()
T = 1.0                 # --timeout and --qmp-timeout of hostile runs, s
GUARD = T + 5           # hang guard: a run still going is killed
QMPT = False            # vsharectl knows --qmp-timeout (set in main)
NO_QMPT = ("vsharectl has no --qmp-timeout (issue 11): a QMP peer's "
           "deadline cannot be made short")
MIN_QUOTA = "1000" if CPU_V1 else "1000 100000"
TOO_LARGE = r"too (large|big|long)|exceed|limit|at most|[KM]iB|bytes"


def opts(timeout=T, wait=2):
    o = ["--timeout", str(timeout), "--wait", str(wait)]
    if QMPT:
        o += ["--qmp-timeout", str(timeout)]
    return o


def vcpus_of(pcpus):
    """pCPU i = vCPU i on the declared host (node0 = pCPU 0, node1 = 1)."""
    return ",".join(str(c) for c in sorted(cpulist(pcpus))) \
        .replace("0,1", "0-1")


def guests_agree(sc, ignore=()):
    """Every fake guest holds what the ledger says (coop: the agent's
    allocation; memory: QEMU's requested size); a VM outside the ledger
    holds everything it had (all vCPUs, 128M per node). @ignore: VMs a
    `forget` left as they were."""
    body = ledger_body(sc.ctl) or {"vms": []}
    led = {v["name"]: v for v in body["vms"]}
    bad = []
    for nm, vm in sc.vms.items():
        if nm in ignore:
            continue
        v = led.get(nm)
        cpus = vm.agent_state().get("cpus")
        mem = {n: d["requested-size"] for n, d in vm.vmem().items()}
        if v is None:
            want_cpus, want_mem = "0-1", {0: VMEM_INIT, 1: VMEM_INIT}
        else:
            want_cpus = vcpus_of(v["pcpus"]) \
                if v["mode"] == "coop" and v["pcpus"] else cpus
            vb = v["vmem-bytes"]
            want_mem = {n: vb[n] if n < len(vb) else 0 for n in (0, 1)}
        if cpus != want_cpus or mem != want_mem:
            bad.append(f"{nm}: guest cpus {cpus} (ledger: {want_cpus}), "
                       f"QEMU sizes {mem} (ledger: {want_mem})")
    return not bad, "; ".join(bad)


class H:
    """Shared state: the TAP stream, the foreign processes, the anchor."""

    def __init__(self, t):
        self.t = t
        self.sleep = subprocess.Popen(["sleep", "1000"])
        self.normal_rss = None

    def foreign(self):
        return ProcState(self.sleep.pid), ProcState(os.getpid())

    def foreign_check(self, before):
        """True when the sleep child and this runner are as before; puts
        them back otherwise (a defective vsharectl pinned/moved them)."""
        now = self.foreign()
        same = all(a == b for a, b in zip(before, now))
        diff = {"sleep": before[0].diff(now[0]),
                "runner": before[1].diff(now[1])}
        for s in before:
            s.restore()
        return same, diff

    def close(self):
        self.sleep.kill()
        self.sleep.wait()


def expect_failure(h, label, sc, r, before, peer, journal="none",
                   rcs=(1,), msg=None, guard=GUARD, name_peer=True):
    """A run against a hostile peer: bounded time, exit in @rcs, a clear
    message naming the peer, the ledger byte-identical, and the journal:
    "none" (gone), "kept" (a slow agent: must stay) or "either" (gone, or
    kept and the message says to run recover). A kept journal must then be
    finished by `recover` once the peers are honest."""
    t = h.t
    t.ok(not r.killed and r.secs < guard and r.rc in rcs,
         f"{label}: exit {'/'.join(map(str, rcs))} in bounded time "
         f"({r.secs:.2f} s, guard {guard:.0f} s)", r.diag())
    sock = sc.vm.agent if peer == "agent" else sc.vm.qmp
    peer_re = {"agent": r"agent", "qmp": r"QMP|monitor|query-|qom-"}[peer]
    named = (not name_peer or re.search(peer_re, r.err, re.I)) and \
        (sc.name in r.err or sock in r.err)
    clean = not NOISE.search(r.err + r.out)
    t.ok(named and clean and (msg is None or re.search(msg, r.err, re.I)),
         f"{label}: clear message naming the "
         f"{peer + ' and the ' if name_peer else ''}VM" +
         (f" (/{msg}/)" if msg else "") + ", no sanitizer/GLib noise",
         r.err[-2000:] + r.out[-500:])
    j = sc.journal()
    jtext = read_json(sc.ctl.journal_path())
    same = ledger_bytes(sc.ctl) == before
    want = {"none": not j, "kept": j,
            "either": not j or re.search(r"recover", r.err)}[journal]
    t.ok(same and want,
         f"{label}: ledger byte-identical, journal "
         + {"none": "removed", "kept": "kept (agent slow: the change is "
            "retried by recover)", "either": "removed (or kept, saying "
            "`recover`)"}[journal],
         f"journal present: {j}; ledger same: {same}; ledger now: "
         f"{ledger_body(sc.ctl)}")
    if j:
        for vm in sc.vms.values():
            vm.honest()
        rr = sc.run("recover", *opts(), guard=GUARD)
        body = ledger_body(sc.ctl)
        old = json.loads(before)["ledger"] if before else None
        new = jtext.get("after") if jtext else None
        agree, why = guests_agree(sc)
        t.ok(rr.rc == 0 and not sc.journal() and body in (old, new) and
             agree,
             f"{label}: recover with the peers answering: no journal, "
             f"ledger = before or after, guests agree with it",
             rr.diag() + f"\nledger {body}\nbefore {old}\nafter {new}\n"
             + why)


def scene(tag, n=1, baseline=("0-1", "coop")):
    sc = Scene(tag, n, BIN, guard=GUARD)
    if baseline:
        sc.baseline(*baseline)
    return sc


# ---- 0: honest peers (positive controls) ---

def test_controls(h):
    t = h.t
    sc = scene("ok", baseline=None)
    try:
        r = sc.run("cpus", sc.name, "--set", "0-1", "--mode", "coop")
        h.normal_rss = r.rss_kib
        t.ok(r.rc == 0 and sc.vm.agent_state()["cpus"] == "0-1",
             f"control: honest peers, cpus --set 0-1 coop -> exit 0 "
             f"({r.secs:.2f} s, peak RSS {r.rss_kib} KiB)", r.diag())
        before = h.foreign()
        r = sc.run("cpus", sc.name, "--set", "0", "--mode", "enforce",
                   *opts())
        path, quota = thread_quota(sc.vm.pid, sc.vm.tids[1])
        pins = [pinned(x) for x in sc.vm.tids]
        same, diff = h.foreign_check(before)
        t.ok(r.rc == 0 and quota == MIN_QUOTA and
             path.endswith(f"/vshare/{sc.name}/vcpu1") and
             pins == ["0", "1"] and same,
             "control: enforce acts on the fake's own vCPU threads "
             "(pinned 0/1, vCPU 1 throttled) and on nothing else",
             r.diag() + f"\ncgroup {path} quota {quota} pins {pins} "
             f"foreign diff {diff}")
        r = sc.run("status", "--json", "--interval", "0.01", *opts())
        st = json.loads(r.out) if r.rc == 0 else {}
        vm = (st.get("vms") or [{}])[0]
        t.ok(r.rc == 0 and vm.get("agent", {}).get("reachable") and
             [v["thread"] for v in vm.get("vcpus", [])] == sc.vm.tids,
             "control: status sees the fake's threads and agent",
             r.diag())
        sc.vm.set(qmp={"mode": "events", "events_s": 0.3})
        r = sc.run("cpus", sc.name, "--set", "0", "--mode", "coop", *opts())
        t.ok(r.rc == 0 and sc.vm.agent_state()["cpus"] == "0",
             "control: QMP events for 0.3 s before a reply (within the "
             "deadline) are skipped: exit 0", r.diag())
    finally:
        sc.close()


# ---- 1: bounded time against flooding / silent / slow peers ---

def test_agent_stalls(h):
    for mode, what in (("junk", "floods junk bytes"),
                       ("stale", "floods valid replies with the wrong id"),
                       ("silent", "never answers")):
        sc = scene("ag-" + mode)
        try:
            before = ledger_bytes(sc.ctl)
            sc.vm.set(agent={"mode": mode})
            r = sc.run("cpus", sc.name, "--set", "0", "--mode", "coop",
                       *opts())
            expect_failure(h, f"agent {what}: cpus coop", sc, r, before,
                           "agent", journal="either")
        finally:
            sc.close()
    # status is read-only: the agent is reported unreachable, in time
    sc = scene("st-junk")
    try:
        before = ledger_bytes(sc.ctl)
        sc.vm.set(agent={"mode": "junk"})
        r = sc.run("status", "--json", "--interval", "0.01", *opts())
        try:
            ag = json.loads(r.out)["vms"][0]["agent"]
        except (ValueError, KeyError, IndexError):
            ag = {}
        h.t.ok(not r.killed and r.secs < GUARD and r.rc in (0, 1) and
               ag.get("reachable") is False and
               re.search(r"agent|answer|time", ag.get("error", ""), re.I) and
               ledger_bytes(sc.ctl) == before,
               f"agent floods junk bytes: status returns in bounded time "
               f"({r.secs:.2f} s) showing the agent unreachable", r.diag())
    finally:
        sc.close()
    # a lend whose receiver's agent floods: the giver is given back
    sc = scene("lend", n=2)
    try:
        a, b = sc.names
        before = ledger_bytes(sc.ctl)
        sc.vms[b].set(agent={"mode": "junk"})
        r = sc.run("lend", "--from", a, "--to", b, "--cpus", "1",
                   "--mode", "coop", *opts())
        sc.vm = sc.vms[b]
        sc.name = b
        j = sc.journal()
        expect_failure(h, "receiver's agent floods: lend", sc, r, before,
                       "agent", journal="either")
        if not j:
            cpus = sc.vms[a].agent_state()["cpus"]
            h.t.ok(cpus == "0-1",
                   "receiver's agent floods: lend undone, the giver's "
                   "guest holds 0-1 again", f"giver's guest cpus {cpus}")
    finally:
        sc.close()


def test_slow_agent(h):
    t = h.t
    sc = scene("slow")
    try:
        before = ledger_bytes(sc.ctl)
        sc.vm.set(agent={"mode": "slow", "delay": 3})
        r = sc.run("cpus", sc.name, "--set", "0", "--mode", "coop", *opts())
        expect_failure(h, "agent answers set-allocation after 3 s "
                       f"(--timeout {T:g})", sc, r, before, "agent",
                       journal="kept")
    finally:
        sc.close()
    # auto give-back: the guest is confined to 0 and its agent syncs but
    # never answers the set-allocation: never exit 0 with the guest
    # still confined (issue 11: "auto never reports success while the
    # guest holds a set the ledger does not say")
    sc = scene("mute", baseline=("0", "coop"))
    try:
        before = ledger_bytes(sc.ctl)
        sc.vm.set(agent={"mode": "slow", "delay": None})
        r = sc.run("cpus", sc.name, "--set", "0-1", "--mode", "auto",
                   *opts())
        held = sc.vm.agent_state()["cpus"]
        led = ledger_body(sc.ctl)
        t.ok(not r.killed and r.secs < GUARD and
             (r.rc != 0 and ledger_bytes(sc.ctl) == before or
              r.rc == 0 and held == "0-1"),
             f"auto give-back, agent never answers set-allocation: no "
             f"exit 0 while the guest holds {held} ({r.secs:.2f} s)",
             r.diag() + f"\nledger {led}")
    finally:
        sc.close()


def test_qmp_stalls(h):
    cases = [
        ("silent after the greeting", {"mode": "silent"}, "cpus", "none"),
        ("streams events, never replies",
         {"mode": "events", "events_s": None}, "cpus", "none"),
        (f"streams events for {3 * T:g} s, then replies",
         {"mode": "events", "events_s": 3 * T}, "cpus", "none"),
        ("floods junk bytes", {"mode": "junk"}, "cpus", "none"),
        ("silent on qom-set", {"mode": "silent", "on": "qom-set"}, "mem",
         "either"),
    ]
    for label, beh, cmd, journal in cases:
        label = f"QMP {label}: {cmd}"
        if not QMPT:
            h.t.skip(label, NO_QMPT)
            continue
        sc = scene("q" + str(abs(hash(label)) % 10000))
        try:
            before = ledger_bytes(sc.ctl)
            sc.vm.set(qmp=beh)
            args = ["cpus", sc.name, "--set", "0", "--mode", "coop"] \
                if cmd == "cpus" else \
                ["mem", sc.name, "--node", "1", "--size", "256M"]
            r = sc.run(*args, *opts())
            expect_failure(h, label, sc, r, before, "qmp", journal=journal)
        finally:
            sc.close()


def test_busy_unplug(h):
    """A guest whose first unplug met a busy page (it would retry after
    its 50 s timer): vsharectl changes the request and back after a
    pause without progress, and the shrink completes."""
    sc = scene("busy")
    try:
        sc.vm.set(qmp={"mode": "honest", "busy_once": True})
        n0 = len(sc.vm.log())
        t0 = time.monotonic()
        r = sc.run("mem", sc.name, "--node", "1", "--size", "0",
                   "--mem-timeout", "20")
        secs = time.monotonic() - t0
        asked = [e["req"]["arguments"]["value"] for e in sc.vm.log()[n0:]
                 if e.get("what") == "req" and
                 e["req"].get("execute") == "qom-set"]
        d = sc.vm.vmem().get(1, {})
        h.t.ok(r.rc == 0 and d.get("size") == 0 and
               d.get("requested-size") == 0 and secs < 10 and
               asked == [0, 2 << 20, 0],
               f"a guest's unplug that met a busy page: requested again "
               f"after a pause, done in {secs:.1f} s (not at its 50 s retry "
               f"timer); qom-set values {asked}", (r.diag(), d))
    finally:
        sc.close()


# ---- 2: 8 MB replies ---

def test_big(h):
    # Bound: twice the peak RSS of the same build on a normal small reply,
    # measured in this run (test_controls; ~23 MiB for the ASan build
    # here). A reader capped at 256 KiB (agent) or a few MiB (QMP) stays
    # well inside it; parsing the 8 MB reply into a JSON tree does not
    # (measured on the uncapped build: 0.65 GB for QMP, 1.5 GB for the
    # agent).
    bound = 2 * (h.normal_rss or 32 * 1024)
    for peer, beh in (("qmp", {"mode": "big"}), ("agent", {"mode": "big"})):
        sc = scene("big-" + peer)
        try:
            before = ledger_bytes(sc.ctl)
            sc.vm.set(**{peer: beh})
            guard = GUARD if peer == "agent" or QMPT else 10 + 5
            # no leak check here: LeakSanitizer scanning the 0.6-1.5 GB
            # heap of the uncapped build takes seconds, and RSS is the point
            r = sc.run("cpus", sc.name, "--set", "0", "--mode", "coop",
                       *opts(), guard=guard, env=Scene.QUICK)
            label = f"{'QMP' if peer == 'qmp' else 'agent'} 8 MB reply"
            expect_failure(h, label, sc, r, before, peer, msg=TOO_LARGE,
                           journal="none" if peer == "qmp" else "either",
                           guard=guard)
            h.t.ok(r.rss_kib < bound,
                   f"{label}: vsharectl's peak RSS {r.rss_kib} KiB < "
                   f"{bound} KiB (2 x a normal run)", r.diag())
        finally:
            sc.close()


# ---- 3: thread ids ---

def cpus_reply(tids, drop=None):
    out = []
    for i, tid in enumerate(tids):
        e = {"cpu-index": i, "thread-id": tid, "props": {"node-id": i},
             "target": "x86_64", "qom-path": f"/machine/cpu[{i}]"}
        if drop == i:
            del e["thread-id"]
        out.append(e)
    return out


def test_thread_ids(h):
    sleep, me = h.sleep.pid, os.getpid()
    cases = [
        ("forged: a sleep child and the test runner", "enforce",
         lambda vm: cpus_reply([sleep, me])),
        ("forged: the test runner and a sleep child", "coop",
         lambda vm: cpus_reply([me, sleep])),
        ("forged: vCPU 1 is a sleep child", "auto",
         lambda vm: cpus_reply([vm.tids[0], sleep])),
        ("missing thread-id", "enforce",
         lambda vm: cpus_reply(vm.tids, drop=1)),
        ("thread-id 0", "enforce", lambda vm: cpus_reply([vm.tids[0], 0])),
        ("duplicate thread ids", "enforce",
         lambda vm: cpus_reply([vm.tids[0], vm.tids[0]])),
        ("thread-id 2^32 + the runner's pid", "enforce",
         lambda vm: cpus_reply([vm.tids[0], (1 << 32) + me])),
        ("negative thread-id", "enforce",
         lambda vm: cpus_reply([vm.tids[0], -me])),
    ]
    for i, (label, mode, reply) in enumerate(cases):
        sc = scene(f"tid{i}")
        try:
            before = ledger_bytes(sc.ctl)
            fore = h.foreign()
            sc.vm.set(qmp={"mode": "honest", "cpus": reply(sc.vm)})
            r = sc.run("cpus", sc.name, "--set", "0", "--mode", mode,
                       *opts())
            same, diff = h.foreign_check(fore)
            label = f"QMP {label} ({mode})"
            h.t.ok(same, f"{label}: nothing acted on the sleep child or "
                   "the runner (/proc affinity and cgroups)",
                   f"changed: {diff}\n" + r.diag())
            expect_failure(h, label, sc, r, before, "qmp", rcs=(1, 3),
                           msg=r"thread", name_peer=False)
        finally:
            sc.close()


# ---- wrong JSON types ---

def test_wrong_types(h):
    def vmem(**over):
        out = []
        for n in (0, 1):
            d = {"id": f"vm{n}", "node": n, "requested-size": VMEM_INIT,
                 "size": VMEM_INIT, "max-size": 512 * MiB,
                 "block-size": 2 * MiB}
            d.update(over)
            out.append({"type": "virtio-mem", "data": d})
        return out
    qmp_cases = [
        ("thread-id a string", lambda vm: {"cpus": [
            dict(e, **{"thread-id": str(e["thread-id"])})
            for e in cpus_reply(vm.tids)]}),
        ("props an array", lambda vm: {"cpus": [
            dict(e, props=[i]) for i, e in enumerate(cpus_reply(vm.tids))]}),
        ("vCPU entries arrays", lambda vm: {"cpus": [
            [i, t, i] for i, t in enumerate(vm.tids)]}),
        ("query-cpus-fast returns an object",
         lambda vm: {"cpus": cpus_reply(vm.tids)[0]}),
        ("thread-id 1e30", lambda vm: {"cpus": cpus_reply(
            [vm.tids[0], 1e30])}),
        ("node-id a string", lambda vm: {"cpus": [
            dict(e, props={"node-id": str(i)})
            for i, e in enumerate(cpus_reply(vm.tids))]}),
        ("virtio-mem data an array", lambda vm: {"mem": [
            {"type": "virtio-mem", "data": [1, 2]}] * 2}),
        ("virtio-mem sizes strings", lambda vm: {"mem": vmem(
            size="134217728", **{"requested-size": "134217728"})}),
        ("query-memory-devices returns an object",
         lambda vm: {"mem": {"type": "virtio-mem"}}),
        ("virtio-mem max-size 1e300, negative size", lambda vm: {
            "mem": vmem(size=-2 * MiB, **{"max-size": 1e300})}),
    ]
    for i, (label, beh) in enumerate(qmp_cases):
        sc = scene(f"wq{i}")
        try:
            before = ledger_bytes(sc.ctl)
            fore = h.foreign()
            sc.vm.set(qmp=dict(beh(sc.vm), mode="honest"))
            r = sc.run("cpus", sc.name, "--set", "0", "--mode", "enforce",
                       *opts())
            same, diff = h.foreign_check(fore)
            if not same:
                h.t.diag(f"foreign processes changed: {diff}")
            expect_failure(h, f"QMP {label}", sc, r, before, "qmp",
                           rcs=(1, 3))
        finally:
            sc.close()
    agent_cases = [
        ("return a string", {"return": "ok"}),
        ("cpus/mems integers", {"return": {"cpus": 0, "mems": 1}}),
        ("return an array", {"return": []}),
        ("cpus an array", {"return": {"cpus": ["0"], "mems": "0-1"}}),
        ("error a string", {"error": "boom"}),
    ]
    for i, (label, reply) in enumerate(agent_cases):
        sc = scene(f"wa{i}")
        try:
            before = ledger_bytes(sc.ctl)
            sc.vm.set(agent={"mode": "raw", "reply": reply})
            r = sc.run("cpus", sc.name, "--set", "0", "--mode", "coop",
                       *opts())
            expect_failure(h, f"agent set-allocation {label}", sc, r,
                           before, "agent", journal="either")
        finally:
            sc.close()


# ---- 4: a lying guest ---

def test_lying(h):
    t = h.t
    for what in ("cpus", "mems"):
        sc = scene("lie-" + what)
        try:
            before = ledger_bytes(sc.ctl)
            sc.vm.set(agent={"mode": "lie", "what": what})
            r = sc.run("cpus", sc.name, "--set", "0", "--mode", "coop",
                       *opts())
            expect_failure(h, f"agent replies other {what} than asked: "
                           "coop", sc, r, before, "agent", journal="either")
        finally:
            sc.close()
    sc = scene("lie-auto")
    try:
        before = ledger_bytes(sc.ctl)
        sc.vm.set(agent={"mode": "lie", "what": "cpus"})
        r = sc.run("cpus", sc.name, "--set", "0", "--mode", "auto", *opts())
        led = {v["name"]: v for v in (ledger_body(sc.ctl) or {})
               .get("vms", [])}.get(sc.name, {})
        path, quota = thread_quota(sc.vm.pid, sc.vm.tids[1])
        enforced = r.rc == 0 and led.get("mode") == "enforce" and \
            led.get("pcpus") == "0" and quota == MIN_QUOTA
        refused = r.rc != 0 and ledger_bytes(sc.ctl) == before
        t.ok(not r.killed and (enforced or refused),
             "agent replies other cpus than asked: auto falls back to "
             "enforce (vCPU 1 throttled) or fails, never exit 0 as coop",
             r.diag() + f"\nledger entry {led}, vCPU 1 cgroup {path} "
             f"quota {quota}")
    finally:
        sc.close()


# ---- 5: a local non-root user ---

def lock_held(path, proc):
    """The flock by nobody is in /proc/locks, or its flock(1) gave up."""
    ino = os.stat(path).st_ino
    if proc.poll() is not None:
        return "exited"
    with open("/proc/locks") as f:
        for line in f:
            if "FLOCK" in line and f":{ino} " in line:
                return "held"
    return None


def test_non_root(h):
    t = h.t
    sc = scene("perm")
    holder = None
    try:
        # nobody can reach the state dir: only its own mode protects it
        for d in (sc.work, sc.ctl.conf):
            os.chmod(d, 0o755)
        st = sc.ctl.state
        modes = {p: oct(os.stat(os.path.join(st, p)).st_mode & 0o777)
                 for p in (".", "lock", "ledger.json")}
        t.ok(modes == {".": "0o700", "lock": "0o600",
                       "ledger.json": "0o600"},
             "after a change: state dir 0700, lock and ledger 0600",
             modes)
        before = ledger_bytes(sc.ctl)
        lock = os.path.join(st, "lock")
        holder = subprocess.Popen(
            ["runuser", "-u", "nobody", "--", "flock", lock, "sleep", "30"],
            start_new_session=True, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        how = None
        for _ in range(500):
            how = lock_held(lock, holder)
            if how:
                break
            time.sleep(0.01)
        r = sc.run("recover", *opts(wait=1))
        t.ok(r.rc == 0 or (r.rc == 7 and re.search(
            r"non-root|not root|uid \d+|nobody|unprivileged", r.err)),
             f"nobody's `flock STATE/lock` ({how or 'not seen'}) cannot "
             "block root's recover, or is reported as non-root",
             r.diag())
        for cmd in (["status", "--interval", "0.01"],
                    ["cpus", sc.name, "--set", "0", "--mode", "coop"]):
            r = sc.run(*cmd, *opts(), user="nobody")
            t.ok(r.rc not in (0, None) and not r.killed and
                 re.search(r"root|permission|not permitted|privilege",
                           r.err, re.I) and
                 not NOISE.search(r.err) and
                 ledger_bytes(sc.ctl) == before,
                 f"non-root `vsharectl {cmd[0]}`: clear error, ledger "
                 "unchanged", r.diag())
    finally:
        if holder:
            if holder.poll() is None:
                os.killpg(holder.pid, 9)
            holder.wait()
        sc.close()


# ---- 6: crash points and SIGKILL during a slow agent call ---

def test_crash_points(h):
    t = h.t

    def one(op, point, setup, args):
        sc = scene(f"cr-{op}-{point}", n=2, baseline=None)
        try:
            a, b = sc.names
            setup(sc, a, b)
            before = ledger_body(sc.ctl)
            r = sc.run(*args(a, b), env={"VSHARE_TEST_CRASH": point})
            jtext = read_json(sc.ctl.journal_path())
            rr = sc.run("recover", *opts())
            body = ledger_body(sc.ctl)
            want = jtext.get("after") if point == "commit" and jtext \
                else before
            # `forget` touches no VM: the forgotten one holds what it had
            agree, why = guests_agree(sc, ignore=(b,) if op == "forget"
                                      else ())
            t.ok(r.rc == -9 and jtext is not None and rr.rc == 0 and
                 not sc.journal() and body == want and agree,
                 f"{op} killed at {point}: recover -> "
                 f"{'new' if point == 'commit' else 'old'} ledger, no "
                 "journal, guests agree",
                 f"run rc {r.rc}, journal {jtext is not None}\n"
                 + rr.diag() + f"\nledger {body}\nwant {want}\n{why}")
        finally:
            sc.close()

    def give_a(sc, a, b):
        sc.run("cpus", a, "--set", "0-1", "--mode", "coop")

    def give_both(sc, a, b):
        sc.run("cpus", a, "--set", "0", "--mode", "coop")
        sc.run("cpus", b, "--set", "1", "--mode", "coop")

    lend = lambda a, b: ["lend", "--from", a, "--to", b, "--cpus", "1",  # noqa
                         "--node", "1", "--mem", "128M", "--mode", "coop"]
    for p in ("intent", "step1", "step2", "step3", "step4", "commit"):
        one("lend", p, give_a, lend)
    for p in ("intent", "step1", "commit"):
        one("cpus", p, give_a, lambda a, b: ["cpus", a, "--set", "0",
                                             "--mode", "coop"])
    for p in ("intent", "step1", "commit"):
        one("mem", p, give_a, lambda a, b: ["mem", a, "--node", "0",
                                            "--size", "256M"])
    for p in ("intent", "commit"):
        one("forget", p, give_both, lambda a, b: ["forget", b])

    # SIGKILL while vsharectl waits on a slow agent, then during recover
    sc = scene("kill")
    try:
        before = ledger_body(sc.ctl)
        sc.vm.set(agent={"mode": "slow", "delay": None})
        for what, args in (("cpus", ["cpus", sc.name, "--set", "0",
                                     "--mode", "coop"]),
                           ("recover", ["recover"])):
            n = len(sc.vm.log())
            run = sc.start(*args, "--timeout", "10", "--wait", "2")
            seen = sc.vm.wait_request("vshare-set-allocation", after=n,
                                      timeout=10)
            run.kill()
            r = run.finish(5)
            t.ok(seen and r.rc == -9 and sc.journal(),
                 f"SIGKILL of {what} waiting on a slow set-allocation: "
                 "journal left", r.diag())
        sc.vm.honest()
        rr = sc.run("recover", *opts())
        agree, why = guests_agree(sc)
        t.ok(rr.rc == 0 and not sc.journal() and
             ledger_body(sc.ctl) == before and agree,
             "recover with the agent answering: old ledger, guest holds "
             "0-1 again, no journal", rr.diag() + "\n" + why)
    finally:
        sc.close()


def main():
    global QMPT
    t = HTap()
    if os.geteuid() != 0:
        t.skip_all("needs root: vsharectl pins/throttles threads, runuser")
    if not os.access(BIN, os.X_OK):
        t.skip_all(f"{BIN} not built (make build/san/vsharectl)")
    QMPT = has_option(BIN, "cpus", "--qmp-timeout")
    t.diag(f"vsharectl {BIN}; --qmp-timeout "
           f"{'known' if QMPT else 'unknown'}; cgroup "
           f"{'v1 cpu' if CPU_V1 else 'v2' if CG_V2 else 'none'}")
    t0 = time.monotonic()
    h = H(t)
    try:
        for fn in (test_controls, test_agent_stalls, test_slow_agent,
                   test_qmp_stalls, test_busy_unplug, test_big,
                   test_thread_ids,
                   test_wrong_types, test_lying, test_non_root,
                   test_crash_points):
            t1 = time.monotonic()
            fn(h)
            t.diag(f"{fn.__name__}: {time.monotonic() - t1:.1f} s")
    finally:
        h.close()
    t.diag(f"total {time.monotonic() - t0:.1f} s")
    t.done()


if __name__ == "__main__":
    main()
