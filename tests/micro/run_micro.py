#!/usr/bin/env python3
"""Runs kiln with a micro-guest (guest/micro/) or with bad input, and checks the outcome.

Usage: run_micro.py --kiln PATH [--guest PATH] TEST

Every run has a deadline; a kiln still running then is killed and the test fails. A test
prints the command, kiln's exit status, its output and what it checked, then exits 0 (pass),
1 (fail) or 77 (skipped: no usable /dev/kvm, or not root where a test needs it).
Python 3 standard library only.
"""

import argparse
import datetime
import fcntl
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

EXIT_SKIP = 77

# kiln's exit statuses (src/cli/exit_codes.h)
OK, VM_FAILED, USAGE, BAD_IMAGE, NO_KVM, RESOURCES = range(6)

GIB = 1 << 30
HOLE_START = 3 * GIB  # the 32-bit PCI hole: RAM above it moves above 4 GiB


class Skip(Exception):
    pass


class Result:
    """What one kiln run did."""

    def __init__(self, cmd):
        self.cmd = cmd
        self.rc = None
        self.out = ""
        self.err = ""
        self.elapsed = 0.0
        self.timed_out = False
        self.first_seen = {}  # stdout line -> seconds after start, first time it was complete

    @property
    def lines(self):
        return [l.rstrip("\r") for l in self.out.split("\n")]

    def describe(self):
        status = "timed out (killed)" if self.timed_out else f"exit status {self.rc}"
        if self.rc is not None and self.rc < 0:
            status = f"killed by signal {-self.rc}"
        text = [f"$ {shlex.join(self.cmd)}", f"-> {status} after {self.elapsed * 1000:.1f} ms"]
        text.append("--- stdout ---")
        text.append(self.out.rstrip("\n"))
        text.append("--- stderr ---")
        text.append(self.err.rstrip("\n"))
        text.append("---")
        return "\n".join(text)


def run_kiln(kiln, args, timeout=30.0, script=(), prefix=(), env=None, stdin_data=None):
    """Runs `kiln run ARGS`. stdin: with a `script` (a list of (trigger, bytes to send), the
    trigger being text to wait for on stdout or a number of seconds after the previous step),
    a pipe that stays open until kiln exits; with `stdin_data`, a pipe holding just that,
    already closed; else /dev/null. Kills kiln's process group at the deadline."""
    cmd = list(prefix) + [kiln, "run"] + list(args)
    res = Result(cmd)
    script = list(script)
    stdin = subprocess.DEVNULL
    if script:
        stdin = subprocess.PIPE
    elif stdin_data is not None:
        rfd, wfd = os.pipe()
        os.write(wfd, stdin_data)  # small: fits in the pipe buffer
        os.close(wfd)
        stdin = rfd
    start = time.monotonic()
    last_step = start
    proc = subprocess.Popen(cmd, stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, env=env)
    if stdin_data is not None and not script:
        os.close(rfd)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    out, err = bytearray(), bytearray()
    deadline = start + timeout
    open_streams = 2
    while open_streams:
        left = deadline - time.monotonic()
        if left <= 0:
            res.timed_out = True
            break
        for key, _ in sel.select(timeout=min(left, 0.1)):
            data = os.read(key.fileobj.fileno(), 65536)
            if not data:
                sel.unregister(key.fileobj)
                open_streams -= 1
                continue
            now = time.monotonic() - start
            if key.data == "out":
                before = out.count(b"\n")
                out += data
                lines = out.decode("utf-8", "replace").split("\n")
                for line in lines[before:-1]:
                    res.first_seen.setdefault(line.rstrip("\r"), now)
            else:
                err += data
        while script:
            trigger = script[0][0]
            if isinstance(trigger, str):
                if trigger.encode() not in out:
                    break
            elif time.monotonic() < last_step + trigger:
                break
            try:
                proc.stdin.write(script.pop(0)[1])
                proc.stdin.flush()
            except BrokenPipeError:
                script.clear()
            last_step = time.monotonic()
    if res.timed_out:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        res.rc = proc.wait(timeout=max(1.0, deadline + 5 - time.monotonic()))
    except subprocess.TimeoutExpired:
        res.timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        res.rc = proc.wait()
    # a kiln that exited but left a child holding the pipes: drain what is there
    res.elapsed = time.monotonic() - start
    if proc.stdin:
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
    sel.close()
    proc.stdout.close()
    proc.stderr.close()
    res.out = out.decode("utf-8", "replace")
    res.err = err.decode("utf-8", "replace")
    return res


