"""Snapshot, restore and live-migration downtime, kiln against QEMU microvm (bench/run.py snap).

Both VMMs run the same micro-guest bytes (QEMU through the PVH wrapper, bench/pvh_wrap.S),
with the same guest RAM, repetition by repetition in turn:

  snapshot   the `count` guest, paused: kiln PUT /snapshot/create (Full) into a directory;
             QEMU QMP `stop`, then `migrate` to "exec:cat > FILE" (QEMU 7.2 has no `file:`
             URI), polled with `query-migrate` every 2 ms until completed. Timed from the
             request to its completion (the pause is not counted), and the size the files
             take on disk (st_blocks * 512).
  restore    a new process from that snapshot to the guest's next console line: `kiln run
             --restore DIR`; QEMU with -incoming "exec:cat FILE", QMP `cont` as soon as the
             incoming migration is done (the source was paused, so QEMU stays paused).
  migration  the `dirty` guest (dirty=32 MiB window, chunk=256 pages per line) moved between
             two processes over TCP on 127.0.0.1 while it rewrites memory (from its 40th line
             on, when it has swept the whole window once, about 1 MiB per 24 ms): total time and
             downtime as each VMM reports them (kiln GET /migrate elapsed_ms, downtime_ms;
             QEMU query-migrate total-time, downtime; kiln's downtime runs to the
             destination's RESUMED, QEMU's ends when the source has sent everything), the
             gap in the guest's console between the source's last output and the
             destination's first (the same yardstick for both, plus up to one line period
             of ~24 ms), and the bytes sent. Neither is
             throttled: kiln has no bandwidth limit, QEMU's max-bandwidth is set to
             1 TiB/s. Downtime targets: kiln's is built in (about 50 ms); QEMU's
             downtime-limit is set to the same 50 ms (its default is 300 ms).
Standard library only.
"""
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "micro"))
from api_test import Kiln, counts, wait_for  # noqa: E402
from migrate_test import free_port  # noqa: E402

HOST = "127.0.0.1"
DIRTY_ARGS = "console=ttyS0 dirty=32 chunk=256 rng=0"
QEMU_DOWNTIME_MS = 50
QEMU_BANDWIDTH = 1 << 40  # bytes/s: unthrottled in practice
MEMS = (256, 1024)
WARM_LINES = 40  # ~1 s at ~24 ms a line: the guest has rewritten its whole 32 MiB window


class SnapError(Exception):
    pass


def disk_bytes(*paths):
    return sum(os.stat(p).st_blocks * 512 for p in paths)


def _stamped_pump(self, f, name):
    """Collects a stream; for stdout, also when its first and its latest chunk came."""
    for chunk in iter(lambda: f.read1(4096), b""):
        now = time.monotonic()
        with self.lock:
            setattr(self, name, getattr(self, name) + chunk)
            if name == "out":
                self.first_out = getattr(self, "first_out", None) or now
                self.last_out = now


class KilnT(Kiln):
    """api_test's Kiln, with the times of its console output."""
    _pump = _stamped_pump


class Proc:
    """A VMM process whose stdout (the guest console) a thread collects."""

    def __init__(self, argv, cwd):
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=cwd, start_new_session=True)
        self.out, self.err, self.lock = b"", b"", threading.Lock()
        for f, name in ((self.proc.stdout, "out"), (self.proc.stderr, "err")):
            threading.Thread(target=self._pump, args=(f, name), daemon=True).start()

    _pump = _stamped_pump

    def text(self):
        with self.lock:
            return self.out.decode(errors="replace")

    def stderr(self):
        with self.lock:
            return self.err.decode(errors="replace")

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


