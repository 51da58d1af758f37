#!/usr/bin/env python3
"""virtio-blk throughput in kiln's default Linux guest inside the stock-KVM host,
side by side with QEMU's virtio-blk-pci (q35, -enable-kvm, no vhost), in one outer
boot: same kernel, initramfs and images (on the outer host's tmpfs, cache=writeback
in both VMMs).

  bench/blk.py [--kiln build/src/kiln] [--runs 3] [--mib 256] [--seconds 10]

In the guest, bench/blk_io.c (built static here, put on a small ext4 "tools" disk,
/dev/vda) measures on /dev/vdb with O_DIRECT: sequential 1 MiB writes (then fdatasync)
and reads over MIB MiB, and 4 KiB random reads at queue depth 1 for SECONDS seconds.
Each VMM configuration boots once and runs each measurement RUNS times; the medians
are printed, then kiln's figures as a ratio of QEMU's.
"""
import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "linux"))
from linuxtest import GUEST_APPEND, guest_run, type_line, wait_guest_ready, Results  # noqa: E402
from outerhost import HostError, OuterHost, build_images  # noqa: E402

WORK = "/run/tmp/blkbench"
RESULT = re.compile(r"RESULT (\w+) ([0-9.]+) ")


def kiln_cmd(kiln, guest, engine):
    """engine "" is kiln's own choice (io_uring where it works)."""
    disks = [f"{WORK}/tools.img,ro", f"{WORK}/bench.img"]
    argv = ["env", f"KILN_BLK_ENGINE={engine}", kiln, "run", "--kernel", f"{guest}/vmlinuz",
            "--initrd", f"{guest}/initramfs.cpio.gz", "--cmdline", GUEST_APPEND,
            "-m", "512M", "-c", "1", "-v"]
    for d in disks:
        argv += ["--disk", d]
    return " ".join(shlex.quote(a) for a in argv)


def qemu_cmd(guest, aio):
    chardev = "stdio,id=con,mux=on,signal=off"
    argv = ["qemu-system-x86_64", "-enable-kvm", "-M", "q35", "-cpu", "host",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-chardev", chardev, "-serial", "chardev:con", "-mon", "chardev=con",
            "-kernel", f"{guest}/vmlinuz", "-initrd", f"{guest}/initramfs.cpio.gz",
            "-append", GUEST_APPEND, "-m", "512M", "-smp", "1",
            "-drive", f"file={WORK}/tools.img,if=none,id=tools,format=raw,readonly=on",
            "-device", "virtio-blk-pci,drive=tools",
            "-drive", f"file={WORK}/bench.img,if=none,id=bench,format=raw,cache=writeback,"
                      f"aio={aio}",
            "-device", "virtio-blk-pci,drive=bench"]
    return " ".join(shlex.quote(a) for a in argv)


def measure(host, r, label, cmd, args):
    """Boot one VMM, run the measurements; {mode: [figures]}."""
    figures = {}
    started = time.monotonic()
    host.spawn(cmd, limit=1800)
    try:
        if not wait_guest_ready(host, r, label, started, timeout=300):
            raise HostError("no guest")
        status, out = guest_run(host, "mount -o ro /dev/vda /mnt && echo ok", timeout=60)
        if "ok" not in out:
            raise HostError(f"tools disk: {out.strip()}")
        steps = [f"seqwrite {args.mib}"] + \
                [f"seqread {args.mib}", f"randread {args.seconds} {args.mib}",
                 f"seqwrite {args.mib}"] * args.runs
        for step in steps:
            status, out = guest_run(host, f"/mnt/blk_io /dev/vdb {step}", timeout=600)
            m = RESULT.search(out)
            if status != 0 or not m:
                raise HostError(f"blk_io {step}: {out.strip()[-200:]}")
            figures.setdefault(m.group(1), []).append(float(m.group(2)))
            print(f"  {label}: {out.strip()}", flush=True)
        # The first write only fills the image; it is not counted.
        figures["seqwrite"] = figures["seqwrite"][1:]
        type_line(host, "poweroff")
        host.wait_exit(timeout=120)
    except HostError as e:
        r.fail(f"{label}: measurements", str(e))
        host.abort_spawned()
        return None
    return figures


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default=os.path.join(os.path.dirname(HERE), "build", "src", "kiln"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--log-dir", default="/tmp/kiln-bench")
    args = ap.parse_args()
    kiln = os.path.abspath(args.kiln)
    guest, _ = build_images(log=lambda s: print("  " + s, flush=True))
    os.makedirs(args.log_dir, exist_ok=True)
    r = Results("bench_blk")
    host = OuterHost(os.path.join(args.log_dir, "blk-bench.transcript.log"))
    host.start()
    results = {}
    try:
        tool = os.path.join(host.scratch, "blk_io")
        subprocess.run(["gcc", "-static", "-O2", "-o", tool, os.path.join(HERE, "blk_io.c")],
                       check=True)
        host.check(f"mkdir -p {WORK}/tools && cp {tool} {WORK}/tools/ && "
                   f"mkfs.ext4 -q -F -d {WORK}/tools {WORK}/tools.img 16M && "
                   f"truncate -s {args.mib + 64}M {WORK}/bench.img", timeout=120)
        configs = [("kiln default", kiln_cmd(kiln, guest, "")),
                   ("kiln io_uring", kiln_cmd(kiln, guest, "io_uring")),
                   ("qemu aio=threads", qemu_cmd(guest, "threads")),
                   ("kiln threads", kiln_cmd(kiln, guest, "threads")),
                   ("qemu aio=io_uring", qemu_cmd(guest, "io_uring"))]
        for label, cmd in configs:
            figures = measure(host, r, label, cmd, args)
            if figures:
                results[label] = {k: statistics.median(v) for k, v in figures.items()}
    finally:
        host.close()
    print()
    print(f"{'':20} {'seq write MiB/s':>16} {'seq read MiB/s':>16} {'4K rand read IOPS':>18}")
    for label, f in results.items():
        print(f"{label:20} {f.get('seqwrite', 0):16.1f} {f.get('seqread', 0):16.1f} "
              f"{f.get('randread', 0):18.0f}")
    for kl, ql in (("kiln default", "qemu aio=threads"), ("kiln io_uring", "qemu aio=threads"), ("kiln io_uring", "qemu aio=io_uring"),
                   ("kiln threads", "qemu aio=threads")):
        if kl in results and ql in results:
            k, q = results[kl], results[ql]
            ratios = [k[m] / q[m] if q.get(m) else float("nan")
                      for m in ("seqwrite", "seqread", "randread")]
            print(f"{kl} / {ql}: " + ", ".join(f"{n} {x:.2f}" for n, x in
                                                 zip(("seq write", "seq read", "rand read"),
                                                     ratios)))
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
