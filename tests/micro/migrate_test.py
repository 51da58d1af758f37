#!/usr/bin/env python3
"""Live migration (docs/migration.md) of the `dirty` micro-guest between two kiln processes
on 127.0.0.1 (no traffic leaves the machine).

Usage: migrate_test.py --kiln PATH --guests DIR TEST [--mem MIB --dirty MIB]

TEST is one of:
  live      PUT /migrate while the guest counts, rewrites memory and has virtio-rng fill
            buffers: the count goes on at the destination from the next number (no gap, no
            reset), every page the guest checks there holds what it (or the device) wrote
            last (no `FAIL dirty` line), the source exits 0, the figures are reported
  cli       kiln create/start/receive/migrate with named VMs: exit 0, the report line, the
            source stopped, the destination counting
  killed    the receiver is killed (SIGKILL) mid-stream, behind a slow relay: the migration
            fails, the source runs on (its count advances, no FAIL), a second migration to a
            new receiver then succeeds
  cancel    `kiln migrate` gets SIGINT mid-stream: exit 1, the source runs on, the receiver
            exits 1 without ever running the guest
  garbage   garbage, a truncated stream, records out of order, a page outside RAM, a bad
            version, an oversized length: the receiver refuses each with a clear message and
            exit status 3 (1 for a stream that just stops), never a crash
  figures   (not run by meson) migrates --mem MiB with a --dirty MiB window and prints the
            figures
Exits 0 (pass), 1 (fail) or 77 (skipped: no usable /dev/kvm). Standard library only.
"""

import argparse
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_test import Checks, Kiln, counts, wait_for, EXIT_SKIP  # noqa: E402

BAD_IMAGE = 3
HOST = "127.0.0.1"


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def boot_dirty(a, c, tmp, name="src", mem=128, dirty=32, chunk=256, extra=(), rng=False):
    """A kiln with the API, running dirty.bin; None if that failed."""
    k = Kiln(a.kiln, ["--api-sock", f"{name}.sock"] + list(extra), tmp)
    k.sock = os.path.join(tmp, f"{name}.sock")
    if not c.check(k.wait_socket(), f"{name}: the API socket accepts connections"):
        print(k.describe())
        return None
    k.request("PUT", "/boot-source", {
        "kernel_image_path": os.path.join(a.guests, "dirty.bin"), "kiln_kernel_format": "raw",
        "boot_args": f"console=ttyS0 dirty={dirty} chunk={chunk} rng={int(rng)}"})
    k.request("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": mem})
    st, _, text = k.request("PUT", "/actions", {"action_type": "InstanceStart"})
    ok = st == 204 and wait_for(lambda: len(counts(k.text())) >= 5, 10)
    if not c.check(ok, f"{name}: the guest counts and dirties memory ({st} {text})"):
        print(k.describe())
        k.stop()
        return None
    return k


def receiver(a, tmp, port, extra=()):
    r = Kiln(a.kiln, ["--incoming", f"tcp:{HOST}:{port}"] + list(extra), tmp)
    wait_for(lambda: "waiting for a migration" in r.stderr() or r.proc.poll() is not None, 10)
    return r


def progress(k):
    st, body, _ = k.request("GET", "/migrate")
    return body if st == 200 and body else {}


def migrate(c, k, dest):
    st, _, text = k.request("PUT", "/migrate", {"destination": dest})
    return c.check(st == 204, f"PUT /migrate {dest} -> 204 (got {st} {text})")


def wait_end(k, timeout=60):
    """Polls GET /migrate until it is no longer active; the last report."""
    last = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            last = progress(k)
        except OSError:
            break
        if last.get("state") != "active":
            break
        time.sleep(0.05)
    return last


def continues(c, src_text, dst, what, more=45):
    """The destination's first count is the source's last + 1 and it counts on, `more`
    lines without a gap: at least the guest's window in MiB plus a few, so that it checked
    every page of its window again."""
    before = counts(src_text)
    partial = src_text[src_text.rfind("\n") + 1:]
    ok = wait_for(lambda: len(counts(partial + dst.text())) >= more, 60)
    after = counts(partial + dst.text())
    c.check(ok and before and after and after[0] == before[-1] + 1,
            f"{what}: the count continues at {before[-1] + 1 if before else '?'} "
            f"(got {after[:3]}...)")
    c.check(after == list(range(after[0], after[0] + len(after))) if after else False,
            f"{what}: no gap and no reset over {len(after)} lines")
    bad = [line for line in (src_text + dst.text()).splitlines() if "FAIL" in line]
    c.check(not bad, f"{what}: every page the guest checked held what it wrote ({bad[:1]})")


