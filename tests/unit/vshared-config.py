#!/usr/bin/env python3
"""vshared's operator surface on the sanitizer build, no VM: its
configuration file (vshare.conf(5): the file's keys become options, the
command line wins, a typo is refused with its name), --version, the audit
line of a change (the peer's uid and pid), an unknown VM's status. TAP."""
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "shim"))
sys.path.insert(0, os.path.join(TESTS, "vm"))
from shimlib import Ctl, Daemon, wait_for  # noqa: E402
from vshare_vm import REPO, Tap  # noqa: E402

VSHARED = os.environ.get("VSHARED") or \
    os.path.join(REPO, "build", "san", "vshared")


def run_bin(path, *args, timeout=30):
    return subprocess.run([path, *args], capture_output=True, text=True,
                          timeout=timeout)


def run(*args, timeout=30):
    return run_bin(VSHARED, *args, timeout=timeout)


def main():
    t = Tap()
    if not os.access(VSHARED, os.X_OK):
        t.skip_all(f"no {VSHARED} (make)")
    p = run("--version")
    schema = open(os.path.join(REPO, "protocol", "schema.json")).read()
    t.ok(p.returncode == 0 and p.stdout.startswith("vshared ") and
         f'"{p.stdout.split()[1]}"' in schema,
         f"vshared --version: {p.stdout.strip()}", p.stdout + p.stderr)

    for b in ("vsharectl", "vshare-agent", "vshare-libvirt-hook",
              "vshare-plesim"):
        path = os.path.join(REPO, "build", "rel", b)
        p = run_bin(path, "--version") if os.access(path, os.X_OK) else None
        t.ok(p is not None and p.returncode == 0 and
             p.stdout.startswith(f"{b} "),
             f"{b} --version: {p.stdout.strip() if p else 'not built'}",
             p and p.stdout + p.stderr)
    ctl = Ctl()
    conf = os.path.join(ctl.conf, "vshared.conf")
    with open(conf, "w") as f:
        f.write("[vshared]\nmetrics-intervall = 2\n")
    p = run("--conf-dir", ctl.conf, "--state-dir", ctl.state)
    t.ok(p.returncode == 2 and "metrics-intervall" in p.stderr and
         conf in p.stderr, "a misspelt key: refused, naming the key and "
         "the file (exit 2)", p.stderr)
    with open(conf, "w") as f:
        f.write("[vshared]\nmetrics-interval = ten\n")
    p = run("--conf-dir", ctl.conf, "--state-dir", ctl.state)
    t.ok(p.returncode == 2 and "metrics-interval" in p.stderr,
         "a value of the wrong type: refused (exit 2)", p.stderr)

    # the file sets the metrics file and interval; the command line
    # (Daemon's own --metrics-file) wins for the file, not the interval
    other = os.path.join(ctl.work, "from-conf.prom")
    with open(conf, "w") as f:
        f.write(f"# a comment\n[vshared]\nmetrics-interval = 1\n"
                f"metrics-file = {other}\nlibvirt-uri = none\n")
    d = Daemon(ctl, interval=3600)
    d.argv = lambda: [VSHARED, "--conf-dir", ctl.conf, "--state-dir",
                      ctl.state, "--socket", ctl.socket, "--policies",
                      os.path.join(REPO, "host-shim", "policies")]
    d.start()
    try:
        t.ok(wait_for(lambda: os.path.exists(other), 10),
             "metrics-file from vshared.conf is where vshared writes")
        m0 = os.stat(other).st_mtime_ns
        t.ok(wait_for(lambda: os.stat(other).st_mtime_ns != m0, 5),
             "metrics-interval = 1 from the file: written again within 5 s")
    finally:
        d.stop()
    cli = os.path.join(ctl.work, "from-cli.prom")
    d.argv = lambda: [VSHARED, "--conf-dir", ctl.conf, "--state-dir",
                      ctl.state, "--socket", ctl.socket, "--policies",
                      os.path.join(REPO, "host-shim", "policies"),
                      "--metrics-file", cli]
    os.unlink(other)
    d.start()
    try:
        t.ok(wait_for(lambda: os.path.exists(cli), 10) and
             not os.path.exists(other),
             "--metrics-file on the command line wins over the file's")
        p = ctl.run("cpus", "nosuch", "--set", "0")
        log = open(d.log).read()
        t.ok(p.returncode != 0 and
             re.search(r"change by uid 0 pid \d+ \(vsharectl\): "
                       r'\{"op":"cpus","vm":"nosuch".*unknown VM', log),
             "a change through vshared is logged with the peer's uid, pid "
             "and command, what it asked and how it ended", log[-1500:])
        p = ctl.run("status", "nosuch")
        t.ok(p.returncode != 0 and p.stderr.count("unknown VM") == 1,
             f"status of an unknown VM through vshared: one message, exit "
             f"{p.returncode}", p.stdout + p.stderr)
    finally:
        t.ok(d.stop() == 0, "vshared stops, exit 0 (ASan: no leak)",
             open(d.log).read()[-2000:])
    p = ctl.run("status", "nosuch")
    t.ok(p.returncode == 2 and p.stderr.count("unknown VM") == 1,
         "status of an unknown VM without vshared: one message, exit 2",
         p.stdout + p.stderr)
    # the shipped host.conf, every line commented: sysfs, not an error
    hc = os.path.join(ctl.conf, "host.conf")
    declared = open(hc).read()
    with open(hc, "w") as f:
        f.write(open(os.path.join(REPO, "host-shim", "daemon",
                                  "host.conf")).read())
    p = ctl.run("status", "--json")
    st = json.loads(p.stdout) if p.returncode == 0 else {}
    t.ok(st.get("host-declared") is False,
         "the shipped host.conf (all comments) means the layout of sysfs",
         p.stdout + p.stderr)
    with open(hc, "w") as f:
        f.write(declared)
    p = run("--config", os.path.join(REPO, "host-shim", "daemon",
                                     "vshared.conf"), "--version")
    t.ok(p.returncode == 0, "the shipped /etc/vshare/vshared.conf (every "
         "key commented out) is read without error", p.stderr)
    p = run("--config", os.path.join(ctl.work, "nonexistent.conf"))
    t.ok(p.returncode == 2 and "nonexistent.conf" in p.stderr,
         "--config naming a missing file: refused (exit 2)", p.stderr)
    t.done()


if __name__ == "__main__":
    main()
