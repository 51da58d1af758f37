#!/usr/bin/env python3
"""kiln run --console-sock on this machine's /dev/kvm with micro-guests (no Linux needed).

  console_sock.py --kiln PATH --echo echo.bin --flood flood.bin

echo guest (echoes input upper-cased, 'q' ends it): a client that connects after the
guest is ready gets its output replayed; a second client is told the console is busy and
closed while the first keeps working; input reaches the guest and live output comes back;
after a disconnect a new client gets everything replayed; kiln never writes the guest's
output to its own stdout, exits 0 and removes the socket file; --console-log has it all.
flood guest (128 KiB of output, then power-off): a client that connects and never reads
does not stall the guest (kiln exits 0, the log is complete) and got a prefix of the output.
Start-up: a stale socket file is replaced; a live socket, or a regular file, at the path
is left alone and kiln exits 6; a path too long for a socket is a usage error (2).

Prints PASS/FAIL lines; exits 0, 1 on failure, 77 without a usable /dev/kvm.
Python 3 standard library only.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

USAGE_EXIT, DEVICE_EXIT = 2, 6
BUSY = b"kiln: console busy: another client is attached\r\n"
FLOOD_BYTES = 128 * 1024


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


def start_kiln(a, guest, sock, log):
    argv = [a.kiln, "run", "--kernel", guest, "--kernel-format", "raw", "-m", "64M",
            "--no-reboot", "--console-sock", sock, "--console-log", log]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def wait_for(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def file_has(path, text):
    try:
        with open(path, "rb") as f:
            return text in f.read()
    except OSError:
        return False


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def read_until(s, want, timeout=20.0):
    """Reads until `want` is in what arrived (or EOF/timeout); returns what arrived."""
    got = b""
    deadline = time.monotonic() + timeout
    while want not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        if not data:
            break
        got += data
    return got


def read_to_eof(s, timeout=20.0):
    return read_until(s, b"\0never\0", timeout)


def finish(p, timeout=30):
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err.decode(errors="replace")
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return None, out, err.decode(errors="replace")


def test_echo(c, a, tmp):
    sock, log = os.path.join(tmp, "echo.sock"), os.path.join(tmp, "echo.log")
    p = start_kiln(a, a.echo, sock, log)
    try:
        c.check(wait_for(lambda: file_has(log, b"echo: ready\n")), "echo guest starts")
        first = connect(sock)
        got = read_until(first, b"echo: ready\n")
        c.check(got == b"echo: ready\n", "output from before the client connected is replayed",
                repr(got))
        second = connect(sock)
        got = read_to_eof(second)
        c.check(got == BUSY, "a second client is told the console is busy and closed", repr(got))
        second.close()
        first.sendall(b"abc")
        got = read_until(first, b"ABC")
        c.check(got == b"ABC", "client input reaches the guest, live output comes back",
                repr(got))
        first.close()
        third = connect(sock)
        got = read_until(third, b"echo: ready\nABC")
        c.check(got == b"echo: ready\nABC", "a new client gets everything replayed", repr(got))
        third.sendall(b"q")
        got = read_to_eof(third)
        c.check(b"echo: bye, interrupts" in got and got.endswith(b" bytes 4\n"),
                "the guest ends on 'q'; kiln closes the connection", repr(got))
        third.close()
    finally:
        rc, out, err = finish(p)
    c.check(rc == 0, "kiln exits with status 0", f"status {rc}, stderr {err!r}")
    c.check(out == b"", "kiln's own stdout stays clean (the guest's output went to the socket)",
            repr(out[:200]))
    c.check(not os.path.exists(sock), "kiln removed its socket file")
    with open(log, "rb") as f:
        text = f.read()
    c.check(text.startswith(b"echo: ready\nABC\necho: bye"), "--console-log has the output too",
            repr(text[:200]))


def test_stuck_client(c, a, tmp):
    sock, log = os.path.join(tmp, "flood.sock"), os.path.join(tmp, "flood.log")
    p = start_kiln(a, a.flood, sock, log)
    stuck = None
    try:
        if c.check(wait_for(lambda: os.path.exists(sock)), "flood: the socket appears"):
            stuck = connect(sock)
            stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    finally:
        rc, out, err = finish(p, timeout=120)
    c.check(rc == 0, "a client that never reads does not stall the guest (kiln exits 0)",
            f"status {rc}, stderr {err!r}")
    with open(log, "rb") as f:
        text = f.read()
    c.check(text.startswith(b"flood: ready\n") and text.endswith(b"flood: done\n") and
            len(text) == len("flood: ready\n") + FLOOD_BYTES + len("flood: done\n"),
            "the console log has all the output", f"{len(text)} bytes")
    if stuck:
        got = read_to_eof(stuck)
        stuck.close()
        c.check(got.startswith(b"flood: ready\n") and len(got) < len(text) and
                text.startswith(got),
                "the slow client got the start of the output, in order, and no more",
                f"{len(got)} of {len(text)} bytes")
        print(f"  the slow client received {len(got)} of {len(text)} bytes")


def test_startup(c, a, tmp):
    path = os.path.join(tmp, "stale.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # what a crashed kiln leaves behind
    log = os.path.join(tmp, "stale.log")
    p = start_kiln(a, a.echo, path, log)
    try:
        ok = wait_for(lambda: file_has(log, b"echo: ready\n"))
        if ok:
            s = connect(path)
            s.sendall(b"q")
            read_to_eof(s)
            s.close()
    finally:
        rc, _, err = finish(p)
    c.check(ok and rc == 0, "a stale socket file is replaced", f"status {rc}, stderr {err!r}")

    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(path)
    live.listen(1)
    rc, _, err = finish(start_kiln(a, a.echo, path, log))
    c.check(rc == DEVICE_EXIT and f"console socket '{path}': in use" in err,
            "a socket another process listens on is left alone (exit 6)",
            f"status {rc}, stderr {err!r}")
    live.close()
    os.unlink(path)

    with open(path, "w") as f:
        f.write("keep me\n")
    rc, _, err = finish(start_kiln(a, a.echo, path, log))
    with open(path) as f:
        kept = f.read() == "keep me\n"
    c.check(rc == DEVICE_EXIT and kept, "a regular file at the path is left alone (exit 6)",
            f"status {rc}, stderr {err!r}")

    long_path = os.path.join(tmp, "x" * 120)
    rc, _, err = finish(start_kiln(a, a.echo, long_path, log))
    c.check(rc == USAGE_EXIT and "--console-sock" in err, "a path too long is a usage error",
            f"status {rc}, stderr {err!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--echo", required=True)
    ap.add_argument("--flood", required=True)
    a = ap.parse_args()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: no usable /dev/kvm")
        return 77
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="kiln-console-sock-")
    try:
        for test in (test_echo, test_stuck_client, test_startup):
            test(c, a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"console_sock: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
