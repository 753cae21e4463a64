#!/bin/sh
# Debian's qemu-guest-agent on its own port, for comparisons (vshare.qga=1).
[ "$(/etc/vshare-arg qga)" = 1 ] && [ -x /usr/sbin/qemu-ga ] || exec sleep 100000000
mkdir -p /run/qga
renice -n -10 -p $$ >/dev/null
/usr/sbin/qemu-ga -m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0 \
	-t /run/qga >>/run/qga.log 2>&1
sleep 0.5
