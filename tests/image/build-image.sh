#!/bin/bash
# Build (or reuse) a Debian bookworm guest disk for the systemd/cloud-init
# tests: systemd, udev, cloud-init, Debian's cloud kernel, the libraries
# vshare-agent needs, qemu-guest-agent (the benchmark's anchor; udev starts
# it only when the host adds its port), and a root shell on the virtio-serial port
# org.vshare.shell.0 (the tests' second channel, as in tests/vm).
#
# The package mirror is this machine's own apt configuration (its
# sources files are handed to mmdebstrap as they are). Cached under
# $VSHARE_CACHE/image by the hash of this script: edit it, and the image
# is rebuilt. Prints the directory holding disk.raw, vmlinuz, initrd.img.
set -euo pipefail
cache=${VSHARE_CACHE:-/var/cache/vshare}/image
here=$(cd "$(dirname "$0")" && pwd)
key=$(cat "$0" "$here/vshare-test-shell.service" "$here/61-vshare-test-shell.rules" |
	sha256sum | cut -c1-12)
out=$cache/bookworm-$key
if [ -f "$out/.ready" ]; then echo "$out"; exit 0; fi
rm -rf "$cache"/bookworm-*
mkdir -p "$out"
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
	/etc/apt/sources.list.d/*.sources; do
	[ -s "$f" ] && grep -q '^[^#]' "$f" && sources+=("$f")
done
[ ${#sources[@]} -gt 0 ] || { echo "image: no apt sources on this machine" >&2; exit 1; }
root=$out/root
echo "image: mmdebstrap bookworm (sources: ${sources[*]})" >&2
mmdebstrap --variant=important --quiet \
	--include=systemd-sysv,udev,dbus,cloud-init,linux-image-cloud-amd64,initramfs-tools,libglib2.0-0,libjson-glib-1.0-0,qemu-guest-agent \
	--customize-hook='echo vshare-guest > "$1/etc/hostname"' \
	--customize-hook='echo "LABEL=root / ext4 defaults 0 1" > "$1/etc/fstab"' \
	--customize-hook='chroot "$1" passwd -d root' \
	--customize-hook="cp '$here/vshare-test-shell.service' \"\$1/etc/systemd/system/\"" \
	--customize-hook="cp '$here/61-vshare-test-shell.rules' \"\$1/etc/udev/rules.d/\"" \
	--customize-hook='printf "%s\n" "datasource_list: [ NoCloud, None ]" > "$1/etc/cloud/cloud.cfg.d/90-vshare-nocloud.cfg"' \
	bookworm "$root" "${sources[@]}"
cp "$root"/boot/vmlinuz-* "$out/vmlinuz"
cp "$root"/boot/initrd.img-* "$out/initrd.img"
truncate -s 3G "$out/disk.raw"
mke2fs -q -t ext4 -d "$root" -L root "$out/disk.raw"
rm -rf "$root"
touch "$out/.ready"
echo "$out"
