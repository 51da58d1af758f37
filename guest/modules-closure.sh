#!/bin/bash
# modules-closure.sh MODDIR NAME...
#
# Print the kernel modules NAME... together with everything they depend on,
# in an order that insmod can load them (dependencies first), one path per
# line relative to MODDIR (an extracted lib/modules/<version> directory).
#
# Debian's kernel packages ship no modules.dep (depmod runs at install time),
# so dependencies come from each module's own "depends" field (modinfo).
# A NAME ending in '?' is optional: it is skipped when the module does not
# exist or is built into the kernel (modules.builtin). Module names treat '-'
# and '_' alike, as the kernel does.
set -euo pipefail

PROG=${0##*/}
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

[[ $# -ge 2 ]] || die "usage: $PROG MODDIR NAME..."
moddir=${1%/}
shift
[[ -d $moddir ]] || die "$moddir: not a directory"
command -v modinfo >/dev/null || die "modinfo not found (install the Debian package 'kmod')"

norm() { local n=${1##*/}; n=${n%%.ko*}; printf '%s' "${n//-/_}"; }

declare -A path_of=() builtin=() state=()
while IFS= read -r -d '' f; do
	path_of[$(norm "$f")]=${f#"$moddir"/}
done < <(find "$moddir" \( -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.gz' -o -name '*.ko.zst' \) -print0)

if [[ -f $moddir/modules.builtin ]]; then
	while read -r f; do builtin[$(norm "$f")]=1; done <"$moddir/modules.builtin"
fi

# Depth-first walk; a module is printed after all of its dependencies.
visit() {
	local n=$1 optional=$2 deps d
	case ${state[$n]:-} in
	loaded) return 0 ;;
	busy) die "dependency cycle through $n" ;;
	esac
	if [[ -z ${path_of[$n]:-} ]]; then
		[[ -n ${builtin[$n]:-} ]] && { state[$n]=loaded; return 0; }
		[[ $optional == 1 ]] && { echo "$PROG: note: $n not found, skipped" >&2; return 0; }
		die "module $n not found under $moddir"
	fi
	state[$n]=busy
	deps=$(modinfo -F depends "$moddir/${path_of[$n]}") ||
		die "modinfo failed on ${path_of[$n]}"
	for d in ${deps//,/ }; do
		visit "$(norm "$d")" 0
	done
	state[$n]=loaded
	printf '%s\n' "${path_of[$n]}"
}

for name in "$@"; do
	if [[ $name == *\? ]]; then
		visit "$(norm "${name%\?}")" 1
	else
		visit "$(norm "$name")" 0
	fi
done
