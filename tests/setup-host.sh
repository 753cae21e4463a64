#!/bin/sh
# Install the Debian packages vshare's build, demo, tests and benchmarks
# need (as root). --if-needed: do nothing when they are all there.
# The mirror is whatever this machine's apt configuration says.
set -e
PKGS="gcc make pkg-config perl python3 libglib2.0-dev libjson-glib-dev
clang libclang-rt-14-dev clang-format qemu-system-x86 qemu-utils
linux-image-amd64 busybox-static qemu-guest-agent valgrind
linux-source-6.1 ccache flex bison bc libelf-dev xz-utils git
dpkg-dev lintian mmdebstrap cloud-image-utils e2fsprogs
libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
liblua5.4-dev kmod binutils libssl-dev libxml2-dev"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
		grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
	[ "$1" = --if-needed ] || echo "setup: all packages present"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "setup: missing packages:$missing; run as root: $0" >&2
	exit 1
fi
echo "setup: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends $missing
