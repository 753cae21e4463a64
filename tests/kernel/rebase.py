#!/usr/bin/env python3
"""Both kernel series against what the archive has (guest-kernel/README:
'The source'). TAP on stdout.

1. `make rebase-check`'s two halves: each series tried on the newest
   linux-source-6.1 in the archive, one line per patch, each either
   "applies" or the named failing file and hunk.
2. The pin gone (VSHARE_KERNEL_PIN names a version the archive never had):
   `build.sh check` falls back to the newest and says "built on X, series
   written for Y".
3. The apply rule on the real source: a patch applies with moved hunks
   (offset) and, when a context line differs, fails naming patch, file
   and hunk.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "vm"))
from vshare_vm import Tap  # noqa: E402

SERIES = {
    "guest-kernel": os.path.join(REPO, "guest-kernel"),
    "kvm-patches": os.path.join(REPO, "host-shim", "kvm-patches"),
}
LIB = os.path.join(REPO, "guest-kernel", "scripts", "kernel-source.sh")
CACHE = os.environ.get("VSHARE_CACHE", "/var/cache/vshare")


def patches(d):
    with open(os.path.join(d, "patches", "series")) as f:
        return [ln.strip() for ln in f
                if ln.strip() and not ln.startswith("#")]


def ks(script, *args):
    """Run @script with kernel-source.sh sourced (bash)."""
    pre = (f'cache={CACHE}; die() {{ echo "die: $*" >&2; exit 2; }}; '
           f'. {LIB}; ')
    return subprocess.run(["bash", "-c", pre + script, "ks", *args],
                          capture_output=True, text=True)


def rebase_checks(t):
    for name, d in SERIES.items():
        p = subprocess.run([os.path.join(d, "scripts", "build.sh"),
                            "rebase-check"], capture_output=True, text=True)
        out = p.stdout
        t.diag(out.strip())
        head = re.search(rf"^{name}: newest in the archive: "
                         r"linux-source-6.1 (\S+) \(pinned: (\S+)\)$", out, re.M)
        ok, named = [], []
        for pt in patches(d):
            if re.search(rf"^applies: {re.escape(pt)}$", out, re.M):
                ok.append(pt)
            elif re.search(rf"^{re.escape(pt)} does not apply: "
                           r"(\S+ hunk #\d+ \(@@ -[\d,]+ \+[\d,]+ @@\)|a file it)", out,
                           re.M):
                named.append(pt)
        verdict = ("the series applies to" in out) == (p.returncode == 0)
        t.ok(head and len(ok) + len(named) == len(patches(d)) and verdict
             and p.returncode == (1 if named else 0),
             f"{name}: rebase-check on the newest archive version "
             f"({head.group(1) if head else '?'}): {len(ok)} apply, "
             f"{len(named)} named with their failing hunk",
             out + p.stderr[-1500:])


def pin_gone(t):
    d = SERIES["guest-kernel"]
    env = dict(os.environ, VSHARE_KERNEL_PIN="6.1.0-0vshare1")
    p = subprocess.run([os.path.join(d, "scripts", "build.sh"), "check"],
                       capture_output=True, text=True, env=env)
    m = re.search(r"built on linux-source-6.1 (\S+), series written for "
                  r"6.1.0-0vshare1", p.stdout)
    n = len(re.findall(r"^applies: ", p.stdout, re.M))
    named = re.search(r"does not apply: .* hunk #\d+", p.stderr)
    t.ok(m and ((p.returncode == 0 and n == len(patches(d))) or
                (p.returncode != 0 and named)),
         "pin not in the archive: the build uses the newest and says "
         f"so ({m.group(0) if m else 'no such line'})",
         p.stdout + p.stderr[-1500:])


def apply_rule(t):
    d = SERIES["guest-kernel"]
    patch = os.path.join(d, "patches", patches(d)[0])
    with open(patch) as f:
        text = f.read()
    files = sorted(set(re.findall(r"^--- a/(\S+)$", text, re.M)))
    r = ks('read -r pkg want < <(grep -v "^#" "$1"); ks_resolve "$pkg" '
           '"$want"; echo "$ks_tarball"', os.path.join(d, "VERSION"))
    tarball = r.stdout.strip()
    if r.returncode != 0 or not os.path.exists(tarball):
        t.ok(False, "the pinned source resolves", r.stderr)
        return
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "src")
        os.mkdir(src)
        subprocess.run(["tar", "xJf", tarball, "-C", src,
                        "--strip-components=1", "--wildcards"] +
                       [f"*/{f}" for f in files], check=True)
        pristine = os.path.join(tmp, "pristine")
        shutil.copytree(src, pristine)

        def fresh():
            shutil.rmtree(src)
            shutil.copytree(pristine, src)

        kvm = os.path.join(src, "arch/x86/kernel/kvm.c")
        with open(kvm) as f:
            lines = f.read().split("\n")
        # hunk 2 of kvm.c: its first context line, from the patch
        h = re.findall(r"^(@@ -(\d+),\d+ \+\d+,\d+ @@).*\n (.*)$",
                       text.split("diff --git a/arch/x86/kernel/kvm.c")[1]
                       .split("diff --git")[0], re.M)
        line2 = int(h[1][1]) - 1

        r = ks('ks_apply "$1" "$2"', src, patch)
        t.ok(r.returncode == 0, f"{patches(d)[0]} applies to the "
             "pinned source", r.stderr)

        fresh()
        with open(kvm, "w") as f:
            f.write("\n".join(["/* offset */"] * 7 + lines))
        r = ks('ks_apply "$1" "$2"', src, patch)
        t.ok(r.returncode == 0, "and with its hunks 7 lines lower "
             "(offsets allowed)", r.stderr)

        fresh()
        mutated = list(lines)
        assert mutated[line2] == h[1][2], (mutated[line2], h[1][2])
        mutated[line2] = mutated[line2] + " /* changed */"
        with open(kvm, "w") as f:
            f.write("\n".join(mutated))
        r = ks('ks_apply "$1" "$2"', src, patch)
        want = (f"{patches(d)[0]} does not apply: arch/x86/kernel/kvm.c "
                f"hunk #2 ({h[1][0]})")
        t.ok(r.returncode == 1 and want in r.stderr,
             "a changed context line (no fuzz): the patch, file and hunk "
             "named", f"want: {want}\ngot: {r.stderr}")
    finally:
        shutil.rmtree(tmp)


def main():
    t = Tap()
    rebase_checks(t)
    pin_gone(t)
    apply_rule(t)
    t.done()


if __name__ == "__main__":
    main()
