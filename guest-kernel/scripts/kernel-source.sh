# Sourced by guest-kernel/scripts/build.sh and
# host-shim/kvm-patches/scripts/build.sh: where a series' kernel source
# comes from, and how a series is applied to it.
#
# The pin (a VERSION file: "linux-source-6.1 6.1.192-2") names the Debian
# source package a series is written against. The source used is, in
# order:
#   1. the installed package, when it is the pinned version;
#   2. the pinned version's .deb, fetched with `apt-get download` (the
#      machine's own apt configuration) into $cache/src and unpacked there,
#      while the archive still holds it: nothing is installed or downgraded;
#   3. when the archive no longer has the pin, the newest version it has
#      (or the installed one when the archive cannot be read): the series
#      is tried on it and the build says "built on X, series written for Y".
# A series is applied with `git apply`: hunks may move (offsets), but every
# context line must match (no fuzz). A patch that does not apply is named
# with its failing hunk (from `patch --dry-run -F0`).
#
# Callers set: cache (the vshare cache dir) and die().

# The versions of $1 the archive holds, newest first (empty: none or no
# apt lists).
ks_archive_versions() {
	apt-cache madison "$1" 2>/dev/null | awk -F'|' '{gsub(/ /,"",$2); print $2}' |
		sort -u | sort -r -V
}

# Fetch (once) and unpack version $2 of package $1 into $cache/src/$1_$2;
# prints the tarball's path. Fails (status 1, message on stderr) when the
# archive does not have it.
ks_fetch() {
	local pkg=$1 ver=$2 dir deb
	dir=$cache/src/${pkg}_$ver
	if [ ! -f "$dir/.ready" ]; then
		rm -rf "$dir"
		mkdir -p "$dir"
		echo "kernel-source: fetching $pkg $ver from the archive" >&2
		(cd "$dir" && apt-get download -q "$pkg=$ver" >&2) || {
			rm -rf "$dir"
			return 1
		}
		deb=$(ls "$dir"/*.deb)
		dpkg-deb -x "$deb" "$dir/root"
		rm -f "$deb"
		touch "$dir/.ready"
	fi
	ls "$dir"/root/usr/src/linux-source-*.tar.xz
}

# Resolve the source for pin ($1 package, $2 version). Sets ks_tarball and
# ks_version (the version actually used) and ks_note (empty when it is the
# pin, else the "built on X, series written for Y" line).
# VSHARE_KERNEL_PIN overrides the pin (tests/kernel/rebase.t: what the
# build does once the pin has left the archive).
ks_resolve() {
	local pkg=$1 want=${VSHARE_KERNEL_PIN:-$2} have newest
	ks_note=""
	have=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)
	local installed=/usr/src/${pkg}.tar.xz
	if [ "$have" = "$want" ] && [ -f "$installed" ]; then
		ks_tarball=$installed ks_version=$want
		return 0
	fi
	if [ -f "$cache/src/${pkg}_$want/.ready" ] ||
		ks_archive_versions "$pkg" | grep -qxF "$want"; then
		ks_tarball=$(ks_fetch "$pkg" "$want") ||
			die "could not fetch $pkg $want from the archive"
		ks_version=$want
		return 0
	fi
	newest=$(ks_archive_versions "$pkg" | head -1)
	if [ -n "$have" ] && [ -f "$installed" ] &&
		{ [ -z "$newest" ] || dpkg --compare-versions "$have" ge "$newest"; }; then
		ks_tarball=$installed ks_version=$have
	elif [ -n "$newest" ]; then
		ks_tarball=$(ks_fetch "$pkg" "$newest") ||
			die "could not fetch $pkg $newest from the archive"
		ks_version=$newest
	else
		die "$pkg $want is not installed and the archive has no $pkg" \
		    "(apt-get update?)"
	fi
	ks_note="built on $pkg $ks_version, series written for $want (no longer in the archive)"
}

# Apply patch $2 inside tree $1 or fail naming the patch and its hunk.
ks_apply() {
	local tree=$1 p=$2 why
	if (cd "$tree" && git apply --check "$p" 2>/dev/null); then
		(cd "$tree" && git apply "$p")
		return 0
	fi
	# patch numbers hunks per file; the report quotes the hunk's header
	why=$(cd "$tree" && patch -p1 -F0 --dry-run <"$p" 2>&1 | awk '
		/^checking file / { print "F", $3 }
		/^Hunk #[0-9]+ FAILED/ { sub(/^#/, "", $2); print "H", $2 }
		/can.t find file/ { print "M" }' | awk -v patch="$p" '
		BEGIN { while ((getline l < patch) > 0) {
				if (l ~ /^\+\+\+ b\//) { f = substr(l, 7); n = 0 }
				else if (l ~ /^@@ /) { n++; sub(/ @@.*/, " @@", l); hdr[f, n] = l } } }
		$1 == "F" { f = $2 }
		$1 == "H" { printf "%s%s hunk #%s (%s)", sep, f, $2, hdr[f, $2]; sep = "; " }
		$1 == "M" { printf "%sa file it patches is missing", sep; sep = "; " }')
	echo "$(basename "$p") does not apply: ${why:-$(cd "$tree" &&
		git apply --check "$p" 2>&1 | head -3 | tr '\n' ' ')}" >&2
	return 1
}

# Unpack into $1 from tarball $2 only the files patches $3... change (an
# apply check needs nothing else: a tenth of the time of the whole tree).
ks_unpack_touched() {
	local tree=$1 tarball=$2 top
	shift 2
	top=$(basename "$tarball" .tar.xz)	# linux-source-6.1/...
	# the files the series changes, less those it creates
	awk '/^--- \/dev\/null/ { made = 1; next }
	     /^--- a\// { old[substr($0, 7)] = 1; made = 0; next }
	     /^\+\+\+ b\// { if (made) new[substr($0, 7)] = 1; made = 0 }
	     END { for (f in old) if (!(f in new)) print f }' "$@" |
		sort | sed "s|^|$top/|" |
		tar xJf "$tarball" -C "$tree" --strip-components=1 -T -
}

# Try series ($4...) for pin ($1 package, $2 version; $3 a name for the
# report) on the newest version of the package in the archive. One line per
# patch ("applies: P" or "P does not apply: FILE hunk #N (at line L)"), then
# a verdict. Status 0 when every patch applies, 1 when one does not.
ks_rebase_check() {
	local pkg=$1 want=$2 name=$3 newest tarball tmp p fail=0
	shift 3
	newest=$(ks_archive_versions "$pkg" | head -1)
	[ -n "$newest" ] || die "the archive lists no $pkg (apt-get update?)"
	tarball=$(ks_fetch "$pkg" "$newest") ||
		die "could not fetch $pkg $newest"
	tmp=$(mktemp -d)
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT
	ks_unpack_touched "$tmp" "$tarball" "$@"
	echo "$name: newest in the archive: $pkg $newest (pinned: $want)"
	for p in "$@"; do
		if ks_apply "$tmp" "$p" 2>"$tmp/.why"; then
			echo "applies: $(basename "$p")"
		else
			cat "$tmp/.why"
			fail=1
		fi
	done
	if [ $fail = 0 ]; then
		echo "$name: the series applies to $pkg $newest;" \
		     "to move the pin, edit the VERSION file"
	else
		echo "$name: the series needs a rebase onto $pkg $newest"
	fi
	return $fail
}
