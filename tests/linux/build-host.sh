#!/bin/bash
# build-host.sh [--force]
#
# Build the "stock-KVM host": an outer VM that QEMU runs in pure software
# emulation (TCG), with Debian's generic kernel and its own kvm + kvm_amd
# (nested=1), so that kiln gets a real /dev/kvm with nested paging even on
# machines without VT-x/AMD-V (or with a KVM that cannot boot Linux).
# Output, in ${KILN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}/host/:
#   vmlinuz            Debian's generic kernel (bzImage)
#   vmlinux            the same, uncompressed (QEMU boots it through PVH,
#                      which skips the slow XZ decompression under TCG)
#   initramfs.cpio.gz  static busybox, kvm/9p modules, host-init.sh as /init
#   VERSION            what it was built from
# See host-init.sh for what the VM does at boot and outerhost.py for how it
# is started. Re-runs are cheap while nothing changed; --force rebuilds.
set -euo pipefail

PROG=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=guest/lib.sh
. "$here/../../guest/lib.sh"

force=0
case ${1:-} in
--force) force=1 ;;
"") ;;
*) die "usage: $PROG [--force]" ;;
esac

OUT=$KILN_CACHE/host
# Loaded at boot, in dependency order: virtio-pci for the 9p devices, 9p to
# reach the machine's files, kvm-amd (kvm_intel refuses to load under TCG).
BOOT_MODULES=(virtio_pci 9pnet_virtio 9p kvm_amd:nested=1)
# Only copied, for `modprobe` in the VM: tap devices and bridges for network
# tests, vhost, loop devices.
EXTRA_MODULES=(tun veth bridge vhost_net vhost_vsock loop overlay? ext4?)

for c in apt-cache:apt apt-get:apt dpkg-deb:dpkg modinfo:kmod depmod:kmod xz:xz-utils python3:python3 sha256sum:coreutils; do
	need_cmd "${c%%:*}" "${c#*:}"
done

complete() {
	[[ -s $OUT/vmlinuz && -s $OUT/vmlinux && -s $OUT/initramfs.cpio.gz && -s $OUT/VERSION ]]
}

digest=$(script_digest "$0" "$here/host-init.sh" "$KILN_GUEST_DIR/lib.sh" \
	"$KILN_GUEST_DIR/modules-closure.sh" "$KILN_GUEST_DIR/mkcpio.py" \
	"$KILN_GUEST_DIR/extract-vmlinux.py")
if [[ $force == 0 ]] && complete && cache_fresh "$OUT/VERSION" "$digest"; then
	log "up to date: $OUT ($(cut -d' ' -f1 "$OUT/VERSION"))"
	exit 0
fi

kpkg=$(resolve_dep linux-image-amd64 linux-image-) || true
bbver=$(pkg_version busybox-static) || true
kver=
[[ -n $kpkg ]] && kver=$(pkg_version "$kpkg")
stamp="kernel=$kpkg $kver busybox-static=$bbver scripts=$digest"

if [[ -z $kpkg || -z $kver || -z $bbver ]]; then
	if complete; then
		log "warning: apt cannot resolve linux-image-amd64/busybox-static; using the cached host"
		exit 0
	fi
	die "apt-cache cannot resolve linux-image-amd64 or busybox-static (run 'apt-get update')"
fi

if [[ $force == 0 ]] && complete && [[ $(cat "$OUT/VERSION") == "$stamp" ]]; then
	touch "$OUT/VERSION"
	log "up to date: $OUT ($kpkg $kver)"
	exit 0
fi

log "building the stock-KVM host from $kpkg $kver into $OUT"
mkdir -p "$OUT" "$KILN_CACHE/tmp"
work=$(mktemp -d "$KILN_CACHE/tmp/host.XXXXXX")
trap 'rm -rf "$work"' EXIT

kdeb=$(fetch_deb "$kpkg" "$kver")
bbdeb=$(fetch_deb busybox-static "$bbver")

log "extracting ${kdeb##*/}"
dpkg-deb -x "$kdeb" "$work/pkg"
kernel=$(echo "$work"/pkg/boot/vmlinuz-*)
moddir=$(echo "$work"/pkg/lib/modules/*)
[[ -f $kernel && -d $moddir ]] || die "${kdeb##*/} has no boot/vmlinuz-* or lib/modules/*"

# Fail here, not at boot, if the kernel configuration moved things around.
config=$(echo "$work"/pkg/boot/config-*)
for opt in CONFIG_PVH CONFIG_DEVTMPFS CONFIG_SERIAL_8250_CONSOLE; do
	grep -q "^$opt=y" "$config" || die "$kpkg: $opt is not built in"
done

log "extracting vmlinux from the bzImage"
python3 "$KILN_GUEST_DIR/extract-vmlinux.py" "$kernel" "$work/vmlinux" >&2

log "assembling the initramfs"
root=$work/root
mkdir -p "$root"/{dev,proc,sys,tmp,host,etc}
busybox_tree "$bbdeb" "$root"
: >"$root/etc/modules.load"
install_modules "$moddir" "$root" "$root/etc/modules.load" "${BOOT_MODULES[@]}"
install_modules "$moddir" "$root" /dev/null "${EXTRA_MODULES[@]}"
index_modules "$moddir" "$root"
install -m 0755 "$here/host-init.sh" "$root/init"
python3 "$KILN_GUEST_DIR/mkcpio.py" --node dev/console:c:5:1 --node dev/null:c:1:3:0666 \
	"$root" "$work/initramfs.cpio.gz"

rm -f "$OUT/VERSION"
cp "$kernel" "$OUT/vmlinuz.tmp" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
mv "$work/vmlinux" "$OUT/vmlinux"
mv "$work/initramfs.cpio.gz" "$OUT/initramfs.cpio.gz"
cp "$config" "$OUT/config"
echo "$stamp" >"$OUT/VERSION"
log "done: $(du -h "$OUT/vmlinuz" | cut -f1) vmlinuz, $(du -h "$OUT/vmlinux" | cut -f1) vmlinux, $(du -h "$OUT/initramfs.cpio.gz" | cut -f1) initramfs"
