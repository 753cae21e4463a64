#!/bin/sh
# A bounded libFuzzer run of the frame/JSON/argument parser (ASan+UBSan).
# `make fuzz` runs the long one.
cd "$(dirname "$0")/../.." || exit 1
echo 1..1
secs=${FUZZ_SHORT_SECONDS:-30}
corpus=$(mktemp -d)
trap 'rm -rf $corpus' EXIT
if build/fuzz/fuzz-proto -max_total_time="$secs" -max_len=70000 \
	"$corpus" tests/fuzz/seeds >"$corpus.log" 2>&1; then
	echo "ok 1 - fuzz-proto ${secs}s: $(grep -o 'Done [0-9]* runs' "$corpus.log")"
else
	echo "not ok 1 - fuzz-proto found a crash"
	tail -40 "$corpus.log" | sed 's/^/# /'
fi
rm -f "$corpus.log"
