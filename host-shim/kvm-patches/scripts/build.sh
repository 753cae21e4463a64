#!/bin/bash
# Build the KVM-side PLE series (host-shim/kvm-patches) against Debian's
# linux-source-6.1 with a host config (x86_64_defconfig + config/host.config:
# KVM, KVM_INTEL, KVM_AMD as modules): the objects it touches compile and
# the KVM modules link. It cannot be loaded here (no VMX); docs/ple.md
# says how to measure it on a VMX host.
#
#   build.sh [build|check]    default: build
#     build  compile kernel/sched/fair.o, link kvm.ko, kvm-intel.ko,
#            kvm-amd.ko (cached by the hash of the code that goes in)
#     check  the series applies and scripts/checkpatch.pl --no-tree is clean
#     rebase-check  the series tried on the newest linux-source in the
#            archive (fetched, not installed)
# The source: VERSION's pin while the archive holds it, else the newest
# (guest-kernel/scripts/kernel-source.sh).
#
# Output: build/kvm-patches/{kvm,kvm-intel,kvm-amd}.ko and .config.
# Cache:  $VSHARE_CACHE (default /var/cache/vshare)/kvm, ccache beside
#         (shared with guest-kernel/).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VSHARE_CACHE:-/var/cache/vshare}
out=$repo/build/kvm-patches
read -r pkg want < <(grep -v '^#' "$here/VERSION")

die() { echo "kvm-patches: $*" >&2; exit 1; }
# shellcheck source=../../../guest-kernel/scripts/kernel-source.sh
. "$repo/guest-kernel/scripts/kernel-source.sh"

series=()
while read -r p; do
	case "$p" in ''|'#'*) continue ;; esac
	series+=("$here/patches/$p")
done <"$here/patches/series"

mode=${1:-build}
if [ "$mode" = rebase-check ]; then
	ks_rebase_check "$pkg" "$want" "kvm-patches" "${series[@]}"
	exit
fi
ks_resolve "$pkg" "$want"
tarball=$ks_tarball
[ -z "$ks_note" ] || echo "kvm-patches: $ks_note" >&2

# The code, not the commit messages: rewording a message rebuilds nothing.
key=$( { echo "$ks_version"; cat "$here/config/host.config" "$0";
	 for p in "${series[@]}"; do sed -n '/^---$/,$p' "$p"; done; } |
	 sha256sum | cut -c1-12)

export CCACHE_DIR=$cache/ccache CCACHE_BASEDIR=$cache/kvm CCACHE_NOHASHDIR=1
export CCACHE_MAXSIZE=3G
mkdir -p "$cache/kvm" "$CCACHE_DIR" "$out"

unpack() {	# dir
	tar xJf "$tarball" -C "$1" --strip-components=1
	for p in "${series[@]}"; do
		ks_apply "$1" "$p" ||
			die "rebase the series on $pkg $ks_version"
	done
}

tree() {
	local dir=$cache/kvm/patched-$key old
	if [ ! -f "$dir/.ready" ]; then
		for old in "$cache/kvm/patched-"*; do	# stale keys
			[ "$old" = "$dir" ] || rm -rf "$old"
		done
		rm -rf "$dir"
		mkdir -p "$dir/src" "$dir/out"
		echo "kvm-patches: unpacking $tarball" >&2
		unpack "$dir/src"
		touch "$dir/.ready"
	fi
	echo "$dir"
}

configure() {	# dir
	local line missing=0
	(cd "$1/src" &&
	 make -s O=../out ARCH=x86_64 x86_64_defconfig >/dev/null &&
	 scripts/kconfig/merge_config.sh -m -O ../out ../out/.config \
		"$here/config/host.config" >/dev/null &&
	 make -s O=../out ARCH=x86_64 olddefconfig >/dev/null)
	while read -r line; do
		case "$line" in CONFIG_*=*) ;; *) continue ;; esac
		grep -qx "$line" "$1/out/.config" ||
			{ echo "  not set: $line" >&2; missing=1; }
	done <"$here/config/host.config"
	[ $missing = 0 ] || die "config/host.config did not stick"
}

build() {
	local dir t0=$SECONDS m
	dir=$(tree)
	if [ ! -f "$dir/out/arch/x86/kvm/kvm.ko" ]; then
		configure "$dir"
		echo "kvm-patches: building (ccache $CCACHE_DIR)" >&2
		# modpost has no vmlinux here: unresolved symbols are warnings
		(cd "$dir/out" && make -s -j"$(nproc)" CC="ccache gcc" \
			KBUILD_MODPOST_WARN=1 kernel/sched/fair.o \
			arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-intel.ko \
			arch/x86/kvm/kvm-amd.ko)
		echo "kvm-patches: built in $((SECONDS - t0)) s" >&2
	fi
	for m in kvm kvm-intel kvm-amd; do
		cp "$dir/out/arch/x86/kvm/$m.ko" "$out/"
	done
	cp "$dir/out/.config" "$out/config"
	echo "$out"
}

check() {	# cached by the hash of the whole series, messages included
	local p stamp
	stamp=$cache/kvm/checked-$( { echo "$key"; cat "${series[@]}"; } |
		sha256sum | cut -c1-12)
	if [ ! -f "$stamp" ]; then
		tmp=$(mktemp -d); trap 'rm -rf "${tmp:-}"' EXIT
		unpack "$tmp"
		for p in "${series[@]}"; do
			(cd "$tmp" &&
			 perl scripts/checkpatch.pl --no-tree -q "$p") ||
				die "checkpatch: $(basename "$p")"
		done
		rm -f "$cache/kvm/checked-"*
		touch "$stamp"
	fi
	[ -z "$ks_note" ] || echo "$ks_note"
	for p in "${series[@]}"; do
		echo "applies, checkpatch clean: $(basename "$p") ($pkg $ks_version)"
	done
}

case "$mode" in
build) build ;;
check) check ;;
*) die "usage: build.sh [build|check|rebase-check]" ;;
esac
