#!/usr/bin/env python3
"""vshared's control socket against clients that do not read (ASan
build, fake VMs of peers.py). A reply larger than the socket buffer
reaches a client that reads it slowly; a client that queues requests and
never reads is closed with one log line; neither delays another client.
TAP on stdout."""
import json
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "shim"))
from hostilelib import HTap, Scene, wait_for  # noqa: E402
from shimlib import Daemon  # noqa: E402

# a policy file of ~900 KB: `policy show` returns its source, a reply of
# about 1 MB (a unix socket buffers ~200 KB)
BIG = ("-- " + "x" * 96 + "\n") * 9000 + "vshare.every(60, function() end)\n"


def show_request(name, n=1):
    return "".join(json.dumps({"execute": "vshare-host-policy-show",
                               "arguments": {"name": name}}) + "\n"
                   for _ in range(n)).encode()


def ping_ms(d):
    t0 = time.monotonic()
    ok = d.ping()
    return (time.monotonic() - t0) * 1000 if ok else None


def main():
    t = HTap()
    sc = Scene("cli", n=1)
    local = os.path.join(sc.ctl.conf, "policies")
    os.makedirs(local, exist_ok=True)
    with open(os.path.join(local, "big.lua"), "w") as f:
        f.write(BIG)
    d = Daemon(sc.ctl)
    try:
        d.start(timeout=60)
        # 1. a slow reader: 4 KB every 5 ms while another client pings
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(15)
        s.connect(sc.ctl.socket)
        s.sendall(show_request("big"))
        buf, worst, pings, t0 = b"", 0.0, 0, time.monotonic()
        while not buf.endswith(b"\n") and time.monotonic() - t0 < 60:
            try:
                chunk = s.recv(4096)
            except OSError:  # the timeout: the rest never came
                break
            if not chunk:
                break
            buf += chunk
            if len(buf) // (64 * 1024) > pings:  # every 64 KB read
                pings += 1
                worst = max(worst, ping_ms(d) or 1e9)
            time.sleep(0.005)
        s.close()
        try:
            src = json.loads(buf)["return"]["source"]
        except (ValueError, KeyError, TypeError):
            src = ""
        t.ok(src == BIG, f"a {len(buf)}-byte reply reaches a slow reader "
             f"whole ({time.monotonic() - t0:.1f} s) without it writing "
             "again", buf[-300:])
        t.ok(pings >= 10 and worst < 2000, f"other clients answered "
             f"meanwhile ({pings} pings, slowest {worst:.0f} ms)")
        # 2. a client that queues 200 requests and reads nothing
        s = socket.socket(socket.AF_UNIX)
        s.connect(sc.ctl.socket)
        s.sendall(show_request("big", 200))
        closed = wait_for(lambda: "control socket: a client" in
                          open(d.log, errors="replace").read(), 60)
        ms = ping_ms(d)
        line = [ln for ln in open(d.log, errors="replace")
                if "control socket: a client" in ln]
        t.ok(closed and ms is not None and ms < 2000,
             f"a client that never reads is closed ({line[-1].strip() if line else 'no log line'}); "
             f"a ping after it: {ms} ms", open(d.log).read()[-1500:])
        s.setblocking(False)
        got = 0
        try:
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got += len(chunk)
        except BlockingIOError:
            got = -1
        s.close()
        t.ok(got >= 0, f"its connection is closed by vshared ({got} bytes "
             "were buffered)")
        # a second vshared on the same socket: refused at once, the
        # first keeps its socket
        import subprocess
        t0 = time.monotonic()
        p = subprocess.run(d.argv(), capture_output=True, text=True,
                           env=dict(sc.ctl.env), timeout=60)
        t.ok(p.returncode == 1 and "another vshared serves" in p.stderr
             and d.ping(), f"a second vshared exits in "
             f"{time.monotonic() - t0:.1f} s, the first still answers",
             p.stderr[-1000:])
        t.ok(d.ping() and d.stop() == 0, "vshared answers and stops "
             "cleanly after")
    finally:
        if d.proc and d.proc.poll() is None:
            d.proc.kill()
        sc.close()
    t.done()


if __name__ == "__main__":
    main()
