#!/usr/bin/env python3
"""A Debian bookworm guest (systemd, cloud-init; tests/image/build-image.sh)
as a 2-node TCG guest with a NoCloud seed whose user-data installs our
.deb (agent/cloud-init/). Checked over the shell channel: cloud-init
finished without errors, udev started the hardened unit, the agent answers
and can confine under it. TAP on stdout.

Not yet here (issue 3): the systemd D-Bus backend; under systemd the agent
still uses cgroupfs, which moves tasks out of systemd's units.
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "vm"))
from debian_vm import DebianGuest, build_image  # noqa: E402
from vshare_vm import AgentClient, Shape, Tap  # noqa: E402


def main():
    t = Tap()
    t0 = time.monotonic()
    try:
        img = build_image()
    except RuntimeError as e:
        t.ok(False, "Debian image builds", str(e))
        t.done()
    t.ok(True, f"Debian bookworm image ready ({time.monotonic() - t0:.0f} s,"
         " cached by recipe hash)")
    p = subprocess.run([os.path.join(REPO, "packaging", "deb", "build.sh")],
                       capture_output=True, text=True, check=True)
    deb = p.stdout.split()[-1]
    ud = subprocess.run([os.path.join(REPO, "agent", "cloud-init",
                                      "make-user-data.sh"), deb],
                        capture_output=True, text=True, check=True).stdout
    g = DebianGuest(img, user_data=ud,
                    shape=Shape(2, 1, mem_mb=512, vmem_max_mb=512,
                                vmem_mb=128))
    try:
        g.start(timeout=400)
        t.ok(True, f"boots to the shell channel ({g.boot_seconds:.0f} s)")
        t.eq(g.shell.out("cat /proc/1/comm"), "systemd", "PID 1 is systemd")
        st = g.shell.out("cloud-init status --wait --long", timeout=400)
        t.ok("status: done" in st and "error" not in st.lower(),
             "cloud-init finished without errors", st)
        t.eq(g.shell.out("dpkg-query -W -f='${Status}' vshare-agent"),
             "install ok installed", "the .deb from user-data is installed")
        state = g.shell.out("for i in $(seq 50); do "
                            "systemctl is-active -q vshare-agent && break; "
                            "sleep 0.2; done; systemctl show -p ActiveState "
                            "-p Nice -p ProtectSystem -p "
                            "NoNewPrivileges vshare-agent")
        t.ok("ActiveState=active" in state and "Nice=-10" in state and
             "ProtectSystem=strict" in state and
             "NoNewPrivileges=yes" in state,
             "udev started the hardened unit", state)
        a = AgentClient(g.path("agent.sock"))
        a.connect(60)
        topo = a.call("vshare-get-topology")
        t.ok(len(topo["nodes"]) == 2, "the agent answers: 2 nodes", topo)
        rep = a.call("vshare-set-allocation", cpus="0", mems="0-1")
        back = a.call("vshare-set-allocation", cpus="0-1", mems="0-1")
        t.ok(rep["cpus"] == "0" and rep["workqueue"] and
             back["cpus"] == "0-1",
             "confinement writes work under the unit's sandbox "
             f"(IRQs set {rep['irqs-set']}, workqueue mask)", rep)
        log = g.shell.out("journalctl -u vshare-agent --no-pager -o cat")
        t.ok("ready" in log, "the agent logs to the journal",
             log[-1000:])
    finally:
        g.stop()
    t.done()


if __name__ == "__main__":
    main()
