#!/usr/bin/env python3
"""The lifecycle CLI with kiln's default Linux guest (guest/build-guest.sh) inside
the stock-KVM host, one outer boot:

  kiln create, then kiln start (daemonized, configured through the API); the
  guest's readiness line reaches STATE/NAME/console.log; kiln ls shows it
  running; kiln pause / resume (ls shows paused, then running); kiln console
  on the outer host's terminal replays the boot output, runs a command typed
  in the guest's shell, and Ctrl-] detaches with the terminal restored and the
  VM still running; kiln stop --timeout 120: with the API's power button the
  guest's acpid powers it off ("reboot: Power down" in console.log) and kiln
  reports a graceful shutdown. Then kiln rm.

Prints PASS/FAIL and TIME lines, closes with "N passed, N failed", exits 1 on
any failure, 77 if the inner VMM is not kiln.
    tests/linux/test_lifecycle.py --kiln build/src/kiln
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from linuxtest import (BOOT_TIMEOUT, GUEST_APPEND, boot_outer, outer_stty_ok, run,  # noqa: E402
                       setup, type_line)
from outerhost import HostError  # noqa: E402

STATE = "/run/tmp/kiln-lifecycle"  # tmpfs: Unix sockets cannot bind on the 9p root
NAME = "lx"
POWER_DOWN = "reboot: Power down"


def kiln(host, vmm, args, timeout=120):
    """Runs `kiln ARGS` in the outer host; (status, output)."""
    return host.run(f"KILN_STATE_DIR={STATE} {vmm.path} {args} 2>&1", timeout=timeout)


def ls_state(host, vmm):
    status, out = kiln(host, vmm, "ls --json")
    try:
        return {vm["name"]: vm for vm in json.loads(out)}.get(NAME, {}).get("state")
    except ValueError:
        return f"unparsable ls output (status {status}): {out[:200]}"


def wait_in_log(host, text, timeout):
    """Polls the VM's console.log for a fixed string."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status, _ = host.run(f"grep -qF {text!r} {STATE}/{NAME}/console.log")
        if status == 0:
            return True
        time.sleep(2)
    return False


def start(host, vmm, guest, r):
    host.check(f"rm -rf {STATE}; mkdir -p /run/tmp")
    status, out = kiln(host, vmm, f"create {NAME} --kernel {guest}/vmlinuz "
                                  f"--initrd {guest}/initramfs.cpio.gz -m 256M -c 1 "
                                  f"--cmdline '{GUEST_APPEND}'")
    r.check("kiln create", status == 0, out.strip())
    t = time.monotonic()
    status, out = kiln(host, vmm, f"start {NAME}")
    if not r.check("kiln start", status == 0, out.strip()):
        return False
    r.timing("kiln start (launch, API configuration, InstanceStart)", time.monotonic() - t)
    if not r.check("the guest's readiness line reaches console.log",
                   wait_in_log(host, "kiln-guest: ready", BOOT_TIMEOUT)):
        return False
    r.timing("kiln start to the guest's readiness line", time.monotonic() - t)
    r.check("kiln ls: running", ls_state(host, vmm) == "running")
    return True


def pause_resume(host, vmm, r):
    status, out = kiln(host, vmm, f"pause {NAME}")
    r.check("kiln pause: ls shows paused", status == 0 and ls_state(host, vmm) == "paused",
            out.strip())
    status, out = kiln(host, vmm, f"resume {NAME}")
    r.check("kiln resume: ls shows running", status == 0 and ls_state(host, vmm) == "running",
            out.strip())


def console(host, vmm, r):
    host.spawn(f"env KILN_STATE_DIR={STATE} {vmm.path} console {NAME}", limit=300)
    try:
        host.expect(re.escape("Ctrl-] detaches"), timeout=30)
        host.expect(r"kiln-guest: ready", timeout=30)
        r.check("kiln console: the boot output is replayed", True)
        type_line(host, "")
        type_line(host, "echo cli-$((6*7))")
        host.expect(r"cli-42", timeout=60)
        r.check("kiln console: a command typed in the guest's shell runs (cli-42)", True)
    except HostError as e:
        r.fail("kiln console session", str(e))
    host.send(b"\x1d")
    try:
        status = host.wait_exit(timeout=30)
        r.check("kiln console: Ctrl-] detaches (status 0)", status == 0, f"status {status}")
    except HostError as e:
        r.fail("kiln console: Ctrl-] detaches", str(e))
        host.abort_spawned()
    outer_stty_ok(host, r, "kiln console")
    r.check("the VM keeps running after the console detached", ls_state(host, vmm) == "running")


def stop(host, vmm, r):
    t = time.monotonic()
    status, out = kiln(host, vmm, f"stop --timeout 120 {NAME}", timeout=200)
    r.timing("kiln stop", time.monotonic() - t)
    r.check("kiln stop: the guest shut down gracefully (ACPI power button)",
            status == 0 and "gracefully" in out, out.strip())
    _, log = host.run(f"tail -c 4000 {STATE}/{NAME}/console.log")
    r.check(f"the guest powered off in order ({POWER_DOWN!r} in console.log)",
            POWER_DOWN in log, log[-300:])
    r.check("kiln ls: stopped", ls_state(host, vmm) == "stopped")
    status, out = kiln(host, vmm, f"rm {NAME}")
    r.check("kiln rm", status == 0 and ls_state(host, vmm) is None, out.strip())


def main():
    args, vmm, guest, r = setup("test_lifecycle", __doc__)
    if vmm.name != "kiln":
        print("SKIP: the lifecycle commands are kiln's")
        sys.exit(77)
    host = boot_outer(r, os.path.join(args.log_dir, "test_lifecycle.transcript.log"))
    if host is None:
        return r.finish()
    try:
        if start(host, vmm, guest, r):
            pause_resume(host, vmm, r)
            console(host, vmm, r)
            stop(host, vmm, r)
        else:
            kiln(host, vmm, f"rm --force {NAME}")
    except HostError as e:
        r.fail("lifecycle", str(e))
    finally:
        host.close()
    return r.finish()


if __name__ == "__main__":
    run(main)
