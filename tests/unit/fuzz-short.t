#!/bin/sh
# Bounded libFuzzer runs (ASan+UBSan) of the agent's parser (fuzz-proto:
# frames, JSON, arguments, dispatch) and the host's (fuzz-host: peer
# streams, QMP/agent replies, ledger, journal, host.conf, /proc text,
# domain XML). `make fuzz` runs the long ones.
cd "$(dirname "$0")/../.." || exit 1
echo 1..2
secs=${FUZZ_SHORT_SECONDS:-30}
n=0
for t in proto host; do
	n=$((n + 1))
	seeds=tests/fuzz/seeds
	[ $t = host ] && seeds=tests/fuzz/seeds-host
	corpus=$(mktemp -d)
	if build/fuzz/fuzz-$t -max_total_time="$secs" -max_len=70000 \
		-artifact_prefix="$corpus/" "$corpus" $seeds >"$corpus.log" 2>&1; then
		echo "ok $n - fuzz-$t ${secs}s: $(grep -o 'Done [0-9]* runs' "$corpus.log")"
	else
		echo "not ok $n - fuzz-$t found a crash or leak"
		tail -40 "$corpus.log" | sed 's/^/# /'
	fi
	rm -rf "$corpus" "$corpus.log"
done
