#!/usr/bin/env python3
"""vsharectl against hostile peers (issue 11), timed and weighed. Fake peers
from tests/hostile/peers.py (no QEMU, no guest).

BENCH hostile_timeout_ms            the configured --timeout (anchor)
BENCH hostile_flood_return_ms       `status --timeout T` against an agent
                                    flooding junk: start -> exit (median);
                                    target <= the timeout + 100 ms
BENCH hostile_small_reply_rss_kib   vsharectl's peak RSS, `status` with
                                    honest peers (anchor)
BENCH hostile_8mb_reply_rss_kib     the same with an 8 MB agent reply
                                    (vshare-get-allocation)
BENCH hostile_8mb_qmp_reply_rss_kib the same with an 8 MB QMP reply
                                    (query-memory-devices)

Peak RSS is the child's own ru_maxrss (wait4). A run still going at the
timeout + 5 s is killed; its figure is then the time (or RSS) at the kill,
marked "(killed by the hang guard)". --smoke: one sample each, 0.5 s
timeout (for make check); --bin: the vsharectl to measure (default:
$VSHARECTL, else build/rel/vsharectl, else build/san/vsharectl).
"""
import argparse
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "hostile"))
from hostilelib import REPO, Scene  # noqa: E402

NO_LEAKS = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0"}


def bench(name, value, unit, note=""):
    print(f"BENCH {name} {value} {unit} {note}".rstrip(), flush=True)


def default_bin():
    if os.environ.get("VSHARECTL"):
        return os.environ["VSHARECTL"]
    rel = os.path.join(REPO, "build", "rel", "vsharectl")
    return rel if os.access(rel, os.X_OK) else \
        os.path.join(REPO, "build", "san", "vsharectl")


def status(sc, timeout, guard):
    # LeakSanitizer off (ASan build): it scans the heap at exit, which
    # takes seconds after an 8 MB reply and is not what is measured
    return sc.run("status", "--json", "--interval", "0.001", "--timeout",
                  str(timeout), guard=guard, env=NO_LEAKS)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true",
                    help="one sample, 0.5 s timeout")
    ap.add_argument("--bin", default=default_bin())
    ap.add_argument("--timeout", type=float, default=None,
                    help="vsharectl --timeout, s (default 1; smoke 0.5)")
    ap.add_argument("--samples", type=int, default=None)
    a = ap.parse_args()
    timeout = a.timeout or (0.5 if a.smoke else 1.0)
    samples = a.samples or (1 if a.smoke else 5)
    guard = timeout + 5
    if not os.access(a.bin, os.X_OK):
        sys.exit(f"bench-hostile: {a.bin} not built")
    print(f"# {a.bin}, --timeout {timeout:g} s, {samples} sample(s), hang "
          f"guard {guard:g} s", flush=True)
    bench("hostile_timeout_ms", round(timeout * 1000, 1), "ms")

    sc = Scene("bench-flood", binary=a.bin, guard=guard)
    try:
        sc.vm.set(agent={"mode": "junk"})
        runs = [status(sc, timeout, guard) for _ in range(samples)]
        ms = statistics.median(r.secs * 1000 for r in runs)
        killed = sum(r.killed for r in runs)
        print(f"# flood samples (ms): "
              f"{', '.join(f'{r.secs * 1000:.0f}' for r in runs)}",
              flush=True)
        bench("hostile_flood_return_ms", round(ms, 1), "ms",
              f"(killed by the hang guard: {killed} of {samples})"
              if killed else "")
    finally:
        sc.close()

    sc = Scene("bench-rss", binary=a.bin, guard=guard)
    try:
        for name, peers in (
                ("hostile_small_reply_rss_kib", {}),
                ("hostile_8mb_reply_rss_kib",
                 {"agent": {"mode": "big", "on": "vshare-get-allocation"}}),
                ("hostile_8mb_qmp_reply_rss_kib", {"qmp": {"mode": "big"}})):
            sc.vm.set(**peers)
            runs = [status(sc, timeout, guard) for _ in range(samples)]
            rss = max(r.rss_kib for r in runs)
            killed = sum(r.killed for r in runs)
            bad = [r for r in runs if r.rc not in (0, 1) and not r.killed]
            for r in bad:
                print("# " + r.diag().replace("\n", "\n# "), flush=True)
            bench(name, rss, "KiB",
                  f"(killed by the hang guard: {killed} of {samples})"
                  if killed else "")
    finally:
        sc.close()


if __name__ == "__main__":
    main()
