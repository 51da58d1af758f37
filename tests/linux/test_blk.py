#!/usr/bin/env python3
"""virtio-blk with kiln's default Linux guest inside the stock-KVM host, one
outer boot for all checks. The images live on the outer host's tmpfs (an
ext4 image made there with mkfs.ext4, and a raw one), plus a raw image on
the scratch share for cache=none (O_DIRECT; the outer kernel's tmpfs lacks it).

  A: io_uring engine, three disks (root.img ext4 id=kiln-root, data.img
     id=kiln-data, direct.img id=kiln-direct,cache=none): /dev/vda..vdc with
     the right sizes and serials, discard/write-zeroes offered; a random file
     on ext4 and copied raw to vdb and vdc reads back with the same md5 after
     dropping the caches (and on the outer host once kiln exited);
     blkdiscard reads back zeroes, fstrim works; a file survives a guest
     `reboot` (kiln restarts the guest in place); kill -9 of kiln right after
     the guest's `sync` returned: booted again, the files are there with the
     same md5, and after a clean shutdown `fsck.ext4 -fn` is clean.
  B: thread-pool engine (KILN_BLK_ENGINE=threads), the same disks: the same
     integrity checks; fsck clean afterwards.
  C: read-only disk: the guest sees it read-only, a read-write mount is
     refused, file creation and raw writes fail, reads work, and the image
     is unchanged.

Prints PASS/FAIL and TIME lines, closes with "N passed, N failed", exits 1
on any failure, 77 when the inner VMM is not kiln.
    tests/linux/test_blk.py --kiln build/src/kiln
"""
import os
import re
import secrets
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from linuxtest import (GUEST_APPEND, READY, guest_run, run, setup, boot_outer,  # noqa: E402
                       type_line, wait_guest_ready)
from outerhost import HostError  # noqa: E402

MIB = 1024 * 1024
VMM_LIMIT = 900  # seconds; kills a hung inner VMM so the outer shell survives
ROOT_MIB = 256
DATA_MIB = 64
DIRECT_MIB = 32
RAND_MIB = 16
MD5 = re.compile(r"\b([0-9a-f]{32})\b")


class Env:
    """Paths in the outer host and the inner VMM command."""

    def __init__(self, vmm, guest, work, direct_dir):
        self.vmm = vmm
        self.guest = guest
        self.work = work
        self.root = f"{work}/root.img"
        self.data = f"{work}/data.img"
        # cache=none needs O_DIRECT, which the outer host's tmpfs lacks (Linux 6.1):
        # that disk lives on the scratch share instead.
        self.direct = f"{direct_dir}/direct.img" if direct_dir else None
        self.pidfile = f"{work}/kiln.pid"
        self.data_md5 = None

    def command(self, disks, engine=None, console_log=None):
        cmd = self.vmm.command(kernel=f"{self.guest}/vmlinuz",
                               initrd=f"{self.guest}/initramfs.cpio.gz",
                               cmdline=GUEST_APPEND, mem="512M", cpus=1,
                               console_log=console_log)
        cmd += "".join(" --disk " + shlex.quote(d) for d in disks) + " -v"
        if engine:
            cmd = f"env KILN_BLK_ENGINE={engine} {cmd}"
        # The pid file lets a watcher kill -9 this very kiln.
        inner = f"echo $$ >{shlex.quote(self.pidfile)}; exec {cmd}"
        return "bash -c " + shlex.quote(inner)


def gmd5(host, cmd, timeout=180):
    """md5 from a guest command's output, or None."""
    status, out = guest_run(host, cmd, timeout=timeout)
    m = MD5.search(out)
    return m.group(1) if status == 0 and m else None


def gcheck(host, r, what, cmd, want=None, timeout=120, status_ok=(0,)):
    """Run a guest command; PASS if its status is in status_ok and (if
    given) the regex `want` matches its output. Returns the output."""
    try:
        status, out = guest_run(host, cmd, timeout=timeout)
    except HostError as e:
        r.fail(what, str(e))
        return None
    ok = status in status_ok and (want is None or re.search(want, out, re.M) is not None)
    r.check(what, ok, "" if ok else f"status {status}: {out.strip()[-300:]!r}")
    return out


