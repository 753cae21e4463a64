#!/usr/bin/env python3
"""vshared (ASan build) against hostile policies, with fake VMs (peers.py):
a finalizer that would loop with hooks off, a pattern that would backtrack
for hours inside C, a policy printing megabytes per run, a dry run
printing without end, a policy busy with every timer it may have. Each is
refused or cut with a marker, status answers throughout, and SIGTERM ends
vshared within 2 s while the busy policy runs (BENCH
sigterm_with_hostile_policy_ms). TAP on stdout."""
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "shim"))
from hostilelib import HTap, Scene, wait_for  # noqa: E402
from shimlib import Daemon  # noqa: E402

POLICIES = {
    # without the refusal: the first collection (or lua_close at stop)
    # spins forever with the instruction hook off
    "finalizer": "local t = setmetatable({}, {__gc = function() "
                 "while true do end end})\nt = nil\ncollectgarbage()",
    # hours of backtracking inside one C call: the hook never runs
    "backtrack": "vshare.every(0.2, function() "
                 "string.find(string.rep('a', 30000), '.-.-.-.-.-b') end)",
    # 1000 lines of 100 KB each per run: 100 MB a run before the caps
    "chatty": "vshare.every(0.5, function() for i = 1, 1000 do "
              "print(string.rep('y', 100000)) end end)",
    # 16 timers, each a near-budget loop every 50 ms: only the window
    # budget across them keeps the worker free
    "busy": "for k = 1, 16 do vshare.every(0.05, function() local x = 0 "
            "for i = 1, 3000000 do x = x + i end end) end",
    # a dry run of it prints forever (the budget ends it): the reply is
    # capped and ends with the marker
    "dryflood": "vshare.every(1, function() while true do "
                "print(string.rep('z', 200)) end end)",
}


def policy(d, sc, name):
    r = sc.run("policy", "show", name, "--json")
    try:
        return json.loads(r.out)
    except ValueError:
        return {"raw": r.out + r.err}


def main():
    t = HTap()
    sc = Scene("pol", n=2)
    local = os.path.join(sc.ctl.conf, "policies")
    os.makedirs(local, exist_ok=True)
    for name, src in POLICIES.items():
        with open(os.path.join(local, name + ".lua"), "w") as f:
            f.write(src + "\n")
    with open(os.path.join(sc.ctl.conf, "policies.conf"), "w") as f:
        for name in POLICIES:
            if name != "dryflood":
                f.write(f"[{name}]\nenabled=true\n")
    d = Daemon(sc.ctl)
    try:
        d.start(timeout=60)
        fin = wait_for(lambda: "__gc finalizers are not allowed" in
                       json.dumps(policy(d, sc, "finalizer")), 20)
        t.ok(fin and d.ping(), "a __gc finalizer is refused at load, "
             "vshared answers", policy(d, sc, "finalizer"))
        bt = wait_for(lambda: "pattern too costly" in
                      json.dumps(policy(d, sc, "backtrack")), 20)
        t.ok(bt and d.ping(), "a backtracking pattern is refused before "
             "it runs", policy(d, sc, "backtrack"))
        chat = wait_for(lambda: "more log lines of this run not logged"
                        in open(d.log, errors="replace").read(), 20)
        lines = [ln for ln in open(d.log, errors="replace")
                 if "chatty" in ln]
        longest = max((len(ln) for ln in lines), default=0)
        t.ok(chat and longest < 1300,
             f"a policy printing 100 MB a run: at most 64 lines of "
             f"<= 1 KiB logged per run (longest {longest} bytes, "
             f"log {os.path.getsize(d.log)} bytes)", lines[-3:])
        t0 = time.monotonic()
        r = sc.run("status", "--json")
        t.ok(r.rc == 0, f"status answers while 16 busy timers run "
             f"({(time.monotonic() - t0) * 1000:.0f} ms)", r.diag())
        busy = wait_for(lambda: policy(d, sc, "busy").get("skipped", 0) > 0,
                        30)
        info = policy(d, sc, "busy")
        t.ok(busy and info.get("running"),
             f"the busy policy is held to its window budget "
             f"({info.get('runs')} runs, {info.get('skipped')} skipped), "
             "not disabled", info)
        r = sc.run("policy", "dry-run", "dryflood", "--json")
        size = len(r.out)
        t.ok("[output cut: " in r.out and size < 400 * 1024,
             f"a dry run printing without end: {size} bytes, cut with "
             f"the marker", r.diag()[-1500:])
        # SIGTERM with the busy policy mid-run
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        try:
            rc = d.proc.wait(10)
        except Exception:
            rc = None
        ms = (time.monotonic() - t0) * 1000
        print(f"BENCH sigterm_with_hostile_policy_ms {ms:.0f} ms",
              flush=True)
        t.ok(rc == 0 and ms < 2000, f"SIGTERM with hostile policies "
             f"running: exit {rc} in {ms:.0f} ms",
             open(d.log, errors="replace").read()[-2000:])
    finally:
        if d.proc and d.proc.poll() is None:
            d.proc.send_signal(signal.SIGKILL)
        sc.close()
    t.done()


if __name__ == "__main__":
    main()