class QMP:
    """A QMP client on a Unix socket: commands in turn, events skipped."""

    def __init__(self, path, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise SnapError(f"no QMP socket at {path}")
                time.sleep(0.005)
        self.sock.settimeout(timeout)
        self.buf = b""
        self._read()  # the greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SnapError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise SnapError(f"QMP {name}: {reply['error'].get('desc')}")
            return reply.get("return")

    def close(self):
        self.sock.close()


def qemu_argv(build, guest, mem, qmp, extra=()):
    return ["qemu-system-x86_64", "-M", "microvm", "-accel", "kvm", "-m", f"{mem}M",
            "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=1",
            "-kernel", os.path.join(build, "bench", guest + ".pvh.elf"),
            "-qmp", f"unix:{qmp},server=on,wait=off"] + list(extra)


def first_line(proc, t0, timeout=30):
    """Reads proc's stdout to its first newline; seconds since t0."""
    fd, buf = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        r, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        if not r:
            raise SnapError(f"no console line after {timeout} s: {buf[-200:]!r}")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise SnapError(f"output ended: {buf[-200:]!r} {proc.stderr.read()[-300:]!r}")
        buf += chunk
    return time.monotonic() - t0


def wait_migration(qmp, timeout=120, interval=0.002):
    """Polls query-migrate until it is completed; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = qmp.cmd("query-migrate")
        status = info.get("status")
        if status == "completed":
            return info
        if status in ("failed", "cancelled"):
            raise SnapError(f"QEMU migration {status}: {info.get('error-desc', info)}")
        time.sleep(interval)
    raise SnapError("QEMU migration did not complete")


# ---- kiln ----

def kiln_boot(kiln, guest, mem, tmp, name, boot_args=None, need=3):
    k = KilnT(kiln, ["--api-sock", f"{name}.sock"], tmp)
    k.sock = os.path.join(tmp, f"{name}.sock")
    if not k.wait_socket():
        raise SnapError(f"kiln API socket: {k.stderr()[-300:]}")
    src = {"kernel_image_path": guest, "kiln_kernel_format": "raw"}
    if boot_args:
        src["boot_args"] = boot_args
    k.request("PUT", "/boot-source", src)
    k.request("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": mem})
    st, _, text = k.request("PUT", "/actions", {"action_type": "InstanceStart"})
    if st != 204 or not wait_for(lambda: len(counts(k.text())) >= need, 20):
        k.stop()
        raise SnapError(f"kiln did not boot {guest}: {st} {text} {k.stderr()[-300:]}")
    return k


def kiln_snapshot(kiln, micro, mem, tmp):
    k = kiln_boot(kiln, os.path.join(micro, "count.bin"), mem, tmp, "snap")
    d = os.path.join(tmp, "kiln-snap")
    os.makedirs(d)
    try:
        k.request("PATCH", "/vm", {"state": "Paused"})
        t0 = time.monotonic()
        st, _, text = k.request("PUT", "/snapshot/create", {
            "snapshot_type": "Full", "snapshot_path": os.path.join(d, "state"),
            "mem_file_path": os.path.join(d, "memory")})
        took = time.monotonic() - t0
        if st != 204:
            raise SnapError(f"snapshot/create: {st} {text}")
    finally:
        os.killpg(k.proc.pid, signal.SIGKILL)
        k.wait_exit()
    size = disk_bytes(os.path.join(d, "state"), os.path.join(d, "memory"))
    t0 = time.monotonic()
    p = subprocess.Popen([kiln, "run", "--restore", d], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        restore = first_line(p, t0)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        p.stdout.close()
        p.stderr.close()
    return took, size, restore


def kiln_migrate(kiln, micro, mem, tmp):
    port = free_port()
    r = KilnT(kiln, ["--incoming", f"tcp:{HOST}:{port}"], tmp)
    k = None
    try:
        if not wait_for(lambda: "waiting for a migration" in r.stderr()
                        or r.proc.poll() is not None, 10) or r.proc.poll() is not None:
            raise SnapError(f"kiln receiver: {r.stderr()[-300:]}")
        k = kiln_boot(kiln, os.path.join(micro, "dirty.bin"), mem, tmp, "src", DIRTY_ARGS,
                       WARM_LINES)
        st, _, text = k.request("PUT", "/migrate", {"destination": f"tcp:{HOST}:{port}"})
        if st != 204:
            raise SnapError(f"PUT /migrate: {st} {text}")
        last, deadline = {}, time.monotonic() + 120
        while time.monotonic() < deadline:
            st, body, _ = k.request("GET", "/migrate")
            last = body if st == 200 and body else {}
            if last.get("state") != "active":
                break
            time.sleep(0.02)
        if last.get("state") != "completed":
            raise SnapError(f"kiln migration: {last}")
        n = len(counts(r.text()))
        if not wait_for(lambda: len(counts(r.text())) > n + 1, 20):
            raise SnapError("kiln destination does not count on")
        bad = [line for line in r.text().splitlines() if "FAIL" in line]
        if bad:
            raise SnapError(f"kiln destination: {bad[0]}")
        gap = (r.first_out - k.last_out) * 1e3
        return last["elapsed_ms"], last["downtime_ms"], last["bytes_sent"], gap
    finally:
        for p in (k, r):
            if p and p.proc.poll() is None:
                os.killpg(p.proc.pid, signal.SIGKILL)
            if p:
                p.wait_exit()


# ---- QEMU microvm ----

def qemu_snapshot(build, mem, tmp):
    qmp_path = os.path.join(tmp, "q.qmp")
    image = os.path.join(tmp, "qemu-snap.bin")
    q = Proc(qemu_argv(build, "count", mem, qmp_path), tmp)
    qmp = None
    try:
        qmp = QMP(qmp_path)
        if not wait_for(lambda: len(counts(q.text())) >= 3, 20):
            raise SnapError(f"QEMU did not boot count: {q.stderr()[-300:]}")
        qmp.cmd("stop")
        t0 = time.monotonic()
        qmp.cmd("migrate", uri=f"exec:cat > {image}")
        wait_migration(qmp)
        took = time.monotonic() - t0
    finally:
        if qmp:
            qmp.close()
        q.kill()
    size = disk_bytes(image)
    os.unlink(qmp_path)
    t0 = time.monotonic()
    p = subprocess.Popen(qemu_argv(build, "count", mem, qmp_path,
                                   ["-incoming", f"exec:cat {image}"]),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    qmp = None
    try:
        qmp = QMP(qmp_path)
        deadline = time.monotonic() + 60
        while qmp.cmd("query-status")["status"] == "inmigrate":
            if time.monotonic() > deadline:
                raise SnapError("QEMU incoming migration did not finish")
            time.sleep(0.001)
        qmp.cmd("cont")
        restore = first_line(p, t0)
    finally:
        if qmp:
            qmp.close()
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        p.stdout.close()
        p.stderr.close()
    return took, size, restore


def qemu_migrate(build, mem, tmp):
    port = free_port()
    dst_qmp, src_qmp = os.path.join(tmp, "dst.qmp"), os.path.join(tmp, "src.qmp")
    append = ["-append", DIRTY_ARGS]
    d = Proc(qemu_argv(build, "dirty", mem, dst_qmp, append + ["-incoming", f"tcp:{HOST}:{port}"]),
             tmp)
    s, qd, qs = None, None, None
    try:
        qd = QMP(dst_qmp)  # listening once its monitor is up
        s = Proc(qemu_argv(build, "dirty", mem, src_qmp, append), tmp)
        qs = QMP(src_qmp)
        if not wait_for(lambda: len(counts(s.text())) >= WARM_LINES, 20):
            raise SnapError(f"QEMU did not boot dirty: {s.stderr()[-300:]}")
        qs.cmd("migrate-set-parameters", **{"max-bandwidth": QEMU_BANDWIDTH,
                                            "downtime-limit": QEMU_DOWNTIME_MS})
        qs.cmd("migrate", uri=f"tcp:{HOST}:{port}")
        info = wait_migration(qs, interval=0.02)
        n = len(counts(d.text()))
        if not wait_for(lambda: len(counts(d.text())) > n + 1, 20):
            raise SnapError(f"QEMU destination does not count on: {d.stderr()[-300:]}")
        bad = [line for line in d.text().splitlines() if "FAIL" in line]
        if bad:
            raise SnapError(f"QEMU destination: {bad[0]}")
        gap = (d.first_out - s.last_out) * 1e3
        return info["total-time"], info["downtime"], info["ram"]["transferred"], gap
    finally:
        for c in (qs, qd):
            if c:
                c.close()
        for p in (s, d):
            if p:
                p.kill()


# ---- the benchmark ----

def bench(build, reps, res, attempt, progress):
    """attempt(cfgs, res, bench, name, body) and progress(what, rep, reps) are run.py's."""
    kiln = os.path.join(build, "src", "kiln")
    micro = os.path.join(build, "guest", "micro")

    def record(name, mem, snap, mig):
        label = f"{mem} MiB" if mem < 1024 else f"{mem // 1024} GiB"
        if snap:
            took, size, restore = snap
            res.add("snap", f"snapshot of the paused VM, {label}", "ms", name, took * 1e3)
            res.add("snap", f"snapshot size on disk, {label}", "MiB", name, size / (1 << 20))
            res.add("snap", f"restore to the next console line, {label}", "ms", name,
                    restore * 1e3)
        if mig:
            total, down, sent, gap = mig
            res.add("snap", f"live migration total time, {label}", "ms", name, total)
            res.add("snap", f"live migration downtime as the VMM reports it, {label}", "ms",
                    name, down)
            res.add("snap", f"live migration console gap (last line on source to first on "
                            f"destination), {label}", "ms", name, gap)
            res.add("snap", f"live migration bytes sent, {label}", "MiB", name, sent / (1 << 20))

    def kiln_one(mem, tmp):
        record("kiln", mem, kiln_snapshot(kiln, micro, mem, tmp), kiln_migrate(kiln, micro, mem, tmp))

    def qemu_one(mem, tmp):
        # each part on its own, so that one QEMU cannot do still leaves the others
        parts = {}
        for part, fn in (("snapshot", lambda: qemu_snapshot(build, mem, tmp)),
                         ("migration", lambda: qemu_migrate(build, mem, tmp))):
            if part in qemu_failed:
                continue
            try:
                parts[part] = fn()
            except (SnapError, OSError, KeyError) as e:
                qemu_failed.add(part)
                res.note("snap", f"QEMU microvm {part} failed: {e}")
                print(f"  snap: QEMU microvm {part} failed: {e}", flush=True)
        record("QEMU microvm", mem, parts.get("snapshot"), parts.get("migration"))

    qemu_failed = set()
    cfgs = {"kiln": kiln_one, "QEMU microvm": qemu_one}
    for rep in range(reps):
        for mem in MEMS:
            for name, fn in list(cfgs.items()):
                tmp = tempfile.mkdtemp(prefix="kiln-snapmig-")
                try:
                    attempt(cfgs, res, "snap", name, lambda: wrap(fn, mem, tmp))
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        progress("snap", rep, reps)
    res.note("snap", f"migration: the dirty guest ({DIRTY_ARGS}); no bandwidth limit in "
                     f"kiln, QEMU max-bandwidth {QEMU_BANDWIDTH} B/s; downtime target: kiln's "
                     f"built-in ~50 ms, QEMU downtime-limit {QEMU_DOWNTIME_MS} ms (its default "
                     f"is 300 ms). QEMU 7.2 snapshots go through `migrate` to `exec:cat > FILE`.")


def wrap(fn, mem, tmp):
    """run.py's attempt() catches its BenchError and OSError: turn ours into an OSError."""
    try:
        fn(mem, tmp)
    except SnapError as e:
        raise OSError(str(e)) from e
