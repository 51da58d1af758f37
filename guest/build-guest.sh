#!/bin/bash
# build-guest.sh [--force]
#
# Build kiln's default Linux guest from Debian packages into
#   ${KILN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}/guest/
#     vmlinuz            Debian's cloud kernel (bzImage)
#     vmlinux            the same kernel uncompressed (ELF, for PVH boot)
#     initramfs.cpio.gz  static busybox, virtio modules, busybox init
#     VERSION            what it was built from
#
# The guest prints "kiln-guest: ready" and "kiln-guest: uptime <s> <idle>"
# once per boot, then gives a root shell (prompt "kiln-guest:/# ") on the
# console. poweroff/reboot at that shell power off / reboot the VM, and so
# does the ACPI power button (busybox acpid runs poweroff; it prints
# "kiln-guest: power button: powering off" first).
#
# Re-running is cheap: nothing is rebuilt while VERSION matches the packages
# apt offers and the build scripts are unchanged. --force rebuilds anyway.
set -euo pipefail

PROG=${0##*/}
# shellcheck source=guest/lib.sh
. "$(dirname "$0")/lib.sh"

force=0
case ${1:-} in
--force) force=1 ;;
"") ;;
*) die "usage: $PROG [--force]" ;;
esac

OUT=$KILN_CACHE/guest
# Modules the guest loads at boot (plus their dependencies, see
# modules-closure.sh). virtio_mmio is there for ACPI-described mmio devices;
# button turns kiln's ACPI power button into a KEY_POWER input event, which
# acpid reads through evdev (/dev/input/event0).
GUEST_MODULES=(virtio_pci virtio_mmio virtio_blk virtio_net virtio-rng
	virtio_console vmw_vsock_virtio_transport button evdev)

for c in apt-cache:apt apt-get:apt dpkg-deb:dpkg modinfo:kmod depmod:kmod lz4:lz4 python3:python3 sha256sum:coreutils; do
	need_cmd "${c%%:*}" "${c#*:}"
done

complete() {
	[[ -s $OUT/vmlinuz && -s $OUT/vmlinux && -s $OUT/initramfs.cpio.gz && -s $OUT/VERSION ]]
}

digest=$(script_digest "$0" "$KILN_GUEST_DIR/lib.sh" "$KILN_GUEST_DIR/modules-closure.sh" \
	"$KILN_GUEST_DIR/mkcpio.py" "$KILN_GUEST_DIR/extract-vmlinux.py")
# Fast path: apt-cache takes ~0.5 s a call, and its answer cannot have
# changed if the package lists are older than our last build.
if [[ $force == 0 ]] && complete && cache_fresh "$OUT/VERSION" "$digest"; then
	log "up to date: $OUT ($(cut -d' ' -f1 "$OUT/VERSION"))"
	exit 0
fi

kpkg=$(resolve_dep linux-image-cloud-amd64 linux-image-) || true
bbver=$(pkg_version busybox-static) || true
kver=
[[ -n $kpkg ]] && kver=$(pkg_version "$kpkg")
stamp="kernel=$kpkg $kver busybox-static=$bbver scripts=$digest"

if [[ -z $kpkg || -z $kver || -z $bbver ]]; then
	# No package lists (apt-get update not run, or offline): a complete cache
	# is still usable, otherwise we cannot go on.
	if complete; then
		log "warning: apt cannot resolve linux-image-cloud-amd64/busybox-static; using the cached guest"
		exit 0
	fi
	die "apt-cache cannot resolve linux-image-cloud-amd64 or busybox-static (run 'apt-get update')"
fi

if [[ $force == 0 ]] && complete && [[ $(cat "$OUT/VERSION") == "$stamp" ]]; then
	touch "$OUT/VERSION" # lets the fast path above skip apt next time
	log "up to date: $OUT ($kpkg $kver)"
	exit 0
fi

log "building guest from $kpkg $kver into $OUT"
mkdir -p "$OUT" "$KILN_CACHE/tmp"
work=$(mktemp -d "$KILN_CACHE/tmp/guest.XXXXXX")
trap 'rm -rf "$work"' EXIT

kdeb=$(fetch_deb "$kpkg" "$kver")
bbdeb=$(fetch_deb busybox-static "$bbver")

