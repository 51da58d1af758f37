#!/usr/bin/env python3
"""Snapshot and restore (docs/snapshot.md) with the counting micro-guest on /dev/kvm.

Usage: snapshot_test.py --kiln PATH --guests DIR TEST

TEST is one of:
  continue  count, pause, PUT /snapshot/create, kill kiln; `kiln run --restore DIR` in a
            fresh process: the count goes on from the next number (no gap, no reset), the
            console still answers; then the restored VM is snapshotted and restored again
  clones    one snapshot restored into 5 kiln processes at once: each continues from the
            same number and runs on its own (one is paused, the others keep counting)
  api-load  PUT /snapshot/load (resume_vm false, then PATCH /vm Resumed) in a kiln started
            with only --api-sock, its rng device configured through the API first
  diff      a Full snapshot, then a Diff (only the pages written since) restored as base +
            diff, then a Diff of that restored VM restored as a chain of three
  diff-devices  a Diff of a VM whose virtio-rng device writes guest RAM, restored: every
            buffer the device filled since the Full one is there (the `dirty` micro-guest)
  devices   a VM with a virtio disk, NIC, vsock and rng: saved, restored with the same
            devices; without them, or with another disk, MAC or CID, the restore is refused
  console-virtio  the same with --console virtio (COM1's output read from the log)
  damaged   truncated, bit-flipped, wrong-version, wrong-architecture and missing files are
            refused with exit status 3 and a clear message, never a crash
Exits 0 (pass), 1 (fail) or 77 (skipped: no usable /dev/kvm). Standard library only.
"""

import argparse
import fcntl
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_test import Checks, Kiln, counts, wait_for, configure_raw, EXIT_SKIP  # noqa: E402

BAD_IMAGE = 3


def boot_counting(a, c, tmp, cpus=1, extra=()):
    """A kiln with the API, booted into count.bin and counting; None if that failed."""
    k = Kiln(a.kiln, ["--api-sock", "api.sock"] + list(extra), tmp)
    if not c.check(k.wait_socket(), "the API socket accepts connections"):
        print(k.describe())
        return None
    configure_raw(c, k, os.path.join(a.guests, "count.bin"), cpus=cpus)
    st, _, text = k.request("PUT", "/actions", {"action_type": "InstanceStart"})
    if not c.check(st == 204, f"InstanceStart -> 204 (got {st} {text})"):
        print(k.describe())
        k.stop()
        return None
    c.check(wait_for(lambda: len(counts(k.text())) >= 5, 10), "the guest counts")
    return k


def snapshot(c, k, snapdir, kind="Full"):
    """Pauses k and snapshots it into snapdir; returns the last count printed before."""
    os.makedirs(snapdir, exist_ok=True)
    st, _, text = k.request("PATCH", "/vm", {"state": "Paused"})
    c.check(st == 204, f"PATCH /vm Paused -> 204 (got {st} {text})")
    time.sleep(0.3)  # what the UART already passed on drains from the pipe
    text = k.text()
    last = counts(text)[-1]
    # The guest may be paused in the middle of a line: the restored one finishes it.
    k.partial = text[text.rfind("\n") + 1:]
    t0 = time.monotonic()
    st, _, text = k.request("PUT", "/snapshot/create", {
        "snapshot_type": kind, "snapshot_path": os.path.join(snapdir, "state"),
        "mem_file_path": os.path.join(snapdir, "memory")})
    took = time.monotonic() - t0
    c.check(st == 204, f"PUT /snapshot/create {kind} -> 204 in {took * 1000:.0f} ms (got {st} {text})")
    return last


def allocated(path):
    return os.stat(path).st_blocks * 512


def resume(c, k):
    st, _, text = k.request("PATCH", "/vm", {"state": "Resumed"})
    c.check(st == 204, f"PATCH /vm Resumed -> 204 (got {st} {text})")


def kill(k):
    os.killpg(k.proc.pid, signal.SIGKILL)
    k.wait_exit()


