#!/usr/bin/env python3
"""--disk with bad input, on this machine's /dev/kvm with micro-guests (no Linux needed):
kiln must refuse at start-up with exit status 6 and a message naming --disk and the image.

  blk_disk_options.py --kiln PATH --hello hello.bin --echo echo.bin

Checks: a missing image, a directory, a character device, an unreadable image (root runs
kiln without CAP_DAC_OVERRIDE for that), a read-only file opened read-write (and then with
,ro), cache=none on tmpfs, a bad KILN_BLK_ENGINE, the same image twice in one VM, and the
image lock across two kiln processes: a VM using an image read-write keeps every other
one out; read-only users share it. Good disks boot with both I/O engines.

Prints PASS/FAIL lines; exits 0, 1 on failure, 77 without a usable /dev/kvm.
Python 3 standard library only.
"""
import argparse
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

DEVICE_EXIT = 6


class Checks:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def check(self, ok, what, detail=""):
        print(f"{'PASS' if ok else 'FAIL'}: {what}" + (f" ({detail})" if detail and not ok else ""),
              flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok


def kiln_argv(a, guest, disks, prefix=()):
    argv = list(prefix) + [a.kiln, "run", "--kernel", guest, "--kernel-format", "raw",
                           "-m", "64M", "--no-reboot"]
    for d in disks:
        argv += ["--disk", d]
    return argv


def run(argv, env=None, timeout=20):
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, env=full_env)
    except subprocess.TimeoutExpired:
        return None, "", "timed out"
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def expect_refused(c, a, what, disks, message, prefix=(), env=None):
    rc, out, err = run(kiln_argv(a, a.hello, disks, prefix), env)
    c.check(rc == DEVICE_EXIT, f"{what}: exit status {DEVICE_EXIT}", f"got {rc}: {err.strip()}")
    c.check(message in err, f"{what}: says {message!r}", f"stderr: {err.strip()!r}")
    c.check("kiln-micro: ready" not in out, f"{what}: the guest never ran")


def expect_boots(c, a, what, disks, env=None, prefix=()):
    rc, out, err = run(kiln_argv(a, a.hello, disks, prefix), env)
    c.check(rc == 0 and "kiln-micro: ready" in out, f"{what}: the VM runs",
            f"status {rc}: {err.strip()}")


class Running:
    """A kiln with the echo micro-guest that keeps running (holding its disks) until 'q'."""

    def __init__(self, a, disks):
        self.proc = subprocess.Popen(kiln_argv(a, a.echo, disks), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = b""

    def wait_ready(self, timeout=20):
        end = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"echo: ready" not in self.out and time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                self.out += chunk
        return b"echo: ready" in self.out

    def stop(self):
        try:
            self.proc.stdin.write(b"q")
            self.proc.stdin.close()
            return self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
            return None


def lock_checks(c, a, img):
    first = Running(a, [img])
    try:
        c.check(first.wait_ready(), "lock: a first VM runs with the image read-write")
        expect_refused(c, a, "lock: second VM, read-write", [img],
                       f"--disk {img}: locked by another process (is another VM using it?)")
        expect_refused(c, a, "lock: second VM, read-only", [img + ",ro"],
                       f"--disk {img}: locked by another process")
    finally:
        c.check(first.stop() == 0, "lock: the first VM quits cleanly")
    expect_boots(c, a, "lock: after the first VM exited, a new one", [img])
    first = Running(a, [img + ",ro"])
    try:
        c.check(first.wait_ready(), "lock: a VM runs with the image read-only")
        expect_boots(c, a, "lock: a second read-only user shares it", [img + ",ro"])
        expect_refused(c, a, "lock: a read-write user is kept out", [img],
                       f"--disk {img}: locked by another process")
    finally:
        c.check(first.stop() == 0, "lock: the read-only VM quits cleanly")


def direct_refused(directory):
    """True if files in `directory` cannot be opened with O_DIRECT (tmpfs before Linux 6.6)."""
    if not os.path.isdir(directory):
        return False
    with tempfile.NamedTemporaryFile(dir=directory) as f:
        try:
            os.close(os.open(f.name, os.O_RDWR | os.O_DIRECT))
            return False
        except OSError:
            return True


def no_dac_prefix():
    """Root reads anything; without CAP_DAC_OVERRIDE/READ_SEARCH it obeys file modes."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if not setpriv:
        return None
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search",
            "--inh-caps=-dac_override,-dac_read_search")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--hello", required=True)
    ap.add_argument("--echo", required=True)
    a = ap.parse_args()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: no usable /dev/kvm")
        return 77
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="kiln-blk-opts-")
    try:
        img = os.path.join(tmp, "disk.img")
        with open(img, "wb") as f:
            f.truncate(8 << 20)
        expect_boots(c, a, "good image, io_uring", [img], {"KILN_BLK_ENGINE": "io_uring"})
        expect_boots(c, a, "good image, threads", [img],
                     {"KILN_BLK_ENGINE": "threads"})
        expect_boots(c, a, "good image, cache=none", [img + ",cache=none"])
        missing = os.path.join(tmp, "missing.img")
        expect_refused(c, a, "missing image", [missing],
                       f"kiln: --disk {missing}: No such file or directory")
        expect_refused(c, a, "directory", [tmp], f"kiln: --disk {tmp}: Is a directory")
        expect_refused(c, a, "character device", ["/dev/null"],
                       "kiln: --disk /dev/null: not a regular file or a block device")
        expect_refused(c, a, "same image twice in one VM", [img, img],
                       f"--disk {img}: locked by another process")
        expect_refused(c, a, "bad KILN_BLK_ENGINE", [img], "KILN_BLK_ENGINE=fast",
                       env={"KILN_BLK_ENGINE": "fast"})
        shm_refused = direct_refused("/dev/shm")
        if shm_refused:
            shm = tempfile.NamedTemporaryFile(dir="/dev/shm", prefix="kiln-blk-")
            shm.truncate(1 << 20)
            expect_refused(c, a, "cache=none on tmpfs", [shm.name + ",cache=none"],
                           f"kiln: --disk {shm.name}: cache=none: the file system does not "
                           "support O_DIRECT")
            shm.close()
        else:
            print("SKIP: cache=none refused (this kernel's tmpfs takes O_DIRECT)")
        prefix = no_dac_prefix()
        if prefix is None:
            print("SKIP: unreadable image (root without setpriv)")
        else:
            locked_out = os.path.join(tmp, "mode000.img")
            shutil.copy(img, locked_out)
            os.chmod(locked_out, 0)
            expect_refused(c, a, "unreadable image", [locked_out],
                           f"kiln: --disk {locked_out}: Permission denied", prefix=prefix)
            readonly = os.path.join(tmp, "mode444.img")
            shutil.copy(img, readonly)
            os.chmod(readonly, 0o444)
            expect_refused(c, a, "read-only file opened read-write", [readonly],
                           f"kiln: --disk {readonly}: Permission denied (add ,ro to use it "
                           "read-only)", prefix=prefix)
            expect_boots(c, a, "read-only file with ,ro", [readonly + ",ro"], prefix=prefix)
        lock_checks(c, a, img)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"blk_disk_options: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
