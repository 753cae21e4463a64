#!/bin/sh
# The KVM-side PLE series (host-shim/kvm-patches): it applies to Debian's
# linux-source-6.1 and is checkpatch-clean; the touched scheduler object
# compiles and kvm.ko / kvm-intel.ko / kvm-amd.ko link with a host config
# (cached by content hash under $VSHARE_CACHE; a cold build takes minutes).
# It cannot be loaded here (no VMX): docs/ple.md.
cd "$(dirname "$0")/../.." || exit 1
b=host-shim/kvm-patches/scripts/build.sh
echo 1..4
out=$(nice -n 19 "$b" check 2>&1)
if [ $? -eq 0 ]; then
	echo "ok 1 - the series applies and checkpatch.pl --no-tree is clean"
	echo "$out" | sed 's/^/# /'
else
	echo "not ok 1 - build.sh check"
	echo "$out" | tail -20 | sed 's/^/# /'
fi
out=$(nice -n 19 "$b" build 2>&1)
if [ $? -eq 0 ] && [ -f build/kvm-patches/kvm.ko ] &&
	[ -f build/kvm-patches/kvm-intel.ko ]; then
	echo "ok 2 - sched/fair.o compiles, the KVM modules link"
else
	echo "not ok 2 - build.sh build"
	echo "$out" | tail -20 | sed 's/^/# /'
fi
if modinfo -F parm build/kvm-patches/kvm.ko 2>/dev/null |
	grep -q '^ple_not_next:'; then
	echo "ok 3 - kvm.ko has the ple_not_next parameter"
else
	echo "not ok 3 - kvm.ko has no ple_not_next parameter"
fi
if nm build/kvm-patches/kvm.ko 2>/dev/null |
	grep -q ' U sched_yield_not_next$'; then
	echo "ok 4 - kvm.ko calls sched_yield_not_next()"
else
	echo "not ok 4 - kvm.ko does not call sched_yield_not_next()"
fi
