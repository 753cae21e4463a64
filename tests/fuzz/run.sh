#!/bin/sh
# The long fuzzing session: the agent's parser (fuzz-proto: frames, JSON,
# arguments, dispatch) and the host's (fuzz-host: peer streams, QMP and
# agent replies, ledger, journal, host.conf, /proc text, domain XML), each
# for $1 seconds with a kept corpus; prints BENCH lines of their runs.
set -u
cd "$(dirname "$0")/../.." || exit 1
secs=${1:-600}
rc=0
for t in proto:agent host:host; do
	name=${t%%:*}
	what=${t##*:}
	seeds=tests/fuzz/seeds
	[ "$name" = host ] && seeds=tests/fuzz/seeds-host
	mkdir -p "build/fuzz/corpus-$name"
	log=build/fuzz/$name.log
	build/fuzz/fuzz-$name -max_total_time="$secs" -max_len=70000 \
		-print_final_stats=1 -artifact_prefix=build/fuzz/ \
		"build/fuzz/corpus-$name" "$seeds" >"$log" 2>&1 || rc=1
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	echo "BENCH fuzz_execs_$what ${runs:-0} execs"
	echo "BENCH fuzz_seconds_$what $secs s"
	[ $rc = 0 ] || { tail -30 "$log"; exit 1; }
done
