#!/usr/bin/env python3
"""kiln run --jail with cgroup v2 limits inside the stock-KVM host, whose Debian
kernel can mount cgroup2 with the memory, cpu and pids controllers (this
machine's hybrid cgroup layout cannot). One outer boot for all checks:

  - cgroup2 is mounted at /sys/fs/cgroup if nothing is there yet;
  - memory.max is enforced: the memtouch micro-guest (guest/micro/memtouch.S)
    touching 192M of a 256M guest under memory.max=64M is ended by the OOM
    killer, and kiln says so with status 5; touching 32M under the same
    limit runs to the end (status 0); no cgroup is left behind;
  - a jailed Linux guest (the default guest, --jail-cgroup memory.max=1G,
    pids.max=64, cpu.max=max, a virtio-blk disk, and virtio-net on a tap device
    in a network namespace the test makes, joined with --jail-netns) boots; its
    shell works, it writes and reads its disk (through the thread-pool engine,
    whose workers start after the jail) and pings the host side of the
    tap device; meanwhile an agent in the outer host finds the VM process and
    reports that it and each of its threads run as uid 65534 with no
    capabilities and NoNewPrivs 1,
    that its root is the empty jail directory, that it is in that network
    namespace and in the VM's cgroup, and that the guest's memory is charged
    there (memory.current above 32 MiB); poweroff ends kiln with status 0, the
    cgroup is removed and the guest's write is in the disk image.

Prints PASS/FAIL and TIME lines, closes with "N passed, N failed"; exit 1 on
failure, 77 if the inner VMM is not kiln or the memtouch guest is missing
(KILN_MICRO_MEMTOUCH, set by meson).
"""
import json
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from linuxtest import (GUEST_APPEND, boot_outer, guest_run, run, setup,  # noqa: E402
                       type_line, wait_guest_ready)
from outerhost import HostError  # noqa: E402

VMM_LIMIT = 600
JAIL_ID = 65534
CGROUP_ROOT = "/sys/fs/cgroup"
NETNS = "kiln-jail"  # made by this test inside the stock-KVM host, with tap0 in it
TAP_HOST, TAP_GUEST = "192.168.100.1", "192.168.100.2"
DISK = "/run/tmp/jail-disk.img"


# ---- agent: runs inside the outer host, in the background -----------------

