#!/usr/bin/env python3
"""Linux boot time in the stock-KVM host: kiln against QEMU, same kernel and initramfs.

  bench/linux_boot.py --kiln build/src/kiln [--runs 10] [--memory 256M]

Boots the outer host once, then alternates the configurations run by run (so drift in the
shared machine hits them alike). For each boot: time from starting the VMM to the guest's
readiness line (its /init's first output), the guest's own uptime at that line (kernel boot
to init, from the guest's clock), and time from `poweroff` to the VMM's exit.
Prints medians, ranges and the kiln/QEMU ratios.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "linux"))
from outerhost import OuterHost, build_images  # noqa: E402


def configs(kiln, guest, mem, cmdline):
    vmlinuz, vmlinux = f"{guest}/vmlinuz", f"{guest}/vmlinux"
    initrd = f"{guest}/initramfs.cpio.gz"
    qemu = ("qemu-system-x86_64 -enable-kvm -cpu host -nodefaults -no-user-config "
            f"-display none -serial stdio -m {mem} -initrd {initrd} -append '{cmdline}'")
    return {
        "kiln bzImage": f"{kiln} run -k {vmlinuz} -i {initrd} -m {mem} --cmdline '{cmdline}'",
        "kiln PVH": f"{kiln} run -k {vmlinux} -i {initrd} -m {mem} --cmdline '{cmdline}'",
        "QEMU microvm": f"{qemu} -M microvm -kernel {vmlinuz}",
        "QEMU q35": f"{qemu} -M q35 -kernel {vmlinuz}",
    }


def one_boot(host, cmd):
    start = time.monotonic()
    host.spawn(cmd)
    host.expect(r"kiln-guest: ready", timeout=300)
    ready = time.monotonic() - start
    uptime = float(host.expect(r"kiln-guest: uptime ([0-9.]+)", timeout=60).group(1))
    time.sleep(1)
    t = time.monotonic()
    host.send(b"poweroff\r")
    status = host.wait_exit(timeout=120)
    return ready, uptime, time.monotonic() - t, status


def fmt(values):
    return f"{statistics.median(values):6.2f} s  [{min(values):.2f}-{max(values):.2f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--memory", default="256M")
    ap.add_argument("--cmdline", default="console=ttyS0 panic=-1")
    ap.add_argument("--log", default="/tmp/kiln-bench-linux-boot.log")
    ap.add_argument("--only", help="comma-separated configuration names to run")
    a = ap.parse_args()
    guest, _ = build_images(log=lambda line: None)
    cfgs = configs(os.path.abspath(a.kiln), guest, a.memory, a.cmdline)
    if a.only:
        keep = [n.strip() for n in a.only.split(",")]
        cfgs = {n: c for n, c in cfgs.items() if n in keep}
    results = {name: [] for name in cfgs}
    with OuterHost(log_path=a.log) as host:
        for run in range(a.runs):
            for name, cmd in cfgs.items():
                r = one_boot(host, cmd)
                results[name].append(r)
                print(f"run {run + 1} {name}: ready {r[0]:.2f} s, guest uptime {r[1]:.2f} s, "
                      f"poweroff {r[2]:.2f} s, status {r[3]}", flush=True)
    print(f"\nLinux boot in the stock-KVM host, {a.runs} runs each, -m {a.memory}, "
          f"cmdline '{a.cmdline}' (median [min-max])")
    print(f"{'':14} {'start to /init':>24} {'guest uptime at /init':>26} {'poweroff to exit':>24}")
    for name, rs in results.items():
        print(f"{name:14} {fmt([r[0] for r in rs]):>24} {fmt([r[1] for r in rs]):>26} "
              f"{fmt([r[2] for r in rs]):>24}")
    if "QEMU microvm" not in results:
        return
    base = statistics.median(r[0] for r in results["QEMU microvm"])
    for name in ("kiln bzImage", "kiln PVH"):
        if name not in results:
            continue
        k = statistics.median(r[0] for r in results[name])
        print(f"ratio {name} / QEMU microvm (start to /init): {k / base:.2f}")


if __name__ == "__main__":
    main()
