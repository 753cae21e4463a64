#!/bin/sh
# vshare-plesim's command line: bad input is a clear error and exit 2;
# good input gives text, JSON and a PNG (the sanitizer build).
cd "$(dirname "$0")/../.." || exit 1
bin=build/san/vshare-plesim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
check() {	# description, expected exit, expected stderr text, args...
	what=$1 want=$2 text=$3
	shift 3
	n=$((n + 1))
	"$bin" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ $rc -eq "$want" ] &&
		{ [ -z "$text" ] || grep -q -- "$text" "$tmp/err"; }; then
		echo "ok $n - $what"
	else
		echo "not ok $n - $what (exit $rc, want $want)"
		sed 's/^/# /' "$tmp/err" | head -5
	fi
}
printf 'pcpus = 2\nvcpus 4\n' >"$tmp/bad.conf"
printf '# small\npcpus = 2\nvcpus = 4 # per VM\niters = 10\n' >"$tmp/good.conf"
check "zero pCPUs" 2 "pcpus: '0' is not a number" pcpus=0
check "nonsense count" 2 "vcpus: 'lots'" vcpus=lots
check "negative count" 2 "iters: '-4'" --iters -4
check "unknown key" 2 "unknown parameter 'cpus'" cpus=4
check "bad lock kind" 2 "lock: 'mcs'" lock=mcs
check "zero runs" 2 "runs: '0'" --runs 0
check "bad policy list" 2 "policies" --policies stock,best
check "unreadable config" 2 "config $tmp/none" --config "$tmp/none"
check "config with a bad line" 2 "line 2: expected key = value" \
	--config "$tmp/bad.conf"
check "too many vCPUs" 2 "at most 4096" vms=64 vcpus=1024
check "a KEY without a value" 2 "expected KEY=VALUE" pcpus
check "config run" 0 "" --config "$tmp/good.conf" --runs 3

n=$((n + 1))
if "$bin" --runs 3 --compare --json pcpus=2 vcpus=4 iters=10 >"$tmp/j" &&
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1]));
assert len(d["policies"]) == 4 and d["policies"][1]["runs"] == 3' "$tmp/j"
then echo "ok $n - --compare --json: four policies, valid JSON"
else echo "not ok $n - --compare --json"; fi

n=$((n + 1))
if "$bin" --runs 5 --png "$tmp/p.png" pcpus=2 vcpus=4 iters=10 >/dev/null &&
	[ "$(head -c 8 "$tmp/p.png" | od -An -tx1 | tr -d ' \n')" = \
		89504e470d0a1a0a ]
then echo "ok $n - --png writes a PNG"
else echo "not ok $n - --png"; fi
check "unwritable PNG" 1 "$tmp/no/p.png" --png "$tmp/no/p.png" iters=5 vcpus=4

# vsharectl ple simulate / advise (root, as the rest of vsharectl)
ctl() { build/san/vsharectl ple "$@" --state-dir "$tmp" --conf-dir "$tmp"; }
bin=ctl
check "vsharectl ple simulate: zero pCPUs" 2 "pcpus: '0'" simulate pcpus=0
check "vsharectl ple simulate: not KEY=VALUE" 2 "expected KEY=VALUE" \
	simulate pcpus
check "vsharectl ple advise: empty ledger" 2 "give --vms and --vcpus" advise
n=$((n + 1))
if ctl simulate --runs 3 pcpus=2 vcpus=4 iters=10 | grep -q "^model-based" &&
	ctl advise --vms 2 --vcpus 4 --pcpus 2 --runs 2 |
	grep -q "^recommended (model-based): ple_gap="
then echo "ok $n - vsharectl ple simulate / advise answer, labelled model-based"
else echo "not ok $n - vsharectl ple simulate / advise"; fi
echo "1..$n"
