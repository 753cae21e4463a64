#!/usr/bin/env python3
"""Fake peers for vsharectl: a QMP monitor and a vshare guest agent that can
be hostile. No QEMU and no guest: the point is a QEMU or a guest that lies,
floods, stalls or sends what no real one would.

One fake VM = one process (as QEMU hosts both sockets), run as

    python3 peers.py --dir DIR --behaviour FILE

It creates DIR/qmp.sock and DIR/agent.sock, two idle "vCPU" threads (their
thread ids are what the honest query-cpus-fast reports: vsharectl may pin
and throttle them), and writes DIR/ready.json {pid, vcpu-tids, qmp, agent}
when it listens. It is a separate process from the test so that its pid is
what SO_PEERCRED on the QMP socket reports, and the test runner's own pid is
*not* one of its threads.

FILE is JSON, re-read at every new connection (and by a slow reply while it
waits: a changed file abandons the slow request, as if the guest agent had
been restarted):

    {"qmp":   {"mode": M, ...}, "agent": {"mode": M, ...}}

QMP modes (a mode acts from the request named by "on"; before it, honest):
    honest   greeting, qmp_capabilities, query-cpus-fast (2 vCPUs, vCPU i in
             node i, thread-id = the fake's own vCPU threads),
             query-memory-devices (one virtio-mem device per node), qom-set
             of requested-size (size follows at once)
    silent   no answer from "on" (default qmp_capabilities: silence after
             the greeting)
    junk     junk bytes forever from "on" (default query-cpus-fast): short
             brace-delimited garbage (see junk())
    events   {"event": "RTC_CHANGE"} every ms from "on" (default
             query-cpus-fast), then the reply after "events_s" seconds
             (null: never)
    big      the reply to "on" (default query-memory-devices) padded to
             "bytes" (default 8 MiB) with dimm entries
    "cpus" / "mem" (any mode): the "return" of query-cpus-fast /
             query-memory-devices, verbatim (forged or wrongly typed ids)
    "busy_once" (any mode): the first shrink of each virtio-mem device
             is not done (a Linux guest that met a busy page waits its
             retry timer, 50 s and more); any later qom-set is

Agent modes (QGA framing: the reply to guest-sync-delimited is preceded by a
0xFF byte; replies end in a newline):
    honest   guest-sync(-delimited), guest-ping, vshare-set-allocation /
             -get-allocation / -get-topology as agent/commands.c replies
    silent   never answers anything
    junk     junk bytes (as for QMP) forever once the first request came
    stale    valid {"return": <wrong id>} lines forever (a flood that
             parses)
    big      the reply to "on" (default vshare-set-allocation) padded to
             "bytes" (default 8 MiB)
    lie      set-allocation answers a different "cpus" (or "mems" with
             "what": "mems") than requested, and applies nothing
    slow     set-allocation applied and answered after "delay" seconds
             (null: never); sync and the rest answer at once
    raw      the reply to "on" (default vshare-set-allocation) is "reply",
             verbatim (wrong types)

Observable state for the tests: DIR/agent-state.json {"cpus", "mems"} (the
allocation the fake guest holds), DIR/qmp-state.json {"devices"}, and
DIR/log.jsonl, one line per request received and per allocation applied.
"""
import argparse
import json
import os
import random
import socket
import sys
import threading
import time

MiB = 1 << 20
VMEM_MAX = 512 * MiB
VMEM_INIT = 128 * MiB
BLOCK = 2 * MiB
N_VCPUS = 2
ALL = "0-1"


def parse_list(text, limit=N_VCPUS):
    """Kernel list format over 0..limit-1; None when malformed/out of
    range/empty."""
    out = set()
    if not isinstance(text, str) or not text:
        return None
    for part in text.split(","):
        a, _, b = part.partition("-")
        if not a.isdigit() or (b and not b.isdigit()):
            return None
        lo, hi = int(a), int(b or a)
        if lo > hi or hi >= limit:
            return None
        out.update(range(lo, hi + 1))
    return out


def fmt_list(s):
    s = sorted(s)
    parts, i = [], 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[j] + 1:
            j += 1
        parts.append(str(s[i]) if i == j else f"{s[i]}-{s[j]}")
        i = j + 1
    return ",".join(parts)


