# shellcheck shell=bash
# Shared helpers for guest/build-guest.sh and tests/linux/build-host.sh.
# Source it; it expects PROG to be set to the calling script's name.
#
# Everything is fetched through apt itself (apt-cache / apt-get download),
# never from a hard-coded URL, so the machine's configured mirror is used.

KILN_CACHE=${KILN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}
KILN_GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

# need_cmd CMD PACKAGE: fail early with the Debian package to install.
need_cmd() {
	command -v "$1" >/dev/null 2>&1 ||
		die "'$1' not found (install the Debian package '$2')"
}

# resolve_dep META PREFIX: print the dependency of the metapackage META whose
# name starts with PREFIX (e.g. linux-image-cloud-amd64 -> linux-image-6.1.0-56-cloud-amd64).
resolve_dep() {
	apt-cache depends "$1" 2>/dev/null |
		awk -v p="$2" '$1 == "Depends:" && index($2, p) == 1 { print $2; exit }'
}

# pkg_version PKG: the candidate version apt would download.
pkg_version() {
	apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" { print $2; exit }'
}

# fetch_deb PKG VERSION: print the path of PKG's .deb in $KILN_CACHE/debs,
# downloading it with apt-get if it is not there yet.
fetch_deb() {
	local pkg=$1 ver=$2 dir="$KILN_CACHE/debs" tmp f
	# apt-get names files name_version_arch.deb with the epoch's ':' as %3a.
	local pattern="${pkg}_${ver//:/%3a}_"
	mkdir -p "$dir"
	for f in "$dir/$pattern"*.deb; do
		if [[ -f $f ]]; then
			printf '%s\n' "$f"
			return 0
		fi
	done
	log "downloading $pkg $ver"
	tmp=$(mktemp -d "$dir/.dl.XXXXXX")
	# apt drops to the _apt user for downloads unless told otherwise; we
	# download into a private directory, so staying root is fine.
	if ! (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver") >"$tmp/log" 2>&1; then
		cat "$tmp/log" >&2
		rm -rf "$tmp"
		die "apt-get download $pkg=$ver failed (is 'apt-get update' done and the mirror reachable?)"
	fi
	for f in "$tmp"/*.deb; do
		[[ -f $f ]] || die "apt-get download $pkg produced no .deb"
		# Drop older versions of the same package, then keep this one.
		rm -f "$dir/${pkg}_"*.deb
		mv "$f" "$dir/"
		printf '%s\n' "$dir/${f##*/}"
	done
	rm -rf "$tmp"
}

# busybox_tree DEB ROOT: install the static busybox from DEB into ROOT with
# one symlink per applet, at the paths busybox itself reports.
busybox_tree() {
	local deb=$1 root=$2 x applet rel
	x=$(mktemp -d "$KILN_CACHE/tmp/bb.XXXXXX")
	dpkg-deb -x "$deb" "$x"
	mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin"
	install -m 0755 "$x/bin/busybox" "$root/bin/busybox"
	rm -rf "$x"
	while read -r applet; do
		[[ $applet == bin/busybox ]] && continue
		# Relative links so the tree works at any mount point (e.g. chroot).
		rel=$(dirname "$applet" | sed -e 's|[^/][^/]*|..|g')
		ln -sf "$rel/bin/busybox" "$root/$applet"
	done < <("$root/bin/busybox" --list-full)
}

# install_modules MODDIR ROOT LOADLIST SPEC...: copy the modules named in SPEC
# and their dependencies from MODDIR (lib/modules/<ver> of an extracted kernel
# package) to the same place under ROOT, and append them in load order to
# the file LOADLIST (/dev/null for modules that are only to be available),
# one "path-relative-to-lib/modules/<ver> [params]" line each.
# A SPEC is NAME, NAME? (optional: skipped if missing or built in), or
# NAME:PARAMS (e.g. kvm_amd:nested=1).
install_modules() {
	local moddir=$1 root=$2 loadlist=$3
	shift 3
	local spec name params rel dst order names=()
	local ver=${moddir##*/}
	declare -A params_of=()
	for spec in "$@"; do
		name=${spec%%:*}
		params=
		[[ $spec == *:* ]] && params=${spec#*:}
		names+=("$name")
		name=${name%\?}
		params_of[${name//-/_}]=$params
	done
	order=$("$KILN_GUEST_DIR/modules-closure.sh" "$moddir" "${names[@]}") ||
		die "cannot resolve kernel modules"
	while read -r rel; do
		[[ -n $rel ]] || continue
		dst=$root/lib/modules/$ver/$rel
		mkdir -p "${dst%/*}"
		case $rel in
		# busybox insmod may not read compressed modules: store them plain.
		*.ko.xz) xz -dc "$moddir/$rel" >"${dst%.xz}" && rel=${rel%.xz} ;;
		*.ko.zst) zstd -qdc "$moddir/$rel" >"${dst%.zst}" && rel=${rel%.zst} ;;
		*.ko.gz) gzip -dc "$moddir/$rel" >"${dst%.gz}" && rel=${rel%.gz} ;;
		*) cp "$moddir/$rel" "$dst" ;;
		esac
		name=${rel##*/}
		name=${name%.ko}
		printf '%s %s\n' "$rel" "${params_of[${name//-/_}]:-}" >>"$loadlist"
	done <<<"$order"
}

# index_modules MODDIR ROOT: give ROOT's copy of the modules a modules.dep
# (and the kernel's list of built-in modules) so modprobe works in the VM.
index_modules() {
	local moddir=$1 root=$2 ver=${1##*/} f
	for f in modules.builtin modules.builtin.modinfo modules.order; do
		[[ -f $moddir/$f ]] && cp "$moddir/$f" "$root/lib/modules/$ver/"
	done
	depmod -b "$root" "$ver" || die "depmod failed for $root"
}

# script_digest FILE...: a digest of the build inputs, so that editing a
# build script invalidates the cache.
script_digest() {
	cat "$@" | sha256sum | cut -c1-16
}

# cache_fresh STAMPFILE DIGEST: true if STAMPFILE was written by the current
# build scripts (DIGEST) after apt's package lists last changed.
cache_fresh() {
	local lists=/var/lib/apt/lists
	[[ $(sed -n 's/.* scripts=//p' "$1") == "$2" ]] || return 1
	[[ -d $lists && $1 -nt $lists ]] || return 1
	[[ ! -e $lists/partial || $1 -nt $lists/partial ]]
}