class Checker:
    """Collects check results; a test passes when none failed."""

    def __init__(self):
        self.failures = 0

    def check(self, ok, what):
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            self.failures += 1
        return ok

    def exit_status(self, res):
        if res.timed_out:
            return self.check(False, "kiln finished before the deadline")
        if res.rc is not None and res.rc < 0:
            return self.check(False, f"kiln was not killed by a signal (got {-res.rc})")
        return True

    def rc(self, res, want):
        if not self.exit_status(res):
            return False
        return self.check(res.rc == want, f"exit status {want} (got {res.rc})")

    def line(self, res, line):
        return self.check(line in res.lines, f"output has the line {line!r}")

    def no_line(self, res, line):
        return self.check(line not in res.lines, f"output lacks the line {line!r}")

    def no_guest_failures(self, res):
        bad = [l for l in res.lines if l.startswith("FAIL")]
        return self.check(not bad, "the guest reported no FAIL" + (f": {bad}" if bad else ""))

    def passes(self, res, names):
        for name in names:
            self.line(res, f"PASS {name}")


def need_kvm():
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        raise Skip("no usable /dev/kvm")


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root")


def raw(guest, *extra, mem="128M"):
    return ["--kernel", guest, "--kernel-format", "raw", "-m", mem] + list(extra)


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


# ---- guest tests ----

def t_hello(a, c):
    need_kvm()
    times = []
    for _ in range(3):
        res = run_kiln(a.kiln, raw(a.guest), timeout=20)
        print(res.describe())
        c.rc(res, OK)
        c.line(res, "kiln-micro: ready")
        c.no_guest_failures(res)
        t = res.first_seen.get("kiln-micro: ready")
        if t is not None:
            times.append((t, res.elapsed))
    for t, total in times:
        print(f"timing: ready line after {t * 1000:.1f} ms, kiln exited after {total * 1000:.1f} ms")


ENTRY_CHECKS = ["gprs-zero", "rsp", "rsi", "rflags", "rflags-if-clear", "cs", "ds", "es", "ss",
                "fs", "gs", "cr0", "cr3", "cr4", "efer", "gdt-base", "gdt-limit", "gdt-code64",
                "gdt-data", "idt-limit-zero", "identity-map-4g", "e820-count", "e820-sorted",
                "e820-ram-at-0", "e820-ram-at-1m", "e820-no-ram-in-bios-area",
                "e820-no-ram-in-pci-hole", "cmdline-ptr", "cmdline-terminated", "acpi-rsdp",
                "acpi-madt"]


def t_entry(a, c):
    need_kvm()
    mem = parse_size(a.mem)
    cmdline = "kiln-micro entry check=1 quote'd"
    res = run_kiln(a.kiln, raw(a.guest, "--cmdline", cmdline, mem=a.mem), timeout=30)
    print(res.describe())
    c.rc(res, OK)
    c.no_guest_failures(res)
    c.passes(res, ENTRY_CHECKS)
    c.line(res, "entry: done, failures 0")
    c.line(res, f'cmdline "{cmdline}" length {len(cmdline)}')
    c.line(res, "madt cpus 1")
    ram0_end = None
    for l in res.lines:
        m = re.fullmatch(r"e820 0x0-(0x[0-9a-f]+) type 1", l)
        if m:
            ram0_end = int(m.group(1), 16) + 1
    m = [re.fullmatch(r"mem total (0x[0-9a-f]+) low-top (0x[0-9a-f]+) high (0x[0-9a-f]+)", l)
         for l in res.lines]
    m = [x for x in m if x]
    if not c.check(bool(m) and ram0_end is not None, "the guest printed its e820 totals"):
        return
    total, low_top, high = (int(x, 16) for x in m[0].groups())
    want_low = min(mem, HOLE_START)
    want_high = max(0, mem - HOLE_START)
    c.check(low_top == want_low, f"RAM from 1 MiB ends at {want_low:#x} (got {low_top:#x})")
    c.check(high == want_high, f"RAM above 4 GiB is {want_high:#x} (got {high:#x})")
    lost = 0x100000 - ram0_end  # the legacy VGA/BIOS gap below 1 MiB
    c.check(total + lost == mem,
            f"e820 RAM {total:#x} + the gap below 1 MiB {lost:#x} == -m {mem:#x}")


