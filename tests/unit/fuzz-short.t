#!/bin/sh
# Bounded libFuzzer runs (ASan+UBSan) of the agent's parser (fuzz-proto:
# frames, JSON, arguments, dispatch) and the host's (fuzz-host: peer
# streams, QMP/agent replies, ledger, journal, host.conf, /proc text,
# domain XML) and vshared's wires (fuzz-daemon: control socket, peer
# endpoint). `make fuzz` runs the long ones.
cd "$(dirname "$0")/../.." || exit 1
echo 1..3
secs=${FUZZ_SHORT_SECONDS:-30}
n=0
for t in proto host daemon; do
	n=$((n + 1))
	seeds=tests/fuzz/seeds
	[ $t = proto ] || seeds=tests/fuzz/seeds-$t
	[ -d tests/fuzz/corpus/$t ] && seeds="$seeds tests/fuzz/corpus/$t"
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
