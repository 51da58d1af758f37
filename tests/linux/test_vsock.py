#!/usr/bin/env python3
"""virtio-vsock with a real Linux guest: kiln runs the default guest inside
the stock-KVM host with --vsock cid=3,uds=/run/tmp/.../v.sock, one outer boot for
all checks:

  - a bad uds path (directory missing) ends kiln with status 6, naming --vsock;
  - a stale socket file at the uds path (left by a "crash") is replaced;
  - the guest has /dev/vsock; a tiny static relay (vsock_relay.c, built here
    with gcc -nostdlib, typed into the guest as base64) gives it a client;
  - guest -> host: the guest connects to CID 2 port P, kiln connects to
    uds_P where a host program listens; 1 MiB arrives intact (md5);
  - nobody listens on uds_P: the guest's connect fails at once (RST);
  - host -> guest: a host program connects to uds, sends "CONNECT Q\\n",
    gets "OK <port>\\n", sends 1 MiB that the guest stores intact;
  - both directions at once in one connection, 1 MiB each way;
  - CONNECT to a port nobody listens on, and a malformed request line: the
    host program's connection is closed without "OK";
  - a host program that does not read for 3 s while the guest sends 4 MiB:
    the guest shell stays responsive, every byte arrives, and kiln's memory
    does not grow by the 4 MiB (credit pushes back on the guest);
  - throughput: 16 MiB each way (/dev/zero to /dev/null), timed on the host;
  - poweroff ends kiln with status 0 and removes the uds socket file.

Host programs run in the outer host as this same file in --agent mode,
driven through request/result files in the shared scratch directory.
Prints PASS/FAIL and TIME lines (throughput in MB/s), closes with
"N passed, N failed"; exit 1 on failure, 77 if the inner VMM is not kiln.
"""
import base64
import hashlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

MIB = 1024 * 1024
VMM_LIMIT = 900
GUEST_CID = 3


# ---- agent: runs inside the outer host -------------------------------------

def agent_listen(uds, req, res):
    """Listen on uds_PORT, take one connection, read it to EOF."""
    path = f"{uds}_{req['port']}"
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(req.get("timeout", 120))
    res["listening"] = True
    yield
    conn, _ = srv.accept()
    srv.close()
    os.unlink(path)
    if req.get("delay"):
        time.sleep(req["delay"])
    res["rss_before"] = kiln_rss()
    md5 = hashlib.md5()
    total = 0
    start = None
    conn.settimeout(req.get("timeout", 120))
    while True:
        data = conn.recv(65536)
        if start is None:
            start = time.monotonic()
        if not data:
            break
        md5.update(data)
        total += len(data)
    res.update(bytes=total, md5=md5.hexdigest(), seconds=time.monotonic() - start)
    conn.close()


def agent_connect(uds, req, res):
    """Connect to uds, CONNECT PORT, then send `send` bytes while reading."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(req.get("timeout", 120))
    s.connect(uds)
    s.sendall(req.get("line", f"CONNECT {req['port']}\n").encode())
    line = b""
    while not line.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            break
        line += b
    res["line"] = line.decode("latin-1")
    yield
    if not line.startswith(b"OK "):
        res["closed_without_ok"] = s.recv(1) == b""
        return
    data = os.urandom(req.get("send", 0))
    res["sent_md5"] = hashlib.md5(data).hexdigest()
    got = {"md5": hashlib.md5(), "bytes": 0}

    def reader():
        while True:
            d = s.recv(65536)
            if not d:
                break
            got["md5"].update(d)
            got["bytes"] += len(d)

    t = threading.Thread(target=reader)
    start = time.monotonic()
    t.start()
    s.sendall(data)
    sent_at = time.monotonic()
    s.shutdown(socket.SHUT_WR)
    t.join(req.get("timeout", 120))
    res.update(send_seconds=sent_at - start, seconds=time.monotonic() - start,
               recv_bytes=got["bytes"], recv_md5=got["md5"].hexdigest())
    s.close()


def kiln_rss():
    """VmRSS (KiB) of the kiln process in this (outer) host, or None."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "kiln":
                    continue
            with open(f"/proc/{pid}/status") as f:
                m = re.search(r"VmRSS:\s+(\d+)", f.read())
            return int(m.group(1)) if m else None
        except OSError:
            continue
    return None


