#!/bin/bash
# Measure kvm.ple_not_next on a real VMX host: stock (0) vs patched (1),
# alternating run by run in one boot (the parameter is 0644), paper 000's
# shape: a lock-heavy workload in every guest at once, guests overcommitted
# (start them so that vCPUs = 2x or 4x the pCPUs they may run on).
#
# Needs: a host kernel built with this series (Debian 6.1.192-2 config,
# `make bindeb-pkg`: 0001 touches the core scheduler, so new modules alone
# are not enough), kvm_intel loaded, perf, running guests reachable over
# ssh, and in each guest the workload command.
#
#   measure-vmx.sh [-r RUNS] [-w 'WORKLOAD'] GUEST...
#     GUEST     an ssh destination (user@host) of a running guest
#     RUNS      runs per setting (default 20)
#     WORKLOAD  run in every guest at once (default: hackbench-like
#               'perf bench sched messaging -g 16 -l 2000'; paper 000 used
#               sysbench OLTP: 'sysbench oltp_read_only --threads=128 run')
#
# Prints per run: setting, slowest guest's wall time, PAUSE exits (the
# kvm:kvm_exit tracepoint with exit_reason 40), then per setting the
# median and p99 run time, the share of runs above 1.2 x stock's median,
# and mean exits: the figures docs/ple.md compares with the model.
set -euo pipefail

runs=20
workload='perf bench sched messaging -g 16 -l 2000'
while getopts r:w: o; do
	case $o in
	r) runs=$OPTARG ;;
	w) workload=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-r RUNS] [-w WORKLOAD] GUEST..." >&2; exit 2; }
param=/sys/module/kvm/parameters/ple_not_next
[ -w "$param" ] || { echo "$param missing: boot the patched kernel" >&2; exit 1; }
grep -qw vmx /proc/cpuinfo || { echo "no VMX on this host" >&2; exit 1; }
log=$(mktemp)
trap 'echo 0 >"$param"; rm -f "$log"' EXIT

one() {	# setting
	local t0 t1 exits
	echo "$1" >"$param"
	t0=$(date +%s.%N)
	exits=$(perf stat -a -x, -e kvm:kvm_exit --filter 'exit_reason == 40' \
		-- bash -c 'for g; do ssh -n "$g" "$0" & done; wait' \
		"$workload" "$@" 2>&1 >/dev/null | awk -F, '/kvm_exit/ {print $1}')
	t1=$(date +%s.%N)
	echo "$1 $(echo "$t1 - $t0" | bc) $exits" | tee -a "$log"
}

for ((i = 0; i < runs; i++)); do
	one 0 "$@"
	one 1 "$@"
done
python3 - "$log" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {s: [(float(t), int(e or 0)) for k, t, e in rows if k == s] for s in "01"}
med0 = statistics.median(t for t, _ in by["0"])
for s, name in (("0", "stock"), ("1", "ple_not_next=1")):
    t = sorted(x for x, _ in by[s])
    p99 = t[min(len(t) - 1, int(0.99 * len(t)))]
    slow = sum(x > 1.2 * med0 for x in t) / len(t)
    ex = statistics.mean(e for _, e in by[s])
    print(f"{name:15} runs {len(t)} median {statistics.median(t):.3f} s "
          f"p99 {p99:.3f} s slow {100 * slow:.1f} % PAUSE exits {ex:.0f}")
PY
