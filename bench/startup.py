#!/usr/bin/env python3
"""Start-up figures for kiln with a micro-guest, as medians over N runs.

  bench/startup.py KILN GUEST_BIN [--runs N] [--memory 256M] [--marker TEXT]

For each run: time from exec to the guest's first line containing MARKER on the console,
time to kiln's exit, and kiln's peak RSS (VmHWM, which kiln -v reports at exit: wait4's
ru_maxrss would also count the Python image that forked it). Prints medians and spread.
"""
import argparse
import os
import re
import select
import statistics
import subprocess
import time


def one_run(kiln, guest, memory, marker):
    args = [kiln, "run", "-v", "-k", guest, "--kernel-format", "raw", "-m", memory, "--no-reboot"]
    start = time.monotonic()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out = b""
    ready = None
    fd = proc.stdout.fileno()
    while True:
        r, _, _ = select.select([fd], [], [], 10)
        if not r:
            proc.kill()
            raise RuntimeError("timed out waiting for the guest")
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        out += chunk
        if ready is None and marker.encode() in out:
            ready = time.monotonic() - start
    _, status, _ = os.wait4(proc.pid, 0)
    end = time.monotonic() - start
    err = proc.stderr.read().decode(errors="replace")
    m = re.search(r"peak RSS (\d+) KiB", err)
    if ready is None or os.waitstatus_to_exitcode(status) != 0 or not m:
        raise RuntimeError(f"run failed: status {status}, output {out[-200:]!r} {err!r}")
    return ready, end, int(m.group(1))


def summary(name, values, unit):
    med = statistics.median(values)
    return f"{name}: median {med:.2f} {unit} (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kiln")
    ap.add_argument("guest")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--memory", default="256M")
    ap.add_argument("--marker", default="kiln-micro: ready")
    a = ap.parse_args()
    runs = [one_run(a.kiln, a.guest, a.memory, a.marker) for _ in range(a.runs)]
    print(summary("start to ready line", [r[0] * 1000 for r in runs], "ms"))
    print(summary("start to exit", [r[1] * 1000 for r in runs], "ms"))
    print(summary(f"peak RSS ({a.memory} guest)", [r[2] / 1024 for r in runs], "MiB"))


if __name__ == "__main__":
    main()