def agent_write(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.rename(path + ".tmp", path)


def agent_job(d, n, req):
    res = {}
    try:
        steps = {"listen": agent_listen, "connect": agent_connect}[req["op"]](req["uds"], req, res)
        next(steps)  # up to the point where the driver may go on
        agent_write(f"{d}/ready-{n}.json", res)
        for _ in steps:
            pass
    except Exception as e:  # reported to the driver, which prints the FAIL
        res["error"] = f"{type(e).__name__}: {e}"
        if not os.path.exists(f"{d}/ready-{n}.json"):
            agent_write(f"{d}/ready-{n}.json", res)
    agent_write(f"{d}/res-{n}.json", res)


def agent_main(d):
    """Run requests d/req-N.json in threads, forever (the outer host ends us)."""
    n = 0
    deadline = time.monotonic() + VMM_LIMIT
    while time.monotonic() < deadline:
        path = f"{d}/req-{n}.json"
        if os.path.exists(path):
            with open(path) as f:
                req = json.load(f)
            if req.get("op") == "rss":
                agent_write(f"{d}/res-{n}.json", {"rss": kiln_rss()})
            else:
                threading.Thread(target=agent_job, args=(d, n, req), daemon=True).start()
            n += 1
            continue
        time.sleep(0.05)


# ---- driver: runs on the real machine ---------------------------------------

class Agent:
    def __init__(self, host, d, uds):
        self.host, self.dir, self.uds, self.n = host, d, uds, 0

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.host.check(f"setsid -f /usr/bin/python3 {shlex.quote(os.path.abspath(__file__))} "
                        f"--agent {shlex.quote(self.dir)} >{shlex.quote(self.dir)}/agent.log "
                        "2>&1 </dev/null")

    def request(self, **req):
        """Send a request; return its number once the agent says it is under way."""
        n = self.n
        self.n += 1
        req.setdefault("uds", self.uds)
        agent_write(f"{self.dir}/req-{n}.json", req)
        if req["op"] != "rss":
            self._wait(f"ready-{n}.json", 30)
        return n

    def result(self, n, timeout=120):
        return self._wait(f"res-{n}.json", timeout)

    def _wait(self, name, timeout):
        path = f"{self.dir}/{name}"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if os.path.exists(path):
                with open(path) as f:
                    return json.load(f)
            self.host._pump(0.1)  # keep reading the console meanwhile
        return {"error": f"agent: no {name} within {timeout} s"}


def build_relay(workdir):
    out = os.path.join(workdir, "vs")
    src = os.path.join(HERE, "vsock_relay.c")
    subprocess.run(["gcc", "-static", "-nostdlib", "-Os", "-fno-asynchronous-unwind-tables",
                    "-fno-stack-protector", "-fno-pie", "-no-pie", "-Wl,--build-id=none",
                    "-Wl,-z,norelro", "-Wl,-N", "-Wl,--no-warn-rwx-segments", "-s",
                    "-o", out, src], check=True)
    with open(out, "rb") as f:
        return f.read()


def install_relay(host, r, blob):
    """Type the relay into the guest as base64 lines, then check its md5."""
    from linuxtest import guest_run, type_line
    from outerhost import HostError
    text = base64.encodebytes(blob).decode()
    mark = host._marker("V")
    type_line(host, f"stty -echo; base64 -d >/tmp/vs; stty echo; chmod +x /tmp/vs; "
                    f"echo {mark[:3]}''{mark[3:]}")
    time.sleep(0.5)
    host.send(text.replace("\n", "\r").encode() + b"\x04")
    try:
        host.expect(mark, timeout=60)
        status, out = guest_run(host, "md5sum /tmp/vs")
    except HostError as e:
        return r.fail("relay typed into the guest", str(e))
    want = hashlib.md5(blob).hexdigest()
    return r.check("relay typed into the guest (md5 matches)", want in out,
                   f"{len(blob)} bytes")


def mbps(nbytes, seconds):
    return nbytes / MIB / seconds if seconds and seconds > 0 else float("nan")


def check_bad_uds(host, r, kiln, guest):
    cmd = (f"{kiln} run --kernel {guest}/vmlinuz --initrd {guest}/initramfs.cpio.gz "
           f"--vsock cid=3,uds=/nonexistent-dir/v.sock 2>&1; echo status=$?")
    out = host.check(cmd, timeout=60)
    m = re.search(r"status=(\d+)", out)
    r.check("uds in a missing directory: exit status 6", m and m.group(1) == "6",
            out.strip()[-200:])
    r.check("uds in a missing directory: message names --vsock", "--vsock" in out,
            out.strip()[-200:])


def make_stale_socket(host, path):
    host.check(f"/usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); "
               f"s.bind(\"{path}\")' && test -S {path}")


def guest_to_host(host, r, agent):
    from linuxtest import guest_run
    n = agent.request(op="listen", port=5000)
    status, out = guest_run(host, "/tmp/vs c 2 5000 </tmp/d1 >/dev/null; echo rc=$?", timeout=300)
    res = agent.result(n)
    ok = "rc=0" in out and res.get("md5") == agent.d1_md5 and res.get("bytes") == MIB
    r.check("guest -> host: 1 MiB through uds_5000, md5 matches", ok,
            f"{out.strip()[-80:]!r} {res}")
    if ok:
        r.timing(f"guest -> host 1 MiB ({mbps(MIB, res['seconds']):.2f} MB/s)", res["seconds"])


def guest_rst(host, r, agent):
    from linuxtest import guest_run
    t = time.monotonic()
    status, out = guest_run(host, "/tmp/vs c 2 5999 </dev/null; echo rc=$?", timeout=60)
    took = time.monotonic() - t
    r.check("guest connects where nobody listens: refused at once (RST)",
            "rc=3" in out and took < 10, f"{out.strip()!r} in {took:.1f} s")


def start_guest_listener(host, port, stdin, out):
    host.send(f"/tmp/vs l {port} <{stdin} >{out} & \r")
    # "L" may follow the prompt on the same line (after its cursor query, ESC [6n).
    host.expect(r"(?:\n|6n)L\r*\n", timeout=30)


def host_to_guest(host, r, agent):
    from linuxtest import guest_run
    start_guest_listener(host, 6000, "/dev/null", "/tmp/r1")
    n = agent.request(op="connect", port=6000, send=MIB)
    res = agent.result(n)
    status, out = guest_run(host, "wait $!; md5sum /tmp/r1", timeout=120)
    ok = res.get("line", "").startswith("OK ") and res.get("sent_md5", "?") in out
    r.check("host -> guest: CONNECT 6000 answered OK, 1 MiB arrives intact", ok,
            f"{res} {out.strip()[-80:]!r}")
    if ok:
        r.timing(f"host -> guest 1 MiB ({mbps(MIB, res['seconds']):.2f} MB/s)", res["seconds"])


def both_ways(host, r, agent):
    from linuxtest import guest_run
    start_guest_listener(host, 6001, "/tmp/d1", "/tmp/r2")
    n = agent.request(op="connect", port=6001, send=MIB)
    res = agent.result(n)
    status, out = guest_run(host, "wait $!; md5sum /tmp/r2", timeout=120)
    ok = (res.get("sent_md5", "?") in out and res.get("recv_md5") == agent.d1_md5 and
          res.get("recv_bytes") == MIB)
    r.check("both ways in one connection: 1 MiB each way, md5s match", ok,
            f"{res} {out.strip()[-80:]!r}")
    if ok:
        r.timing(f"both ways 2 x 1 MiB ({mbps(2 * MIB, res['seconds']):.2f} MB/s total)",
                 res["seconds"])


def throughput(host, r, agent):
    """16 MiB each way with nothing stored in the guest (/dev/zero, /dev/null)."""
    from linuxtest import guest_run
    size = 16 * MIB
    n = agent.request(op="listen", port=5002)
    status, out = guest_run(host, f"dd if=/dev/zero bs=65536 count={size // 65536} 2>/dev/null"
                                  " | /tmp/vs c 2 5002 >/dev/null; echo rc=$?", timeout=600)
    res = agent.result(n, timeout=600)
    ok = "rc=0" in out and res.get("bytes") == size
    r.check("guest -> host: 16 MiB stream", ok, str(res))
    if ok:
        r.timing(f"guest -> host 16 MiB ({mbps(size, res['seconds']):.2f} MB/s)", res["seconds"])
    start_guest_listener(host, 6002, "/dev/null", "/dev/null")
    n = agent.request(op="connect", port=6002, send=size, timeout=600)
    res = agent.result(n, timeout=600)
    guest_run(host, "wait $!", timeout=120)
    ok = res.get("line", "").startswith("OK ") and "seconds" in res
    r.check("host -> guest: 16 MiB stream", ok, str(res))
    if ok:
        r.timing(f"host -> guest 16 MiB ({mbps(size, res['seconds']):.2f} MB/s)", res["seconds"])


def host_refused(host, r, agent):
    res = agent.result(agent.request(op="connect", port=6999))
    r.check("CONNECT to a guest port nobody listens on: closed without OK",
            res.get("line") == "" and not res.get("error"), str(res))
    res = agent.result(agent.request(op="connect", port=0, line="HELLO 1\n"))
    r.check("malformed request line: closed without OK",
            res.get("line") == "" and not res.get("error"), str(res))


def slow_reader(host, r, agent):
    from linuxtest import guest_run
    rss_start = agent.result(agent.request(op="rss")).get("rss")
    n = agent.request(op="listen", port=5001, delay=3)
    host.send("dd if=/dev/zero bs=65536 count=64 2>/dev/null | /tmp/vs c 2 5001 >/dev/null & \r")
    time.sleep(0.5)
    t = time.monotonic()
    try:
        status, out = guest_run(host, "echo alive-$((6*7))", timeout=30)
        took = time.monotonic() - t
        r.check("slow host reader: guest shell still answers", "alive-42" in out,
                f"{took:.1f} s")
    except Exception as e:
        r.fail("slow host reader: guest shell still answers", str(e))
    res = agent.result(n)
    guest_run(host, "wait $!; echo waited", timeout=60)
    r.check("slow host reader: all 4 MiB arrive", res.get("bytes") == 4 * MIB, str(res))
    # While the reader slept, the guest could only send what kiln's credit allowed.
    before = res.get("rss_before")
    if rss_start and before:
        r.check("slow host reader: kiln did not buffer the 4 MiB", before - rss_start < 2048,
                f"RSS {rss_start} -> {before} KiB")
    else:
        r.fail("slow host reader: kiln did not buffer the 4 MiB", "no RSS figures")


def scenario(host, r, vmm, guest, relay):
    from linuxtest import GUEST_APPEND, guest_run, wait_guest_ready
    from outerhost import HostError
    label = "vsock"
    d = os.path.join(host.scratch, "agent")
    # Socket files cannot live on the 9p scratch share: use the outer host's tmpfs.
    uds = f"/run/tmp/kiln-vsock-{host.tag}/v.sock"
    host.check(f"mkdir -p {os.path.dirname(uds)}")
    agent = Agent(host, d, uds)
    agent.start()
    make_stale_socket(host, uds)
    cmd = vmm.command(kernel=f"{guest}/vmlinuz", initrd=f"{guest}/initramfs.cpio.gz",
                      cmdline=GUEST_APPEND, mem="256M", cpus=1, no_reboot=True)
    cmd += f" --vsock cid={GUEST_CID},uds={shlex.quote(uds)}"
    started = time.monotonic()
    host.spawn(cmd, limit=VMM_LIMIT)
    if not wait_guest_ready(host, r, label, started):
        return False
    r.check("stale socket file at the uds path replaced (kiln started)", True)
    status, out = guest_run(host, "test -c /dev/vsock && echo has-vsock")
    r.check("guest has /dev/vsock", "has-vsock" in out, out.strip()[-100:])
    if not install_relay(host, r, relay):
        return False
    status, out = guest_run(host, "dd if=/dev/urandom of=/tmp/d1 bs=1024 count=1024 "
                                  "2>/dev/null; md5sum /tmp/d1")
    m = re.search(r"([0-9a-f]{32})\s+/tmp/d1", out)
    if not m:
        return r.fail("guest test data", out)
    agent.d1_md5 = m.group(1)
    for check in (guest_to_host, guest_rst, host_to_guest, both_ways, throughput,
                  host_refused, slow_reader):
        try:
            check(host, r, agent)
        except HostError as e:
            r.fail(check.__name__, str(e))
    from linuxtest import type_line
    type_line(host, "poweroff")
    status = host.wait_exit(timeout=120)
    r.check("poweroff ends kiln with status 0", status == 0, f"status {status}")
    gone = host.run(f"test -e {shlex.quote(uds)}")[0] != 0
    r.check("uds socket file removed at exit", gone)
    return True


def main():
    if sys.argv[1:2] == ["--agent"]:
        return agent_main(sys.argv[2])
    from linuxtest import boot_outer, setup
    from outerhost import HostError
    args, vmm, guest, r = setup("test_vsock", __doc__)
    if vmm.name != "kiln":
        print("SKIP: --vsock is kiln's own option")
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        relay = build_relay(tmp)
    host = boot_outer(r, os.path.join(args.log_dir, "test_vsock.transcript.log"))
    if host is None:
        return r.finish()
    try:
        try:
            check_bad_uds(host, r, vmm.path, guest)
            scenario(host, r, vmm, guest, relay)
        except HostError as e:
            r.fail("vsock scenario", str(e))
            host.abort_spawned()
    finally:
        host.close()
    return r.finish()


if __name__ == "__main__":
    from linuxtest import run
    run(main)
