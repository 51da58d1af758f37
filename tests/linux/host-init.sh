#!/bin/sh
# /init of the stock-KVM host: the outer VM (QEMU TCG, Debian's generic
# kernel) inside which kiln's Linux-guest tests run. Built into the host
# initramfs by build-host.sh; runs as PID 1 under busybox sh.
#
# It loads kvm/kvm_amd (nested=1) and 9p, mounts the real machine's root
# file system (shared read-only over virtio-9p, tag "hostroot") at /host,
# gives it fresh /proc, /sys, /dev, /run, mounts the writable scratch share
# (tag "scratch") at the path given as kilnhost.scratch= (the same path as
# on the real machine), and runs bash chrooted into /host on ttyS0. So the
# tests use the machine's own kiln, qemu, python3, ip... unchanged, at their
# usual paths.
#
# Kernel command line options (all optional):
#   kilnhost.scratch=PATH   where to mount the scratch share
#   kilnhost.mode=driver    plain bash for the test driver: no rc files, no
#                           line editing (so it never touches the tty modes)
#   kilnhost.mode=interactive  login bash for a person (the default)
#   kilnhost.cwd=PATH kilnhost.term=TERM kilnhost.rows=N kilnhost.cols=N
#   kilnhost.home=PATH kilnhost.cache=PATH  HOME and KILN_CACHE for the shell
#   With an executable SCRATCH/autorun.sh (interactive mode), that runs
#   (plain bash, no profile) instead of the shell, and its exit status goes
#   to SCRATCH/autorun.status.
# When the shell (or autorun.sh) exits, the VM powers off.

export PATH=/sbin:/usr/sbin:/bin:/usr/bin
say() { echo "kiln-host: $*"; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
hostname kiln-host

mode=interactive scratch='' cwd=/ term=vt100 rows='' cols='' home=/root cache=/root/.cache/kiln
for arg in $(cat /proc/cmdline); do
	case $arg in
	kilnhost.mode=*) mode=${arg#*=} ;;
	kilnhost.scratch=*) scratch=${arg#*=} ;;
	kilnhost.cwd=*) cwd=${arg#*=} ;;
	kilnhost.term=*) term=${arg#*=} ;;
	kilnhost.rows=*) rows=${arg#*=} ;;
	kilnhost.cols=*) cols=${arg#*=} ;;
	kilnhost.home=*) home=${arg#*=} ;;
	kilnhost.cache=*) cache=${arg#*=} ;;
	esac
done

kver=$(uname -r)
failed=
while read -r mod params; do
	# shellcheck disable=SC2086 # params are word-split on purpose
	insmod "/lib/modules/$kver/$mod" $params 2>/dev/null || failed="$failed ${mod##*/}"
done </etc/modules.load
[ -n "$failed" ] && say "modules that failed to load:$failed"

# msize: 9p's default (8 KiB on older kernels) makes reads of a 50 MB kernel
# image slow. The host's files do not change under a test run, so the page
# cache may keep them (cache=loose); the scratch share stays uncached.
opts=trans=virtio,version=9p2000.L,msize=512000
mkdir -p /host
if ! mount -t 9p -o "$opts,ro,cache=loose" hostroot /host; then
	say "error: cannot mount the host root (9p tag hostroot)"
	exec sh
fi
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /host/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
# The shared root is read-only: /run is a tmpfs, and TMPDIR points into it.
mount -t tmpfs -o mode=755 tmpfs /host/run
mkdir -m 1777 /host/run/tmp
# Our kernel's modules (tun, veth, bridge, vhost_net, ...; the machine's
# /lib/modules is for another kernel, or absent) for modprobe, which finds
# them through MODPROBE_OPTIONS=-d (set below; login shells keep it).
mkdir -p /host/run/kiln-host/lib/modules
mount --bind /lib/modules /host/run/kiln-host/lib/modules
if [ -n "$scratch" ]; then
	mount -t 9p -o "$opts" scratch "/host$scratch" ||
		say "error: cannot mount the scratch share at $scratch"
fi
# Guests get their RAM lazily; let a 4 GiB guest start in a smaller VM.
echo 1 >/proc/sys/vm/overcommit_memory

if [ -c /dev/kvm ]; then
	say "kvm ok (kvm_amd nested=$(cat /sys/module/kvm_amd/parameters/nested 2>/dev/null))"
else
	say "error: /dev/kvm missing"
fi
say "ready"
say "uptime $(cut -d' ' -f1 /proc/uptime)"

env="HOME=$home KILN_CACHE=$cache TERM=$term TMPDIR=/run/tmp LANG=C.UTF-8 MODPROBE_OPTIONS=-d/run/kiln-host
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
[ -n "$rows" ] && stty -F /dev/ttyS0 rows "$rows"
[ -n "$cols" ] && stty -F /dev/ttyS0 cols "$cols"

# setsid -c makes ttyS0 the shell's controlling terminal: job control, ^C.
# shellcheck disable=SC2086 # $env is word-split on purpose
if [ "$mode" = driver ]; then
	setsid -c chroot /host /usr/bin/env -i $env PS1='kiln-host# ' \
		/bin/bash --noprofile --norc --noediting -i <>/dev/ttyS0 >&0 2>&1
elif [ -n "$scratch" ] && [ -x "/host$scratch/autorun.sh" ]; then
	setsid -c chroot /host /usr/bin/env -i $env /bin/sh -c \
		'cd "$1" 2>/dev/null; /bin/bash "$2"; echo $? >"${2%.sh}.status"' \
		sh "$cwd" "$scratch/autorun.sh" <>/dev/ttyS0 >&0 2>&1
else
	setsid -c chroot /host /usr/bin/env -i $env /bin/sh -c \
		'cd "$1" 2>/dev/null; exec /bin/bash -l' sh "$cwd" <>/dev/ttyS0 >&0 2>&1
fi
sync
say "powering off"
poweroff -f
