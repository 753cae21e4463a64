#!/bin/sh
# A short run of each benchmark that has a --smoke mode, so a broken one
# fails `make check` (the figures themselves come from `make bench`).
cd "$(dirname "$0")/../.." || exit 1
n=0
for b in tests/bench/bench-hostile.py tests/bench/bench-libvirt.py \
	tests/bench/bench-policy.py tests/bench/bench-plesim.py; do
	n=$((n + 1))
	out=$(python3 "$b" --smoke 2>&1)
	if [ $? -eq 0 ] && echo "$out" | grep -q '^BENCH '; then
		echo "ok $n - $(basename "$b") --smoke prints BENCH lines"
		echo "$out" | grep '^BENCH ' | sed 's/^/# /'
	else
		echo "not ok $n - $(basename "$b") --smoke"
		echo "$out" | tail -20 | sed 's/^/# /'
	fi
done
echo "1..$n"