def t_io(a, c):
    need_kvm()
    res = run_kiln(a.kiln, raw(a.guest), timeout=30)
    print(res.describe())
    c.rc(res, OK)
    c.no_guest_failures(res)
    c.passes(res, ["io-inb", "io-inw", "io-inl", "io-inl-last-port", "io-writes-survived",
                   "io-rep-insb", "io-rep-insl", "mmio-readb", "mmio-readw", "mmio-readl",
                   "mmio-readq", "mmio-read-unaligned", "mmio-read-page-split",
                   "mmio-write-ignored", "mmio-read-above-ram", "mmio-write-above-ram-survived"])
    c.line(res, "io: rep outsb to COM1 works")
    c.line(res, "io: done, failures 0")


def t_pci(a, c):
    need_kvm()
    res = run_kiln(a.kiln, raw(a.guest), timeout=30)
    print(res.describe())
    c.rc(res, OK)
    c.no_guest_failures(res)
    c.passes(res, ["pci-cf8-readback", "pci-host-bridge", "pci-narrow-access",
                   "pci-bus1-absent", "pci-disabled-reads-ones"])
    c.check(any(re.fullmatch(r"pci 00:00\.0 [0-9a-f]{4}:[0-9a-f]{4} class 0600[0-9a-f]{2}", l)
                for l in res.lines), "a host bridge (class 0600xx) at 00:00.0")
    c.line(res, "pci: done, failures 0")


KVM_CHECK_EXTENSION = 0xAE03
KVM_CAP_TSC_DEADLINE_TIMER = 72


def kvm_has_cap(cap):
    fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    try:
        return fcntl.ioctl(fd, KVM_CHECK_EXTENSION, cap) > 0
    finally:
        os.close(fd)


def t_cpuid(a, c):
    need_kvm()
    res = run_kiln(a.kiln, raw(a.guest), timeout=30)
    print(res.describe())
    c.rc(res, OK)
    c.no_guest_failures(res)
    c.passes(res, ["cpuid-hypervisor-bit", "cpuid-apic-bit", "cpuid-bsp-apic-id",
                   "cpuid-kvm-signature"])
    c.check(any(l.startswith('cpuid hypervisor "KVMKVMKVM"') for l in res.lines),
            "hypervisor signature KVMKVMKVM")
    c.line(res, "cpuid initial-apic-id 0")
    # KVM leaves the TSC-deadline bit to the VMM; kiln sets it when the in-kernel LAPIC
    # has the mode (KVM_CAP_TSC_DEADLINE_TIMER), or Linux falls back to the APIC timer.
    leaf1 = next((l for l in res.lines if l.startswith("cpuid leaf1 ")), "")
    m = re.search(r" ecx 0x([0-9a-f]+)", leaf1)
    deadline = bool(m and int(m.group(1), 16) >> 24 & 1)
    cap = kvm_has_cap(KVM_CAP_TSC_DEADLINE_TIMER)
    c.check(deadline == cap, f"CPUID.1:ECX.TSC_DEADLINE is {int(deadline)}, KVM's capability "
            f"{int(cap)} ({leaf1!r})")
    c.line(res, "cpuid: done, failures 0")


def t_smp(a, c):
    need_kvm()
    n = a.cpus
    opts = a.cmdline.split()
    boots = 2 if "reboot=1" in opts else 1
    args = raw(a.guest, "-c", str(n))
    if opts:
        args += ["--cmdline", a.cmdline]
    res = run_kiln(a.kiln, args, timeout=50)
    print(res.describe())
    c.rc(res, OK)
    c.no_guest_failures(res)
    c.check(res.lines.count(f"smp: madt lists {n} cpus, expecting {n}") == boots,
            f"the MADT listed {n} cpus on each of {boots} boot(s)")
    for b in range(1, boots + 1):
        c.line(res, f"smp: boot {b}")
    c.no_line(res, f"smp: boot {boots + 1}")
    for i in range(n):
        c.check(res.lines.count(f"cpu {i} up") == boots, f"'cpu {i} up' printed {boots}x")
    done = [l for l in res.lines if l.startswith(f"smp: {n} cpus up")]
    c.check(len(done) == boots, f"'smp: {n} cpus up' printed {boots}x")
    if "finish=ap" in opts and n > 1:
        c.check(all(re.fullmatch(rf"smp: {n} cpus up \(reported by cpu [1-9]\d*\)", l)
                    for l in done), "an AP reported and stopped the VM")
    if boots > 1:
        c.line(res, "smp: resetting")
    for l in done[:1]:
        print(f"timing: all {n} cpus up after {res.first_seen[l] * 1000:.1f} ms")


