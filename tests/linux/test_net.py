#!/usr/bin/env python3
"""virtio-net: kiln's network device on a tap device and on user-mode networking.

  0: bad input, run directly on this machine with the raw micro-guest
     (build dir's guest/micro/hello.bin): --net tap=NAME of a tap that does not
     exist exits 6 with "no such tap device" and creates nothing; a hostfwd host
     port already in use exits 6 with "host port N is already in use"; an
     existing tap (in a network namespace the test creates) is accepted.
  In the stock-KVM host (one outer boot for all of the following):
  T: tap. A network namespace with tap0 at 192.168.100.1/24 (private, nothing
     leaves it); kiln runs inside it with --net tap=tap0; the guest takes
     192.168.100.2/24. MAC as configured, ping both ways, 100 MiB TCP
     host->guest and 20 MiB guest->host whose md5sums match (busybox nc in the
     guest; guest->host is the smaller one because a long heavy guest transmit
     is what brings down the stock-KVM host's nested KVM, see linuxtest.run());
     the guest resets the device (virtio_net
     unbind/bind) while receiving and the network works again; a guest reboot
     brings it back too; poweroff exits 0.
  U: user networking, --net user,hostfwd=tcp::2222-:22,hostfwd=tcp::5002-:5002
     (also in a namespace of its own): the default guest's boot-time DHCP, and
     udhcpc again at its shell, give it 10.0.2.15, its default route and DNS;
     a connection to host port 2222 reaches a server in the guest on port 22;
     20 MiB each way with matching md5sums.
  With KILN_NET_PERF=1 (a benchmark, so not by default): TCP throughput both
  ways (netbench send/recv) and TCP request latency (netbench rr in the
  stock-KVM host against netbench echo in the guest, on the host->guest
  throughput's address and port: 64-byte request and reply, TCP_NODELAY, the
  median of KILN_NET_RR_COUNT (2000) round trips) for kiln, then QEMU's
  virtio-net-pci (-M q35, no vhost) over -netdev tap and -netdev user in the
  same outer boot, and kiln with the guest's transmit offloads off
  (virtio_net csum=0 gso=0). KILN_NET_BENCH_SECONDS (10) per throughput run,
  KILN_NET_BENCH_REPS (1) runs of each. KILN_NET_ONLY="kiln user,qemu user" runs only the
  scenarios named (kiln tap, kiln user, qemu tap, qemu user, kiln-notxoffload tap and user),
  without kiln's transfers, driver reset and reboot: figures only, as bench/run.py wants.

The host side of each check runs in the stock-KVM host through a small agent
(a process in the namespace that runs the scripts this driver drops into the
shared scratch directory), since the outer shell's terminal belongs to the VMM.
The guest gets an extra initramfs (appended to the default guest's) with the
static netbench tool (tests/linux/netbench.c).

Prints PASS/FAIL, TIME and PERF lines; exits 1 on any failure, 77 without an
inner VMM.
    tests/linux/test_net.py --kiln build/src/kiln
"""
import gzip
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from linuxtest import (GUEST_APPEND, PROMPT, boot_outer, guest_run, run,  # noqa: E402
                       setup, type_line, wait_guest_ready)
from outerhost import HostError  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EXIT_DEVICE = 6
VMM_LIMIT = 900
GUEST_MEM = "768M"
MAC = "52:54:00:12:34:56"
PERF = os.environ.get("KILN_NET_PERF") == "1"
BENCH_SECONDS = int(os.environ.get("KILN_NET_BENCH_SECONDS", "10"))
BENCH_REPS = int(os.environ.get("KILN_NET_BENCH_REPS", "1"))
RR_COUNT = int(os.environ.get("KILN_NET_RR_COUNT", "2000"))
# Only these scenarios (comma-separated labels, e.g. "kiln user,qemu user"): bench/run.py
# runs again what an environment failure cut short.
ONLY = [x for x in os.environ.get("KILN_NET_ONLY", "").split(",") if x]
RR_SIZE = 64  # netbench.c's RR_SIZE
RR_LIMIT = 300  # s for RR_COUNT round trips: a few ms each at worst under the TCG outer host
TAP_HOST, TAP_GUEST = "192.168.100.1", "192.168.100.2"

