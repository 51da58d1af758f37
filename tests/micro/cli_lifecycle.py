#!/usr/bin/env python3
"""The lifecycle CLI end to end on this machine's /dev/kvm with micro-guests: kiln create,
start, ls (table and --json), pause/resume, console (through a pty), stop (the force path:
the echo micro-guest ignores the power button), kill, rm, a crashed VM process, and the
errors (unknown VM, duplicate name, bad name, start twice, two starts racing, rm of a
running VM). Every command's --help. Then N VMs created, started, listed, paused,
resumed and stopped together, with timings.

  cli_lifecycle.py --kiln PATH --echo echo.bin [--many 20]

KILN_STATE_DIR is a fresh temporary directory. Prints PASS/FAIL lines and timings; exits
0, 1 on failure, 77 without /dev/kvm or without the API and console sockets in this kiln.
Python 3 standard library only.
"""
import argparse
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

EXIT_USAGE, EXIT_NO_SUCH_VM, EXIT_VM_STATE = 2, 7, 8
COMMANDS = ["create", "start", "ls", "info", "console", "pause", "resume", "stop", "kill", "rm"]


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, what, detail=""):
        print(f"{'PASS' if ok else 'FAIL'}: {what}" + (f" ({detail})" if detail and not ok else ""),
              flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok


class Kiln:
    def __init__(self, path, state_dir):
        self.path = path
        self.env = dict(os.environ, KILN_STATE_DIR=state_dir)

    def run(self, *args, timeout=60):
        p = subprocess.run([self.path, *args], stdin=subprocess.DEVNULL, capture_output=True,
                           env=self.env, timeout=timeout)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def ls(self):
        rc, out, err = self.run("ls", "--json")
        if rc != 0:
            raise RuntimeError(f"kiln ls --json: {rc} {err}")
        return {vm["name"]: vm for vm in json.loads(out)}


def console_session(kiln, name, send, expect, timeout=5.0):
    """Runs `kiln console NAME` on a pty: waits for the replayed banner, types `send`, waits
    for `expect`, detaches with Ctrl-]. Returns (output, exit status)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(kiln.path, [kiln.path, "console", name], kiln.env)
    out = b""

    def read_until(marker):
        nonlocal out
        end = time.monotonic() + timeout
        while marker not in out and time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    break
        return marker in out

    read_until(b"echo: ready")
    os.write(fd, send)
    read_until(expect)
    os.write(fd, b"\x1d")
    read_until(b"detached")
    end = time.monotonic() + timeout
    status = None
    while status is None and time.monotonic() < end:
        wpid, st = os.waitpid(pid, os.WNOHANG)
        if wpid:
            status = os.waitstatus_to_exitcode(st)
        else:
            time.sleep(0.05)
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(fd)
    return out.decode(errors="replace"), status


def t_errors(k, c, echo):
    rc, _, err = k.run("create", "../evil", "--kernel", echo)
    c.check(rc == EXIT_USAGE and "not a valid VM name" in err, "create refuses a path as name")
    rc, _, err = k.run("create", "nokernel", "--kernel", "/nonexistent/vmlinuz")
    c.check(rc == EXIT_USAGE and "/nonexistent/vmlinuz" in err, "create checks the kernel path")
    rc, _, err = k.run("create", "baddisk", "--kernel", echo, "--disk", "/nonexistent.img")
    c.check(rc == EXIT_USAGE and "/nonexistent.img" in err, "create checks disk paths")
    rc, _, err = k.run("create", "badopt", "--kernel", echo, "--bogus")
    c.check(rc == EXIT_USAGE and "--bogus" in err, "create refuses unknown options")
    for cmd in ["start", "stop", "kill", "pause", "resume", "info", "console", "rm"]:
        rc, _, err = k.run(cmd, "ghost")
        c.check(rc == EXIT_NO_SUCH_VM and "no VM named 'ghost'" in err, f"{cmd} of an unknown VM")
    c.check(k.ls() == {}, "nothing was stored by the failed creates")


def t_help(k, c):
    rc, out, _ = k.run("--help")
    c.check(rc == 0 and all(f"  {cmd} " in out for cmd in COMMANDS) and "7  no VM" in out,
            "kiln --help lists every command and the exit codes")
    for cmd in COMMANDS:
        rc, out, _ = k.run(cmd, "--help")
        c.check(rc == 0 and out.startswith(f"Usage: kiln {cmd}") and "Exit status" in out,
                f"kiln {cmd} --help")


def t_lifecycle(k, c, echo):
    rc, out, err = k.run("create", "m1", "--kernel", echo, "--kernel-format", "raw", "-m", "16M",
                         "--cpus", "1")
    c.check(rc == 0, "create m1", err)
    rc, _, err = k.run("create", "m1", "--kernel", echo)
    c.check(rc == EXIT_VM_STATE and "exists already" in err, "create refuses a duplicate name")
    vm = k.ls().get("m1", {})
    c.check(vm.get("state") == "stopped" and vm.get("pid") is None and vm.get("mem_size_mib") == 16,
            "ls: m1 stopped, 16 MiB", str(vm))

    rc, out, err = k.run("start", "m1")
    c.check(rc == 0 and "started VM 'm1'" in out, "start m1", err)
    vm = k.ls().get("m1", {})
    c.check(vm.get("state") == "running" and isinstance(vm.get("pid"), int), "ls: m1 running",
            str(vm))
    rc, out, _ = k.run("ls")
    lines = out.splitlines()
    c.check(rc == 0 and lines[0].split() == ["NAME", "STATE", "PID", "VCPUS", "MEMORY", "UPTIME"]
            and lines[1].split()[:5] == ["m1", "running", str(vm.get("pid")), "1", "16M"],
            "ls table", out)
    rc, _, err = k.run("start", "m1")
    c.check(rc == EXIT_VM_STATE and "running already" in err, "start twice is refused")

    rc, _, err = k.run("pause", "m1")
    c.check(rc == 0 and k.ls()["m1"]["state"] == "paused", "pause: ls shows paused", err)
    rc, _, err = k.run("resume", "m1")
    c.check(rc == 0 and k.ls()["m1"]["state"] == "running", "resume: ls shows running", err)

    rc, out, _ = k.run("info", "--json", "m1")
    info = json.loads(out) if rc == 0 else {}
    c.check(info.get("state") == "running" and info.get("pid") == vm.get("pid")
            and (info.get("instance") or {}).get("id") == "m1"
            and info.get("definition", {}).get("machine-config", {}).get("mem_size_mib") == 16
            and "console.log" in info.get("files", {}), "info --json", out[:300])

    out, status = console_session(k, "m1", b"hi", b"HI")
    c.check("Ctrl-]" in out and "echo: ready" in out, "console: escape announced, output replayed",
            out)
    c.check("HI" in out, "console: typed input reaches the guest (echoed upper-cased)", out)
    c.check(status == 0 and "keeps running" in out and k.ls()["m1"]["state"] == "running",
            "console: Ctrl-] detaches, the VM keeps running", f"{status} {out}")

    pid = k.ls()["m1"]["pid"]
    t0 = time.monotonic()
    rc, out, err = k.run("stop", "--timeout", "1", "m1")
    c.check(rc == 0 and "by force" in out, "stop: the guest ignores the power button, forced",
            out + err)
    c.check(time.monotonic() - t0 < 10, "stop --timeout 1 is bounded")
    # The API pressed the power button: the echo guest reports each press, then waits on.
    log = open(os.path.join(k.env["KILN_STATE_DIR"], "m1", "console.log"), errors="replace").read()
    c.check("did not shut down within 1 s" in out and "echo: power button" in log,
            "stop: the power button press reached the guest", out + log[-300:])
    c.check(not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(")")[-1]
            .split()[0] == "Z", "stop: the VM process is gone")
    vm = k.ls()["m1"]
    c.check(vm["state"] == "stopped" and vm["pid"] is None, "ls: m1 stopped after stop", str(vm))
    rc, _, err = k.run("stop", "m1")
    c.check(rc == EXIT_VM_STATE and "not running" in err, "stop of a stopped VM")

    rc, _, err = k.run("start", "m1")
    c.check(rc == 0, "start again after stop", err)
    rc, out, err = k.run("kill", "m1")
    c.check(rc == 0 and k.ls()["m1"]["state"] == "stopped", "kill", err)

    # A crash: the VM process dies behind kiln's back; its socket files stay behind.
    k.run("start", "m1")
    pid = k.ls()["m1"]["pid"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    vm = k.ls()["m1"]
    c.check(vm["state"] == "stopped", "ls: a VM whose process died shows stopped", str(vm))
    vmdir = os.path.join(k.env["KILN_STATE_DIR"], "m1")
    c.check(not os.path.exists(os.path.join(vmdir, "api.sock")), "the crashed VM's socket is cleaned")
    rc, _, err = k.run("start", "m1")
    c.check(rc == 0 and k.ls()["m1"]["state"] == "running", "start after a crash", err)

    rc, _, err = k.run("rm", "m1")
    c.check(rc == EXIT_VM_STATE and "--force" in err, "rm refuses a running VM")
    pid = k.ls()["m1"]["pid"]
    rc, _, err = k.run("rm", "--force", "m1")
    c.check(rc == 0 and "m1" not in k.ls() and not os.path.exists(vmdir), "rm --force", err)
    c.check(not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(")")[-1]
            .split()[0] == "Z", "rm --force killed the VM process")
    rc, _, _ = k.run("info", "m1")
    c.check(rc == EXIT_NO_SUCH_VM, "info after rm: no such VM")


def t_bad_start(k, c, tmp):
    junk = os.path.join(tmp, "junk.bin")
    with open(junk, "wb") as f:
        f.write(b"\x7fnot a kernel" * 100)
    k.run("create", "bad", "--kernel", junk)
    rc, out, err = k.run("start", "bad")
    c.check(rc != 0 and "failed to start" in err, "start of a VM with a bad kernel fails", err)
    c.check(k.ls()["bad"]["state"] == "stopped", "the failed VM is stopped, not running")
    k.run("rm", "bad")


def t_race(k, c, echo):
    procs = [subprocess.Popen([k.path, "create", "same", "--kernel", echo, "--kernel-format", "raw",
                               "-m", f"{16 + i}M"], env=k.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(4)]
    rcs = sorted(p.wait(timeout=60) for p in procs)
    c.check(rcs == [0] + [EXIT_VM_STATE] * 3, "four racing creates of one name: one wins",
            str(rcs))
    vms = k.ls()
    c.check(list(vms) == ["same"] and 16 <= vms["same"]["mem_size_mib"] < 20,
            "one whole definition stored, no half-made VM listed", str(vms))
    k.run("rm", "same")
    k.run("create", "race", "--kernel", echo, "--kernel-format", "raw", "-m", "16M")
    procs = [subprocess.Popen([k.path, "start", "race"], env=k.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    rcs = sorted(p.wait(timeout=60) for p in procs)
    c.check(rcs == [0, EXIT_VM_STATE, EXIT_VM_STATE], "three racing starts: one wins, two refused",
            str(rcs))
    c.check(k.ls()["race"]["state"] == "running", "the winner runs")
    k.run("rm", "--force", "race")


def t_many(k, c, echo, n):
    names = [f"vm{i:02d}" for i in range(n)]
    timings = {}

    def timed(what, fn):
        t0 = time.monotonic()
        fn()
        timings[what] = time.monotonic() - t0

    def each(cmd, *extra):
        return lambda: [k.run(cmd, *extra, name) for name in names]

    timed("create", lambda: [k.run("create", name, "--kernel", echo, "--kernel-format", "raw",
                                   "-m", "16M") for name in names])
    timed("start", each("start"))
    vms = k.ls()
    c.check(all(vms[x]["state"] == "running" for x in names), f"{n} VMs running")
    timed("pause", each("pause"))
    vms = k.ls()
    c.check(all(vms[x]["state"] == "paused" for x in names), f"{n} VMs paused")
    timed("resume", each("resume"))
    vms = k.ls()
    c.check(all(vms[x]["state"] == "running" for x in names), f"{n} VMs running again")
    pids = {vms[x]["pid"] for x in names}
    c.check(len(pids) == n, f"{n} distinct VM processes")
    timed("stop", each("stop", "--timeout", "0"))
    vms = k.ls()
    c.check(all(vms[x]["state"] == "stopped" for x in names), f"{n} VMs stopped")
    timed("rm", each("rm"))
    c.check(k.ls() == {}, f"{n} VMs removed")
    print("timings for %d VMs: %s" % (n, ", ".join(f"{w} {t:.2f} s" for w, t in timings.items())))


def supports_sockets(kiln):
    out = subprocess.run([kiln, "run", "--help"], capture_output=True).stdout.decode()
    return "--api-sock" in out and "--console-sock" in out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--echo", required=True)
    ap.add_argument("--many", type=int, default=20)
    a = ap.parse_args()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: no usable /dev/kvm")
        return 77
    if not supports_sockets(a.kiln):
        print("SKIP: this kiln has no --api-sock/--console-sock yet")
        return 77
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="kiln-cli-")
    k = Kiln(os.path.abspath(a.kiln), os.path.join(tmp, "state"))
    echo = os.path.abspath(a.echo)
    try:
        t_help(k, c)
        t_errors(k, c, echo)
        t_lifecycle(k, c, echo)
        t_bad_start(k, c, tmp)
        t_race(k, c, echo)
        if a.many:
            t_many(k, c, echo, a.many)
    finally:
        for name in (k.ls() if os.path.isdir(k.env["KILN_STATE_DIR"]) else {}):
            k.run("rm", "--force", name)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