def t_live(a, c, tmp):
    port = free_port()
    r = receiver(a, tmp, port, ["--rng"])
    k = boot_dirty(a, c, tmp, extra=["--rng"], rng=True)
    if not k:
        return
    # The device has filled each of the guest's 64 rng buffers once.
    c.check(wait_for(lambda: len(counts(k.text())) >= 70, 20), "the rng buffers are filled")
    migrate(c, k, f"tcp:{HOST}:{port}")
    report = wait_end(k)
    c.check(report.get("state") == "completed", f"the migration completes ({report})")
    c.check(report.get("pass", 0) >= 2 and report.get("bytes_sent", 0) > 1 << 20,
            f"several passes, over 1 MiB sent: {report.get('pass')} passes, "
            f"{report.get('bytes_sent')} bytes, downtime {report.get('downtime_ms', 0):.1f} ms")
    rc = k.wait_exit(15)
    c.check(rc == 0, f"the source exits 0 after the hand-over (got {rc})")
    continues(c, k.text(), r, "live", more=75)  # every rng buffer and page checked again
    c.check(r.proc.poll() is None, "the destination runs on")
    c.check(r.stop() == 0, "the destination exits 0 on SIGTERM")


def cli(a, env, *args, timeout=60):
    p = subprocess.run([a.kiln] + list(args), env=env, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def t_cli(a, c, tmp):
    env = dict(os.environ, KILN_STATE_DIR=os.path.join(tmp, "state"))
    guest = os.path.join(a.guests, "dirty.bin")
    for name in ("src", "dst"):
        # With a virtio device: receive and restore must give the VM its devices again.
        rc, out = cli(a, env, "create", name, "--kernel", guest, "--kernel-format", "raw",
                      "-m", "128M", "--rng", "--cmdline", "console=ttyS0 dirty=32 rng=1")
        c.check(rc == 0, f"kiln create {name} ({out.strip()})")
    rc, out = cli(a, env, "start", "src")
    c.check(rc == 0, f"kiln start src ({out.strip()})")
    port = free_port()
    rc, out = cli(a, env, "receive", "--listen", f"tcp:{HOST}:{port}", "dst")
    c.check(rc == 0 and "waits for a migration" in out, f"kiln receive ({out.strip()})")
    log = lambda n: open(os.path.join(tmp, "state", n, "console.log"), errors="replace").read()
    wait_for(lambda: len(counts(log("src"))) >= 5, 10)
    rc, out = cli(a, env, "migrate", "src", f"tcp:{HOST}:{port}")
    c.check(rc == 0 and "migrated VM 'src'" in out and "downtime" in out,
            f"kiln migrate exits 0 with the figures ({out.strip()[-300:]})")
    rc, out = cli(a, env, "ls")
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:] if line.split()}
    c.check(rows.get("src") == "stopped" and rows.get("dst") == "running",
            f"kiln ls: src stopped, dst running ({rows})")
    ok = wait_for(lambda: len(counts(log("dst"))) >= 40, 20)
    src, dst = counts(log("src")), counts(log("dst"))
    c.check(ok and dst and dst[0] == src[-1] + 1 and dst == list(range(dst[0], dst[0] + len(dst))),
            f"the count goes on at the destination ({src[-1:]} -> {dst[:3]}...)")
    c.check("FAIL" not in log("dst"), "no page went missing")
    cli_snapshot_restore(a, c, env, tmp, log)
    rc, out = cli(a, env, "migrate", "dst", "tcp:127.0.0.1:1")
    c.check(rc == 1 and "refused" in out.lower(), f"nothing listening: exit 1 ({out.strip()})")
    rc, out = cli(a, env, "migrate", "src", f"tcp:{HOST}:{port}")
    c.check(rc == 8, f"migrating a stopped VM: exit 8 ({out.strip()})")
    rc, out = cli(a, env, "migrate", "dst", "somewhere")
    c.check(rc == 2, f"a bad destination: exit 2 ({out.strip()[:80]})")
    cli(a, env, "kill", "dst")


