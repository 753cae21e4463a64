#!/bin/sh
# fetch-kernel.sh: the guest kernel the harness boots, Debian's newest
# linux-image-amd64 (its versioned dependency), unpacked into
# $VSHARE_CACHE/tools and never installed: the host's /boot, grub and
# initramfs stay as they are. Prints the vmlinuz path; its modules are at
# ../lib/modules/VERSION beside ../boot.
set -eu
here=$(dirname "$0")
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
	sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
[ -n "$pkg" ] || { echo "fetch-kernel: no linux-image-amd64 in the apt sources" >&2; exit 1; }
ver=${pkg#linux-image-}
"$here/fetch-tool.sh" "$pkg" "boot/vmlinuz-$ver"