# Runs in the stock-KVM host, inside a network namespace: executes each
# req-N.sh dropped into its directory (concurrently), output to out-N, exit
# status to done-N. A file named "stop" ends it.
AGENT = r"""
import os, subprocess, sys, time
d = sys.argv[1]
procs = {}
while not os.path.exists(os.path.join(d, "stop")):
    for name in sorted(os.listdir(d)):
        if name.startswith("req-") and name.endswith(".sh"):
            n = name[4:-3]
            run = os.path.join(d, "run-%s.sh" % n)
            os.rename(os.path.join(d, name), run)
            out = open(os.path.join(d, "out-%s" % n), "wb")
            procs[n] = subprocess.Popen(["bash", run], stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
    for n, p in list(procs.items()):
        if p.poll() is not None:
            tmp = os.path.join(d, "done-%s.tmp" % n)
            with open(tmp, "w") as f:
                f.write(str(p.returncode))
            os.rename(tmp, os.path.join(d, "done-%s" % n))
            del procs[n]
    time.sleep(0.1)
for p in procs.values():
    p.kill()
"""

# Host side of the md5 transfers (python3 in the stock-KVM host).
MD5_TOOL = r"""
import hashlib, os, socket, sys, time
def recv(addr, port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port)); ls.listen(1)
    print("listening", flush=True)
    s, _ = ls.accept()
    h, n, t = hashlib.md5(), 0, time.monotonic()
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        h.update(b); n += len(b)
    print("md5 %s bytes %d seconds %.2f" % (h.hexdigest(), n, time.monotonic() - t))
def send(addr, port, mib):
    data = os.urandom(mib << 20)
    end = time.monotonic() + 60
    while True:
        try:
            s = socket.create_connection((addr, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.3)
    s.settimeout(None)
    t = time.monotonic()
    s.sendall(data); s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    print("md5 %s bytes %d seconds %.2f" % (hashlib.md5(data).hexdigest(), len(data),
                                           time.monotonic() - t))
if sys.argv[1] == "recv":
    recv(sys.argv[2], int(sys.argv[3]))
else:
    send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
"""

# Host side of the port-forward check: one line from the guest's server.
FWD_TOOL = r"""
import socket, sys, time
end = time.monotonic() + 60
while True:
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
        if data:
            print(data.decode(errors="replace").strip())
            break
    except OSError as e:
        print("retry:", e)
    if time.monotonic() > end:
        sys.exit(1)
    time.sleep(0.5)
"""


# ---- the extra initramfs ----------------------------------------------------

def newc(entries):
    """A newc cpio archive from (name, mode, data) entries."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], 1):
        nb = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0]
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + nb
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def cpio_file(archive_gz, wanted):
    """The contents of `wanted` in a gzip'd newc archive, or None."""
    with gzip.open(archive_gz, "rb") as f:
        data = f.read()
    pos = 0
    while pos + 110 <= len(data) and data[pos:pos + 6] == b"070701":
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        size, namesize = fields[6], fields[11]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        if name == wanted:
            return data[pos:pos + size]
        if name == "TRAILER!!!":
            break
        pos = (pos + size + 3) & ~3
    return None


def build_netbench(out_dir):
    src = os.path.join(HERE, "netbench.c")
    out = os.path.join(out_dir, "netbench")
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not gcc:
        return None
    proc = subprocess.run([gcc, "-O2", "-static", "-o", out, src], capture_output=True, text=True)
    return out if proc.returncode == 0 else None


def build_initrd(guest_dir, out, netbench, modules_load=None):
    """The default guest's initramfs with our files appended: the kernel unpacks
    concatenated archives in order, later files replacing earlier ones."""
    entries = [("etc", 0o40755, b"")]
    if netbench:
        with open(netbench, "rb") as f:
            entries.append(("bin/netbench", 0o100755, f.read()))
    if modules_load is not None:
        entries.append(("etc/modules.load", 0o100644, modules_load))
    with open(os.path.join(guest_dir, "initramfs.cpio.gz"), "rb") as f:
        base = f.read()
    with open(out, "wb") as f:
        f.write(base)
        f.write(gzip.compress(newc(entries)))


def no_offload_modules(guest_dir):
    """The guest's module list with virtio_net's transmit offloads turned off."""
    data = cpio_file(os.path.join(guest_dir, "initramfs.cpio.gz"), "etc/modules.load")
    if data is None:
        return None
    lines = []
    for line in data.decode().splitlines():
        if re.search(r"/virtio_net\.ko$", line.split()[0] if line.split() else ""):
            line = line.split()[0] + " csum=0 gso=0"
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()