def cli_snapshot_restore(a, c, env, tmp, log):
    """kiln snapshot of the received VM (left paused), kill, kiln restore DIR: the VM comes
    back with its rng device and counts on from where it was saved."""
    snap = os.path.join(tmp, "snap")
    rc, out = cli(a, env, "snapshot", "--leave-paused", "dst", snap)
    c.check(rc == 0, f"kiln snapshot dst ({out.strip()[-200:]})")
    # The paused VM's last console bytes reach console.log from the event loop: wait until
    # the log stops growing.
    saved, end = counts(log("dst")), time.monotonic() + 5
    while time.monotonic() < end:
        time.sleep(0.3)
        now = counts(log("dst"))
        if now == saved:
            break
        saved = now
    cli(a, env, "kill", "dst")
    rc, out = cli(a, env, "restore", snap)
    c.check(rc == 0, f"kiln restore DIR gives dst its rng device back ({out.strip()[-300:]})")
    ok = wait_for(lambda: len(counts(log("dst"))) >= 40, 20)
    after = counts(log("dst"))
    # No reset, no gap after the restore. The line printed last before the snapshot can be
    # missing from console.log (seen once under ASan: 46, then 48): kill -9 drops what kiln
    # had not written out yet; that loss is noted for a fix, not asserted away here.
    c.check(ok and saved and after and saved[-1] < after[0] <= saved[-1] + 2 and
            after == list(range(after[0], after[0] + len(after))) and "FAIL" not in log("dst"),
            f"the restored VM counts on ({saved[-1:]} -> {after[:3]}...)")


