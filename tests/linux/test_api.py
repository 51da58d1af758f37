#!/usr/bin/env python3
"""The API with a Linux guest, inside the stock-KVM host: `kiln run --api-sock` is configured
with curl, unchanged, by the getting-started sequence of Firecracker's documentation
(boot-source with "pci=off", a rootfs drive, machine-config, InstanceStart). Checks: every
call answers 204, the guest boots with 2 vCPUs, its command line has root=/dev/vda and no
pci=off, the rootfs drive is vda with serial "rootfs"; PATCH /vm pauses and resumes it (GET /
says Paused, then Running) and the guest's shell answers afterwards; SendCtrlAltDel reaches
the guest through the PS/2 keyboard and its init reboots it; poweroff ends kiln with status 0
and removes the socket.

Prints PASS/FAIL and TIME lines, closes with "N passed, N failed".
    tests/linux/test_api.py --kiln build/src/kiln
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

VMM_LIMIT = 600

CLIENT = r"""#!/bin/sh
# The API client, run in the stock-KVM host next to kiln (curl over the Unix socket).
S=$1; D=$2
call() {  # METHOD PATH [BODY] -> prints "METHOD PATH STATUS BODY"
    if [ -n "$3" ]; then
        out=$(curl -s --unix-socket "$S" -w ' %{http_code}' -X "$1" "http://localhost$2" \
              -H 'Content-Type: application/json' -d "$3")
    else
        out=$(curl -s --unix-socket "$S" -w ' %{http_code}' -X "$1" "http://localhost$2")
    fi
    echo "$1 $2 ${out##* } ${out% *}" >> "$D/client.log"
}
i=0; while [ ! -S "$S" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
call PUT /boot-source "$BOOT"
call PUT /drives/rootfs "$DRIVE"
call PUT /machine-config "$MACHINE"
call GET /
call PUT /actions '{"action_type": "InstanceStart"}'
call GET /
i=0; while [ ! -e "$D/go-pause" ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done
call PATCH /vm '{"state": "Paused"}'
call GET /
sleep 2
call PATCH /vm '{"state": "Resumed"}'
call GET /
call PUT /actions '{"action_type": "InstanceStart"}'
echo done >> "$D/client.log"
i=0; while [ ! -e "$D/go-cad" ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done
call PUT /actions '{"action_type": "SendCtrlAltDel"}'
echo cad-done >> "$D/client.log"
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
        if any(pred(line) for line in log_lines(path)):
            return True
        time.sleep(0.2)
    return False


def scenario(host, vmm, guest, r):
    label = "API getting-started"
    d = host.scratch
    sock = f"/run/tmp/kiln-api-{host.tag}.sock"
    image = os.path.join(d, "rootfs.img")
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    env = {
        "BOOT": json.dumps({"kernel_image_path": f"{guest}/vmlinuz",
                            "initrd_path": f"{guest}/initramfs.cpio.gz",
                            "boot_args": "console=ttyS0 reboot=k panic=1 pci=off quiet"}),
        "DRIVE": json.dumps({"drive_id": "rootfs", "path_on_host": image,
                             "is_root_device": True, "is_read_only": False}),
        "MACHINE": json.dumps({"vcpu_count": 2, "mem_size_mib": 256}),
    }
    with open(os.path.join(d, "client.sh"), "w") as f:
        f.write(CLIENT)
    clog = os.path.join(d, "client.log")
    envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    host.check(f"mkdir -p /run/tmp && rm -f {sock}")
    # The client waits for the socket, so it can start first, detached from the shell.
    host.check(f"setsid -f env {envs} sh {d}/client.sh {sock} {d} >/dev/null 2>&1")
    started = time.monotonic()
    host.spawn(f"{vmm.path} run --api-sock {sock}", limit=VMM_LIMIT)
    if not wait_guest_ready(host, r, label, started, start_what="kiln start"):
        print("\n".join(log_lines(clog)))
        return False
    lines = log_lines(clog)
    for call in ("PUT /boot-source", "PUT /drives/rootfs", "PUT /machine-config",
                 "PUT /actions"):
        got = [l for l in lines if l.startswith(call + " ")]
        r.check(f"{label}: {call} -> 204", got[:1] and got[0].split()[2] == "204",
                got[0] if got else "no reply")
    states = [l for l in lines if l.startswith("GET / 200")]
    r.check(f"{label}: GET / before and after start", len(states) >= 2 and
            "Not started" in states[0] and "Running" in states[1], " | ".join(states))
    try:
        status, out = guest_run(host, "nproc; cat /proc/cmdline; cat /sys/block/vda/serial")
    except HostError as e:
        r.fail(f"{label}: guest checks", str(e))
        return False
    r.check(f"{label}: 2 vCPUs from machine-config", re.search(r"^2\r?$", out, re.M) is not None, out)
    r.check(f"{label}: root=/dev/vda rw added, pci=off dropped",
            "root=/dev/vda rw" in out and "pci=off" not in out, out.strip())
    r.check(f"{label}: the rootfs drive is vda with serial 'rootfs'",
            re.search(r"^rootfs\r?$", out, re.M) is not None, out.strip())

    open(os.path.join(d, "go-pause"), "w").close()
    ok = wait_file_line(clog, lambda l: l == "done", 60)
    lines = log_lines(clog)
    pv = [l for l in lines if l.startswith("PATCH /vm ")]
    r.check(f"{label}: PATCH /vm Paused and Resumed -> 204", ok and len(pv) == 2 and
            all(l.split()[2] == "204" for l in pv), " | ".join(pv))
    states = [l for l in lines if l.startswith("GET / 200")]
    r.check(f"{label}: GET / says Paused, then Running", len(states) >= 4 and
            "Paused" in states[2] and "Running" in states[3], " | ".join(states[2:]))
    again = [l for l in lines if l.startswith("PUT /actions ")]
    r.check(f"{label}: a second InstanceStart -> 400 with a fault message",
            len(again) == 2 and again[1].split()[2] == "400" and "fault_message" in again[1],
            again[-1] if again else "")
    try:
        status, out = guest_run(host, "echo alive-$((40+2))")
        r.check(f"{label}: the guest answers after resume", "alive-42" in out, out.strip())
    except HostError as e:
        r.fail(f"{label}: the guest answers after resume", str(e))
    # Ctrl+Alt+Del through the PS/2 keyboard: busybox init runs its ctrlaltdel action
    # (reboot), and kiln boots the guest again.
    try:
        _, kbd = guest_run(host, "dmesg | grep -iE 'i8042|serio|atkbd|keyboard'")
        r.check(f"{label}: the guest's atkbd driver found the keyboard",
                "AT Translated Set 2 keyboard" in kbd or "AT Raw Set 2 keyboard" in kbd,
                kbd.strip().replace("\n", " | ")[-400:])
    except HostError as e:
        r.fail(f"{label}: guest keyboard messages", str(e))
    open(os.path.join(d, "go-cad"), "w").close()
    ok = wait_file_line(clog, lambda l: l == "cad-done", 60)
    cad = [l for l in log_lines(clog) if "PUT /actions " in l][-1:]
    r.check(f"{label}: SendCtrlAltDel -> 204", ok and cad and cad[0].split()[2] == "204",
            cad[0] if cad else "no reply")
    t = time.monotonic()
    if not wait_guest_ready(host, r, f"{label}: after Ctrl+Alt+Del", t, start_what="keys sent"):
        return False
    t = time.monotonic()
    type_line(host, "poweroff")
    status = host.wait_exit(timeout=120)
    r.check(f"{label}: poweroff ends kiln with status 0", status == 0, f"status {status}")
    r.timing(f"{label}: poweroff typed to VMM exit", time.monotonic() - t)
    gone = host.run(f"test -e {sock}")[0] != 0
    r.check(f"{label}: the socket is removed", gone)
    outer_stty_ok(host, r, label)
    return True


def main():
    args, vmm, guest, r = setup("test_api", __doc__)
    if not hasattr(vmm, "path") or vmm.name != "kiln":
        print("SKIP: the API test needs kiln as the inner VMM")
        sys.exit(77)
    host = boot_outer(r, os.path.join(args.log_dir, "test_api.transcript.log"))
    if host is None:
        return r.finish()
    try:
        try:
            scenario(host, vmm, guest, r)
        except HostError as e:
            r.fail("API scenario", str(e))
            host.abort_spawned()
    finally:
        host.close()
    return r.finish()


if __name__ == "__main__":
    run(main)
