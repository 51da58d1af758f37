#!/usr/bin/env python3
"""Snapshot and restore of a Linux guest, inside the stock-KVM host: kiln boots the default
guest (2 vCPUs, 256 MiB (KILN_SNAP_MEM_MIB), a virtio-blk disk, a virtio-net NIC on user networking with a
port forward, virtio-rng) through its API, in a network namespace of its own; a shell loop in
the guest counts, printing each number, keeping it in a file in the guest's RAM and writing
it to the disk with fsync, and a one-line server listens on the guest's port 22. Then PATCH /vm Paused, PUT /snapshot/create, kill -9 of kiln;
`kiln run --restore` with the same disk and rng in a fresh process: the count continues
from the next number (no gap, no reset), the file and the disk agree, the disk still takes
writes, the rng still gives bytes, the console answers, and the host reaches the server
that was listening before the snapshot through the restored NIC. The restored VM is snapshotted,
killed and restored once more (a snapshot of a MAP_PRIVATE-mapped VM), then poweroff ends
kiln with status 0.

Prints PASS/FAIL and TIME lines, closes with "N passed, N failed".
    tests/linux/test_snapshot.py --kiln build/src/kiln
"""
import json
import os
import re
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from linuxtest import (guest_run, outer_stty_ok, run, setup, boot_outer,  # noqa: E402
                       type_line, wait_guest_ready)
from outerhost import HostError  # noqa: E402

VMM_LIMIT = 900
GUEST_MIB = int(os.environ.get("KILN_SNAP_MEM_MIB", "256"))  # for figures at other sizes
TICK = re.compile(r"tick (\d+)\r*\n")

# Runs in the stock-KVM host, detached: configures and starts kiln, then on each go-N file
# in D pauses it, snapshots it (Full, then Diff) into /run/tmp and kills it.
CLIENT = r"""#!/bin/sh
S=$1; D=$2; SNAP=/run/tmp/kiln-snap
call() {  # METHOD PATH [BODY] -> logs "METHOD PATH STATUS BODY"
    if [ -n "$3" ]; then
        out=$(curl -s --unix-socket "$S" -w ' %{http_code}' -X "$1" "http://localhost$2" \
              -H 'Content-Type: application/json' -d "$3")
    else
        out=$(curl -s --unix-socket "$S" -w ' %{http_code}' -X "$1" "http://localhost$2")
    fi
    echo "$1 $2 ${out##* } ${out% *}" >> "$D/client.log"
}
now() { date +%s.%N; }
waitsock() { i=0; while [ ! -S "$S" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; }
waitfile() { i=0; while [ ! -e "$D/$1" ] && [ $i -lt 6000 ]; do sleep 0.1; i=$((i+1)); done; }
rm -rf $SNAP; mkdir -p $SNAP/full $SNAP/diff
waitsock
call PUT /boot-source "$BOOT"
call PUT /machine-config "$MACHINE"
call PUT /drives/data "$DRIVE"
call PUT /entropy '{}'
call PUT /actions '{"action_type": "InstanceStart"}'
for n in 1 2; do
    kind=Full; dir=$SNAP/full
    [ $n = 2 ] && dir=$SNAP/diff
    waitfile go-$n
    waitsock
    call PATCH /vm '{"state": "Paused"}'
    t0=$(now)
    call PUT /snapshot/create "{\"snapshot_type\": \"$kind\", \"snapshot_path\": \"$dir/state\", \"mem_file_path\": \"$dir/memory\"}"
    t1=$(now)
    echo "snap-$n $t0 $t1 $(stat -c '%s %b %B' $dir/memory) $(stat -c %s $dir/state)" >> "$D/client.log"
    rm -f "$S"
    kill -9 "$(cat /run/tmp/kiln-snap.pid)"
    echo "killed-$n" >> "$D/client.log"
    if [ $n = 1 ]; then
        waitfile go-net
        echo "net $(ip netns exec kiln-snap python3 $D/netcheck.py 2222)" >> "$D/client.log"
    fi
done
"""

# The host side of the port forward, run in the test's network namespace.
NETCHECK = r"""import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.decode(errors="replace").strip() or "nothing")
"""


def log_lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError:
        return []