class SlowRelay:
    """Forwards one connection from a local port to `port`, at about `rate` bytes/s, so a
    migration lasts long enough to be interrupted in the middle."""

    def __init__(self, port, rate=8 << 20):
        self.listener = socket.socket()
        self.listener.bind((HOST, 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.target, self.rate = port, rate
        self.relayed = 0
        self.conns = ()
        threading.Thread(target=self._run, daemon=True).start()

    def _pipe(self, src, dst, slow):
        try:
            while True:
                data = src.recv(64 << 10)
                if not data:
                    break
                dst.sendall(data)
                if slow:
                    self.relayed += len(data)
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        self.close()

    def close(self):
        """The connection drops, as it does when the receiving process dies: a reset on both
        sides, whichever thread gets here first. A socket merely shut down or closed with a
        FIN leaves the sender facing a zero window, which it probes until its 30 s send
        timeouts run out (CI, and a local run, saw exactly that)."""
        for s in self.conns:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RDWR)  # wakes the other thread's recv, so close() frees it
            except OSError:
                pass
            s.close()

    def state(self):
        """What the relay's sockets look like now, for a failure's message."""
        out = subprocess.run(["ss", "-tnoi", f"( sport = :{self.port} or dport = :{self.port}"
                              f" or dport = :{self.target} )"], capture_output=True, text=True)
        alive = sum(t.name.startswith("relay") for t in threading.enumerate())
        return f"relayed {self.relayed} bytes, {alive} relay threads alive\n{out.stdout}"

    def _run(self):
        a, _ = self.listener.accept()
        b = socket.create_connection((HOST, self.target))
        self.conns = (a, b)
        threading.Thread(target=self._pipe, args=(a, b, True), name="relay-to", daemon=True).start()
        threading.Thread(target=self._pipe, args=(b, a, False), name="relay-back",
                         daemon=True).start()


def sender_confined(pid):
    """Whether the process has a thread named kiln-migrate, in seccomp filter mode (2)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() != "kiln-migrate":
                    continue
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                return "Seccomp:\t2" in f.read()
        except OSError:
            continue
    return False


def t_killed(a, c, tmp):
    port = free_port()
    r = receiver(a, tmp, port)
    relay = SlowRelay(port)
    k = boot_dirty(a, c, tmp, dirty=64)
    if not k:
        return
    c.check(wait_for(lambda: len(counts(k.text())) >= 70, 20), "the guest dirtied its window")
    migrate(c, k, f"tcp:{HOST}:{relay.port}")
    c.check(wait_for(lambda: relay.relayed > 4 << 20, 20), "the stream is under way")
    c.check(sender_confined(k.proc.pid), "the sending thread runs under a seccomp filter")
    os.killpg(r.proc.pid, signal.SIGKILL)
    r.wait_exit()
    relay.close()
    report = wait_end(k)
    if not c.check(report.get("state") == "failed" and report.get("error"),
                   f"the migration fails with a reason ({report.get('state')}: "
                   f"{report.get('error')})"):
        print(f"receiver: {r.proc.returncode}; {relay.state()}\nsource's log:\n"
              f"{k.stderr()[-2000:]}")
    st, body, _ = k.request("GET", "/")
    c.check(st == 200 and body.get("state") == "Running", f"the source is Running ({body})")
    n = len(counts(k.text()))
    c.check(wait_for(lambda: len(counts(k.text())) >= n + 20, 10), "the source counts on")
    c.check("FAIL" not in k.text(), "the source's memory is intact")
    port = free_port()
    r2 = receiver(a, tmp, port)
    migrate(c, k, f"tcp:{HOST}:{port}")
    report = wait_end(k)
    c.check(report.get("state") == "completed", f"a second migration then completes ({report})")
    c.check(k.wait_exit(15) == 0, "the source exits 0")
    continues(c, k.text(), r2, "after a failed attempt", more=75)
    r2.stop()


def t_cancel(a, c, tmp):
    env = dict(os.environ, KILN_STATE_DIR=os.path.join(tmp, "state"))
    guest = os.path.join(a.guests, "dirty.bin")
    cli(a, env, "create", "src", "--kernel", guest, "--kernel-format", "raw", "-m", "128M",
        "--cmdline", "console=ttyS0 dirty=64")
    rc, out = cli(a, env, "start", "src")
    c.check(rc == 0, f"kiln start src ({out.strip()})")
    log = lambda: open(os.path.join(tmp, "state", "src", "console.log"), errors="replace").read()
    # 64 lines: the guest has written its whole 64 MiB window once, so there is much to send.
    c.check(wait_for(lambda: len(counts(log())) >= 70, 20), "the guest dirtied its window")
    port = free_port()
    r = receiver(a, tmp, port)
    relay = SlowRelay(port)
    m = subprocess.Popen([a.kiln, "migrate", "src", f"tcp:{HOST}:{relay.port}"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    c.check(wait_for(lambda: relay.relayed > 4 << 20, 20), "the stream is under way")
    m.send_signal(signal.SIGINT)
    out, _ = m.communicate(timeout=40)
    c.check(m.returncode == 1 and "cancelled" in out and "runs on here" in out,
            f"kiln migrate: exit 1, cancelled, the VM runs on ({m.returncode}: {out.strip()[-200:]})")
    c.check("pass 1:" in out, "it showed its progress")
    rc = r.wait_exit(40)
    c.check(rc == 1 and not counts(r.text()),
            f"the receiver exits 1 without running the guest (got {rc}: {r.stderr().strip()[-200:]})")
    n = len(counts(log()))
    c.check(wait_for(lambda: len(counts(log())) >= n + 20, 10), "the source counts on")
    rc, out = cli(a, env, "ls")
    c.check(" running " in out, f"kiln ls shows it running ({out.strip()})")
    c.check("FAIL" not in log(), "the source's memory is intact")
    cli(a, env, "kill", "src")


def header(version=1):
    return b"KILNMIGR" + struct.pack("<II", version, 0)


def record(rtype, payload=b"", length=None):
    return struct.pack("<HHI", rtype, 0, len(payload) if length is None else length) + payload


def setup(mem=64 << 20):
    return record(1, struct.pack("<QI", mem, 1) + struct.pack("<QQ", 0, mem))


def run(rtype_region, first, count, data=None):
    body = struct.pack("<IQI", rtype_region, first, count)
    return body + (data if data is not None else b"")


def feed(a, c, tmp, data, want_rc, want_text, what, close=True):
    port = free_port()
    r = receiver(a, tmp, port)
    s = socket.create_connection((HOST, port))
    s.sendall(data)
    if close:
        s.shutdown(socket.SHUT_WR)
    reply = b""
    s.settimeout(10)
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    except OSError:
        pass
    s.close()
    rc = r.wait_exit(20)
    err = r.stderr().strip().splitlines()
    last = err[-1] if err else ""
    c.check(rc == want_rc and want_text in last,
            f"{what}: exit {want_rc}, '{want_text}' (got {rc}: {last})")
    if want_rc == BAD_IMAGE:
        c.check(reply[:2] == struct.pack("<H", 18) and want_text.encode() in reply,
                f"{what}: the source is told why ({reply[8:80]!r})")


def t_garbage(a, c, tmp):
    page = b"\x01" * 4096
    feed(a, c, tmp, b"GET / HTTP/1.1\r\n\r\n", BAD_IMAGE, "bad magic", "an HTTP request")
    feed(a, c, tmp, header(2), BAD_IMAGE, "version 2", "a future version")
    feed(a, c, tmp, header() + record(2, run(0, 0, 1, page)), BAD_IMAGE, "out of order",
         "pages before the setup")
    feed(a, c, tmp, header() + setup() + record(2, run(0, 16384, 1, page)), BAD_IMAGE,
         "outside region", "a page past the end of RAM")
    feed(a, c, tmp, header() + setup() + record(3, run(5, 0, 1)), BAD_IMAGE, "region 5",
         "a region that does not exist")
    feed(a, c, tmp, header() + setup() + record(2, b"", 1 << 30), BAD_IMAGE, "length",
         "an oversized record length")
    feed(a, c, tmp, header() + setup() + record(99), BAD_IMAGE, "unknown record type",
         "an unknown record type")
    feed(a, c, tmp, header() + record(1, struct.pack("<QI", 64 << 20, 1) +
                                      struct.pack("<QQ", 4096, 64 << 20)),
         BAD_IMAGE, "layout", "a memory layout kiln would not build")
    feed(a, c, tmp, header() + setup() + record(6), BAD_IMAGE, "without the VM's state",
         "an end without state")
    feed(a, c, tmp, header() + setup() + record(5, b"KILNSNAP garbage") + record(6), BAD_IMAGE,
         "state", "a damaged state")
    feed(a, c, tmp, header() + setup() + record(2, run(0, 0, 2, page))[:3000], 1,
         "closed the connection", "a stream cut in the middle of a record")


def t_figures(a, c, tmp):
    port = free_port()
    r = receiver(a, tmp, port)
    k = boot_dirty(a, c, tmp, mem=a.mem, dirty=a.dirty, chunk=a.chunk, extra=["-v"])
    if not k:
        return
    lines = a.dirty * 256 // a.chunk + 5  # the guest has written its whole window once
    c.check(wait_for(lambda: len(counts(k.text())) >= lines, 120), "the window is written")
    t0 = time.monotonic()
    migrate(c, k, f"tcp:{HOST}:{port}")
    report = wait_end(k, 300)
    wall = time.monotonic() - t0
    c.check(report.get("state") == "completed", f"completed ({report.get('error')})")
    print(f"FIGURES mem={a.mem}MiB dirty-window={a.dirty}MiB chunk={a.chunk}: "
          f"total {report.get('elapsed_ms', 0) / 1e3:.3f} s (wall {wall:.3f} s), "
          f"{report.get('bytes_sent', 0) / (1 << 20):.1f} MiB sent, "
          f"{report.get('pass')} passes, downtime {report.get('downtime_ms', 0):.1f} ms, "
          f"{report.get('pages_sent')} pages ({report.get('zero_pages')} zero)")
    k.wait_exit(15)
    print("".join(line + "\n" for line in k.stderr().splitlines() if "migration" in line))
    continues(c, k.text(), r, "figures", more=lines + 5)
    r.stop()


TESTS = {"live": t_live, "cli": t_cli, "killed": t_killed, "cancel": t_cancel,
         "garbage": t_garbage, "figures": t_figures}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kiln", required=True)
    p.add_argument("--guests", required=True)
    p.add_argument("--mem", type=int, default=256)
    p.add_argument("--dirty", type=int, default=64)
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("test", choices=sorted(TESTS))
    a = p.parse_args()
    a.kiln = os.path.abspath(a.kiln)
    a.guests = os.path.abspath(a.guests)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not usable")
        return EXIT_SKIP
    c = Checks()
    with tempfile.TemporaryDirectory(prefix="kiln-migrate-") as tmp:
        TESTS[a.test](a, c, tmp)
    print(f"{a.test}: {'FAIL' if c.failed else 'PASS'} ({c.failed} failed checks)")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
