#!/bin/sh
# make deb: build/deb/vshare-agent_<version>_amd64.deb with dpkg-deb.
# Depends come from the binary's shared libraries (dpkg-shlibdeps).
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
here=$repo/packaging/deb
out=$repo/build/deb
stage=$out/root
version=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['version'])" \
	"$repo/protocol/schema.json")
rm -rf "$out"
mkdir -p "$stage/DEBIAN" "$stage/usr/sbin" "$stage/usr/share/man/man8" \
	"$stage/lib/systemd/system" "$stage/lib/udev/rules.d" \
	"$stage/usr/share/doc/vshare-agent"
install -m 0755 "$repo/build/rel/vshare-agent" "$stage/usr/sbin/vshare-agent"
strip --remove-section=.comment --remove-section=.note --strip-unneeded \
	"$stage/usr/sbin/vshare-agent"
gzip -9n <"$repo/agent/vshare-agent.8" >"$stage/usr/share/man/man8/vshare-agent.8.gz"
install -m 0644 "$repo/agent/systemd/vshare-agent.service" "$stage/lib/systemd/system/"
install -m 0644 "$repo/agent/udev/60-vshare-agent.rules" "$stage/lib/udev/rules.d/"
install -m 0644 "$here/copyright" "$stage/usr/share/doc/vshare-agent/"
gzip -9n <"$here/changelog" >"$stage/usr/share/doc/vshare-agent/changelog.gz"
install -m 0755 "$here/postinst" "$stage/DEBIAN/postinst"
# dpkg-shlibdeps wants a debian/control around it
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/debian"
printf 'Source: vshare\n\nPackage: vshare-agent\nArchitecture: any\n' >"$tmp/debian/control"
depends=$(cd "$tmp" && dpkg-shlibdeps -O "$stage/usr/sbin/vshare-agent" 2>/dev/null |
	sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "deb: dpkg-shlibdeps found no Depends" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" \
	"$here/control.in" >"$stage/DEBIAN/control"
(cd "$stage" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' |
	sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
deb=$out/vshare-agent_${version}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