def wait_unlocked(path, timeout=5):
    """After kill -9 the image's lock outlives kiln for a moment: its io_uring holds the
    registered image file until the kernel tears the ring down, after the process is gone."""
    end = time.monotonic() + timeout
    with open(path, "rb+") as f:
        while True:
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.lockf(f, fcntl.LOCK_UN)
                return True
            except OSError:
                if time.monotonic() > end:
                    return False
                time.sleep(0.02)


def continues_from(c, k, last, what, timeout=10, prefix=""):
    """The restored guest's first count is last + 1 and it counts on without gaps; `prefix`
    is the unfinished line the saved guest had printed."""
    ok = wait_for(lambda: len(counts(prefix + k.text())) >= 5, timeout)
    got = counts(prefix + k.text())
    c.check(ok and got[0] == last + 1,
            f"{what}: the count continues at {last + 1} (got {got[:3]}...)")
    c.check(got == list(range(got[0], got[0] + len(got))),
            f"{what}: no gap and no reset over {len(got)} lines")
    if not ok or got[0] != last + 1:
        print(k.describe())


def t_continue(a, c, tmp):
    k = boot_counting(a, c, tmp, cpus=2)
    if not k:
        return
    snapdir = os.path.join(tmp, "snap")
    last = snapshot(c, k, snapdir)
    kill(k)
    size = os.path.getsize(os.path.join(snapdir, "memory"))
    used = os.stat(os.path.join(snapdir, "memory")).st_blocks * 512
    c.check(used < size // 4, f"the memory file is sparse ({used} of {size} bytes allocated)")

    t0 = time.monotonic()
    r = Kiln(a.kiln, ["--restore", snapdir, "--api-sock", "api2.sock", "-v"], tmp)
    r.sock = os.path.join(tmp, "api2.sock")
    ok = wait_for(lambda: counts(r.text()), 10)
    c.check(ok, f"restored guest prints within {time.monotonic() - t0:.2f} s")
    continues_from(c, r, last, "restore", prefix=k.partial)
    c.check(r.proc.poll() is None, "the restored kiln keeps running")
    # The console answers: the guest still drives the UART (it prints on), and the host end
    # of the API still controls it: pause stops the output, resume restarts it.
    st, _, _ = r.request("PATCH", "/vm", {"state": "Paused"})
    time.sleep(0.3)
    n = len(counts(r.text()))
    time.sleep(0.5)
    c.check(st == 204 and len(counts(r.text())) == n, "the restored VM pauses")
    # a snapshot of the restored VM, restored again (MAP_PRIVATE memory saved correctly)
    snap2 = os.path.join(tmp, "snap2")
    last2 = snapshot(c, r, snap2)
    kill(r)
    r2 = Kiln(a.kiln, ["--restore", snap2], tmp)
    continues_from(c, r2, last2, "second-generation restore", prefix=r.partial)
    r2.stop()


def t_clones(a, c, tmp):
    k = boot_counting(a, c, tmp)
    if not k:
        return
    snapdir = os.path.join(tmp, "snap")
    last = snapshot(c, k, snapdir)
    kill(k)
    clones = []
    for i in range(5):
        d = os.path.join(tmp, f"clone{i}")
        os.mkdir(d)
        clone = Kiln(a.kiln, ["--restore", snapdir, "--api-sock", "api.sock"], d)
        clones.append(clone)
    for i, clone in enumerate(clones):
        continues_from(c, clone, last, f"clone {i}", timeout=20, prefix=k.partial)
        c.check(clone.wait_socket(), f"clone {i}: its API answers")
    # independence: pausing clone 0 does not stop the others
    st, _, _ = clones[0].request("PATCH", "/vm", {"state": "Paused"})
    time.sleep(0.3)
    n0 = len(counts(clones[0].text()))
    others = [len(counts(cl.text())) for cl in clones[1:]]
    time.sleep(1.0)
    c.check(st == 204 and len(counts(clones[0].text())) == n0, "clone 0 is paused")
    c.check(all(len(counts(cl.text())) > n for cl, n in zip(clones[1:], others)),
            "clones 1-4 keep counting while clone 0 is paused")
    for clone in clones:
        c.check(clone.stop() == 0, "a clone exits 0 on SIGTERM")


def t_api_load(a, c, tmp):
    k = boot_counting(a, c, tmp, extra=["--rng"])
    if not k:
        return
    snapdir = os.path.join(tmp, "snap")
    last = snapshot(c, k, snapdir)
    kill(k)
    d = os.path.join(tmp, "load")
    os.mkdir(d)
    r = Kiln(a.kiln, ["--api-sock", "api.sock"], d)
    c.check(r.wait_socket(), "the API socket accepts connections")
    st, _, text = r.request("PUT", "/snapshot/load", {
        "snapshot_path": os.path.join(snapdir, "nope"),
        "mem_backend": {"backend_type": "File", "backend_path": os.path.join(snapdir, "memory")}})
    c.check(st == 400 and "No such file" in text, f"loading a missing state file fails ({text})")
    load = {"snapshot_path": os.path.join(snapdir, "state"),
            "mem_backend": {"backend_type": "File", "backend_path": os.path.join(snapdir, "memory")}}
    st, _, text = r.request("PUT", "/snapshot/load", load)
    c.check(st == 400 and "give the same devices" in text,
            f"loading without the snapshot's rng device fails ({text})")
    st, _, text = r.request("PUT", "/entropy", {})
    c.check(st == 204, f"PUT /entropy -> 204 ({text})")
    st, _, text = r.request("PUT", "/snapshot/load", {
        "snapshot_path": os.path.join(snapdir, "state"),
        "mem_backend": {"backend_type": "File", "backend_path": os.path.join(snapdir, "memory")},
        "resume_vm": False})
    c.check(st == 204, f"PUT /snapshot/load -> 204 (got {st} {text})")
    time.sleep(1.0)
    c.check(counts(r.text()) == [], "resume_vm false: the VM waits")
    st, body, _ = r.request("GET", "/")
    c.check(body and body.get("state") == "Paused", f"GET / says Paused ({body})")
    st, _, text = r.request("PATCH", "/vm", {"state": "Resumed"})
    c.check(st == 204, f"PATCH /vm Resumed -> 204 (got {st} {text})")
    continues_from(c, r, last, "API load", prefix=k.partial)
    c.check(r.stop() == 0, "kiln exits 0 on SIGTERM")


def t_diff(a, c, tmp):
    """Full, run on, Diff (only dirtied pages), kill, restore the diff (base + diff); then a
    diff of the restored VM on top of it (a chain of two), restored again."""
    k = boot_counting(a, c, tmp)
    if not k:
        return
    full, diff1, diff2 = (os.path.join(tmp, n) for n in ("full", "diff1", "diff2"))
    k.request("PATCH", "/vm", {"state": "Paused"})
    st, _, text = k.request("PUT", "/snapshot/create", {"snapshot_type": "Diff",
                                                        "snapshot_path": os.path.join(tmp, "x"),
                                                        "mem_file_path": os.path.join(tmp, "y")})
    c.check(st == 400 and "Full one first" in text, f"a Diff without a base is refused ({text})")
    snapshot(c, k, full)
    resume(c, k)
    n = len(counts(k.text()))
    c.check(wait_for(lambda: len(counts(k.text())) >= n + 3, 10), "the guest counts on")
    last = snapshot(c, k, diff1, "Diff")
    kill(k)
    full_used = allocated(os.path.join(full, "memory"))
    diff_used = allocated(os.path.join(diff1, "memory"))
    c.check(diff_used < full_used,
            f"the diff's memory file holds less than the full one ({diff_used} < {full_used} bytes)")
    r = Kiln(a.kiln, ["--restore", diff1, "--api-sock", "api2.sock"], tmp)
    r.sock = os.path.join(tmp, "api2.sock")
    continues_from(c, r, last, "restore of a diff", prefix=k.partial)
    last2 = snapshot(c, r, diff2, "Diff")
    kill(r)
    r2 = Kiln(a.kiln, ["--restore", diff2], tmp)
    continues_from(c, r2, last2, "restore of a diff on a diff", prefix=r.partial)
    r2.stop()
    # a diff whose base is gone, or was replaced, is refused
    os.rename(os.path.join(full, "state"), os.path.join(full, "state.moved"))
    rc, err = run_restore(a, diff2, tmp)
    c.check(rc == BAD_IMAGE and "base snapshot" in err,
            f"a diff whose base is missing is refused (got {rc}: {err.strip()[:200]})")


def t_diff_devices(a, c, tmp):
    """A Diff of a VM whose virtio-rng device writes guest RAM (the `dirty` micro-guest with
    rng=1: it checks, before each refill, that every buffer still holds what the device put
    there): Full, run on until every buffer was refilled, Diff, kill, restore base + diff; the
    guest re-checks every buffer and page without a FAIL."""
    k = Kiln(a.kiln, ["--api-sock", "api.sock", "--rng"], tmp)
    c.check(k.wait_socket(), "the API socket accepts connections")
    k.request("PUT", "/boot-source", {
        "kernel_image_path": os.path.join(a.guests, "dirty.bin"), "kiln_kernel_format": "raw",
        "boot_args": "console=ttyS0 dirty=16 rng=1"})
    k.request("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64})
    st, _, text = k.request("PUT", "/actions", {"action_type": "InstanceStart"})
    c.check(st == 204 and wait_for(lambda: len(counts(k.text())) >= 70, 20),
            f"the guest fills its 64 rng buffers ({st} {text})")
    full, diff = os.path.join(tmp, "full"), os.path.join(tmp, "diff")
    snapshot(c, k, full)
    resume(c, k)
    n = len(counts(k.text()))
    c.check(wait_for(lambda: len(counts(k.text())) >= n + 70, 20), "it refills every buffer")
    last = snapshot(c, k, diff, "Diff")
    kill(k)
    r = Kiln(a.kiln, ["--restore", diff, "--rng"], tmp)
    ok = wait_for(lambda: len(counts(k.partial + r.text())) >= 75, 20)
    got = counts(k.partial + r.text())
    c.check(ok and got[0] == last + 1 and got == list(range(got[0], got[0] + len(got))),
            f"the restored diff counts on from {last + 1} ({got[:3]}..., {len(got)} lines)")
    bad = [line for line in r.text().splitlines() if "FAIL" in line]
    c.check(not bad, f"every buffer the device filled is in the diff ({bad[:1]})")
    r.stop()


def t_devices(a, c, tmp):
    """With a virtio disk, NIC, vsock and rng attached (the micro-guest does not drive them):
    they are saved; the restore must be given the same devices, disk, MAC and CID."""
    disk = os.path.join(tmp, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    k = Kiln(a.kiln, ["--api-sock", "api.sock", "--disk", disk, "--net", "user", "--vsock",
                      "cid=7,uds=v1.sock", "--rng"], tmp)
    c.check(k.wait_socket(), "the API socket accepts connections")
    configure_raw(c, k, os.path.join(a.guests, "count.bin"))
    st, _, text = k.request("PUT", "/actions", {"action_type": "InstanceStart"})
    c.check(st == 204 and wait_for(lambda: len(counts(k.text())) >= 3, 10),
            f"the guest counts with a disk and rng attached ({st} {text})")
    snapdir = os.path.join(tmp, "snap")
    k.request("PATCH", "/vm", {"state": "Paused"})
    st, _, text = k.request("PUT", "/snapshot/create", {
        "snapshot_type": "Diff", "snapshot_path": os.path.join(tmp, "d1"),
        "mem_file_path": os.path.join(tmp, "d2")})
    c.check(st == 400 and "Full one first" in text, f"a Diff without a base is refused ({text})")
    snapshot(c, k, os.path.join(tmp, "base"))
    resume(c, k)
    time.sleep(0.3)
    st, _, text = k.request("PATCH", "/vm", {"state": "Paused"})
    st, _, text = k.request("PUT", "/snapshot/create", {
        "snapshot_type": "Diff", "snapshot_path": os.path.join(tmp, "d1"),
        "mem_file_path": os.path.join(tmp, "d2")})
    c.check(st == 204, f"a Diff of a VM with virtio devices is taken ({st} {text})")
    resume(c, k)
    last = snapshot(c, k, snapdir)
    kill(k)
    c.check(wait_unlocked(disk), "the killed VM's disk lock is released within 5 s")
    rc, err = run_restore(a, snapdir, tmp)
    c.check(rc == BAD_IMAGE and "give the same devices" in err,
            f"restoring without the devices is refused (got {rc}: {err.strip()[:200]})")
    other = os.path.join(tmp, "other.img")
    with open(other, "wb") as f:
        f.truncate(2 << 20)
    rc, err = run_restore(a, snapdir, tmp, ["--disk", other, "--net", "user", "--vsock",
                                            "cid=7,uds=v2.sock", "--rng"])
    c.check(rc == BAD_IMAGE and "does not match" in err,
            f"restoring with another disk size is refused (got {rc}: {err.strip()[:200]})")
    rc, err = run_restore(a, snapdir, tmp, ["--disk", disk, "--net", "user,mac=52:54:00:00:00:01",
                                            "--vsock", "cid=7,uds=v2.sock", "--rng"])
    c.check(rc == BAD_IMAGE and "virtio-net" in err,
            f"restoring with another MAC is refused (got {rc}: {err.strip()[:200]})")
    rc, err = run_restore(a, snapdir, tmp, ["--disk", disk, "--net", "user", "--vsock",
                                            "cid=8,uds=v2.sock", "--rng"])
    c.check(rc == BAD_IMAGE and "virtio-vsock" in err,
            f"restoring with another vsock CID is refused (got {rc}: {err.strip()[:200]})")
    r = Kiln(a.kiln, ["--restore", snapdir, "--disk", disk, "--net", "user", "--vsock",
                      "cid=7,uds=v2.sock", "--rng"], tmp)
    continues_from(c, r, last, "restore with the disk, NIC, vsock and rng", prefix=k.partial)
    c.check(r.stop() == 0, "the restored kiln exits 0 on SIGTERM")


def t_console_virtio(a, c, tmp):
    """--console virtio: the virtio-console device is saved too; COM1's output (the count)
    goes to the console log, which shows it continue after the restore."""
    log1, log2 = os.path.join(tmp, "log1"), os.path.join(tmp, "log2")
    logged = lambda path: counts(open(path, errors="replace").read()) if os.path.exists(path) else []
    k = Kiln(a.kiln, ["--api-sock", "api.sock", "--console", "virtio", "--console-log", log1], tmp)
    c.check(k.wait_socket(), "the API socket accepts connections")
    configure_raw(c, k, os.path.join(a.guests, "count.bin"))
    st, _, text = k.request("PUT", "/actions", {"action_type": "InstanceStart"})
    c.check(st == 204 and wait_for(lambda: len(logged(log1)) >= 3, 10),
            f"the guest counts into the console log ({st} {text})")
    snapdir = os.path.join(tmp, "snap")
    os.makedirs(snapdir)
    k.request("PATCH", "/vm", {"state": "Paused"})
    st, _, text = k.request("PUT", "/snapshot/create", {
        "snapshot_path": os.path.join(snapdir, "state"),
        "mem_file_path": os.path.join(snapdir, "memory")})
    c.check(st == 204, f"PUT /snapshot/create with a virtio console -> 204 ({st} {text})")
    time.sleep(0.2)
    last = logged(log1)[-1]
    with open(log1, errors="replace") as f:
        text = f.read()
    partial = text[text.rfind("\n") + 1:]
    kill(k)
    r = Kiln(a.kiln, ["--restore", snapdir, "--console", "virtio", "--console-log", log2], tmp)
    def logged2():
        if not os.path.exists(log2):
            return []
        with open(log2, errors="replace") as f:
            return counts(partial + f.read())
    ok = wait_for(lambda: len(logged2()) >= 3, 10)
    got = logged2()
    c.check(ok and got[0] == last + 1 and got == list(range(last + 1, last + 1 + len(got))),
            f"the count continues at {last + 1} with no gap (got {got[:4]}...)")
    c.check(r.stop() == 0, "the restored kiln exits 0 on SIGTERM")


def run_restore(a, snapdir, tmp, extra=()):
    p = subprocess.run([a.kiln, "run", "--restore", snapdir] + list(extra), cwd=tmp,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    return p.returncode, p.stderr.decode(errors="replace")


def rewrite_crc(data):
    body = data[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def t_damaged(a, c, tmp):
    k = boot_counting(a, c, tmp)
    if not k:
        return
    snapdir = os.path.join(tmp, "snap")
    snapshot(c, k, snapdir)
    kill(k)
    with open(os.path.join(snapdir, "state"), "rb") as f:
        good = f.read()
    bad = os.path.join(tmp, "bad")
    os.mkdir(bad)
    os.symlink(os.path.join(snapdir, "memory"), os.path.join(bad, "memory"))
    arch = good.index(b"x86_64")
    cases = {
        "empty": (b"", "bad magic"),
        "truncated to half": (good[:len(good) // 2], "checksum"),
        "truncated by one byte": (good[:-1], "checksum"),
        "one bit flipped": (good[:200] + bytes([good[200] ^ 0x10]) + good[201:], "checksum"),
        "wrong format version": (rewrite_crc(good[:8] + struct.pack("<I", 99) + good[12:]),
                                 "format version 99"),
        "wrong architecture": (rewrite_crc(good[:arch] + b"arm_64" + good[arch + 6:]),
                               "architecture 'arm_64'"),
        "not a snapshot": (b"\x7fELF" + bytes(100), "bad magic"),
    }
    for name, (data, want) in cases.items():
        with open(os.path.join(bad, "state"), "wb") as f:
            f.write(data)
        rc, err = run_restore(a, bad, tmp)
        c.check(rc == BAD_IMAGE and want in err,
                f"{name}: refused with exit {BAD_IMAGE} and '{want}' (got {rc}: {err.strip()[:200]})")
    # the memory file must match the state
    os.unlink(os.path.join(bad, "memory"))
    with open(os.path.join(bad, "state"), "wb") as f:
        f.write(good)
    with open(os.path.join(bad, "memory"), "wb") as f:
        f.write(b"\0" * 4096)
    rc, err = run_restore(a, bad, tmp)
    c.check(rc == BAD_IMAGE and "memory file" in err,
            f"a memory file of the wrong size is refused (got {rc}: {err.strip()[:200]})")
    os.unlink(os.path.join(bad, "memory"))
    rc, err = run_restore(a, bad, tmp)
    c.check(rc == BAD_IMAGE and "No such file" in err,
            f"a missing memory file is refused (got {rc}: {err.strip()[:200]})")
    rc, err = run_restore(a, os.path.join(tmp, "nowhere"), tmp)
    c.check(rc == BAD_IMAGE and "No such file" in err,
            f"a missing snapshot directory is refused (got {rc}: {err.strip()[:200]})")


TESTS = {"continue": t_continue, "clones": t_clones, "api-load": t_api_load,
         "damaged": t_damaged, "diff": t_diff, "devices": t_devices,
         "console-virtio": t_console_virtio, "diff-devices": t_diff_devices}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--guests", required=True)
    ap.add_argument("test", choices=sorted(TESTS))
    a = ap.parse_args()
    a.kiln = os.path.abspath(a.kiln)  # kiln runs in per-test directories
    a.guests = os.path.abspath(a.guests)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not usable")
        return EXIT_SKIP
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="kiln-snap-")
    try:
        TESTS[a.test](a, c, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{a.test}: {'FAIL' if c.failed else 'PASS'} ({c.failed} failed)")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