def start_vm(host, r, env, label, disks, engine=None, console_log=None):
    started = time.monotonic()
    host.spawn(env.command(disks, engine, console_log), limit=VMM_LIMIT)
    want = engine or "io_uring"
    try:
        host.expect(rf"--disk \S+: \d+ bytes, [^\r\n]*{want} engine", timeout=60)
        r.check(f"{label}: disks use the {want} engine", True)
    except HostError as e:
        r.fail(f"{label}: disks use the {want} engine", str(e))
    return wait_guest_ready(host, r, label, started)


def poweroff(host, r, label):
    type_line(host, "poweroff")
    try:
        status = host.wait_exit(timeout=120)
    except HostError as e:
        return r.fail(f"{label}: poweroff ends kiln with status 0", str(e))
    return r.check(f"{label}: poweroff ends kiln with status 0", status == 0, f"status {status}")


def fsck_clean(host, r, label, image):
    status, out = host.run(f"fsck.ext4 -fn {shlex.quote(image)}", timeout=120)
    r.check(f"{label}: fsck.ext4 -fn on the outer host is clean", status == 0,
            f"status {status}: {out.strip()[-400:]!r}" if status else "")


def integrity(host, r, label, raw_devs):
    """A random file on the ext4 disk (vda, mounted on /mnt) and copied raw
    onto each of `raw_devs`: the same md5 after dropping the caches.
    Returns the md5."""
    f = "/mnt/rand.bin"
    want = gmd5(host, f"dd if=/dev/urandom of={f} bs=1M count={RAND_MIB} 2>/dev/null; "
                      f"md5sum {f}")
    if not want:
        r.fail(f"{label}: write a random file")
        return None
    got = gmd5(host, f"sync; umount /mnt && echo 3 >/proc/sys/vm/drop_caches && "
                     f"mount /dev/vda /mnt && md5sum {f}")
    r.check(f"{label}: ext4 file reads back the same after remount", got == want,
            f"{want} vs {got}")
    for dev in raw_devs:
        got = gmd5(host, f"dd if={f} of={dev} bs=1M oflag=direct 2>/dev/null && echo 3 "
                         f">/proc/sys/vm/drop_caches && dd if={dev} bs=1M count={RAND_MIB} "
                         "2>/dev/null | md5sum")
        r.check(f"{label}: raw disk {dev} reads back the same", got == want, f"{want} vs {got}")
    return want


def outer_md5_check(host, r, label, images, want):
    """After kiln exited: the outer host reads the same bytes from the images."""
    for image in images:
        out = host.run(f"head -c {RAND_MIB * MIB} {shlex.quote(image)} | md5sum")[1]
        m = MD5.search(out)
        r.check(f"{label}: the outer host reads the same bytes from {os.path.basename(image)}",
                bool(m) and m.group(1) == want, out.strip())


def disk_set(env):
    """root (ext4, vda), data (raw, vdb) and, where O_DIRECT works, a
    cache=none disk (raw, vdc). Returns (--disk values, raw devices, raw images)."""
    disks = [f"{env.root},id=kiln-root", f"{env.data},id=kiln-data"]
    devs, images = ["/dev/vdb"], [env.data]
    if env.direct:
        disks.append(f"{env.direct},id=kiln-direct,cache=none")
        devs.append("/dev/vdc")
        images.append(env.direct)
    return disks, devs, images


