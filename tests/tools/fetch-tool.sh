#!/bin/sh
# fetch-tool.sh PACKAGE PATH: a file (a program, a kernel) out of a Debian
# package, unpacked (never installed: no service starts, nothing on the
# host changes) into $VSHARE_CACHE/tools/PACKAGE_VERSION; prints its path.
#   tests/tools/fetch-tool.sh prometheus usr/bin/promtool
# The mirror is whatever this machine's apt configuration says.
set -eu
pkg=$1
path=$2
cache=${VSHARE_CACHE:-/var/cache/vshare}/tools
ver=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
	echo "fetch-tool: $pkg is not in this machine's apt sources" >&2
	exit 1
fi
dir=$cache/${pkg}_$(echo "$ver" | tr ':' '_')
if [ ! -f "$dir/$path" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get download -q "$pkg=$ver" >/dev/null 2>&1) || {
		echo "fetch-tool: apt-get download $pkg=$ver failed" >&2
		exit 1
	}
	mkdir -p "$cache"
	rm -rf "$dir.part"
	dpkg-deb -x "$tmp"/*.deb "$dir.part"
	rm -rf "$dir"
	mv "$dir.part" "$dir"
fi
[ -f "$dir/$path" ] || { echo "fetch-tool: no $path in $pkg $ver" >&2; exit 1; }
echo "$dir/$path"