def wait_file_line(path, pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_lines(path):
            if pred(line):
                return line
        time.sleep(0.2)
    return None


def ticks(text):
    return [int(n) for n in TICK.findall(text)]


def start_counting(host, r, label):
    """A background loop in the guest: print and record a count every 0.3 s."""
    type_line(host, "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; printf '%08d' $i | "
                    "dd of=/dev/vda conv=notrunc,fsync 2>/dev/null; echo tick $i; "
                    "sleep 0.3; done &")
    try:
        host.expect(r"tick 5\r*\n", timeout=60)
        r.check(f"{label}: the guest counts", True)
        return True
    except HostError as e:
        r.fail(f"{label}: the guest counts", str(e))
        return False


def snapshot_and_kill(host, r, d, n, label):
    """Lets the client pause, snapshot and kill kiln; returns the last count printed."""
    clog = os.path.join(d, "client.log")
    mark = host.pos
    open(os.path.join(d, f"go-{n}"), "w").close()
    line = wait_file_line(clog, lambda l: l == f"killed-{n}", 180)
    status = host.wait_exit(timeout=60)
    r.check(f"{label}: kiln was killed (status 137)", status == 137, f"status {status}")
    calls = [l for l in log_lines(clog) if l.startswith(("PATCH /vm", "PUT /snapshot"))][-2:]
    r.check(f"{label}: pause and snapshot/create -> 204", line is not None and len(calls) == 2
            and all(c.split()[2] == "204" for c in calls), " | ".join(calls))
    snap = [l.split() for l in log_lines(clog) if l.startswith(f"snap-{n} ")]
    if snap and len(snap[0]) == 7:
        _, t0, t1, size, blocks, bsize, state = snap[0]
        r.timing(f"{label}: PUT /snapshot/create", float(t1) - float(t0))
        print(f"SIZE: {label}: memory file {int(size) >> 20} MiB apparent, "
              f"{int(blocks) * int(bsize) >> 20} MiB allocated; state file {state} bytes",
              flush=True)
    seen = ticks(host.buf)
    # The guest may have been paused in the middle of a "tick N" line: keep what it had
    # printed of it, the restored guest prints the rest.
    end = host.buf.rfind("\n@@", 0, host.pos)
    partial = host.buf[host.buf.rfind("\n", 0, end) + 1:end] if end > 0 else ""
    host.partial = partial if re.fullmatch(r"t(i(c(k( \d*)?)?)?)?", partial) else ""
    return seen[-1] if seen else None, mark


def restore(host, r, vmm, d, sock, snapdir, devices, last, label):
    """kiln run --restore: the count goes on from last + 1. Returns True if it does."""
    started = time.monotonic()
    host.spawn(f"ip netns exec kiln-snap sh -c 'echo $$ > /run/tmp/kiln-snap.pid; "
               f"exec {vmm.path} run --restore {snapdir} --api-sock {sock} {devices}'",
               limit=VMM_LIMIT)
    mark = host.pos
    try:
        host.expect(r"tick (\d+)\r*\n", timeout=120)
        r.timing(f"{label}: kiln start to the next count", time.monotonic() - started)
        host.expect(r"tick (\d+)\r*\n", timeout=60)
        host.expect(r"tick (\d+)\r*\n", timeout=60)
    except HostError as e:
        r.fail(f"{label}: the restored guest counts on", str(e))
        return False
    after = ticks(getattr(host, "partial", "") + host.buf[mark:host.pos])
    r.check(f"{label}: the count continues at {last + 1}, no gap, no reset",
            after[:1] == [last + 1] and after == list(range(last + 1, last + 1 + len(after))),
            f"before: ...{last}; after: {after}")
    return True


def console_answers(host, r, label, last):
    try:
        _, out = guest_run(host, "echo alive-$((40+2)); cat /tmp/count; "
                                 "echo disk-$(dd if=/dev/vda bs=8 count=1 2>/dev/null); "
                                 "echo rng-$(head -c 64 /dev/hwrng | wc -c)")
    except HostError as e:
        return r.fail(f"{label}: the console answers", str(e))
    r.check(f"{label}: the console answers", "alive-42" in out, out.strip())
    nums = [int(x) for x in re.findall(r"^(\d+)\r?$", out, re.M)]
    r.check(f"{label}: the counter file kept counting (>= {last + 1})",
            bool(nums) and nums[0] > last, out.strip())
    disk = re.search(r"disk-(\d{8})", out)
    r.check(f"{label}: the disk holds the count and takes writes (>= {last + 1})",
            disk is not None and int(disk.group(1)) > last, out.strip())
    r.check(f"{label}: virtio-rng still gives bytes", "rng-64" in out, out.strip())
    return True


def scenario(host, vmm, guest, r):
    label = "snapshot"
    d = host.scratch
    sock = "/run/tmp/kiln-snap.sock"
    image = os.path.join(d, "data.img")
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    net = "--net user,hostfwd=tcp::2222-:22"
    devices = f"--disk {image},id=data {net} --rng"
    env = {
        "BOOT": json.dumps({"kernel_image_path": f"{guest}/vmlinuz",
                            "initrd_path": f"{guest}/initramfs.cpio.gz",
                            "boot_args": "console=ttyS0 reboot=k panic=1 quiet"}),
        "MACHINE": json.dumps({"vcpu_count": 2, "mem_size_mib": GUEST_MIB}),
        "DRIVE": json.dumps({"drive_id": "data", "path_on_host": image, "is_root_device": False,
                             "is_read_only": False}),
    }
    with open(os.path.join(d, "client.sh"), "w") as f:
        f.write(CLIENT)
    with open(os.path.join(d, "netcheck.py"), "w") as f:
        f.write(NETCHECK)
    host.check("ip netns add kiln-snap && ip netns exec kiln-snap ip link set lo up")
    envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    host.check(f"mkdir -p /run/tmp && rm -f {sock}")
    host.check(f"setsid -f env {envs} sh {d}/client.sh {sock} {d} >/dev/null 2>&1")
    started = time.monotonic()
    host.spawn(f"ip netns exec kiln-snap sh -c 'echo $$ > /run/tmp/kiln-snap.pid; "
               f"exec {vmm.path} run --api-sock {sock} {net}'", limit=VMM_LIMIT)
    if not wait_guest_ready(host, r, label, started, start_what="kiln start"):
        return False
    if not start_counting(host, r, label):
        return False
    type_line(host, "echo kiln-net-ok-$((6*7)) | nc -l -p 22 &")
    time.sleep(2)
    last, _ = snapshot_and_kill(host, r, d, 1, f"{label} (full)")
    if last is None:
        return r.fail(f"{label}: counts seen before the snapshot")
    if not restore(host, r, vmm, d, sock, "/run/tmp/kiln-snap/full", devices, last,
                   f"{label} (full)"):
        return False
    console_answers(host, r, f"{label} (full)", last)
    open(os.path.join(d, "go-net"), "w").close()
    got = wait_file_line(os.path.join(d, "client.log"), lambda l: l.startswith("net "), 90)
    r.check(f"{label} (full): the host reaches the guest's server (listening since before "
            f"the snapshot) through the restored NIC", got is not None and "kiln-net-ok-42" in got,
            got or "no answer")
    time.sleep(2)
    last, _ = snapshot_and_kill(host, r, d, 2, f"{label} (again)")
    if last is None or not restore(host, r, vmm, d, sock, "/run/tmp/kiln-snap/diff", devices,
                                   last, f"{label} (again)"):
        return False
    console_answers(host, r, f"{label} (again)", last)
    type_line(host, "kill %1; poweroff")
    status = host.wait_exit(timeout=120)
    r.check(f"{label}: poweroff ends the restored kiln with status 0", status == 0,
            f"status {status}")
    outer_stty_ok(host, r, label)
    host.check("rm -rf /run/tmp/kiln-snap; ip netns del kiln-snap")
    return True


def main():
    args, vmm, guest, r = setup("test_snapshot", __doc__)
    if not hasattr(vmm, "path") or vmm.name != "kiln":
        print("SKIP: the snapshot test needs kiln as the inner VMM")
        sys.exit(77)
    host = boot_outer(r, os.path.join(args.log_dir, "test_snapshot.transcript.log"))
    if host is None:
        return r.finish()
    try:
        try:
            scenario(host, vmm, guest, r)
        except HostError as e:
            r.fail("snapshot scenario", str(e))
            host.abort_spawned()
    finally:
        host.close()
    return r.finish()


if __name__ == "__main__":
    run(main)