log "extracting ${kdeb##*/}"
dpkg-deb -x "$kdeb" "$work/pkg"
kernel=$(echo "$work"/pkg/boot/vmlinuz-*)
moddir=$(echo "$work"/pkg/lib/modules/*)
[[ -f $kernel && -d $moddir ]] || die "${kdeb##*/} has no boot/vmlinuz-* or lib/modules/*"

log "extracting vmlinux from the bzImage"
python3 "$KILN_GUEST_DIR/extract-vmlinux.py" "$kernel" "$work/vmlinux" >&2

log "assembling the initramfs"
root=$work/root
mkdir -p "$root"/{dev,proc,sys,tmp,root,mnt,run,etc/init.d,etc/acpi/PWRF,var/log}
chmod 1777 "$root/tmp"
busybox_tree "$bbdeb" "$root"
: >"$root/etc/modules.load"
install_modules "$moddir" "$root" "$root/etc/modules.load" "${GUEST_MODULES[@]}"
index_modules "$moddir" "$root"
# The kernel runs /init from an initramfs; as "init", busybox runs its init
# applet, which reads /etc/inittab. busybox init (unlike a shell as PID 1)
# handles the signals that poweroff/reboot send to PID 1.
ln -s bin/busybox "$root/init"

cat >"$root/etc/inittab" <<'EOF'
# busybox init: boot script once, then a shell on the console, forever.
::sysinit:/etc/init.d/rcS
# cttyhack opens the real tty behind /dev/console (ttyS0, hvc0, ...) and makes
# it the controlling terminal, so the shell gets job control and ^C.
::respawn:/bin/cttyhack /bin/sh -l
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
EOF

cat >"$root/etc/init.d/rcS" <<'EOF'
#!/bin/sh
# Boot script of kiln's default guest (run once by busybox init).
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
hostname kiln-guest
failed=
kver=$(uname -r)
while read -r mod params; do
	# shellcheck disable=SC2086 # params are word-split on purpose
	insmod "/lib/modules/$kver/$mod" $params 2>/dev/null || failed="$failed ${mod##*/}"
done </etc/modules.load
# With console=hvc0 the console device only exists once virtio_console is loaded: reopen it
# so the lines below reach it.
if (exec </dev/console) 2>/dev/null; then exec </dev/console >/dev/console 2>&1; fi
[ -n "$failed" ] && echo "kiln-guest: modules that failed to load:$failed"
# The power button: acpid (it daemonizes) runs /etc/acpi/PWRF/00000080 on KEY_POWER.
if [ -e /dev/input/event0 ]; then
	acpid -l /var/log/acpid.log || echo "kiln-guest: acpid did not start"
else
	echo "kiln-guest: no input device: the power button is not handled"
fi
# With a network device, bring it up by DHCP (kiln --net user answers at once; a tap
# network may have no DHCP server: then give up after 5 tries, 1 s apart).
if [ -e /sys/class/net/eth0 ]; then
	ip link set lo up
	if udhcpc -i eth0 -n -q -t 5 -T 1 >/dev/null 2>&1; then
		echo "kiln-guest: eth0 $(ip -4 -o addr show dev eth0 | awk '{print $4}')"
	else
		echo "kiln-guest: eth0: no DHCP answer"
	fi
fi
echo "kiln-guest: ready"
echo "kiln-guest: uptime $(cat /proc/uptime)"
EOF
chmod 0755 "$root/etc/init.d/rcS"

# busybox acpid's built-in tables map KEY_POWER to the action PWRF/00000080,
# which it runs from /etc/acpi (a file is executed, a directory run-parts'ed).
cat >"$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
# Run by acpid when the power button is pressed: an orderly shutdown.
echo "kiln-guest: power button: powering off" >/dev/console
exec /sbin/poweroff
EOF
chmod 0755 "$root/etc/acpi/PWRF/00000080"

# busybox udhcpc runs this on DHCP events ($1: deconfig, bound, renew, leasefail,
# nak) with the lease in its environment (ip, mask as a prefix length, router, dns...).
mkdir -p "$root/etc/udhcpc"
cat >"$root/etc/udhcpc/default.script" <<'EOS'
#!/bin/sh
# udhcpc event script: sets the address, default route and resolv.conf from the lease.
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound | renew)
	if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/${mask:-24} "; then
		ip -4 addr flush dev "$interface"
		ip addr add "$ip/${mask:-24}" dev "$interface"
	fi
	[ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
	if [ -n "$router" ]; then
		while ip route del default dev "$interface" 2>/dev/null; do :; done
		for r in $router; do
			ip route add default via "$r" dev "$interface" && break
		done
	fi
	: >/etc/resolv.conf
	[ -n "$domain" ] && echo "search $domain" >>/etc/resolv.conf
	for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
	;;
esac
exit 0
EOS
chmod 0755 "$root/etc/udhcpc/default.script"

cat >"$root/etc/profile" <<'EOF'
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
export HOME=/root
PS1='\h:\w# '
cd /root
EOF
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"

python3 "$KILN_GUEST_DIR/mkcpio.py" --node dev/console:c:5:1 --node dev/null:c:1:3:0666 \
	"$root" "$work/initramfs.cpio.gz"

# Publish atomically-ish: outputs first, VERSION last marks the cache complete.
rm -f "$OUT/VERSION"
cp "$kernel" "$OUT/vmlinuz.tmp" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
mv "$work/vmlinux" "$OUT/vmlinux"
mv "$work/initramfs.cpio.gz" "$OUT/initramfs.cpio.gz"
cp "$work/pkg/boot/config-"* "$OUT/config"
echo "$stamp" >"$OUT/VERSION"
log "done: $(du -h "$OUT/vmlinuz" | cut -f1) vmlinuz, $(du -h "$OUT/vmlinux" | cut -f1) vmlinux, $(du -h "$OUT/initramfs.cpio.gz" | cut -f1) initramfs"
