#!/usr/bin/env python3
"""vshared (release build) under valgrind, with fake VMs (peers.py): a
lend, status and the ledger through the control socket, a hostile peer
(a flooding agent) during a change, a fake QEMU that exits; then
SIGTERM. valgrind must report no error and no definitely lost block, and
the daemon must answer within the agent's deadline while the flood runs.
TAP on stdout."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "shim"))
from hostilelib import HTap, Scene, read_json, wait_for  # noqa: E402
from shimlib import Daemon  # noqa: E402
from vshare_vm import REPO  # noqa: E402

VSHARED = os.path.join(REPO, "build", "rel", "vshared")


def ledger(sc):
    return (read_json(sc.ctl.ledger_path(), {}).get("ledger") or
            {}).get("vms", [])


def owner(sc, cpu):
    for v in ledger(sc):
        if str(cpu) in v["pcpus"].replace("-", ",").split(",") or \
                v["pcpus"] == "0-1":
            return v["name"]
    return None


def valgrind_errors(log):
    """The summaries and every error record of a valgrind log (the
    possibly-lost and reachable records left out: they are not judged)."""
    out, keep = [], False
    for line in log.splitlines():
        body = line.split("== ", 1)[-1] if line.startswith("==") else line
        if not body.strip():
            keep = False
            continue
        if "SUMMARY" in body or body.startswith(("definitely", "indirectly",
                                                 "possibly", "still")):
            out.append(body)
            continue
        if not keep and not line.startswith("==") or \
                "possibly lost in loss record" in body or \
                "still reachable in loss record" in body or \
                "indirectly lost in loss record" in body:
            continue
        if body[0] != " " and ("Invalid" in body or "uninitialised" in body
                               or "definitely lost in" in body
                               or "Syscall param" in body
                               or "Mismatched" in body
                               or "overlap" in body):
            keep = True
        if keep:
            out.append(body)
    return "\n".join(out[-200:])


def agent_requests(vm, after):
    return [e["req"]["execute"] for e in vm.log()[after:]
            if e.get("peer") == "agent" and e.get("what") == "req"]


def status_after_change(t):
    """A status right after a change is answered from the observation
    the last tick began and what the agents confirmed to the change: no
    guest is asked (a busy daemon answers at once), and it shows the new
    owner and the guests' new allocation. Ticks an hour apart, so only
    status could ask."""
    sc = Scene("vq", n=2)
    a, b = sc.names
    d = Daemon(sc.ctl, binary=VSHARED, interval=3600)
    try:
        d.start(timeout=60)
        r = sc.run("cpus", a, "--set", "0-1", "--mode", "coop",
                   "--timeout", "2")
        first = sc.run("status", "--json")  # the first tick: asks
        r = sc.run("lend", "--from", a, "--to", b, "--cpus", "1",
                   "--mode", "coop", "--timeout", "2")
        marks = {n: len(sc.vms[n].log()) for n in (a, b)}
        st = sc.run("status", "--json")
        asked = {n: agent_requests(sc.vms[n], marks[n]) for n in (a, b)}
        doc = json.loads(st.out) if st.rc == 0 else {"vms": []}
        vms = {v["name"]: v for v in doc["vms"]}
        got = {n: (vms.get(n, {}).get("agent") or {}).get("cpus")
               for n in (a, b)}
        held = {n: sc.vms[n].agent_state().get("cpus") for n in (a, b)}
        owners = [c.get("pcpu-owner") for c in
                  vms.get(b, {}).get("vcpus", [])]
        t.ok(first.rc == 0 and r.rc == 0 and st.rc == 0 and
             not any(asked.values()) and got == held and
             got == {a: "0", b: "1"} and owners == [a, b],
             "status after a change: the new owner and the allocations the "
             "agents confirmed, no guest asked",
             (r.diag(), st.diag(), asked, got, held, owners))
    finally:
        if d.proc and d.proc.poll() is None:
            d.proc.send_signal(signal.SIGKILL)
        sc.close()


def main():
    t = HTap()
    status_after_change(t)
    if not shutil.which("valgrind"):
        t.skip("the daemon under valgrind", "valgrind not installed")
        t.done()
        return
    sc = Scene("vd", n=2)
    a, b = sc.names
    d = Daemon(sc.ctl, binary=VSHARED)
    vg = os.path.join(sc.work, "valgrind.log")
    argv_prefix = ["valgrind", "--leak-check=full",
                     "--errors-for-leak-kinds=definite",
                     f"--log-file={vg}"]
    base = d.argv

    d.argv = lambda: argv_prefix + base()
    try:
        d.start(timeout=120)
        r = sc.run("cpus", a, "--set", "0-1", "--mode", "coop",
                   "--timeout", "2")
        t.ok(r.rc == 0 and "done" in r.out, "cpus through vshared (under "
             "valgrind)", r.diag())
        r = sc.run("lend", "--from", a, "--to", b, "--cpus", "1",
                   "--mode", "coop", "--timeout", "2")
        t.ok(r.rc == 0 and owner(sc, 1) == b, "lend through vshared",
             r.diag())
        r = sc.run("status", "--json")
        t.ok(r.rc == 0 and a in r.out and b in r.out,
             "status through vshared", r.diag())
        # a flooding agent in a change: bounded, undone, daemon alive
        sc.vms[b].set(agent={"mode": "junk", "on": "vshare-set-allocation"})
        t0 = time.monotonic()
        # a gives b its last pCPU: b's agent must confine b to 0-1
        r = sc.run("lend", "--from", a, "--to", b, "--cpus", "0",
                   "--mode", "coop", "--timeout", "2", guard=120)
        t.ok(r.rc == 1 and owner(sc, 0) == a and d.ping(),
             f"flooding agent during a change: refused in "
             f"{time.monotonic() - t0:.1f} s, ledger kept, daemon alive",
             r.diag())
        sc.vms[b].honest()
        # the fake QEMU of b exits: b is forgotten
        sc.vms[b].stop()
        t.ok(wait_for(lambda: all(v["name"] != b for v in ledger(sc)), 30)
             is not None and d.ping(),
             "fake QEMU gone: vshared forgets it", ledger(sc))
        rc = d.stop()
        log = open(vg).read()
        t.ok(rc == 0 and "ERROR SUMMARY: 0 errors" in log and
             "definitely lost: 0 bytes" in log or
             ("All heap blocks were freed" in log and rc == 0),
             "valgrind: no error, nothing definitely lost, exit 0",
             f"vshared exit status {rc}\n" + valgrind_errors(log) +
             "\nvshared's log:\n" + open(d.log).read()[-2000:])
    finally:
        if d.proc and d.proc.poll() is None:
            d.proc.send_signal(signal.SIGKILL)
        sc.close()
    t.done()


if __name__ == "__main__":
    main()