def t_rtc(a, c):
    need_kvm()
    before = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    res = run_kiln(a.kiln, raw(a.guest), timeout=30)
    after = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    print(res.describe())
    c.rc(res, OK)
    c.no_guest_failures(res)
    got = None
    for l in res.lines:
        m = re.fullmatch(r"rtc (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", l)
        if m:
            try:
                got = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
            except ValueError:
                c.check(False, f"a valid date in {l!r}")
    if not c.check(got is not None, "the guest printed the RTC time"):
        return
    lo = before - datetime.timedelta(seconds=60)
    hi = after + datetime.timedelta(seconds=60)
    c.check(lo <= got <= hi, f"RTC {got} within 60 s of the host's UTC time "
                             f"({before:%Y-%m-%d %H:%M:%S})")


def t_reset(a, c):
    need_kvm()
    via = a.via
    args = raw(a.guest, "--cmdline", f"via={via} resets={a.resets}")
    if a.no_reboot:
        args.append("--no-reboot")
    res = run_kiln(a.kiln, args, timeout=40)
    print(res.describe())
    c.rc(res, OK)
    c.no_guest_failures(res)
    how = "i8042" if via == "kbd" else "acpi"
    c.line(res, "reset: boot 1")
    c.line(res, f"reset: first boot, resetting via {how}")
    if a.no_reboot:
        c.no_line(res, "reset: boot 2")
        c.no_line(res, "reset: second boot")
        c.check(res.lines.count("PASS reset-entry-state") == 1, "one boot")
    else:
        boots = a.resets + 1
        for b in range(2, boots + 1):
            c.line(res, f"reset: boot {b}")
        c.line(res, f"reset: boot {boots} was the last")
        c.no_line(res, f"reset: boot {boots + 1}")
        if boots == 2:
            c.line(res, "reset: second boot")
        c.check(res.lines.count("PASS reset-entry-state") == boots,
                f"all {boots} boots started in the documented entry state")


def t_echo(a, c):
    """interactive: "abc" once the guest is ready, "q" once it echoed; power: Ctrl-A p twice
    (the guest counts power-button interrupts; the escape reaches kiln, not the guest), then
    as interactive; burst: 1000 bytes at
    once, "q" when they are back or after 5 s; eof: "abcq" in a pipe closed before kiln
    starts (kiln must deliver input it read before the guest was ready, and keep running
    at end of input)."""
    need_kvm()
    text = b"abc"
    script, data = [], None
    if a.input == "interactive":
        script = [("echo: ready\n", text), ("ABC", b"q")]
    elif a.input == "power":
        # Ctrl-A p twice (the GED's edge-triggered line fires per press), then "abc" and 'q'.
        script = [("echo: ready\n", b"\x01p"), ("echo: power button\n", b"\x01p"),
                  (0.5, text), ("ABC", b"q")]
    elif a.input == "burst":
        letters = b"abcdefghijklmnoprstuvwxyz"  # no 'q': that ends the run
        text = bytes(letters[i % len(letters)] for i in range(1000))
        script = [("echo: ready\n", text), (5.0, b"q")]
        script[1:1] = [(text.upper().decode(), b"q")]
    else:
        data = text + b"q"
    res = run_kiln(a.kiln, raw(a.guest), timeout=30, script=script, stdin_data=data)
    print(res.describe())
    c.rc(res, OK)
    c.no_guest_failures(res)
    c.line(res, "echo: ready")
    want = text.upper().decode()
    if a.input == "power":
        presses = res.lines.count("echo: power button")
        c.check(presses == 2, f"Ctrl-A p pressed the power button twice (seen {presses})")
        res.out = res.out.replace("echo: power button\n", "")
    got = res.out.split("echo: ready\n", 1)[-1].split("\necho: bye", 1)[0]
    c.check(got == want, f"the guest echoed all {len(text)} bytes upper-cased "
                         f"(got {len(got)} bytes back)")
    c.check(any(re.fullmatch(rf"echo: bye, interrupts \d+ bytes {len(text) + 1}", l)
                for l in res.lines),
            f"the guest took interrupts for all {len(text) + 1} bytes and stopped at 'q'")
    c.no_line(res, "echo: unexpected interrupt")
    t0 = res.first_seen.get("echo: ready")
    for l, t in res.first_seen.items():
        if l.startswith("echo: bye") and t0 is not None:
            print(f"timing: ready after {t0 * 1000:.1f} ms, 'q' handled after {t * 1000:.1f} ms")