# ---- the host side, through the agent --------------------------------------

class Agent:
    def __init__(self, host, name, netns):
        self.host = host
        self.dir = os.path.join(host.scratch, "agent-" + name)
        os.makedirs(self.dir)
        self.seq = 0
        script = os.path.join(host.scratch, "agent.py")
        if not os.path.exists(script):
            with open(script, "w") as f:
                f.write(AGENT)
        host.check(f"setsid -f ip netns exec {netns} python3 {script} {self.dir} "
                   f"</dev/null >{self.dir}/agent.log 2>&1")

    def start(self, cmd):
        self.seq += 1
        tmp = os.path.join(self.dir, f"new-{self.seq}")
        with open(tmp, "w") as f:
            f.write(cmd + "\n")
        os.rename(tmp, os.path.join(self.dir, f"req-{self.seq}.sh"))
        return self.seq

    def output(self, n):
        try:
            with open(os.path.join(self.dir, f"out-{n}"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait(self, n, timeout):
        end = time.monotonic() + timeout
        done = os.path.join(self.dir, f"done-{n}")
        while not os.path.exists(done):
            if time.monotonic() > end:
                raise HostError(f"agent: '{self.cmd_of(n)}' still running after {timeout} s: "
                                f"{self.output(n)[-300:]!r}")
            time.sleep(0.2)
        with open(done) as f:
            return int(f.read().strip() or 1), self.output(n)

    def wait_output(self, n, pattern, timeout):
        end = time.monotonic() + timeout
        while not re.search(pattern, self.output(n)):
            if time.monotonic() > end:
                raise HostError(f"agent: no {pattern!r} from '{self.cmd_of(n)}'")
            time.sleep(0.2)

    def run(self, cmd, timeout=60):
        return self.wait(self.start(cmd), timeout)

    def cmd_of(self, n):
        for name in (f"run-{n}.sh", f"req-{n}.sh"):
            try:
                with open(os.path.join(self.dir, name)) as f:
                    return f.read().strip()[:100]
            except OSError:
                pass
        return "?"

    def stop(self):
        with open(os.path.join(self.dir, "stop"), "w"):
            pass


# ---- VMM command lines -------------------------------------------------------

def kiln_cmd(kiln, guest, initrd, net, no_reboot=True):
    return " ".join(shlex.quote(a) for a in [
        kiln, "run", "--kernel", f"{guest}/vmlinuz", "--initrd", initrd,
        "--cmdline", GUEST_APPEND, "-m", GUEST_MEM, "-c", "1", "--net", net] +
        (["--no-reboot"] if no_reboot else []))


def qemu_cmd(guest, initrd, netdev):
    return " ".join(shlex.quote(a) for a in [
        "qemu-system-x86_64", "-enable-kvm", "-M", "q35", "-cpu", "host", "-nodefaults",
        "-no-user-config", "-display", "none",
        "-chardev", "stdio,id=con,mux=on,signal=off", "-serial", "chardev:con",
        "-mon", "chardev=con", "-kernel", f"{guest}/vmlinuz", "-initrd", initrd,
        "-append", GUEST_APPEND, "-m", GUEST_MEM, "-smp", "1", "-no-reboot",
        "-netdev", netdev, "-device", f"virtio-net-pci,netdev=n0,mac={MAC}"])


# ---- checks -------------------------------------------------------------------

def guest_check(host, r, what, cmd, pattern=None, timeout=60):
    """Runs `cmd` in the guest; PASS if it exits 0 (and prints `pattern`)."""
    try:
        status, out = guest_run(host, cmd, timeout=timeout)
    except HostError as e:
        r.fail(what, str(e))
        return None
    m = re.search(pattern, out) if pattern else None
    ok = status == 0 and (pattern is None or m is not None)
    r.check(what, ok, "" if ok else f"status {status}: {out.strip()[-300:]!r}")
    return m if pattern else (out if ok else None)


def md5_of(text):
    m = re.search(r"\b([0-9a-f]{32})\b", text)
    return m.group(1) if m else None


def transfer_out(host, r, agent, label, host_addr, guest_dst, mib):
    """guest -> host: md5 on both ends."""
    what = f"{label}: {mib} MiB guest->host, md5 matches"
    port = host_port()
    n = agent.start(f"exec python3 {host.scratch}/md5tool.py recv {host_addr} {port}")
    try:
        agent.wait_output(n, "listening", 30)
        status, out = guest_run(host, f"dd if=/dev/urandom of=/tmp/f bs=1M count={mib} "
                                      f"2>/dev/null; md5sum /tmp/f", timeout=300)
        want = md5_of(out)
        t = time.monotonic()
        try:
            status, _ = guest_run(host, f"nc {guest_dst} {port} </tmp/f; rm -f /tmp/f",
                                  timeout=600)
        except HostError as e:
            raise HostError(f"{e}{guest_recover(host)}") from e
        hstatus, hout = agent.wait(n, 120)
        got = md5_of(hout)
        r.check(what, status == 0 and want is not None and got == want,
                f"guest {want} host {got} ({hout.strip()[-120:]})")
        r.timing(f"{label}: {mib} MiB guest->host (nc)", time.monotonic() - t)
    except HostError as e:
        r.fail(what, str(e))


def transfer_in(host, r, agent, label, connect_addr, port, mib):
    """host -> guest: md5 on both ends."""
    what = f"{label}: {mib} MiB host->guest, md5 matches"
    try:
        type_line(host, f"nc -l -p {port} >/tmp/g &")
        time.sleep(1)
        t = time.monotonic()
        n = agent.start(f"exec python3 {host.scratch}/md5tool.py send {connect_addr} {port} {mib}")
        hstatus, hout = agent.wait(n, 600)
        status, out = guest_run(host, "wait; md5sum /tmp/g; rm -f /tmp/g", timeout=120)
        want, got = md5_of(hout), md5_of(out)
        r.check(what, hstatus == 0 and want is not None and got == want,
                f"host {want} guest {got}")
        r.timing(f"{label}: {mib} MiB host->guest (nc)", time.monotonic() - t)
    except HostError as e:
        r.fail(what, str(e))


def mbps(text):
    m = re.search(r"netbench: recv \d+ bytes in [0-9.]+ s = ([0-9.]+) MB/s", text)
    return float(m.group(1)) if m else None


def host_port():
    """A fresh host-side port for each receiver, so one left behind by a failed
    run cannot hold the next one's."""
    global _NEXT_PORT
    _NEXT_PORT += 1
    return _NEXT_PORT


_NEXT_PORT = 5100


def guest_recover(host):
    """After a guest command timed out: interrupt it and say whether the
    network still answers (for the failure message)."""
    host.send(b"\x03")
    try:
        host.expect(PROMPT, timeout=30)
        _, out = guest_run(host, "ip -s link show eth0 | tail -4 | tr -s ' '; "
                                 "ping -c 2 -W 5 $(ip route | awk '/default/ {print $3}' | "
                                 "head -1 || echo 192.168.100.1)", timeout=60)
        return " | guest after ^C: " + " ".join(out.split())[-300:]
    except HostError as e:
        return f" | guest unresponsive after ^C: {e}"


def bench_once(host, agent, guest_to_host, host_to_guest, secs):
    """One netbench run each way: (guest->host, host->guest) in MB/s (None if none)."""
    limit = secs + 90
    port = host_port()
    n = agent.start(f"exec {host.scratch}/netbench recv {port}")
    agent.wait_output(n, "listening", 30)
    try:
        guest_run(host, f"netbench send {guest_to_host} {port} {secs}", timeout=limit)
    except HostError as e:
        raise HostError(f"guest->host: {e}{guest_recover(host)}") from e
    _, out = agent.wait(n, limit)
    out_rate = mbps(out)
    type_line(host, "netbench recv 5002 >/tmp/nb 2>&1 &")
    time.sleep(1)
    addr, port = host_to_guest
    n = agent.start(f"exec {host.scratch}/netbench send {addr} {port} {secs}")
    agent.wait(n, limit)
    _, out = guest_run(host, "wait; cat /tmp/nb", timeout=limit)
    return out_rate, mbps(out)


def rr_figures(text):
    """(median, p99, min) in µs from netbench rr's line, or None."""
    m = re.search(r"netbench: rr \d+ round trips: median ([0-9.]+) us p99 ([0-9.]+) us "
                  r"min ([0-9.]+) us", text)
    return tuple(float(g) for g in m.groups()) if m else None


def latency_once(host, agent, host_to_guest):
    """netbench rr from the host to netbench echo in the guest, on the port the host->guest
    throughput run uses (forwarded under user networking): ((median, p99, min) µs or None,
    netbench rr's output)."""
    addr, port = host_to_guest
    # Started in the same guest_run as the wait for its "listening" line: slirp's forward
    # would otherwise accept the host's connection and close it at once.
    guest_run(host, f"netbench echo {port} >/tmp/nbe 2>&1 & "
                    f"for i in $(seq 50); do grep -q listening /tmp/nbe && break; sleep 0.2; done",
              timeout=60)
    n = agent.start(f"exec {host.scratch}/netbench rr {addr} {port} {RR_COUNT}")
    try:
        status, out = agent.wait(n, RR_LIMIT)
    except HostError as e:
        raise HostError(f"{e}{guest_recover(host)}") from e
    # The echo ends at the client's EOF; one that never got a connection is killed.
    stop = "wait" if status == 0 else "kill $! 2>/dev/null; wait"
    guest_run(host, f"{stop}; cat /tmp/nbe; rm -f /tmp/nbe", timeout=60)
    return (rr_figures(out) if status == 0 else None), out


def bench(host, r, agent, label, guest_to_host, host_to_guest, perf):
    """netbench both ways, then request/reply latency, BENCH_REPS times; the receiver's
    MB/s and the median round trip in µs go to `perf`."""
    if perf is None:
        return
    for _ in range(BENCH_REPS):
        try:
            out_rate, in_rate = bench_once(host, agent, guest_to_host, host_to_guest,
                                           BENCH_SECONDS)
        except HostError as e:
            r.fail(f"{label}: netbench", str(e))
            return
        for direction, v in (("guest->host", out_rate), ("host->guest", in_rate)):
            perf.setdefault(f"{label} {direction}", []).append(v)
            r.check(f"{label}: netbench {direction}", v is not None, f"{v} MB/s")
        try:
            rr, out = latency_once(host, agent, host_to_guest)
        except HostError as e:
            r.fail(f"{label}: netbench rr", str(e))
            return
        perf.setdefault(f"{label} rr", []).append(rr[0] if rr else None)
        r.check(f"{label}: netbench rr (host->guest->host)", rr is not None,
                "median %.1f us, p99 %.1f us, min %.1f us" % rr if rr else
                f"no figures: {out.strip()[-200:]!r}")


def start_vmm(host, r, label, cmd):
    started = time.monotonic()
    host.spawn(cmd, limit=VMM_LIMIT)
    return wait_guest_ready(host, r, label, started)


def stop_vmm(host, r, label):
    type_line(host, "poweroff")
    try:
        status = host.wait_exit(timeout=120)
        r.check(f"{label}: poweroff ends the VMM with status 0", status == 0, f"status {status}")
    except HostError as e:
        r.fail(f"{label}: poweroff ends the VMM with status 0", str(e))
        host.abort_spawned()


# ---- scenarios -------------------------------------------------------------

def make_tap_netns(host, ns):
    host.check(f"ip netns add {ns} && ip -n {ns} link set lo up && "
               f"ip -n {ns} tuntap add dev tap0 mode tap && "
               f"ip -n {ns} addr add {TAP_HOST}/24 dev tap0 && ip -n {ns} link set tap0 up")


TAP_UP = f"ip link set eth0 up && ip addr add {TAP_GUEST}/24 dev eth0"
PING_HOST = f"ping -c 3 -W 10 {TAP_HOST}"


def check_driver_reset(host, r, label, agent):
    """The guest unbinds and rebinds virtio_net while the host streams to it:
    the device is reset in the middle of receiving, and must work again."""
    type_line(host, "netbench recv 5004 >/tmp/nb4 2>&1 &")
    time.sleep(1)
    n = agent.start(f"exec {host.scratch}/netbench send {TAP_GUEST} 5004 15")
    time.sleep(5)
    guest_check(host, r, f"{label}: virtio_net unbind/bind while receiving",
                "d=$(basename $(readlink /sys/class/net/eth0/device)); "
                "echo $d >/sys/bus/virtio/drivers/virtio_net/unbind && "
                "echo $d >/sys/bus/virtio/drivers/virtio_net/bind && sleep 1 && " + TAP_UP,
                timeout=90)
    guest_check(host, r, f"{label}: the network works after the driver reset", PING_HOST,
                r"3 packets received", timeout=90)
    guest_run(host, "kill %1 2>/dev/null; wait", timeout=60)
    try:
        agent.wait(n, 90)
    except HostError:
        pass  # the stream may not survive the reset; only the device has to


def check_reboot(host, r, label):
    """A guest reboot (kiln restarts it in place): the device and its backend
    come back for the next driver."""
    t = time.monotonic()
    type_line(host, "reboot")
    if not wait_guest_ready(host, r, f"{label} after reboot", t, start_what="reboot typed"):
        return False
    guest_check(host, r, f"{label}: after a reboot, guest configures {TAP_GUEST}/24", TAP_UP)
    guest_check(host, r, f"{label}: after a reboot, guest pings the host", PING_HOST,
                r"3 packets received", timeout=90)
    return True


def scenario_tap(host, r, label, cmd, agent, full, perf):
    if not start_vmm(host, r, label, cmd):
        return False
    guest_check(host, r, f"{label}: eth0 has the configured MAC",
                "cat /sys/class/net/eth0/address", MAC)
    guest_check(host, r, f"{label}: guest configures {TAP_GUEST}/24", TAP_UP)
    guest_check(host, r, f"{label}: guest pings the host", PING_HOST, r"3 packets received",
                timeout=90)
    try:
        status, out = agent.run(f"busybox ping -c 3 -W 10 {TAP_GUEST}", timeout=90)
        r.check(f"{label}: host pings the guest", status == 0, out.strip()[-120:])
    except HostError as e:
        r.fail(f"{label}: host pings the guest", str(e))
    if full:
        transfer_in(host, r, agent, label, TAP_GUEST, 5003, 100)
        transfer_out(host, r, agent, label, TAP_HOST, TAP_HOST, 20)
    bench(host, r, agent, label, TAP_HOST, (TAP_GUEST, 5002), perf)
    if full:
        check_driver_reset(host, r, label, agent)
        if not check_reboot(host, r, label):
            return False
    stop_vmm(host, r, label)
    return True


def scenario_user(host, r, label, cmd, agent, full, perf, mtu=None):
    mark = len(host.buf)
    if not start_vmm(host, r, label, cmd):
        return False
    boot = re.search(r"kiln-guest: eth0 ([^\r\n]*)", host.buf[mark:])
    r.check(f"{label}: the guest's boot-time DHCP gives eth0 10.0.2.15/24",
            boot is not None and boot.group(1) == "10.0.2.15/24",
            boot.group(0) if boot else "no 'kiln-guest: eth0' line")
    m = guest_check(host, r, f"{label}: DHCP again (udhcpc at the shell) gives 10.0.2.15",
                    "udhcpc -i eth0 -n -q -t 5 -T 2; ip -4 addr show eth0",
                    r"inet 10\.0\.2\.15/24", timeout=120)
    if m:
        guest_check(host, r, f"{label}: default route via 10.0.2.2, DNS 10.0.2.3",
                    "ip route; cat /etc/resolv.conf",
                    r"default via 10\.0\.2\.2(.|\n)*nameserver 10\.0\.2\.3")
    if mtu:
        guest_check(host, r, f"{label}: guest sets MTU {mtu}", f"ip link set eth0 mtu {mtu}")
    # A one-line server on guest port 22, reached through host port 2222.
    type_line(host, "echo kiln-hostfwd-ok-$((6*7)) | nc -l -p 22 &")
    time.sleep(1)
    try:
        status, out = agent.run(f"python3 {host.scratch}/fwdtool.py 2222", timeout=90)
        r.check(f"{label}: host port 2222 reaches the guest's server on port 22",
                status == 0 and "kiln-hostfwd-ok-42" in out, out.strip()[-200:])
        guest_run(host, "wait", timeout=30)
    except HostError as e:
        r.fail(f"{label}: host port 2222 reaches the guest's server on port 22", str(e))
    if full:
        transfer_out(host, r, agent, label, "127.0.0.1", "10.0.2.2", 20)
        transfer_in(host, r, agent, label, "127.0.0.1", 5002, 20)
    bench(host, r, agent, label, "10.0.2.2", ("127.0.0.1", 5002), perf)
    stop_vmm(host, r, label)
    return True


def run_scenario(host, r, fn, label, *args):
    """Runs one VMM's scenario; its figures in `perf` (the last argument) count only if
    every check in it passed, so a guest or host that died midway leaves none behind."""
    failed_before = r.failed
    completed = False
    try:
        completed = fn(host, r, label, *args)
    except HostError as e:
        r.fail(label, str(e))
    perf = args[-1]
    if perf is not None and r.failed > failed_before:
        dropped = [k for k in perf if k.startswith(label + " ")]
        for key in dropped:
            del perf[key]
        if dropped:
            print(f"PERF: {label}: figures dropped, the scenario failed", flush=True)
    if completed:
        return True
    if not host.abort_spawned():
        r.fail("outer shell recovered after a failed scenario")
        return False
    return True


# ---- bad input, on this machine ---------------------------------------------

def run_kiln(argv, netns=None, timeout=30):
    cmd = (["ip", "netns", "exec", netns] if netns else []) + argv
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        return p.returncode, p.stderr
    except subprocess.TimeoutExpired:
        return None, "timed out"


def bad_input_checks(r, kiln, micro):
    if not os.path.exists(micro):
        print(f"SKIP: bad-input checks: no micro-guest at {micro}")
        return
    base = [kiln, "run", "--kernel", micro, "--kernel-format", "raw"]
    # Host port in use: something listens on it already.
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("0.0.0.0", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    rc, err = run_kiln(base + ["--net", f"user,hostfwd=tcp::{port}-:22"])
    blocker.close()
    r.check("bad input: hostfwd port in use exits 6 with a clear message",
            rc == EXIT_DEVICE and f"kiln: --net user: host port {port} is already in use" in err,
            f"status {rc}: {err.strip()[-200:]!r}")
    rc, err = run_kiln(base + ["--net", f"user,hostfwd=tcp::{port}-:22"])
    r.check("bad input: the same port once free is accepted", rc == 0,
            f"status {rc}: {err.strip()[-200:]!r}")
    if os.geteuid() != 0 or not shutil.which("ip") or not os.path.exists("/dev/net/tun"):
        print("SKIP: tap bad-input checks need root, ip and /dev/net/tun")
        return
    ns = f"kilnnet{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", ns]).returncode != 0:
        print("SKIP: tap bad-input checks: cannot create a network namespace")
        return
    try:
        rc, err = run_kiln(base + ["--net", "tap=tap9"], netns=ns)
        created = subprocess.run(["ip", "-n", ns, "link", "show", "tap9"],
                                 capture_output=True).returncode == 0
        r.check("bad input: a tap that does not exist exits 6 with a clear message",
                rc == EXIT_DEVICE and "kiln: --net tap=tap9: no such tap device" in err,
                f"status {rc}: {err.strip()[-200:]!r}")
        r.check("bad input: and no tap9 was created", not created)
        subprocess.run(["ip", "-n", ns, "tuntap", "add", "dev", "tap0", "mode", "tap"],
                       check=True)
        rc, err = run_kiln(base + ["--net", "tap=tap0,mac=52:54:00:ab:cd:ef"], netns=ns)
        r.check("bad input: an existing tap is accepted", rc == 0,
                f"status {rc}: {err.strip()[-200:]!r}")
        subprocess.run(["ip", "-n", ns, "tuntap", "add", "dev", "tun0", "mode", "tun"],
                       check=True)
        rc, err = run_kiln(base + ["--net", "tap=tun0"], netns=ns)
        r.check("bad input: a tun (not tap) device exits 6", rc == EXIT_DEVICE and
                "not a tap device" in err, f"status {rc}: {err.strip()[-200:]!r}")
    finally:
        subprocess.run(["ip", "netns", "del", ns])


# ---- main ----------------------------------------------------------------------

def write_tools(host, netbench):
    for name, text in (("md5tool.py", MD5_TOOL), ("fwdtool.py", FWD_TOOL)):
        with open(os.path.join(host.scratch, name), "w") as f:
            f.write(text)
    # The stock-KVM host runs the same static netbench from the scratch directory.
    if netbench:
        shutil.copy(netbench, os.path.join(host.scratch, "netbench"))


def report(perf):
    if not perf:
        return
    med = {}
    latency = [k for k in perf if k.endswith(" rr")]
    for keys, title in (
            ([k for k in perf if k not in latency],
             f"TCP throughput, MB/s: netbench's receiver, {BENCH_SECONDS} s runs, "
             f"median of {BENCH_REPS}"),
            (latency,
             f"TCP request latency, us (lower is better): netbench rr, host to the guest's "
             f"echo and back, {RR_SIZE}-byte request and reply, median round trip of "
             f"{RR_COUNT}; median of {BENCH_REPS}")):
        if keys:
            print(f"PERF: {title}", flush=True)
        for key in keys:
            vals = perf[key]
            good = [v for v in vals if v is not None]
            med[key] = statistics.median(good) if good else None
            runs = " ".join(f"{v:.1f}" if v is not None else "n/a" for v in vals)
            shown = f"{med[key]:.1f}" if med[key] is not None else "n/a"
            print(f"PERF: {key}: {shown} (runs: {runs})", flush=True)
    for net in ("tap", "user"):
        for direction in ("guest->host", "host->guest", "rr"):
            k, q = med.get(f"kiln {net} {direction}"), med.get(f"qemu {net} {direction}")
            if k and q:
                note = " (lower is better)" if direction == "rr" else ""
                print(f"PERF: ratio kiln/qemu {net} {direction}: {k / q:.2f}{note}", flush=True)


def main():
    args, vmm, guest, r = setup("test_net", __doc__)
    kiln = getattr(vmm, "path", None)
    if vmm.name != "kiln":
        print("SKIP: test_net drives kiln's own --net options")
        return 77
    micro = os.path.join(os.path.dirname(os.path.dirname(kiln)), "guest", "micro", "hello.bin")
    bad_input_checks(r, kiln, micro)

    work = tempfile.mkdtemp(prefix="kiln-net-", dir="/tmp")
    try:
        netbench = build_netbench(work)
        if not netbench:
            print("SKIP: netbench (no static gcc): no throughput figures")
        initrd = os.path.join(work, "initrd-net.cpio.gz")
        build_initrd(guest, initrd, netbench)
        initrd_nooff = None
        if PERF:
            mods = no_offload_modules(guest)
            if mods:
                initrd_nooff = os.path.join(work, "initrd-net-nooffload.cpio.gz")
                build_initrd(guest, initrd_nooff, netbench, mods)
        host = boot_outer(r, os.path.join(args.log_dir, "test_net.transcript.log"))
        if host is None:
            return r.finish()
        perf = {} if netbench and PERF else None  # throughput runs are a benchmark: on request
        try:
            write_tools(host, netbench)
            host.check("modprobe tun; test -c /dev/net/tun", timeout=60)
            make_tap_netns(host, "kt")
            host.check("ip netns add ku && ip -n ku link set lo up")
            tap_agent = Agent(host, "tap", "kt")
            user_agent = Agent(host, "user", "ku")
            user_net = "user,hostfwd=tcp::2222-:22,hostfwd=tcp::5002-:5002"
            q_tap = "tap,id=n0,ifname=tap0,script=no,downscript=no"
            q_user = "user,id=n0,hostfwd=tcp::2222-:22,hostfwd=tcp::5002-:5002"
            tap, user = (scenario_tap, "kt", tap_agent), (scenario_user, "ku", user_agent)
            # (label, scenario, VMM command, whether to run the functional checks too)
            scenarios = [
                ("kiln tap", tap, kiln_cmd(kiln, guest, initrd, "tap=tap0", no_reboot=False),
                 True),
                ("kiln user", user, kiln_cmd(kiln, guest, initrd, user_net), True)]
            if PERF:
                scenarios += [("qemu tap", tap, qemu_cmd(guest, initrd, q_tap), False),
                              ("qemu user", user, qemu_cmd(guest, initrd, q_user), False)]
                if initrd_nooff:
                    scenarios += [
                        ("kiln-notxoffload tap", tap,
                         kiln_cmd(kiln, guest, initrd_nooff, "tap=tap0"), False),
                        ("kiln-notxoffload user", user,
                         kiln_cmd(kiln, guest, initrd_nooff, user_net), False)]
            for label, (fn, ns, agent), cmd, full in scenarios:
                if ONLY and label not in ONLY:
                    continue
                # A run for figures (KILN_NET_ONLY) leaves out the functional checks: each
                # minute of traffic is another chance for the environment to fail.
                if not run_scenario(host, r, fn, label, f"ip netns exec {ns} {cmd}", agent,
                                    full and not ONLY, perf):
                    break  # the outer shell did not come back
            tap_agent.stop()
            user_agent.stop()
        except HostError as e:
            r.fail("stock-KVM host setup", str(e))
        finally:
            host.close()
        report(perf)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return r.finish()


if __name__ == "__main__":
    run(main)
