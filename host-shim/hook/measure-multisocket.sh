#!/bin/sh
# Paper 001's table on real hardware: the speed of a memory-bound VM right
# after a live migration, with the destination laid out by vshare's hook
# (proactive) and without it (libvirt's XML as sent: the reactive case).
# It cannot run on the development host (one NUMA node, TCG); run it on a
# pair of multi-socket libvirt hosts. docs/migration.md.
#
# usage: measure-multisocket.sh SRC_URI DST_URI DOMAIN [SECONDS] [RUNS]
#
#   SRC_URI/DST_URI  libvirt URIs of the two hosts (e.g. qemu+ssh://h1/system)
#   DOMAIN           a persistent domain on SRC with qemu-ga, whose guest has
#                    `stream` (or any command printing "Triad: <MB/s>") in
#                    its PATH; its profile is set with virsh metadata below
#   SECONDS          how long after arrival to measure (default 30)
#   RUNS             migrations per case (default 5)
#
# Both hosts run vshared with the hook installed (the vshare-host package;
# restart libvirtd once after installing). For the "without" runs the
# script removes the qemu.d link on DST over ssh (DST_SSH, default: the
# host of DST_URI) and restarts libvirtd there (libvirtd reads its hooks at
# start); it restores the link at the end.
#
# Output: one line per run, then the medians:
#   BENCH multisocket_triad_mbps_with   <median> MB/s
#   BENCH multisocket_triad_mbps_without <median> MB/s
set -eu
src=$1 dst=$2 dom=$3 secs=${4:-30} runs=${5:-5}
host=$(echo "$dst" | sed -n 's|^[a-z+]*://\([^/]*\)/.*|\1|p')
ssh_dst=${DST_SSH:-$host}

# a memory-bound profile travels with the domain
virsh -c "$src" metadata "$dom" --uri urn:vshare:profile:1 --key vshare \
	--config --set "<profile mpki='20' bandwidth-mbps='8000' class='memory'/>"

hook() { # on|off
	if [ "$1" = on ]; then
		ssh "$ssh_dst" 'ln -sf /usr/libexec/vshare/vshare-libvirt-hook /etc/libvirt/hooks/qemu.d/vshare'
	else
		ssh "$ssh_dst" 'rm -f /etc/libvirt/hooks/qemu.d/vshare'
	fi
	ssh "$ssh_dst" 'systemctl restart libvirtd'
}

# triad MB/s over $secs seconds in the guest, through qemu-ga
triad() {
	pid=$(virsh -c "$1" qemu-agent-command "$dom" \
		"{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"sh\",\"arg\":[\"-c\",\"timeout $secs stream || true\"],\"capture-output\":true}}" |
		sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
	sleep "$secs"
	while :; do
		out=$(virsh -c "$1" qemu-agent-command "$dom" \
			"{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}")
		echo "$out" | grep -q '"exited":true' && break
		sleep 1
	done
	echo "$out" | sed -n 's/.*"out-data":"\([^"]*\)".*/\1/p' | base64 -d |
		awk '/Triad:/ { print $2 }' | tail -1
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for case in with without; do
	[ "$case" = with ] && hook on || hook off
	: >"/tmp/multisocket-$case"
	for i in $(seq "$runs"); do
		virsh -c "$src" migrate --live --persistent --undefinesource \
			"$dom" "$dst"
		mbps=$(triad "$dst")
		echo "$case run $i: triad $mbps MB/s"
		echo "$mbps" >>"/tmp/multisocket-$case"
		virsh -c "$dst" migrate --live --persistent --undefinesource \
			"$dom" "$src"
	done
	echo "BENCH multisocket_triad_mbps_$case $(median <"/tmp/multisocket-$case") MB/s"
done
hook on