def t_fault(a, c):
    need_kvm()
    args = raw(a.guest)
    if a.mode == "emul":
        args += ["--cmdline", "fault=emul"]
    if a.no_reboot:
        args.append("--no-reboot")
    res = run_kiln(a.kiln, args, timeout=30)
    print(res.describe())
    c.line(res, "fault: boot 1")
    if a.mode == "emul":
        if "fault: lock cmpxchg16b was emulated" in res.lines:
            raise Skip("this KVM emulated lock cmpxchg16b: no emulation failure to test")
        c.rc(res, VM_FAILED)
        errs = [l for l in res.err.splitlines() if l]
        c.check(bool(errs) and all(l.startswith("kiln: ") for l in errs),
                "kiln explained the failure on stderr, every line starting 'kiln: '")
        c.no_line(res, "fault: boot 2")
        return
    c.rc(res, OK)
    c.no_guest_failures(res)
    if a.no_reboot:
        c.no_line(res, "fault: boot 2")
    else:
        c.line(res, "fault: boot 2")
        c.line(res, "fault: rebooted after the fault")


# ---- virtio-pci (guest/micro/virtio*.S, kiln run --rng) ----

VIRTIO_RNG_CHECKS = [f"virtio-rng-{n}" for n in (
    "found", "modern-revision", "bar0", "pci-command", "capabilities", "structures-in-bar0",
    "version-1-offered", "features-ok", "num-queues", "queue-enable", "driver-ok", "used",
    "used-id", "used-len", "random", "isr-queue-bit", "isr-read-clears", "fresh-bytes",
    "intx-routing", "intx-interrupt", "intx-isr-queue-bit", "intx-deasserted",
    "intx-disable-honoured", "pci-status-intx-pending", "isr-queue-bit-intx-off",
    "pci-status-intx-clear", "msix-enable-quiets-intx", "msix-vectors", "msix-driver-ok",
    "msix-used", "msix-interrupt",
    "msix-masked", "msix-pending-bit", "msix-unmask-delivers", "msix-pending-cleared",
    "msix-bad-vector", "msix-no-intx", "event-idx-features-ok", "event-idx-suppresses",
    "event-idx-notifies", "event-idx-avail-event", "reset", "no-stray-interrupts")]

# Malformed rings: the device must ask for a reset, then work again after one.
HOSTILE_RING_CASES = [
    "chain-loop", "chain-self-loop", "chain-next-out-of-table", "head-out-of-table",
    "desc-on-lapic", "desc-on-own-bar", "desc-past-ram", "desc-addr-wraps", "desc-4g-len",
    "desc-readable-after-writable", "indirect-nested", "indirect-with-next",
    "indirect-bad-len", "indirect-empty", "indirect-on-lapic", "indirect-loop",
    "indirect-next-out-of-table", "indirect-huge-table", "indirect-300-segments",
    "avail-idx-ahead", "avail-idx-backwards",
    "queue-desc-on-lapic", "queue-used-past-ram", "queue-avail-wraps", "queue-desc-on-own-bar",
    "queue-desc-misaligned", "queue-desc-past-ram",
    "features-no-version-1", "features-unoffered", "msix-needs-reset", "flood"]
# Cases checked by their recovery alone (they only have to be survived).
HOSTILE_SURVIVED = [
    "register-junk", "notify-abuse", "pci-cfg-window-junk", "bar-move-back", "bus-master",
    "rings-overlap", "bar-fuzz", "config-fuzz-device", "config-fuzz-bridge"]
HOSTILE_OTHER = [
    "setup", "baseline", "needs-reset-notifies", "good-chain-of-queue-size",
    "good-indirect-write-flag", "good-direct-then-indirect", "feature-select-beyond",
    "absent-queue", "pci-cfg-window-read", "decode-off-unclaimed", "decode-toggle",
    "bar-move-old-unclaimed", "bar-move", "bus-master-off-no-dma", "bus-master-on-serves",
    "msix-needs-reset-config-vector", "msix-needs-reset-isr-config-bit",
    "config-readonly-intact", "config-capabilities-intact", "bridge-readonly-intact",
    "final-request", "no-stray-interrupts"]
HOSTILE_CHECKS = ([f"hostile-{n}" for n in HOSTILE_RING_CASES + HOSTILE_OTHER] +
                  [f"hostile-{n}-recovered" for n in HOSTILE_RING_CASES + HOSTILE_SURVIVED])

# What a sanitizer, a crash or an abort leaves on kiln's stderr.
CRASH_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
               "runtime error:", "Segmentation fault", "Aborted", "core dumped", "SUMMARY:")

# A hostile guest causes a thousand NEEDS_RESET events in well under a second; kiln's
# warnings about them must be rate-limited (a guest must not flood the host's log).
NEEDS_RESET_LOG_MAX = 50


