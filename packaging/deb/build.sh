#!/bin/sh
# make deb: build/deb/vshare-agent_<version>_amd64.deb (the guest) and
# build/deb/vshare-host_<version>_amd64.deb (vsharectl, vshared) from the
# Debian source package in debian/ (debhelper, `dpkg-buildpackage -b`).
# dpkg-buildpackage writes beside the source tree, so it runs on a copy in
# build/deb-src: nothing lands outside build/. The copy takes build/rel and
# build/gen with their times, so an unchanged tree is not compiled twice;
# without them it compiles from scratch.
#
# usage: build.sh [agent|host]...  (default: both; only those are replaced
# in build/deb, so `build.sh host` keeps the agent's package)
# VSHARE_DEB_VERSION: another version (the install test's upgrade): the
# copy gets a changelog entry for it.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=$repo/build/deb
src=$repo/build/deb-src
tree=$src/vshare

rm -rf "$src"
mkdir -p "$tree/build" "$out"
tar -C "$repo" --exclude=./build --exclude=./.git -cf - . | tar -C "$tree" -xf -
for d in rel gen; do
	if [ -d "$repo/build/$d" ]; then cp -a "$repo/build/$d" "$tree/build/"; fi
done

if [ -n "${VSHARE_DEB_VERSION:-}" ]; then
	who=$(dpkg-parsechangelog -l "$tree/debian/changelog" -S Maintainer)
	{
		printf 'vshare (%s) unstable; urgency=medium\n\n' "$VSHARE_DEB_VERSION"
		printf '  * Rebuilt as %s.\n\n -- %s  %s\n\n' \
			"$VSHARE_DEB_VERSION" "$who" "$(date -R)"
		cat "$tree/debian/changelog"
	} >"$tree/debian/changelog.new"
	mv "$tree/debian/changelog.new" "$tree/debian/changelog"
fi
version=$(dpkg-parsechangelog -l "$tree/debian/changelog" -S Version)

# -nc: `debian/rules clean` is `make clean`, which would drop the copied
# objects; the copy is fresh anyway. No -dbgsym packages: not shipped.
if ! (cd "$tree" && DEB_BUILD_OPTIONS="noautodbgsym ${DEB_BUILD_OPTIONS:-}" \
	dpkg-buildpackage -b -nc -us -uc) >"$src/build.log" 2>&1; then
	tail -40 "$src/build.log" >&2
	echo "deb: dpkg-buildpackage failed (whole log: $src/build.log)" >&2
	exit 1
fi

for what in ${*:-agent host}; do
	case $what in
	agent | host) ;;
	*) echo "build.sh: agent or host, not $what" >&2; exit 2 ;;
	esac
	rm -f "$out/vshare-${what}"_*.deb
	deb=$out/vshare-${what}_${version}_amd64.deb
	mv "$src/vshare-${what}_${version}_amd64.deb" "$deb"
	echo "$deb"
done
