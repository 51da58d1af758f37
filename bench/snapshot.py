#!/usr/bin/env python3
"""Snapshot and restore figures of the counting micro-guest on /dev/kvm.

  bench/snapshot.py KILN COUNT_BIN [--mem 256 1024] [--runs 3]

For each guest memory size: boot count.bin through the API, pause, PUT /snapshot/create
(Full), resume, run 1 s, pause, Diff; then `kiln run --restore` in a new process, timed
from process start to the guest's next console line. Prints medians. The micro-guest
touches only a few pages, so the memory files are nearly empty: the Full time is mostly
the scan of guest RAM for zero runs. Standard library only.
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "micro"))
from api_test import Kiln, counts, wait_for  # noqa: E402


def create(k, d, kind):
    t0 = time.monotonic()
    st, _, text = k.request("PUT", "/snapshot/create", {
        "snapshot_type": kind, "snapshot_path": os.path.join(d, "state"),
        "mem_file_path": os.path.join(d, "memory")})
    if st != 204:
        raise RuntimeError(f"snapshot/create {kind}: {st} {text}")
    return time.monotonic() - t0


def one_run(kiln, guest, mem, tmp):
    k = Kiln(kiln, ["--api-sock", "api.sock"], tmp)
    k.wait_socket()
    k.request("PUT", "/boot-source", {"kernel_image_path": guest, "kiln_kernel_format": "raw"})
    k.request("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": mem})
    k.request("PUT", "/actions", {"action_type": "InstanceStart"})
    wait_for(lambda: len(counts(k.text())) >= 3, 10)
    full, diff = os.path.join(tmp, "full"), os.path.join(tmp, "diff")
    os.makedirs(full)
    os.makedirs(diff)
    k.request("PATCH", "/vm", {"state": "Paused"})
    t_full = create(k, full, "Full")
    k.request("PATCH", "/vm", {"state": "Resumed"})
    time.sleep(1)
    k.request("PATCH", "/vm", {"state": "Paused"})
    t_diff = create(k, diff, "Diff")
    os.killpg(k.proc.pid, signal.SIGKILL)
    k.wait_exit()
    t0 = time.monotonic()
    p = subprocess.Popen([kiln, "run", "--restore", full], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    p.stdout.readline()
    t_restore = time.monotonic() - t0
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    st = os.stat(os.path.join(full, "memory"))
    sd = os.stat(os.path.join(diff, "memory"))
    return {"full_s": t_full, "diff_s": t_diff, "restore_s": t_restore,
            "full_alloc": st.st_blocks * 512, "full_size": st.st_size,
            "diff_alloc": sd.st_blocks * 512,
            "state": os.path.getsize(os.path.join(full, "state"))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("guest")
    ap.add_argument("--mem", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    kiln, guest = os.path.abspath(a.kiln), os.path.abspath(a.guest)
    for mem in a.mem:
        runs = []
        for _ in range(a.runs):
            tmp = tempfile.mkdtemp(prefix="kiln-snapbench-")
            try:
                runs.append(one_run(kiln, guest, mem, tmp))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        print(f"{mem} MiB guest ({a.runs} runs, medians): Full snapshot {med['full_s'] * 1000:.0f} ms, "
              f"memory file {med['full_size'] >> 20} MiB apparent / {med['full_alloc'] / 1024:.0f} KiB "
              f"allocated, state file {med['state']:.0f} bytes; Diff after 1 s "
              f"{med['diff_s'] * 1000:.1f} ms, {med['diff_alloc'] / 1024:.0f} KiB; restore to the "
              f"next console line {med['restore_s'] * 1000:.0f} ms", flush=True)


if __name__ == "__main__":
    main()