def no_crash_report(c, res):
    bad = [l for l in res.err.splitlines() if any(m in l for m in CRASH_MARKS)]
    c.check(not bad, "no sanitizer report or crash on stderr" + (f": {bad[:3]}" if bad else ""))


def t_virtio_rng(a, c):
    need_kvm()
    res = run_kiln(a.kiln, raw(a.guest, "--rng"), timeout=30)
    print(res.describe())
    c.rc(res, OK)
    c.no_guest_failures(res)
    c.passes(res, VIRTIO_RNG_CHECKS)
    c.line(res, "virtio-rng: done, failures 0")
    m = [re.fullmatch(r"virtio-rng: bytes ([0-9a-f]{32})\.\.\.", l) for l in res.lines]
    m = [x for x in m if x]
    c.check(bool(m) and int(m[0].group(1), 16) != 0, "the guest printed random bytes")
    no_crash_report(c, res)
    c.check("needs a reset" not in res.err, "a well-behaved driver never made the device "
                                             "ask for a reset")
    done = [t for l, t in res.first_seen.items() if l.startswith("virtio-rng: done")]
    if done:
        print(f"timing: guest done after {done[0] * 1000:.1f} ms, kiln exited after "
              f"{res.elapsed * 1000:.1f} ms")


def t_virtio_hostile(a, c):
    need_kvm()
    args = raw(a.guest, "--rng")
    cmdline = ([f"seed={a.seed}"] if a.seed else []) + (["reboot=1"] if a.reboot else [])
    if cmdline:
        args += ["--cmdline", " ".join(cmdline)]
    res = run_kiln(a.kiln, args, timeout=60)
    print(res.describe())
    c.rc(res, OK)
    c.no_guest_failures(res)
    c.passes(res, HOSTILE_CHECKS)
    c.check(any(re.fullmatch(r"hostile: done, cases \d+, failures 0", l) for l in res.lines),
            "the guest finished all cases without a failure")
    if a.seed:
        c.line(res, f"hostile: seed {a.seed}")
    if a.reboot:
        # the VM was reset with the device live; the second boot checks its power-on state
        c.line(res, "hostile: resetting the VM with the device live")
        c.check(res.lines.count("hostile: second boot") == 1, "exactly one second boot")
        c.passes(res, [f"hostile-reboot-{n}" for n in (
            "found", "pci-command", "bar0", "capabilities", "msix-off", "msix-masked",
            "device-reset", "works")])
        c.line(res, "hostile: second boot done, failures 0")
    no_crash_report(c, res)
    errs = [l for l in res.err.splitlines() if l]
    c.check(all(l.startswith("kiln: ") for l in errs),
            "every stderr line is one of kiln's own messages")
    warned = [l for l in errs if "needs a reset" in l]
    events = 0
    for l in res.lines:
        m = re.fullmatch(r"hostile: flood: (\d+) needs-reset events", l)
        if m:
            events = int(m.group(1))
    c.check(bool(warned), f"kiln warned that the device needs a reset ({len(warned)} lines)")
    c.check(len(warned) <= NEEDS_RESET_LOG_MAX,
            f"those warnings are rate-limited: at most {NEEDS_RESET_LOG_MAX} lines for the "
            f"guest's {events}+ NEEDS_RESET events (got {len(warned)})")
    done = [t for l, t in res.first_seen.items() if l.startswith("hostile: done")]
    if done:
        print(f"timing: guest done after {done[0] * 1000:.1f} ms, kiln exited after "
              f"{res.elapsed * 1000:.1f} ms")


# ---- bad input to `kiln run` ----

def expect_error(c, res, rc):
    """Exactly one line on stderr starting 'kiln: ', the given exit status, no signal/hang."""
    print(res.describe())
    c.rc(res, rc)
    lines = res.err.splitlines()
    c.check(len(lines) == 1, f"exactly one line on stderr (got {len(lines)})")
    c.check(bool(lines) and lines[0].startswith("kiln: "), "stderr starts with 'kiln: '")


def bad_file_test(content, fmt=None):
    def t(a, c):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "kernel")
            if content == "dir":
                path = d
            elif content is not None:
                with open(path, "wb") as f:
                    f.write(content)
            args = ["--kernel", path, "-m", "64M"]
            if fmt:
                args += ["--kernel-format", fmt]
            expect_error(c, run_kiln(a.kiln, args, timeout=20), BAD_IMAGE)
    return t


