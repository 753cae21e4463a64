#!/bin/sh
# make deb: build/deb/vshare-agent_<version>_amd64.deb (the guest) and
# build/deb/vshare-host_<version>_amd64.deb (vsharectl, vshared) with
# dpkg-deb. Depends come from the binaries' shared libraries
# (dpkg-shlibdeps). usage: build.sh [agent|host]...  (default: both)
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
here=$repo/packaging/deb
out=$repo/build/deb
version=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['version'])" \
	"$repo/protocol/schema.json")
# VSHARE_DEB_VERSION: another version string (the install test's upgrade)
version=${VSHARE_DEB_VERSION:-$version}

# stage_bin STAGE SRC: an executable in /usr/sbin, stripped
stage_bin() {
	install -D -m 0755 "$2" "$1/usr/sbin/$(basename "$2")"
	strip --remove-section=.comment --remove-section=.note --strip-unneeded \
		"$1/usr/sbin/$(basename "$2")"
}

# stage_man STAGE PAGE [SECTION]
stage_man() {
	mkdir -p "$1/usr/share/man/man${3:-8}"
	gzip -9n <"$2" >"$1/usr/share/man/man${3:-8}/$(basename "$2").gz"
}

stage_agent() {
	stage_bin "$1" "$repo/build/rel/vshare-agent"
	stage_man "$1" "$repo/agent/vshare-agent.8"
	install -D -m 0644 "$repo/agent/systemd/vshare-agent.service" "$1/lib/systemd/system/vshare-agent.service"
	install -D -m 0644 "$repo/agent/udev/60-vshare-agent.rules" "$1/lib/udev/rules.d/60-vshare-agent.rules"
	install -D -m 0644 "$repo/agent/systemd/guest-vcpus.conf" "$1/usr/share/doc/vshare-agent/examples/guest-vcpus.conf"
	install -D -m 0644 "$repo/docs/protocol.md" "$1/usr/share/doc/vshare-agent/protocol.md"
	install -m 0755 "$here/postinst" "$1/DEBIAN/postinst"
}

stage_host() {
	stage_bin "$1" "$repo/build/rel/vsharectl"
	stage_bin "$1" "$repo/build/rel/vshared"
	stage_man "$1" "$repo/host-shim/vsharectl.8"
	stage_man "$1" "$repo/host-shim/daemon/vshared.8"
	install -D -m 0644 "$repo/host-shim/daemon/vshared.service" "$1/lib/systemd/system/vshared.service"
	for f in "$repo"/host-shim/policies/*.lua; do
		install -D -m 0644 "$f" "$1/usr/share/vshare/policies/$(basename "$f")"
	done
	# the libvirt migration hook (docs/migration.md): libvirtd runs every
	# file in /etc/libvirt/hooks/qemu.d (seen after a libvirtd restart)
	install -D -m 0755 "$repo/build/rel/vshare-libvirt-hook" \
		"$1/usr/libexec/vshare/vshare-libvirt-hook"
	strip --remove-section=.comment --remove-section=.note --strip-unneeded \
		"$1/usr/libexec/vshare/vshare-libvirt-hook"
	mkdir -p "$1/etc/libvirt/hooks/qemu.d"
	ln -s /usr/libexec/vshare/vshare-libvirt-hook "$1/etc/libvirt/hooks/qemu.d/vshare"
	stage_man "$1" "$repo/host-shim/daemon/vshare.conf.5" 5
	# every key commented out: the defaults (a conffile)
	for f in vshared.conf host.conf policies.conf; do
		install -D -m 0644 "$repo/host-shim/daemon/$f" "$1/etc/vshare/$f"
		echo "/etc/vshare/$f" >>"$1/DEBIAN/conffiles"
	done
	install -D -m 0644 "$repo/host-shim/daemon/peer-network.conf" \
		"$1/usr/share/doc/vshare-host/examples/peer-network.conf"
	for m in postinst prerm postrm; do
		install -m 0755 "$here/host.$m" "$1/DEBIAN/$m"
	done
	for d in vsharectl.md architecture.md policies.md ple.md migration.md; do
		install -D -m 0644 "$repo/docs/$d" "$1/usr/share/doc/vshare-host/$d"
	done
}

build() {
	pkg=$1
	stage=$out/root-$pkg
	rm -rf "$stage" "$out/${pkg}"_*.deb
	mkdir -p "$stage/DEBIAN" "$stage/usr/share/doc/$pkg"
	"stage_${2}" "$stage"
	install -m 0644 "$here/copyright" "$stage/usr/share/doc/$pkg/"
	gzip -9n <"$here/changelog" >"$stage/usr/share/doc/$pkg/changelog.gz"
	# dpkg-shlibdeps wants a debian/control around it
	tmp=$(mktemp -d)
	mkdir -p "$tmp/debian"
	printf 'Source: vshare\n\nPackage: %s\nArchitecture: any\n' "$pkg" >"$tmp/debian/control"
	depends=$(cd "$tmp" && dpkg-shlibdeps -O "$stage"/usr/sbin/* \
		$(ls "$stage"/usr/libexec/vshare/* 2>/dev/null) 2>/dev/null |
		sed -n 's/^shlibs:Depends=//p')
	rm -rf "$tmp"
	[ -n "$depends" ] || { echo "deb: dpkg-shlibdeps found no Depends" >&2; exit 1; }
	size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
	sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" \
		"$here/control-$2.in" >"$stage/DEBIAN/control"
	(cd "$stage" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' |
		sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
	deb=$out/${pkg}_${version}_amd64.deb
	dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
	echo "$deb"
}

# only the packages asked for are replaced: `build.sh host` keeps the
# agent's package (the install test rebuilds the host's alone)
mkdir -p "$out"
for what in ${*:-agent host}; do
	case $what in
	agent) build vshare-agent agent ;;
	host) build vshare-host host ;;
	*) echo "build.sh: agent or host, not $what" >&2; exit 2 ;;
	esac
done
