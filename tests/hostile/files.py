#!/usr/bin/env python3
"""Files vshared reads, made hostile (ASan+UBSan build, fake VMs of
peers.py): a FIFO as a VM's declared profile (an open or read of it would
wait for ever), a malformed profile, and a reservations.json whose entries
would overflow int64 or name a node no host has. Each is refused with one
log line (not one per metrics tick), and vshared keeps answering.
TAP on stdout."""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "shim"))
from hostilelib import HTap, Scene, wait_for  # noqa: E402
from shimlib import Daemon  # noqa: E402


def log_lines(d, needle):
    return [ln for ln in open(d.log, errors="replace") if needle in ln]


def main():
    t = HTap()
    sc = Scene("files", n=2)
    fifo_vm, bad_vm = sc.names
    prof = os.path.join(sc.ctl.conf, "profiles")
    os.makedirs(prof, exist_ok=True)
    os.mkfifo(os.path.join(prof, fifo_vm + ".json"))
    with open(os.path.join(prof, bad_vm + ".json"), "w") as f:
        f.write('{"mpki": "many", ')
    os.makedirs(sc.ctl.state, exist_ok=True)
    now = int(time.time())
    with open(os.path.join(sc.ctl.state, "reservations.json"), "w") as f:
        json.dump({"reservations": [
            {"vm": "huge", "cpus": "1", "node": 1,
             "until": 9223372036854775807},
            {"vm": "farnode", "cpus": "1", "node": 10 ** 12,
             "until": now + 60},
            {"vm": "negative", "cpus": "1", "node": 1, "until": -5}]}, f)
    d = Daemon(sc.ctl)  # metrics tick every 1 s
    try:
        d.start(timeout=60)
        ticks = wait_for(lambda: len(log_lines(d, "not a regular file"))
                         and os.path.exists(d.metrics) and
                         time.sleep(3.5) is None, 30)
        fifo = log_lines(d, "not a regular file")
        bad = log_lines(d, f"monitor: {bad_vm}:")
        t.ok(ticks and len(fifo) == 1 and d.ping(),
             f"a FIFO as a declared profile: refused, said once over "
             f">= 3 ticks ({len(fifo)} line)", fifo or
             open(d.log).read()[-1500:])
        t.ok(len(bad) == 1, f"a malformed profile: said once "
             f"({len(bad)} line)", bad)
        r = sc.run("status", "--json")
        try:
            resv = {x.get("vm") for x in json.loads(r.out)
                    .get("reservations", [])}
        except ValueError:
            resv = None
        t.ok(r.rc == 0 and resv is not None and
             not resv & {"huge", "farnode", "negative"} and d.ping(),
             "reservations.json with int64-overflowing, negative and "
             "impossible entries: refused, status answers", r.diag())
        t.ok(d.stop() == 0, "vshared stops cleanly (UBSan: no report)",
             open(d.log).read()[-1500:])
    finally:
        if d.proc and d.proc.poll() is None:
            d.proc.kill()
        sc.close()
    t.done()


if __name__ == "__main__":
    main()
