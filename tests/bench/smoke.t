#!/bin/sh
# A short run of every benchmark `make bench` runs (--smoke: one
# repetition, figures printed, not judged), so a broken one fails
# `make check`. Each is run as make bench runs it: through its #! line,
# so a lost run bit fails here too.
cd "$(dirname "$0")/../.." || exit 1
n=0
for b in tests/bench/bench-hostile.py tests/bench/bench-libvirt.py \
	tests/bench/bench.py tests/bench/bench-vcpus.py \
	tests/bench/bench-systemd.py \
	tests/bench/bench-shim.py tests/libvirt/guestvcpus.py \
	tests/bench/bench-policy.py tests/bench/bench-plesim.py \
	tests/bench/bench-layout.py tests/bench/bench-status.py \
	tests/bench/soak.py; do
	n=$((n + 1))
	t0=$(date +%s)
	out=$("$b" --smoke 2>&1)
	rc=$?
	t=$(($(date +%s) - t0))
	if [ $rc -eq 0 ] && echo "$out" | grep -q '^BENCH '; then
		echo "ok $n - $(basename "$b") --smoke prints BENCH lines (${t} s)"
		echo "$out" | grep '^BENCH ' | sed 's/^/# /'
	else
		echo "not ok $n - $(basename "$b") --smoke (exit $rc, ${t} s)"
		echo "$out" | tail -20 | sed 's/^/# /'
	fi
done
echo "1..$n"