def find_vm_process():
    """The jailed VM: a kiln process that is PID 1 of its own PID namespace."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                status = f.read()
        except OSError:
            continue
        fields = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
        nspid = fields.get("NSpid", "").split()
        if fields.get("Name", "").strip() == "kiln" and len(nspid) == 2 and nspid[1] == "1":
            return int(name), fields
    return None, None


def agent(scratch):
    """Wait for the driver's go, then report on the jailed VM process."""
    go, out = os.path.join(scratch, "jail-go"), os.path.join(scratch, "jail-report.json")
    deadline = time.monotonic() + 600
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.2)
    pid, fields = find_vm_process()
    report = {"pid": pid}
    if pid:
        report["status"] = {k: fields[k].split() for k in
                            ("Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "NoNewPrivs")}
        # capabilities and no_new_privs are per thread: vCPUs, disk workers, io_uring's
        report["threads"], report["privileged_threads"] = 0, []
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                t = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
            report["threads"] += 1
            if any(int(t[k].split()[0], 16) for k in ("CapEff", "CapPrm", "CapBnd")) or \
                    t["NoNewPrivs"].split() != ["1"] or t["Uid"].split()[0] != str(JAIL_ID):
                report["privileged_threads"].append(t.get("Name", "").strip())
        report["root"] = os.listdir(f"/proc/{pid}/root")
        report["in_netns"] = (os.stat(f"/proc/{pid}/ns/net").st_ino ==
                              os.stat(f"/run/netns/{NETNS}").st_ino)
        cgroups = [d for d in os.listdir(f"{CGROUP_ROOT}/kiln") if d.startswith("vm-")]
        report["cgroups"] = cgroups
        for d in cgroups:
            base = f"{CGROUP_ROOT}/kiln/{d}"
            with open(f"{base}/cgroup.procs") as f:
                if str(pid) in f.read().split():
                    report["cgroup"] = d
                    for knob in ("memory.current", "memory.max", "pids.max", "pids.current"):
                        with open(f"{base}/{knob}") as k:
                            report[knob] = k.read().strip()
    with open(out + ".tmp", "w") as f:
        json.dump(report, f)
    os.rename(out + ".tmp", out)


# ---- driver ----------------------------------------------------------------

def leftover_cgroups(host):
    out = host.check(f"ls {CGROUP_ROOT}/kiln 2>/dev/null | grep '^vm-' || true")
    return out.split()


def mount_cgroup2(host, r):
    status, _ = host.run("grep -q ' - cgroup2 ' /proc/self/mountinfo || "
                         f"mount -t cgroup2 none {CGROUP_ROOT}")
    if not r.check("cgroup2 is mounted in the stock-KVM host", status == 0):
        return False
    out = host.check(f"cat {CGROUP_ROOT}/cgroup.controllers")
    return r.check("cgroup2 offers memory, cpu and pids",
                   {"memory", "cpu", "pids"} <= set(out.split()), out.strip())


def memory_limit(host, r, kiln, memtouch):
    base = [kiln, "run", "--kernel", memtouch, "--kernel-format", "raw", "-m", "256M",
            "--jail", "/run/tmp/jail-mem", "--jail-cgroup", "memory.max=64M"]
    over = shlex.join(base + ["--cmdline", "touch=192"])
    status, out = host.run(f"{over} </dev/null 2>&1; echo rc=$?", timeout=300)
    r.check("a guest touching 192M under memory.max=64M is killed by the OOM killer (exit 5)",
            "rc=5" in out and "OOM killer" in out and "touched all" not in out,
            out.strip()[-400:])
    under = shlex.join(base + ["--cmdline", "touch=32"])
    status, out = host.run(f"{under} </dev/null 2>&1; echo rc=$?", timeout=300)
    r.check("a guest touching 32M under memory.max=64M runs to the end (exit 0)",
            "rc=0" in out and "touched all" in out, out.strip()[-400:])
    left = leftover_cgroups(host)
    r.check("no VM cgroup is left behind", not left, str(left))


def check_report(r, rep):
    label = "jailed Linux guest"
    if not r.check(f"{label}: the agent finds the VM process", bool(rep.get("pid")),
                   f"pid {rep.get('pid')}" if rep.get("pid") else str(rep)):
        return
    st = rep["status"]
    r.check(f"{label}: runs as uid/gid {JAIL_ID}",
            st["Uid"] == [str(JAIL_ID)] * 4 and st["Gid"] == [str(JAIL_ID)] * 4,
            f"Uid {st['Uid']} Gid {st['Gid']}")
    r.check(f"{label}: no capabilities (CapEff, CapPrm, CapBnd 0)",
            all(int(st[k][0], 16) == 0 for k in ("CapEff", "CapPrm", "CapBnd")),
            " ".join(f"{k} {st[k][0]}" for k in ("CapEff", "CapPrm", "CapBnd")))
    r.check(f"{label}: NoNewPrivs 1", st["NoNewPrivs"] == ["1"], str(st["NoNewPrivs"]))
    r.check(f"{label}: all {rep.get('threads')} threads (vCPU, disk workers) are unprivileged "
            "with no_new_privs", rep.get("threads", 0) > 2 and not rep.get("privileged_threads"),
            f"privileged: {rep.get('privileged_threads')}")
    r.check(f"{label}: its root is the empty jail directory", rep["root"] == [], str(rep["root"]))
    r.check(f"{label}: it is in the network namespace {NETNS}", rep.get("in_netns") is True)
    r.check(f"{label}: it is in its own cgroup with the limits asked for",
            rep.get("cgroup") is not None and rep.get("memory.max") == str(1 << 30) and
            rep.get("pids.max") == "64",
            f"{rep.get('cgroup')}: memory.max {rep.get('memory.max')}, pids.max {rep.get('pids.max')}")
    current = int(rep.get("memory.current", "0"))
    r.check(f"{label}: guest memory is charged to the VM's cgroup (memory.current "
            f"{current >> 20} MiB)", current > 32 << 20)


def jailed_linux(host, r, vmm, guest, scratch):
    label = "jailed Linux guest"
    for name in ("jail-go", "jail-report.json"):
        try:
            os.unlink(os.path.join(scratch, name))
        except FileNotFoundError:
            pass
    me = os.path.abspath(__file__)
    host.check(f"python3 {shlex.quote(me)} --agent {shlex.quote(scratch)} "
               f">{shlex.quote(scratch)}/agent.log 2>&1 &")
    cmd = vmm.command(kernel=f"{guest}/vmlinuz", initrd=f"{guest}/initramfs.cpio.gz",
                      cmdline=GUEST_APPEND, mem="256M", cpus=1)
    # the disk thread pool, whose workers must start after the jail to be confined too
    cmd = "env KILN_BLK_ENGINE=threads " + cmd
    host.check("modprobe tun; test -c /dev/net/tun", timeout=60)
    host.check(f"ip netns add {NETNS} && ip -n {NETNS} link set lo up && "
               f"ip -n {NETNS} tuntap add dev tap0 mode tap && "
               f"ip -n {NETNS} addr add {TAP_HOST}/24 dev tap0 && "
               f"ip -n {NETNS} link set tap0 up && rm -f {DISK} && truncate -s 64M {DISK}")
    cmd += f" --rng --disk {DISK} --net tap=tap0 --jail /run/tmp/jail-linux" \
           f" --jail-netns {NETNS} --jail-cgroup memory.max=1G,pids.max=64,cpu.max=max"
    started = time.monotonic()
    host.spawn(cmd, limit=VMM_LIMIT)
    if not wait_guest_ready(host, r, label, started):
        return False
    status, out = guest_run(host, "echo jailed-$((6*7))")
    r.check(f"{label}: the guest shell works", "jailed-42" in out, out.strip())
    status, out = guest_run(host, "echo jailed-disk | dd of=/dev/vda bs=512 conv=sync "
                                  "2>/dev/null && sync && dd if=/dev/vda bs=512 count=1 "
                                  "2>/dev/null | head -c 11", timeout=60)
    r.check(f"{label}: the guest writes and reads its disk", "jailed-disk" in out, out.strip())
    status, out = guest_run(host, f"ip link set eth0 up && ip addr add {TAP_GUEST}/24 dev eth0"
                                  f" && ping -c 3 -W 10 {TAP_HOST}", timeout=90)
    r.check(f"{label}: the guest pings the host through the tap device in {NETNS}",
            "3 packets received" in out, out.strip()[-200:])
    open(os.path.join(scratch, "jail-go"), "w").close()
    report = os.path.join(scratch, "jail-report.json")
    deadline = time.monotonic() + 60
    while not os.path.exists(report) and time.monotonic() < deadline:
        time.sleep(0.5)
    try:
        with open(report) as f:
            check_report(r, json.load(f))
    except (OSError, ValueError) as e:
        r.fail(f"{label}: the agent reports on the VM process", str(e))
    type_line(host, "poweroff")
    status = host.wait_exit(timeout=120)
    r.check(f"{label}: poweroff ends kiln with status 0", status == 0, f"status {status}")
    r.timing(f"{label}: VMM start to exit", time.monotonic() - started)
    left = leftover_cgroups(host)
    r.check(f"{label}: its cgroup is removed", not left, str(left))
    out = host.check(f"head -c 11 {DISK}; ip netns del {NETNS}")
    r.check(f"{label}: the guest's write reached the disk image", "jailed-disk" in out,
            out.strip())
    return True


def main():
    args, vmm, guest, r = setup("test_jail", __doc__)
    memtouch = os.environ.get("KILN_MICRO_MEMTOUCH", "")
    if vmm.name != "kiln" or not os.path.exists(memtouch):
        print("SKIP: needs kiln as the inner VMM and KILN_MICRO_MEMTOUCH (the memtouch guest)")
        return 77
    host = boot_outer(r, os.path.join(args.log_dir, "test_jail.transcript.log"))
    if host is None:
        return r.finish()
    try:
        if mount_cgroup2(host, r):
            memory_limit(host, r, vmm.path, os.path.abspath(memtouch))
            jailed_linux(host, r, vmm, guest, host.scratch)
    except HostError as e:
        r.fail("stock-KVM host session", str(e))
    finally:
        host.close()
    return r.finish()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--agent":
        agent(sys.argv[2])
        sys.exit(0)
    run(main)