def scenario_a(host, r, env):
    label = "A io_uring"
    tok = secrets.token_hex(4)
    log = f"{env.work}/console-a.log"
    start_watcher(host, env, log, f"K9DONE-{tok}")
    disks, devs, images = disk_set(env)
    if not start_vm(host, r, env, label, disks, console_log=log):
        return False
    sizes = [ROOT_MIB, DATA_MIB] + ([DIRECT_MIB] if env.direct else [])
    names = ["vda", "vdb", "vdc"][:len(sizes)]
    gcheck(host, r, f"{label}: {' '.join(names)} have the image sizes",
           "cat " + " ".join(f"/sys/block/{n}/size" for n in names),
           r"^" + r"\s*\n".join(str(m * 2048) for m in sizes) + r"\s*$")
    gcheck(host, r, f"{label}: id= shows in /sys/block/vd*/serial",
           "; echo; ".join(f"cat /sys/block/{n}/serial" for n in names),
           r"\s+".join(["kiln-root", "kiln-data", "kiln-direct"][:len(sizes)]))
    gcheck(host, r, f"{label}: discard and write-zeroes are offered",
           "cat /sys/block/vda/queue/discard_max_bytes /sys/block/vda/queue/write_zeroes_max_bytes"
           " /sys/block/vda/ro", r"^[1-9]\d*\s*\n[1-9]\d*\s*\n0\s*$")
    gcheck(host, r, f"{label}: mount the ext4 disk", "mount /dev/vda /mnt && mount | grep vda",
           r"/dev/vda on /mnt type ext4")
    env.data_md5 = integrity(host, r, label, devs)
    # Past the random data, which the outer host checks at the end.
    gcheck(host, r, f"{label}: blkdiscard of 1 MiB succeeds and reads back as zeroes",
           f"blkdiscard -o {RAND_MIB * MIB} -l 1048576 /dev/vdb && dd if=/dev/vdb bs=1M "
           f"skip={RAND_MIB} count=1 iflag=direct 2>/dev/null | md5sum",
           r"b6d81b360a5672d80c27430f39153e2c")
    gcheck(host, r, f"{label}: fstrim on the ext4 disk", "fstrim /mnt && echo trimmed",
           r"trimmed")
    gcheck(host, r, f"{label}: write a file and sync",
           f"echo persist-{tok} >/mnt/persist.txt && sync && cat /mnt/persist.txt",
           f"persist-{tok}")
    t = time.monotonic()
    type_line(host, "reboot")
    if not wait_guest_ready(host, r, f"{label} after reboot", t, start_what="reboot typed"):
        return False
    gcheck(host, r, f"{label}: the file survives the guest reboot",
           "mount /dev/vda /mnt && cat /mnt/persist.txt", f"persist-{tok}")
    if not kill9(host, r, env, label, disks, tok):
        return False
    if env.data_md5:
        outer_md5_check(host, r, label, images, env.data_md5)
    return True


def kill9(host, r, env, label, disks, tok):
    """sync in the guest, then kill -9 of kiln at once (start_watcher): the
    data must be there when the guest boots again."""
    want = gmd5(host, f"echo k9-{tok} >/mnt/k9.txt && dd if=/dev/urandom of=/mnt/k9.bin bs=1M "
                      f"count=8 2>/dev/null && md5sum /mnt/k9.bin")
    if not want:
        return r.fail(f"{label}: write files before kill -9")
    t = time.monotonic()
    type_line(host, f"sync; printf 'K9%s\\n' DONE-{tok}")
    try:
        status = host.wait_exit(timeout=120)
    except HostError as e:
        return r.fail(f"{label}: kill -9 right after the guest's sync", str(e))
    r.check(f"{label}: kill -9 right after the guest's sync", status == 137, f"status {status}")
    r.timing(f"{label}: sync typed to kiln killed", time.monotonic() - t)
    host.run("stty sane </dev/tty")  # kill -9 left the terminal in raw mode
    if not start_vm(host, r, env, f"{label} after kill -9", disks):
        return False
    gcheck(host, r, f"{label}: after kill -9 the synced file is there",
           "mount /dev/vda /mnt && cat /mnt/k9.txt", f"k9-{tok}")
    got = gmd5(host, "md5sum /mnt/k9.bin")
    r.check(f"{label}: after kill -9 the synced 8 MiB file has the same md5", got == want,
            f"{want} vs {got}")
    gcheck(host, r, f"{label}: unmount", "umount /mnt && echo unmounted", "unmounted")
    poweroff(host, r, label)
    fsck_clean(host, r, label, env.root)
    return True


def scenario_b(host, r, env):
    label = "B threads"
    disks, devs, images = disk_set(env)
    if not start_vm(host, r, env, label, disks, engine="threads"):
        return False
    gcheck(host, r, f"{label}: mount the ext4 disk", "mount /dev/vda /mnt && echo mounted",
           "mounted")
    want = integrity(host, r, label, devs)
    gcheck(host, r, f"{label}: unmount", "umount /mnt && echo unmounted", "unmounted")
    poweroff(host, r, label)
    fsck_clean(host, r, label, env.root)
    if want:
        outer_md5_check(host, r, label, images, want)
    return True


