#!/bin/sh
# System set-up of the test initramfs (tests/vm). Busybox only.
# Kernel command line: vshare.cgroup=v1|v2, vshare.qga=1, vshare.agent=0,
# vshare.agentargs=A,B,C (extra agent arguments, comma separated).
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /run /tmp /dev/virtio-ports
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp

for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev \
	virtio_pci virtio_console virtio_mem; do
	[ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko
done

if grep -q 'vshare.cgroup=v1' /proc/cmdline; then
	mount -t tmpfs cgroup /sys/fs/cgroup
	for c in cpuset cpu memory; do
		mkdir -p /sys/fs/cgroup/$c
		mount -t cgroup -o $c $c /sys/fs/cgroup/$c
	done
else
	mount -t cgroup2 none /sys/fs/cgroup
fi

# No udev: make the by-name links ourselves.
for p in /sys/class/virtio-ports/*; do
	[ -f "$p/name" ] && ln -sf "/dev/${p##*/}" "/dev/virtio-ports/$(cat $p/name)"
done
echo VSHARE-BOOTED
