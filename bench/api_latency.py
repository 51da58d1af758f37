#!/usr/bin/env python3
"""API request latency of `kiln run --api-sock`, as medians and 99th percentiles.

  bench/api_latency.py KILN [--requests N] [--guest COUNT_BIN]

Starts kiln with an API socket in a temporary directory and times N requests of each kind
from an HTTP client on the socket (standard library only): GET / on a new connection per
request and on one kept-alive connection, PUT /machine-config (validation and a config
change), and, with --guest (guest/micro count.bin), PATCH /vm pause+resume pairs of a
running micro-guest. Client-side times, so they include Python's own overhead.
"""
import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def timed(conn_for, method, path, body, n):
    times = []
    for _ in range(n):
        conn = conn_for()
        start = time.perf_counter()
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        resp.read()
        times.append(time.perf_counter() - start)
        if resp.status >= 300:
            raise SystemExit(f"{method} {path}: HTTP {resp.status}")
    return times


def report(what, times):
    times = sorted(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"{what:40s} median {statistics.median(times) * 1e6:7.0f} us   "
          f"p99 {p99 * 1e6:7.0f} us   ({len(times)} requests)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--guest", help="count.bin micro-guest for the pause/resume figure")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kiln-api-bench-") as tmp:
        sock = os.path.join(tmp, "api.sock")
        proc = subprocess.Popen([a.kiln, "run", "--api-sock", sock], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not os.path.exists(sock) and time.monotonic() < deadline:
                time.sleep(0.01)
            n = a.requests
            report("GET / (new connection each)",
                   timed(lambda: UnixHTTPConnection(sock), "GET", "/", None, n))
            keep = UnixHTTPConnection(sock)
            report("GET / (keep-alive)", timed(lambda: keep, "GET", "/", None, n))
            body = json.dumps({"vcpu_count": 1, "mem_size_mib": 64})
            report("PUT /machine-config (keep-alive)",
                   timed(lambda: keep, "PUT", "/machine-config", body, n))
            if a.guest:
                boot = json.dumps({"kernel_image_path": os.path.abspath(a.guest),
                                   "kiln_kernel_format": "raw"})
                timed(lambda: keep, "PUT", "/boot-source", boot, 1)
                timed(lambda: keep, "PUT", "/actions", json.dumps({"action_type": "InstanceStart"}), 1)
                pause, resume = json.dumps({"state": "Paused"}), json.dumps({"state": "Resumed"})
                p, r = [], []
                for _ in range(min(n, 200)):
                    p += timed(lambda: keep, "PATCH", "/vm", pause, 1)
                    r += timed(lambda: keep, "PATCH", "/vm", resume, 1)
                report("PATCH /vm Paused (running guest)", p)
                report("PATCH /vm Resumed", r)
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
