#!/usr/bin/env python3
"""The PLE model (host-shim/plesim, docs/ple.md) on paper 000's shape:
32 vCPUs of one VM on 4 pCPUs, ticket locks, kvm_intel defaults, the run
scaled 1:10 in time (about 146 ms instead of 1.5 s). Stock Linux 6.1
directed yield against the proposal (after a PAUSE exit the spinner is not
the next pick), the same seeds for both.

BENCH plesim_runs_per_s                    model runs per second (this host)
BENCH plesim_slow_run_fraction_stock       runs slower than 1.2 x stock's
                                           median (paper 000: 1.5 s usual,
                                           > 1.8 s slow)
BENCH plesim_slow_run_fraction_proposal    the same bar, proposal
BENCH plesim_ple_exits_proposal_vs_stock   mean PLE exits, ratio
BENCH plesim_runtime_p99_proposal_vs_stock p99 run time, ratio

--runs N (default 10000 per policy); --smoke: 100 runs, for make check.
Needs build/rel/vshare-plesim (make build/rel/vshare-plesim).
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "build", "rel", "vshare-plesim")


def run(runs):
    t0 = time.monotonic()
    out = subprocess.run([BIN, "--runs", str(runs), "--json",
                          "--policies", "stock,not-next"],
                         check=True, capture_output=True, text=True).stdout
    wall = time.monotonic() - t0
    pol = {p["policy"]: p for p in json.loads(out)["policies"]}
    return pol["stock"], pol["not-next"], 2 * runs / wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=0)
    ap.add_argument("--smoke", action="store_true",
                    help="100 runs per policy (make check)")
    a = ap.parse_args()
    if not os.access(BIN, os.X_OK):
        sys.exit(f"bench-plesim: {BIN} missing: make build/rel/vshare-plesim")
    runs = a.runs or (100 if a.smoke else 10000)
    stock, prop, rate = run(runs)
    lines = [
        ("plesim_runs_per_s", f"{rate:.1f}", "runs/s"),
        ("plesim_slow_run_fraction_stock",
         f"{stock['slow_fraction']:.4f}", "fraction"),
        ("plesim_slow_run_fraction_proposal",
         f"{prop['slow_fraction']:.4f}", "fraction"),
        ("plesim_ple_exits_proposal_vs_stock",
         f"{prop['ple_exits']['mean'] / max(stock['ple_exits']['mean'], 1e-9):.3f}",
         "ratio"),
        ("plesim_runtime_p99_proposal_vs_stock",
         f"{prop['runtime_ms']['p99'] / stock['runtime_ms']['p99']:.4f}",
         "ratio"),
    ]
    for name, value, unit in lines:
        print(f"BENCH {name} {value} {unit}")
    print(f"# {runs} runs per policy; slow bar {stock['slow_ms']:.1f} ms; "
          f"p99 {stock['runtime_ms']['p99']:.1f} vs "
          f"{prop['runtime_ms']['p99']:.1f} ms (model-based)")


if __name__ == "__main__":
    main()
