#!/usr/bin/env python3
"""vshared (release build) under valgrind, with fake VMs (peers.py): a
lend, status and the ledger through the control socket, a hostile peer
(a flooding agent) during a change, a fake QEMU that exits; then
SIGTERM. valgrind must report no error and no definitely lost block, and
the daemon must answer within the agent's deadline while the flood runs.
TAP on stdout."""
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


def main():
    t = HTap()
    if not shutil.which("valgrind"):
        print("1..0 # SKIP valgrind not installed")
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