def truncated_bzimage():
    """The first 1024 bytes of something that claims to be a bzImage (Linux boot protocol
    2.15 header at 0x1f1) with 27 setup sectors and a 1 MiB protected-mode part."""
    img = bytearray(1024)
    img[0x1f1] = 27                                   # setup_sects
    img[0x1f4:0x1f8] = (0x100000 // 16).to_bytes(4, "little")  # syssize
    img[0x1fe:0x200] = b"\x55\xaa"                    # boot_flag
    img[0x202:0x206] = b"HdrS"
    img[0x206:0x208] = (0x020f).to_bytes(2, "little")  # version
    img[0x211] = 0x01                                 # loadflags: LOADED_HIGH
    return bytes(img)


def bad_args_test(extra, rc, guest_needed=True):
    def t(a, c):
        args = (raw(a.guest) if guest_needed else []) + list(extra)
        expect_error(c, run_kiln(a.kiln, args, timeout=20), rc)
    return t


def kvm_blocked_test(how):
    """/dev/kvm unusable: as an unprivileged user (EACCES), /dev/null bound over it (not a KVM
    device), or a /dev without it (ENOENT), in a private mount namespace."""
    def t(a, c):
        need_root()
        if not os.path.exists("/dev/kvm"):
            raise Skip("no /dev/kvm to hide")
        with tempfile.TemporaryDirectory() as d:
            os.chmod(d, 0o755)
            kiln = os.path.join(d, "kiln")
            guest = os.path.join(d, "guest.bin")
            shutil.copy2(a.kiln, kiln)
            shutil.copy2(a.guest, guest)
            os.chmod(kiln, 0o755)
            os.chmod(guest, 0o644)
            if how == "eacces":
                if not shutil.which("setpriv"):
                    raise Skip("no setpriv")
                prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            else:
                if not shutil.which("unshare"):
                    raise Skip("no unshare")
                mount = ("mount --bind /dev/null /dev/kvm" if how == "notkvm"
                         else "mount -t tmpfs kiln-test /dev")
                prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                          mount + ' && exec "$0" "$@"']
            res = run_kiln(kiln, raw(guest), timeout=20, prefix=prefix)
            if res.rc != NO_KVM and re.match(r"(unshare|mount|setpriv|sh): ", res.err):
                print(res.describe())
                raise Skip("cannot set up the environment without /dev/kvm here")
            expect_error(c, res, NO_KVM)
    return t


# ---- seccomp (src/vmm/seccomp.c): a forbidden call stops kiln and is named ----

SECCOMP_FORBIDDEN = {"vmm": "execve", "vcpu": "socket"}  # what KILN_SECCOMP_TRIGGER makes


def t_seccomp(a, c):
    """--kind vmm|vcpu: that thread makes a forbidden call (test builds honour
    KILN_SECCOMP_TRIGGER); kiln must stop with status 1 and name the call and the thread.
    --kind off: the same trigger under --seccomp=off is harmless and the guest runs."""
    need_kvm()
    kind = "vcpu" if a.kind == "off" else a.kind
    env = dict(os.environ, KILN_SECCOMP_TRIGGER=kind)
    extra = ["--seccomp=off"] if a.kind == "off" else []
    res = run_kiln(a.kiln, raw(a.guest, *extra), timeout=20, env=env)
    print(res.describe())
    if a.kind == "off":
        c.rc(res, OK)
        c.line(res, "kiln-micro: ready")
        c.check("seccomp:" not in res.err, "no seccomp report with --seccomp=off")
        return
    c.rc(res, VM_FAILED)
    want = (f"kiln: seccomp: forbidden system call {SECCOMP_FORBIDDEN[kind]} (")
    c.check(any(l.startswith(want) and l.endswith(f"in a {kind} thread; stopping")
                for l in res.err.splitlines()),
            f"stderr names {SECCOMP_FORBIDDEN[kind]} in a {kind} thread")


# ---- hostile_io: every port, configuration register, BAR and ring, with all devices ----

