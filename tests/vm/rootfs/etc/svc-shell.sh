#!/bin/sh
# The second channel: a shell on its own port, independent of the agent.
# A virtio port opens once: read-write on one descriptor. The shell ends
# when the host disconnects; init starts it again.
p=/dev/virtio-ports/org.vshare.shell.0
[ -e $p ] || { sleep 1; exit 0; }
setsid sh <>$p >&0 2>&0
sleep 1
