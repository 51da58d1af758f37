#!/usr/bin/env python3
"""Heavy guest->host transmit over tap or user networking, repeated, under kiln or QEMU in
the stock-KVM host.

Not part of the test suite: a tool to tell the nested environment's failures from the inner
VMM's. Each run boots a fresh stock-KVM host, starts one inner VMM in a network namespace
with a tap device there (or user networking: --net user), and sends MIB MiB from the guest to
the host TRANSFERS times, checking the md5 of each (with --tool netbench: a netbench stream
of SECONDS, TRANSFERS times, as test_net's benchmark runs it). The stock-KVM host's KVM traces
every inner-guest shutdown (a triple fault) with its RIP and the event being delivered; the
tool prints them at the end of each run.

    tests/linux/stress_tx.py --vmm kiln --runs 3
    tests/linux/stress_tx.py --vmm qemu --qemu-net-opts event_idx=off --runs 3
    tests/linux/stress_tx.py --vmm kiln --net user --kiln /tmp/old/build/src/kiln

The summary line counts runs whose guest survived every transfer. See "When the environment
fails" in tests/linux/README.md for what these runs showed.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_net  # noqa: E402
from linuxtest import Results, boot_outer  # noqa: E402
from outerhost import HostError, build_images  # noqa: E402

TRACING = "/sys/kernel/tracing"
SVM_EXIT_SHUTDOWN = 0x7f


def trace_shutdowns(host):
    """Trace the stock-KVM host's kvm_exit events whose reason is a shutdown."""
    host.check(f"mount -t tracefs none {TRACING} 2>/dev/null; "
               f"echo 'exit_reason=={SVM_EXIT_SHUTDOWN}' > {TRACING}/events/kvm/kvm_exit/filter && "
               f"echo 1 > {TRACING}/events/kvm/kvm_exit/enable && echo 1 > {TRACING}/tracing_on")


def traced_shutdowns(host):
    _, out = host.run(f"grep -v '^#' {TRACING}/trace")
    return [line.strip() for line in out.splitlines() if "kvm_exit" in line]


def vmm_command(args, guest, initrd):
    user = args.net == "user"
    if args.vmm == "kiln":
        return test_net.kiln_cmd(args.kiln, guest, initrd, "user" if user else "tap=tap0")
    cmd = test_net.qemu_cmd(guest, initrd, "user,id=n0" if user else
                            "tap,id=n0,ifname=tap0,script=no,downscript=no")
    if args.qemu_net_opts:
        cmd = cmd.replace("virtio-net-pci,", f"virtio-net-pci,{args.qemu_net_opts},")
    return cmd


def netbench_out(host, agent, connect, secs):
    """One netbench stream guest->host: the receiver's MB/s, or None."""
    port = test_net.host_port()
    n = agent.start(f"exec {host.scratch}/netbench recv {port}")
    agent.wait_output(n, "listening", 30)
    test_net.guest_run(host, f"netbench send {connect} {port} {secs}", timeout=secs + 90)
    _, out = agent.wait(n, secs + 90)
    return test_net.mbps(out)


def one_transfer(args, host, r, agent, i, listen, connect):
    """Whether transfer i went through."""
    if args.tool == "nc":
        failed = r.failed
        test_net.transfer_out(host, r, agent, f"transfer {i}", listen, connect, args.mib)
        return r.failed == failed
    try:
        rate = netbench_out(host, agent, connect, args.seconds)
    except HostError as e:
        print(f"transfer {i}: {str(e)[:300]}", flush=True)
        return False
    print(f"transfer {i}: {rate} MB/s", flush=True)
    return rate is not None


def one_run(args, guest, initrd, log):
    """Transfers completed, and the shutdowns traced, in one fresh stock-KVM host."""
    r = Results("stress_tx")
    host = boot_outer(r, log)
    if host is None:
        return 0, ["the stock-KVM host did not boot"]
    done = 0
    try:
        trace_shutdowns(host)
        test_net.write_tools(host, args.netbench)
        host.check("modprobe tun; test -c /dev/net/tun", timeout=60)
        if args.net == "user":  # the guest's boot-time DHCP configures it
            host.check("ip netns add kt && ip -n kt link set lo up")
            listen, connect = "127.0.0.1", "10.0.2.2"
        else:
            test_net.make_tap_netns(host, "kt")
            listen = connect = test_net.TAP_HOST
        agent = test_net.Agent(host, "agent", "kt")
        test_net.start_vmm(host, r, args.vmm, "ip netns exec kt " + vmm_command(args, guest, initrd))
        if args.net == "tap":
            test_net.guest_check(host, r, "guest configures its address", test_net.TAP_UP)
        for i in range(args.transfers):
            if not one_transfer(args, host, r, agent, i, listen, connect):
                break
            done += 1
        host.abort_spawned()  # a guest that stopped answering: its VMM still runs
        return done, traced_shutdowns(host)
    except HostError as e:
        return done, [f"the stock-KVM host failed: {str(e)[:300]}"]
    finally:
        host.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vmm", choices=("kiln", "qemu"), default="kiln")
    p.add_argument("--kiln", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                  "build", "src", "kiln"))
    p.add_argument("--net", choices=("tap", "user"), default="tap")
    p.add_argument("--qemu-net-opts", default="",
                   help="extra virtio-net-pci properties for QEMU, e.g. event_idx=off")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--transfers", type=int, default=8)
    p.add_argument("--mib", type=int, default=100, help="MiB per nc transfer")
    p.add_argument("--tool", choices=("nc", "netbench"), default="nc")
    p.add_argument("--seconds", type=int, default=10, help="seconds per netbench stream")
    p.add_argument("--log-dir", default=tempfile.gettempdir())
    args = p.parse_args()
    args.kiln = os.path.abspath(args.kiln)
    guest, _ = build_images(log=lambda s: None)
    work = tempfile.mkdtemp(prefix="kiln-stress-tx-", dir="/tmp")
    initrd = os.path.join(work, "initrd.cpio.gz")
    args.netbench = test_net.build_netbench(work) if args.tool == "netbench" else None
    test_net.build_initrd(guest, initrd, args.netbench)
    survived = 0
    for run in range(args.runs):
        log = os.path.join(args.log_dir, f"stress_tx-{args.vmm}-{int(time.time())}.log")
        done, shutdowns = one_run(args, guest, initrd, log)
        survived += done == args.transfers
        print(f"RUN {run}: {done} of {args.transfers} transfers; transcript {log}", flush=True)
        for line in shutdowns:
            print(f"RUN {run}: shutdown: {line}", flush=True)
    print(f"stress_tx: {survived} of {args.runs} runs survived {args.transfers} x {args.mib} MiB "
          f"under {args.vmm} {args.net} {args.qemu_net_opts}".rstrip(), flush=True)
    return 0 if survived == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