def scenario_c(host, r, env):
    label = "C read-only"
    before = MD5.search(host.run(f"md5sum {env.root}", timeout=120)[1])
    if not start_vm(host, r, env, label, [f"{env.root},ro"]):
        return False
    gcheck(host, r, f"{label}: the guest sees a read-only disk", "cat /sys/block/vda/ro", r"^1\s*$")
    # The kernel refuses a read-write mount (busybox then retries read-only).
    gcheck(host, r, f"{label}: no read-write mount is possible",
           "mount -o rw /dev/vda /mnt 2>&1; grep -c ' /mnt ext4 rw' /proc/mounts",
           r"^0\s*$", status_ok=(1,))
    # noload: no journal replay, should an earlier scenario have left one.
    gcheck(host, r, f"{label}: ext4 mounts read-only",
           "grep -q ' /mnt ' /proc/mounts || mount -o ro,noload /dev/vda /mnt; "
           "grep ' /mnt ' /proc/mounts", r"/mnt ext4 ro[,\s]")
    gcheck(host, r, f"{label}: creating a file fails", "touch /mnt/new 2>&1", r"Read-only",
           status_ok=(1,))
    gcheck(host, r, f"{label}: a raw write to /dev/vda fails",
           "dd if=/dev/zero of=/dev/vda bs=4096 count=1 oflag=direct 2>&1", None,
           status_ok=(1,))
    gcheck(host, r, f"{label}: reads work", "md5sum /mnt/persist.txt", MD5.pattern)
    gcheck(host, r, f"{label}: unmount", "umount /mnt && echo unmounted", "unmounted")
    poweroff(host, r, label)
    after = MD5.search(host.run(f"md5sum {env.root}", timeout=120)[1])
    r.check(f"{label}: the image is unchanged", bool(before) and bool(after) and
            before.group(1) == after.group(1))
    return True


def prepare(host, r, vmm, guest):
    """Images on the outer host's tmpfs, plus one on the scratch share for
    cache=none. (ext4 on a loop device would be nicer, but the outer kernel
    cannot mount ext4 without its crc32c module.)"""
    work = "/run/tmp/blk"
    status, out = host.run(f"dd if=/dev/zero of={host.scratch}/direct.img bs=1M "
                           f"count={DIRECT_MIB} oflag=direct 2>&1", timeout=120)
    direct_dir = host.scratch if status == 0 else None
    r.check("outer host: O_DIRECT works on the scratch share (for cache=none)", status == 0,
            out.strip()[-200:])
    env = Env(vmm, guest, work, direct_dir)
    out = host.check(f"mkdir -p {work} && truncate -s {ROOT_MIB}M {env.root} && "
                     f"mkfs.ext4 -q -F {env.root} && truncate -s {DATA_MIB}M {env.data} && "
                     "echo ok", timeout=120)
    r.check("outer host: mkfs.ext4 on root.img", "ok" in out)
    return env


def start_watcher(host, env, log, marker):
    """kill -9 of kiln as soon as the guest console shows `marker`. It runs
    beside kiln, which owns the terminal; the typed command's echo has
    'K9%s' where the output has 'K9DONE', so only the output matches."""
    watch = (f"while ! grep -q {marker} {shlex.quote(log)} 2>/dev/null; do sleep 0.05; done; "
             f"kill -9 $(cat {shlex.quote(env.pidfile)})")
    host.check(f"setsid sh -c {shlex.quote(watch)} </dev/null >/dev/null 2>&1 &")


def main():
    args, vmm, guest, r = setup("test_blk", __doc__)
    if vmm.name != "kiln":
        print("SKIP: these checks need kiln's --disk option")
        return 77
    host = boot_outer(r, os.path.join(args.log_dir, "test_blk.transcript.log"))
    if host is None:
        return r.finish()
    try:
        env = prepare(host, r, vmm, guest)
        for scenario in (scenario_a, scenario_b, scenario_c):
            try:
                if scenario(host, r, env):
                    continue
            except HostError as e:
                r.fail(f"{scenario.__name__}", str(e))
            if not host.abort_spawned():
                r.fail("outer shell recovered after a failed scenario")
                break
            host.run("stty sane </dev/tty")
    finally:
        host.close()
    return r.finish()


if __name__ == "__main__":
    run(main)
