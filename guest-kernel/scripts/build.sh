#!/bin/bash
# Build the vshare guest kernel, stock and patched, from Debian's
# linux-source-6.1 with the same trimmed config (config/vshare.config over
# tinyconfig), with ccache. Results are cached by the hash of everything
# that goes in; a rebuild happens only when the source, the config or the
# series changes.
#
#   build.sh [stock|patched|all|check|rebase-check]    default: all
#     check         the series applies to the source the build uses
#     rebase-check  the series tried on the newest linux-source in the
#                   archive (fetched, not installed): a rebase seen early
#
# The source: guest-kernel/VERSION's pin while the archive holds it, else
# the newest version, with a "built on X, series written for Y" line
# (scripts/kernel-source.sh).
#
# Output: build/guest-kernel/bzImage-{stock,patched} (copies of the cache's).
# Cache:  $VSHARE_CACHE (default /var/cache/vshare)/kernel, ccache beside.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$here/.." && pwd)
cache=${VSHARE_CACHE:-/var/cache/vshare}
out=$repo/build/guest-kernel
read -r pkg want < <(grep -v '^#' "$here/VERSION")

die() { echo "guest-kernel: $*" >&2; exit 1; }
# shellcheck source=kernel-source.sh
. "$here/scripts/kernel-source.sh"

series=()
while read -r p; do
	case "$p" in ''|'#'*) continue ;; esac
	series+=("$here/patches/$p")
done <"$here/patches/series"

mode=${1:-all}
if [ "$mode" = rebase-check ]; then
	ks_rebase_check "$pkg" "$want" "guest-kernel" "${series[@]}"
	exit
fi
ks_resolve "$pkg" "$want"
tarball=$ks_tarball
[ -z "$ks_note" ] || echo "guest-kernel: $ks_note" >&2

key=$( { echo "$ks_version"; cat "$here/config/vshare.config";
	 cat "$here/scripts/build.sh"; } | sha256sum | cut -c1-12)
pkey=$( { echo "$key"; cat "${series[@]}"; } | sha256sum | cut -c1-12)

export CCACHE_DIR=$cache/ccache CCACHE_BASEDIR=$cache/kernel CCACHE_NOHASHDIR=1
export CCACHE_MAXSIZE=3G
mkdir -p "$cache/kernel" "$CCACHE_DIR" "$out"

# A pristine tree per flavour: <flavour>/src and <flavour>/out, so ccache
# sees the same relative paths for both and the second build is cheap.
tree() {	# flavour key
	local dir=$cache/kernel/$1-$2 old
	if [ ! -f "$dir/.ready" ]; then
		for old in "$cache/kernel/$1"-*; do	# stale keys: 1.3 GB each
			[ "$old" = "$dir" ] || rm -rf "$old"
		done
		rm -rf "$dir"
		mkdir -p "$dir/src"
		echo "guest-kernel: unpacking $tarball for $1" >&2
		tar xJf "$tarball" -C "$dir/src" --strip-components=1
		if [ "$1" = patched ]; then
			for p in "${series[@]}"; do
				ks_apply "$dir/src" "$p" ||
					die "rebase the series on $pkg $ks_version" \
					    "(guest-kernel/README: 'Rebasing')"
			done
		fi
		touch "$dir/.ready"
	fi
	echo "$dir"
}

check_config() {	# .config flavour
	local missing=0 line
	while read -r line; do
		case "$line" in CONFIG_*=*) ;; *) continue ;; esac
		if [ "$2" = stock ] && [[ $line == CONFIG_VSHARE* ]]; then
			continue	# symbols the series adds
		fi
		grep -qx "$line" "$1" || { echo "  not set: $line" >&2; missing=1; }
	done <"$here/config/vshare.config"
	[ $missing = 0 ] || die "config/vshare.config did not stick (a" \
		"dependency is missing from the fragment)"
}

build() {	# flavour key
	local dir img
	dir=$(tree "$1" "$2")
	img=$dir/out/arch/x86/boot/bzImage
	if [ ! -f "$img" ]; then
		mkdir -p "$dir/out"
		(cd "$dir/src" &&
		 make -s O=../out ARCH=x86_64 tinyconfig >/dev/null &&
		 scripts/kconfig/merge_config.sh -m -O ../out ../out/.config \
			"$here/config/vshare.config" >/dev/null &&
		 make -s O=../out ARCH=x86_64 olddefconfig >/dev/null)
		check_config "$dir/out/.config" "$1"
		echo "guest-kernel: building $1 (ccache $CCACHE_DIR)" >&2
		local t0=$SECONDS
		(cd "$dir/out" && make -s -j"$(nproc)" CC="ccache gcc" bzImage)
		echo "guest-kernel: $1 built in $((SECONDS - t0)) s" >&2
	fi
	cp "$img" "$out/bzImage-$1"
	cp "$dir/out/.config" "$out/config-$1"
	echo "$out/bzImage-$1"
}

case "$mode" in
stock) build stock "$key" ;;
patched) build patched "$pkey" ;;
all) build stock "$key"; build patched "$pkey" ;;
check)	# does the series apply? (no build)
	tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
	ks_unpack_touched "$tmp" "$tarball" "${series[@]}"
	[ -z "$ks_note" ] || echo "$ks_note"
	for p in "${series[@]}"; do
		ks_apply "$tmp" "$p" ||
			die "rebase the series on $pkg $ks_version"
		echo "applies: $(basename "$p") ($pkg $ks_version)"
	done ;;
*) die "usage: build.sh [stock|patched|all|check|rebase-check]" ;;
esac
