#!/bin/sh
# Install the Debian packages vshare's build, demo, tests and benchmarks
# need (as root). --if-needed: do nothing when they are all there. The
# guests' kernel is not one of them: tests/tools/fetch-kernel.sh unpacks
# it into the cache, so the host's /boot is never touched.
# The mirror is whatever this machine's apt configuration says.
set -e
PKGS="gcc make pkg-config perl python3 libglib2.0-dev libjson-glib-dev
clang libclang-rt-14-dev clang-format qemu-system-x86 qemu-utils
busybox-static qemu-guest-agent valgrind
ccache flex bison bc libelf-dev xz-utils git
dpkg-dev debhelper lintian mmdebstrap systemd-container cloud-image-utils e2fsprogs
libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
liblua5.4-dev kmod binutils libssl-dev libxml2-dev"

# The kernel source at the version guest-kernel/VERSION pins, while the
# archive holds it (the build fetches the pin itself when something else
# is installed, and falls back to the newest when the pin is gone:
# guest-kernel/scripts/kernel-source.sh).
here=$(cd "$(dirname "$0")/.." && pwd)
read -r kpkg kwant <<EOF
$(grep -v '^#' "$here/guest-kernel/VERSION")
EOF
khave=$(dpkg-query -W -f='${Version}' "$kpkg" 2>/dev/null || true)
in_archive() {	# package version
	apt-cache madison "$1" 2>/dev/null |
		awk -F'|' '{gsub(/ /,"",$2); print $2}' | grep -qxF "$2"
}

missing=""
# installed at the pin, or installed and the pin is gone: nothing to do
if [ "$khave" != "$kwant" ] && { [ -z "$khave" ] || in_archive "$kpkg" "$kwant"; }; then
	missing=" $kpkg"
fi
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
export DEBIAN_FRONTEND=noninteractive
apt-get update
pin=""
case "$missing" in *" $kpkg"*)
	missing=$(echo "$missing" | sed "s/ $kpkg\b//")
	if in_archive "$kpkg" "$kwant"; then
		pin="$kpkg=$kwant"
		echo "setup: $kpkg pinned at $kwant (guest-kernel/VERSION)${khave:+, replacing $khave}"
	else
		pin=$kpkg
		echo "setup: $kpkg $kwant is no longer in the archive: installing the newest; the build tries the series on it (make rebase-check)"
	fi ;;
esac
echo "setup: installing$missing${pin:+ $pin}"
apt-get install -y --no-install-recommends --allow-downgrades $missing $pin
