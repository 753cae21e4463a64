#!/bin/sh
# The long fuzzing session: the agent's parser (fuzz-proto: frames, JSON,
# arguments, dispatch), the host's (fuzz-host: peer streams, QMP and
# agent replies, ledger, journal, host.conf, /proc text, domain XML) and
# vshared's wires (fuzz-daemon: control socket, peer endpoint), each for
# $1 seconds; prints BENCH lines of their runs.
#
# Corpora live in the repository (tests/fuzz/corpus/NAME): a run starts
# from it (and the seeds), works in build/fuzz/corpus-NAME, and merges back
# only the inputs that add coverage (-merge=1), so the next `make fuzz`
# resumes where this one ended; commit what it added.
set -u
cd "$(dirname "$0")/../.." || exit 1
secs=${1:-600}
rc=0
for t in proto:agent host:host daemon:daemon; do
	name=${t%%:*}
	what=${t##*:}
	seeds=tests/fuzz/seeds
	[ "$name" = proto ] || seeds=tests/fuzz/seeds-$name
	kept=tests/fuzz/corpus/$name
	work=build/fuzz/corpus-$name
	mkdir -p "$kept" "$work"
	log=build/fuzz/$name.log
	build/fuzz/fuzz-$name -max_total_time="$secs" -max_len=70000 \
		-print_final_stats=1 -artifact_prefix=build/fuzz/ \
		"$work" "$kept" "$seeds" >"$log" 2>&1 || rc=1
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	echo "BENCH fuzz_execs_$what ${runs:-0} execs"
	echo "BENCH fuzz_seconds_$what $secs s"
	[ $rc = 0 ] || { tail -30 "$log"; exit 1; }
	before=$(ls "$kept" | wc -l)
	build/fuzz/fuzz-$name -merge=1 -max_len=70000 "$kept" "$work" \
		>"$log.merge" 2>&1 || { tail -30 "$log.merge"; exit 1; }
	echo "BENCH fuzz_corpus_$what $(ls "$kept" | wc -l) inputs" \
	     "($((($(ls "$kept" | wc -l)) - before)) new, in $kept)"
done
