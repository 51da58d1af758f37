#!/usr/bin/env python3
"""A scripted client of `kiln run --console-sock`, run inside the stock-KVM host by
test_power.py. Usage: console_client.py SOCKET STEP...

Steps, in order (each prints "client: ok STEP" or "client: FAIL STEP (why)"):
  wait=TEXT       read until TEXT has been seen since connecting (replay included)
  type=TEXT       type TEXT and Enter, 8 bytes every 20 ms like a person
  reconnect       close the connection and open a new one
  eof             read until kiln closes the connection
Exits 0 when every step passed. Python 3 standard library only.
"""
import socket
import sys
import time

TIMEOUT = 120.0  # per step; the guest under nested KVM in TCG is slow


def connect(path):
    deadline = time.monotonic() + TIMEOUT
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def read_until(s, seen, want, eof=False):
    """Appends to `seen` until it holds `want` (or EOF when `eof`); False on timeout."""
    deadline = time.monotonic() + TIMEOUT
    while (eof or want.encode() not in seen) and time.monotonic() < deadline:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        if not data:
            return eof or want.encode() in seen
        seen += data
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return not eof and want.encode() in seen


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, steps = sys.argv[1], sys.argv[2:]
    s = connect(path)
    seen = bytearray()
    failed = 0
    for step in steps:
        ok, why = True, ""
        if step.startswith("wait="):
            ok = read_until(s, seen, step[5:])
            why = f"not seen in {len(seen)} bytes"
        elif step.startswith("type="):
            data = step[5:].encode() + b"\r"
            for i in range(0, len(data), 8):
                s.sendall(data[i:i + 8])
                time.sleep(0.02)
        elif step == "reconnect":
            s.close()
            s = connect(path)
            seen = bytearray()
        elif step == "eof":
            ok = read_until(s, seen, "", eof=True)
            why = "kiln kept the connection open"
        else:
            sys.exit(f"unknown step {step!r}")
        print(f"\nclient: {'ok' if ok else 'FAIL'} {step}" + ("" if ok else f" ({why})"),
              flush=True)
        failed += not ok
    s.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