def t_hostile_io(a, c):
    """Every virtio device but the network one (its garbage frames would reach the user
    network's NAT): kiln must survive the guest's storms with status 0, each device must
    still answer and the entropy device still serve (guest/micro/hostile_io.S)."""
    need_kvm()
    with tempfile.TemporaryDirectory(prefix="kiln-hostile-io-") as d:
        img = os.path.join(d, "disk.img")
        with open(img, "wb") as f:
            f.truncate(1 << 20)
        log = os.path.join(d, "console.log")  # COM1 goes here under --console virtio
        args = raw(a.guest, "--rng", "--disk", img, "--vsock", f"cid=3,uds={d}/v.sock",
                   "--console", "virtio", "--console-log", log, "--cmdline", f"seed={a.seed}")
        res = run_kiln(a.kiln, args, timeout=120)
        lines = []
        if os.path.exists(log):
            with open(log, "rb") as f:
                lines = [l.rstrip("\r") for l in f.read().decode("utf-8", "replace").split("\n")]
    print(res.describe())
    print("--- COM1 (console log) ---")
    print("\n".join(l for l in lines if l.startswith(("hostile-io", "PASS", "FAIL"))))
    c.rc(res, OK)
    for marker in ("hostile-io: ports done", "hostile-io: config done"):
        c.check(marker in lines, marker)
    c.check("hostile-io: bars done, devices 4" in lines, "all four virtio devices took the BAR storm")
    c.check(any(l.startswith("hostile-io: rings done") for l in lines), "rings done")
    c.check(lines.count("PASS hostile-io-device-answers") == 4, "every device still answers")
    c.check("PASS hostile-io-rng-works" in lines, "virtio-rng still serves a request")
    c.check("hostile-io: done, failures 0" in lines, "the guest saw no failure")
    c.check(lines.count("hostile-io: start") == 1, "no unexpected reset")
    c.check("seccomp:" not in res.err, "no seccomp report")


TESTS = {
    "hello": t_hello,
    "hostile-io": t_hostile_io,
    "seccomp": t_seccomp,
    "entry": t_entry,
    "io": t_io,
    "pci": t_pci,
    "cpuid": t_cpuid,
    "smp": t_smp,
    "rtc": t_rtc,
    "reset": t_reset,
    "echo": t_echo,
    "fault": t_fault,
    "virtio-rng": t_virtio_rng,
    "virtio-hostile": t_virtio_hostile,
    "bad-missing-kernel": bad_file_test(None),
    "bad-dir-kernel": bad_file_test("dir"),
    "bad-empty-kernel": bad_file_test(b"", "raw"),
    "bad-not-kernel": bad_file_test(b"this is not a kernel\n" * 100),
    "bad-truncated-bzimage": bad_file_test(truncated_bzimage()),
    "bad-mem-tiny": bad_args_test(["-m", "1K"], USAGE),
    "bad-mem-huge": bad_args_test(["-m", "100T"], RESOURCES),
    "bad-cpus-zero": bad_args_test(["-c", "0"], USAGE),
    "bad-cpus-huge": bad_args_test(["-c", "100000"], USAGE),
    "bad-unknown-option": bad_args_test(["--no-such-option"], USAGE),
    "bad-kvm-eacces": kvm_blocked_test("eacces"),
    "bad-kvm-not-kvm": kvm_blocked_test("notkvm"),
    "bad-kvm-missing": kvm_blocked_test("missing"),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kiln", required=True, help="the kiln binary")
    p.add_argument("--guest", help="the micro-guest image")
    p.add_argument("--mem", default="128M", help="entry: guest memory (-m)")
    p.add_argument("--cpus", type=int, default=2, help="smp: vCPUs (-c)")
    p.add_argument("--via", default="acpi", choices=["acpi", "kbd"], help="reset: how")
    p.add_argument("--mode", default="ud2", choices=["ud2", "emul"], help="fault: which")
    p.add_argument("--no-reboot", action="store_true", help="reset, fault: pass --no-reboot")
    p.add_argument("--input", default="interactive",
                   choices=["interactive", "burst", "eof", "power"],
                   help="echo: how the input comes")
    p.add_argument("--resets", type=int, default=1, help="reset: how many times")
    p.add_argument("--cmdline", default="", help="smp: extra command line (finish=ap reboot=1)")
    p.add_argument("--seed", type=int, default=0, help="virtio-hostile: PRNG seed (0: default)")
    p.add_argument("--reboot", action="store_true",
                   help="virtio-hostile: then reset the VM with the device live")
    p.add_argument("--kind", default="vcpu", choices=["vmm", "vcpu", "off"],
                   help="seccomp: which thread breaks its filter (off: --seccomp=off)")
    p.add_argument("test", choices=sorted(TESTS))
    a = p.parse_args()
    a.kiln = os.path.abspath(a.kiln)
    if a.guest:
        a.guest = os.path.abspath(a.guest)
    c = Checker()
    try:
        TESTS[a.test](a, c)
    except Skip as e:
        print(f"SKIP: {e}")
        return EXIT_SKIP
    print(f"{a.test}: {'PASS' if c.failures == 0 else f'{c.failures} check(s) failed'}")
    return 0 if c.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
