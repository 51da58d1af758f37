#!/usr/bin/env python3
"""The ACPI power button and the console socket, with kiln's default Linux guest
(guest/build-guest.sh) inside the stock-KVM host, one outer boot for both:

  A: Ctrl-A p on kiln's terminal presses the power button: the guest's acpid
     runs poweroff ("kiln-guest: power button: powering off", then the
     kernel's "reboot: Power down") and kiln exits with status 0.
  B: --console-sock with stdin /dev/null, kiln in the background: a client
     (console_client.py) connects, sees the boot output replayed and the
     prompt, runs a command in the guest and reads its answer, reconnects
     and gets the earlier output replayed, then powers the guest off through
     the socket; kiln closes the connection and exits with status 0.

Prints PASS/FAIL and TIME lines, closes with "N passed, N failed", exits 1
on any failure, 77 if the inner VMM does not exist.
    tests/linux/test_power.py --kiln build/src/kiln
"""
import os
import re
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from linuxtest import GUEST_APPEND, run, setup, boot_outer, wait_guest_ready  # noqa: E402
from outerhost import HostError  # noqa: E402

VMM_LIMIT = 600  # seconds; kills a hung inner VMM so the outer shell survives
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "console_client.py")
POWER_MSG = "kiln-guest: power button: powering off"
POWER_DOWN = "reboot: Power down"


def scenario_button(host, vmm, guest, r):
    label = "A Ctrl-A p"
    cmd = vmm.command(kernel=f"{guest}/vmlinuz", initrd=f"{guest}/initramfs.cpio.gz",
                      cmdline=GUEST_APPEND, mem="256M", cpus=1)
    started = time.monotonic()
    host.spawn(cmd, limit=VMM_LIMIT)
    if not wait_guest_ready(host, r, label, started):
        return False
    t = time.monotonic()
    host.send(b"\x01p")
    try:
        host.expect(re.escape(POWER_MSG), timeout=60)
        r.check(f"{label}: the guest's acpid sees the power button", True)
        host.expect(re.escape(POWER_DOWN), timeout=120)
        r.check(f"{label}: the guest shuts down in order ({POWER_DOWN!r})", True)
    except HostError as e:
        r.fail(f"{label}: the guest shuts down after the power button", str(e))
        return False
    try:
        status = host.wait_exit(timeout=60)
    except HostError as e:
        r.fail(f"{label}: kiln exits with status 0", str(e))
        return False
    r.check(f"{label}: kiln exits with status 0", status == 0, f"status {status}")
    r.timing(f"{label}: button pressed to VMM exit", time.monotonic() - t)
    return True


def scenario_socket(host, vmm, guest, r):
    label = "B --console-sock"
    sock, log, out = "/run/tmp/kiln-con.sock", "/run/tmp/kiln-con.log", "/run/tmp/kiln.out"
    cmd = vmm.command(kernel=f"{guest}/vmlinuz", initrd=f"{guest}/initramfs.cpio.gz",
                      cmdline=GUEST_APPEND, mem="256M", cpus=1, console_log=log)
    cmd += f" --console-sock {sock}"
    host.check(f"rm -f {sock} {log} {out}; mkdir -p /run/tmp")
    # In the background with no terminal at all, as `kiln start` runs it.
    host.check(f"timeout -s KILL {VMM_LIMIT} {cmd} </dev/null >{out} 2>&1 & "
               f"echo $! >/run/tmp/kiln.pid")
    started = time.monotonic()
    # (step, what it shows; None: nothing to report on its own)
    script = [
        ("wait=kiln-guest: ready", "boot output replayed to a client that connects late"),
        ("wait=# ", "the shell prompt reaches the client"),
        ("type=echo sock-$((6*7))", None),
        ("wait=sock-42", "a command typed through the socket runs in the guest (sock-42)"),
        ("reconnect", None),
        ("wait=kiln-guest: ready", "a client that reconnects gets the earlier output replayed"),
        ("wait=sock-42", "the replay includes the command's answer"),
        ("type=poweroff", None),
        (f"wait={POWER_DOWN}", "poweroff typed through the socket powers the guest down"),
        ("eof", "kiln closes the connection when the VM ends"),
    ]
    steps = [step for step, _ in script]
    client = f"python3 {CLIENT} {sock} " + " ".join(shlex.quote(s) for s in steps)
    try:
        status, text = host.run(client, timeout=400)
    except HostError as e:
        r.fail(f"{label}: the client session", str(e))
        return False
    results = re.findall(r"^client: (ok|FAIL) (.*)$", text, re.M)
    for (step, what), (verdict, line) in zip(script, results):
        if what:
            r.check(f"{label}: {what}", verdict == "ok", line)
    r.check(f"{label}: every client step ran", len(results) == len(steps) and status == 0,
            f"{len(results)} of {len(steps)} steps, client status {status}")
    try:
        vmm_status = int(host.check("wait $(cat /run/tmp/kiln.pid); echo $?",
                                    timeout=120).strip().splitlines()[-1])
    except (HostError, ValueError) as e:
        return r.fail(f"{label}: kiln exits with status 0", str(e))
    r.check(f"{label}: kiln exits with status 0", vmm_status == 0, f"status {vmm_status}")
    r.timing(f"{label}: VMM start to exit", time.monotonic() - started)
    _, leftover = host.run(f"ls {sock} 2>&1; cat {out}")
    r.check(f"{label}: kiln removed its socket file", "No such file" in leftover, leftover[:200])
    _, logtext = host.run(f"grep -c 'sock-42' {log}")
    r.check(f"{label}: --console-log works alongside", logtext.strip().splitlines()[-1:] != ["0"],
            logtext.strip())
    return True


def main():
    args, vmm, guest, r = setup("test_power", __doc__)
    if vmm.name != "kiln":
        print("SKIP: Ctrl-A p and --console-sock are kiln's")
        sys.exit(77)
    host = boot_outer(r, os.path.join(args.log_dir, "test_power.transcript.log"))
    if host is None:
        return r.finish()
    try:
        for scenario in (scenario_button, scenario_socket):
            try:
                if scenario(host, vmm, guest, r):
                    continue
            except HostError as e:
                r.fail(f"{scenario.__name__}", str(e))
            if not host.abort_spawned():
                r.fail("outer shell recovered after a failed scenario")
                break
    finally:
        host.close()
    return r.finish()


if __name__ == "__main__":
    run(main)