def junk():
    """1 MiB of junk: short brace-delimited garbage, `{` random letters and
    digits `}`, a newline now and then. Every piece is framed as an object
    and fails to parse, so the reader pays per piece and this Python flood
    outruns vsharectl: a flood drained faster than it comes lets poll()
    time out now and then, which would hide a deadline that is checked
    only when nothing arrives."""
    rnd = random.Random(4242)
    alnum = b"abcdefghijklmnopqrstuvwxyz0123456789"
    out = bytearray()
    while len(out) < MiB:
        out += b"{" + bytes(rnd.choices(alnum, k=rnd.randint(4, 40))) + \
            b"}" + (b"\n" if rnd.random() < 0.1 else b" ")
    return bytes(out)


class Fake:
    def __init__(self, d, behaviour):
        self.dir = d
        self.behaviour_path = behaviour
        self.lock = threading.Lock()
        self.conn_n = 0
        self.alloc = {"cpus": ALL, "mems": ALL}
        self.devices = [{"id": f"vm{n}", "node": n,
                         "requested-size": VMEM_INIT, "size": VMEM_INIT,
                         "max-size": VMEM_MAX, "block-size": BLOCK}
                        for n in range(N_VCPUS)]
        self.tids = []
        self.log_f = open(os.path.join(d, "log.jsonl"), "a")

    # -- bookkeeping ---------------------------------------------------
    def behaviour(self, peer):
        try:
            with open(self.behaviour_path) as f:
                return json.load(f).get(peer) or {"mode": "honest"}
        except (OSError, ValueError):
            return {"mode": "honest"}

    def log(self, **kw):
        kw["t"] = time.monotonic()
        with self.lock:
            self.log_f.write(json.dumps(kw) + "\n")
            self.log_f.flush()

    def save(self, name, obj):
        path = os.path.join(self.dir, name)
        with open(path + ".tmp", "w") as f:
            json.dump(obj, f)
        os.replace(path + ".tmp", path)

    def save_state(self):
        with self.lock:
            self.save("agent-state.json", dict(self.alloc))
            self.save("qmp-state.json", {"devices": self.devices})

    # -- vCPU threads ------------------------------------------------------
    def start_vcpus(self):
        ready = threading.Barrier(N_VCPUS + 1)
        park = threading.Event()

        def vcpu():
            with self.lock:
                self.tids.append(threading.get_native_id())
            ready.wait()
            park.wait()  # idle for ever: pinning/throttling costs nothing

        ths = [threading.Thread(target=vcpu, daemon=True)
               for _ in range(N_VCPUS)]
        for t in ths:
            t.start()
        ready.wait()
        # vCPU i = the i-th started thread
        self.tids = [t.native_id for t in ths]

    # -- sockets -------------------------------------------------------------
    def listen(self, name, handler):
        path = os.path.join(self.dir, name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(16)

        def loop():
            while True:
                c, _ = s.accept()
                with self.lock:
                    self.conn_n += 1
                    n = self.conn_n
                threading.Thread(target=self.serve, args=(handler, c, n),
                                 daemon=True).start()
        threading.Thread(target=loop, daemon=True).start()
        return path

    def serve(self, handler, c, n):
        try:
            handler(c, n)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            self.log(peer=handler.__name__, conn=n, what="closed")
            try:
                c.close()
            except OSError:
                pass

    @staticmethod
    def requests(c, strip_ff=False):
        """Yield JSON requests, one per line (vsharectl sends lines)."""
        buf = b""
        while True:
            data = c.recv(65536)
            if not data:
                return
            buf += data
            if strip_ff and b"\xff" in buf:
                buf = buf[buf.rindex(b"\xff") + 1:]
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except ValueError:
                    yield {"execute": None, "raw": line[:200].decode(
                        "utf-8", "replace")}

    @staticmethod
    def send(c, obj):
        data = obj if isinstance(obj, bytes) else \
            (json.dumps(obj) + "\n").encode()
        c.sendall(data)

    STALE = (b"\xff" + json.dumps({"return": 7}).encode() + b"\n") * 16384

    @staticmethod
    def junk_forever(c, data=None):
        data = data or junk()
        while True:
            c.sendall(data)

    # -- QMP -----------------------------------------------------------------
    def qmp_return(self, cmd, args, b):
        if cmd == "qmp_capabilities":
            return {}
        if cmd == "query-cpus-fast":
            if "cpus" in b:
                return b["cpus"]
            return [{"cpu-index": i, "qom-path": f"/machine/cpu[{i}]",
                     "thread-id": self.tids[i], "target": "x86_64",
                     "props": {"node-id": i, "socket-id": i, "core-id": 0,
                               "thread-id": 0}}
                    for i in range(N_VCPUS)]
        if cmd == "query-memory-devices":
            if "mem" in b:
                return b["mem"]
            with self.lock:
                return [{"type": "virtio-mem",
                         "data": dict(d, memaddr=(4 + d["node"]) << 30,
                                      memdev=f"/objects/mem{d['node']}")}
                        for d in self.devices]
        if cmd == "qom-set":
            path = str(args.get("path", ""))
            with self.lock:
                for d in self.devices:
                    if path == d["id"] or path.endswith("/" + d["id"]):
                        if args.get("property") != "requested-size":
                            break
                        v = args.get("value")
                        if not isinstance(v, int) or v < 0 or \
                                v > d["max-size"] or v % d["block-size"]:
                            return ("error", "invalid requested-size")
                        d["requested-size"] = v
                        if b.get("busy_once") and v < d["size"] and \
                                not d.get("was_busy"):
                            # the guest met a busy page: it waits for its
                            # retry timer or the next change of the request
                            d["was_busy"] = True
                            break
                        d["size"] = v
                        break
                else:
                    return ("error", f"Device '{path}' not found")
            self.save_state()
            return {}
        if cmd == "query-status":
            return {"running": True, "status": "running"}
        return ("error", f"The command {cmd} has not been found",
                "CommandNotFound")

    def big_qmp(self, cmd, args, b, rid):
        want = b.get("bytes", 8 * MiB)
        base = self.qmp_return(cmd, args, b)
        entry = json.dumps({"type": "dimm", "data": {
            "id": "pad", "node": 0, "size": 0, "addr": 0, "slot": 0,
            "memdev": "/objects/pad", "hotplugged": False,
            "hotpluggable": True}})
        # the honest array, then enough dimm entries to reach @want
        n = max(1, want // (len(entry) + 2))
        pad = (", " + entry) * n
        if isinstance(base, list) and base:
            body = json.dumps(base)[:-1] + pad + "]"
        else:
            body = "[" + entry + pad + "]"
        return ('{"return": ' + body + ', "id": ' + json.dumps(rid) +
                "}\n").encode()

    def qmp(self, c, n):
        b = self.behaviour("qmp")
        mode = b.get("mode", "honest")
        on = b.get("on", {"silent": "qmp_capabilities", "junk":
                          "query-cpus-fast", "events": "query-cpus-fast",
                          "big": "query-memory-devices"}.get(mode))
        self.send(c, {"QMP": {"version": {"qemu": {"micro": 0, "minor": 2,
                                                   "major": 7},
                                          "package": "fake"},
                              "capabilities": []}})
        hostile = False
        for req in self.requests(c):
            cmd = req.get("execute")
            args = req.get("arguments") or {}
            rid = req.get("id")
            self.log(peer="qmp", conn=n, what="req", req=req)
            if mode != "honest" and (cmd == on or on == "*" or hostile):
                hostile = True
                if mode == "silent":
                    continue
                if mode == "junk":
                    self.junk_forever(c)
                if mode == "events":
                    t_end = None if b.get("events_s") is None else \
                        time.monotonic() + b["events_s"]
                    while t_end is None or time.monotonic() < t_end:
                        now = time.time()
                        self.send(c, {"event": "RTC_CHANGE", "data": {
                            "offset": 0, "qom-path": "/machine/rtc"},
                            "timestamp": {"seconds": int(now),
                                          "microseconds":
                                          int(now * 1e6) % 1000000}})
                        time.sleep(0.001)
                    hostile = False
                if mode == "big":
                    self.send(c, self.big_qmp(cmd, args, b, rid))
                    hostile = False
                    continue
            r = self.qmp_return(cmd, args, b)
            if isinstance(r, tuple):
                self.send(c, {"error": {"class": r[2] if len(r) > 2 else
                                        "GenericError", "desc": r[1]},
                              "id": rid})
            else:
                self.send(c, {"return": r, "id": rid})

    # -- agent ---------------------------------------------------------------
    def set_allocation(self, args):
        cpus = parse_list(args.get("cpus"))
        mems = parse_list(args.get("mems", self.alloc["mems"]))
        if cpus is None or mems is None:
            return None
        with self.lock:
            self.alloc = {"cpus": fmt_list(cpus), "mems": fmt_list(mems)}
            a = dict(self.alloc)
        self.save_state()
        self.log(peer="agent", what="applied", **a)
        return dict(a, **{"elapsed-us": 1000, "steps-us": {
            "prepare": 250, "cgroup": 250, "knobs": 250, "journal": 250},
            "moved-tasks": 12, "unmovable-kthreads": 0, "unmovable-other": 0,
            "irqs-set": 2, "irqs-refused": 0, "workqueue": True})

    def agent_return(self, cmd, args):
        if cmd in ("guest-sync", "guest-sync-delimited"):
            return args.get("id")
        if cmd == "guest-ping":
            return {}
        if cmd == "vshare-set-allocation":
            r = self.set_allocation(args)
            return r if r is not None else \
                ("error", "invalid CPU or node list")
        if cmd == "vshare-get-allocation":
            with self.lock:
                a = dict(self.alloc)
            return dict(a, **{"effective-cpus": a["cpus"],
                              "effective-mems": a["mems"],
                              "full": a["cpus"] == ALL and a["mems"] == ALL,
                              "tasks-outside": 0})
        if cmd == "vshare-get-topology":
            return {"nodes": [{"id": i, "cpus": str(i),
                               "mem-total-kib": 262144,
                               "mem-free-kib": 131072}
                              for i in range(N_VCPUS)],
                    "online-cpus": ALL, "possible-cpus": ALL,
                    "memory-nodes": ALL, "virtio-mem": [],
                    "cgroup": {"version": 2, "backend": "cgroupfs",
                               "path": "/sys/fs/cgroup/vshare"}}
        return ("error", f"unknown command '{cmd}'", "CommandNotFound")

    def agent_reply(self, c, cmd, r):
        if isinstance(r, tuple):
            self.send(c, {"error": {"class": r[2] if len(r) > 2 else
                                    "GenericError", "desc": r[1]}})
            return
        data = (json.dumps({"return": r}) + "\n").encode()
        if cmd == "guest-sync-delimited":
            data = b"\xff" + data
        c.sendall(data)

    def slow(self, c, cmd, args, b, n):
        delay = b.get("delay")
        snap = json.dumps(b, sort_keys=True)
        t_end = None if delay is None else time.monotonic() + delay
        while t_end is None or time.monotonic() < t_end:
            time.sleep(0.05)
            if json.dumps(self.behaviour("agent"), sort_keys=True) != snap:
                self.log(peer="agent", conn=n, what="abandoned", req=args)
                return
        self.agent_reply(c, cmd, self.agent_return(cmd, args))

    def agent(self, c, n):
        b = self.behaviour("agent")
        mode = b.get("mode", "honest")
        on = b.get("on", "vshare-set-allocation")
        k = 0
        for req in self.requests(c, strip_ff=True):
            cmd = req.get("execute")
            args = req.get("arguments") or {}
            self.log(peer="agent", conn=n, what="req", req=req)
            k += 1
            if mode == "silent":
                continue
            if mode == "junk":
                self.junk_forever(c)
            if mode == "stale":
                self.junk_forever(c, self.STALE)
            if cmd == on and mode == "slow":
                self.slow(c, cmd, args, b, n)
                continue
            if cmd == on and mode == "big":
                r = self.agent_return(cmd, args)
                pad = '{"k": 0}, ' * max(
                    1, (b.get("bytes", 8 * MiB) - 200) // 10)
                body = json.dumps(r if not isinstance(r, tuple) else {})
                data = ('{"return": ' + body[:-1] + ', "pad": [' + pad +
                        '{"k": 0}]}}\n').encode()
                c.sendall(data)
                continue
            if cmd == on and mode == "raw":
                self.send(c, b["reply"])
                continue
            if cmd == "vshare-set-allocation" and mode == "lie":
                what = b.get("what", "cpus")
                asked = args.get(what, ALL)
                told = ALL if asked != ALL else "1"
                r = {"cpus": args.get("cpus"), "mems": args.get("mems", ALL)}
                r[what] = told
                self.log(peer="agent", what="lied", asked=args, told=r)
                r.update({"elapsed-us": 1000, "moved-tasks": 3})
                self.agent_reply(c, cmd, r)
                continue
            self.agent_reply(c, cmd, self.agent_return(cmd, args))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--behaviour", required=True)
    a = ap.parse_args()
    f = Fake(a.dir, a.behaviour)
    f.start_vcpus()
    f.save_state()
    qmp = f.listen("qmp.sock", f.qmp)
    agent = f.listen("agent.sock", f.agent)
    f.save("ready.json", {"pid": os.getpid(), "vcpu-tids": f.tids,
                          "qmp": qmp, "agent": agent})
    sys.stdout.close()
    threading.Event().wait()


if __name__ == "__main__":
    main()
