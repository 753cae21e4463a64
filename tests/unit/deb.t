#!/bin/sh
# make deb: the packages build from debian/, lintian --pedantic is silent, Depends come
# from the binary, the files are where Debian puts them; make install
# honours DESTDIR and PREFIX.
cd "$(dirname "$0")/../.." || exit 1
n=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
debs=$(packaging/deb/build.sh 2>&1 | tail -2)
deb=$(echo "$debs" | grep vshare-agent_)
host=$(echo "$debs" | grep vshare-host_)
for d in "$deb" "$host"; do
	[ -f "$d" ]; ok $? "make deb builds $(basename "$d") (debhelper, from debian/)"
	out=$(lintian --pedantic --tag-display-limit 0 "$d" 2>&1 | grep -v 'root privileges')
	[ -z "$out" ]; ok $? "lintian --pedantic: nothing to say about $(basename "$d")"
	[ -n "$out" ] && echo "$out" | sed 's/^/# /'
done
v=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['version'])" protocol/schema.json)
[ "$(dpkg-parsechangelog -S Version)" = "$v" ] && [ "$(dpkg-deb -f "$host" Version)" = "$v" ]
ok $? "debian/changelog, the package and protocol/schema.json agree on the version ($v)"
ctl=$(mktemp -d)
dpkg-deb -e "$host" "$ctl"
grep -q 'deb-systemd-helper enable' "$ctl/postinst" && grep -q 'restart' "$ctl/postinst" &&
	grep -q 'deb-systemd-invoke stop' "$ctl/prerm" &&
	[ "$(sort "$ctl/conffiles" | tr '\n' ' ')" = "/etc/vshare/host.conf /etc/vshare/policies.conf /etc/vshare/vshared.conf " ]
ok $? "vshare-host: dh_installsystemd's scripts (enable, restart on upgrade, stop on remove), /etc/vshare conffiles"
dpkg-deb -e "$deb" "$ctl/agent"
# dh_installsystemd --no-enable --no-start: enabled only where an admin
# had enabled it before (debian-installed), never started by the package
grep -q 'deb-systemd-helper debian-installed' "$ctl/agent/postinst" &&
	! grep -q 'deb-systemd-invoke' "$ctl/agent/postinst" && grep -q 'udevadm trigger' "$ctl/agent/postinst"
ok $? "vshare-agent: not enabled at boot (udev starts it with the port)"
rm -rf "$ctl"
hfiles=$(dpkg-deb -c "$host")
for f in ./usr/sbin/vsharectl ./usr/sbin/vshared ./lib/systemd/system/vshared.service \
	./usr/libexec/vshare/vshare-libvirt-hook \
	./usr/share/man/man8/vshared.8.gz ./usr/share/man/man8/vsharectl.8.gz \
	./usr/share/doc/vshare-host/copyright; do
	echo "$hfiles" | grep -q " $f\$"; ok $? "host package holds $f"
done
dpkg-deb -f "$host" Depends | grep -q 'libglib2.0-0 (>=' ; ok $? "host Depends from the shared libraries: $(dpkg-deb -f "$host" Depends)"
dpkg-deb -f "$host" Depends | grep -q 'libxml2 (>=' ; ok $? "host Depends: libxml2, for the migration hook"
echo "$hfiles" | grep -q ' ./etc/libvirt/hooks/qemu.d/vshare -> /usr/libexec/vshare/vshare-libvirt-hook$'
ok $? "the migration hook is in libvirt's qemu.d"
dpkg-deb -f "$deb" Depends | grep -q 'libglib2.0-0 (>=' ; ok $? "Depends from the shared libraries: $(dpkg-deb -f "$deb" Depends)"
files=$(dpkg-deb -c "$deb")
for f in ./usr/sbin/vshare-agent ./lib/systemd/system/vshare-agent.service \
	./lib/udev/rules.d/60-vshare-agent.rules \
	./usr/share/man/man8/vshare-agent.8.gz ./usr/share/doc/vshare-agent/copyright; do
	echo "$files" | grep -q " $f\$"; ok $? "package holds $f"
done
ud=$(agent/cloud-init/make-user-data.sh "$deb")
echo "$ud" | head -1 | grep -qx '#cloud-config' &&
	[ "$(echo "$ud" | sed -n 's/^ *content: //p' | base64 -d | head -c 7)" = '!<arch>' ]
ok $? "cloud-init user-data carries the package ($(echo "$ud" | wc -c) bytes)"
# OpenStack Nova: at most 65,535 bytes of user-data once base64-encoded
gz=$(agent/cloud-init/make-user-data.sh --gzip "$deb" | base64 -w0 | wc -c)
[ "$gz" -le 65535 ] &&
	agent/cloud-init/make-user-data.sh --gzip "$deb" | gunzip | cmp -s - "$(printf '%s\n' "$ud" >"${TMPDIR:-/tmp}/ud.$$" && echo "${TMPDIR:-/tmp}/ud.$$")"
ok $? "gzip'd user-data fits Nova's limit: $gz bytes of base64 <= 65535 (plain: $(echo "$ud" | base64 -w0 | wc -c)), and unpacks to the plain one"
rm -f "${TMPDIR:-/tmp}/ud.$$"
dest=$(mktemp -d)
make -s install DESTDIR="$dest" PREFIX=/opt/vs >/dev/null 2>&1
[ -x "$dest/opt/vs/sbin/vshare-agent" ] && [ -x "$dest/opt/vs/sbin/vsharectl" ] &&
	[ -x "$dest/opt/vs/sbin/vshared" ] &&
	[ "$(readlink "$dest/etc/libvirt/hooks/qemu.d/vshare")" = /opt/vs/libexec/vshare/vshare-libvirt-hook ] &&
	grep -q '^ExecStart=/opt/vs/sbin/vshared' "$dest/opt/vs/lib/systemd/system/vshared.service" &&
	grep -q '^ExecStart=/opt/vs/sbin/vshare-agent' "$dest/opt/vs/lib/systemd/system/vshare-agent.service"
ok $? "make install DESTDIR=... PREFIX=/opt/vs"
rm -rf "$dest"
echo "1..$n"
