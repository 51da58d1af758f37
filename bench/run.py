#!/usr/bin/env python3
"""Every kiln benchmark, side by side with QEMU, in one run; writes BENCHMARKS.md and charts.

  bench/run.py [--build build] [--reps 5] [--quick] [--only start,memory,...]
               [--out BENCHMARKS.md] [--charts docs/bench]

Benchmarks (names for --only):
  start     exec to the micro-guest's first line, and to the VMM's exit (hello)
  memory    peak RSS and overhead beyond guest memory touched, 256 MiB and 2 GiB guests (idle)
  exits     port-I/O and MMIO exit round trip (exits), against a bare KVM_RUN loop
  density   10, 50, 100 micro-guest VMs started at once: time until all are up, RSS and PSS
  snap      snapshot, restore, live migration total time and downtime, 256 MiB and 1 GiB
            (count and dirty; bench/snapmig.py)
  linux     Linux boot to init in the stock-KVM host (bench/linux_boot.py)        [slow]
  blk       virtio-blk throughput and IOPS in the stock-KVM host (bench/blk.py)   [slow]
  net       virtio-net TCP throughput and request latency in the stock-KVM host
            (tests/linux/test_net.py)                                             [slow]
--quick runs the micro-guest benchmarks only, with 3 repetitions (unless --reps says otherwise).

The configurations of one benchmark run alternately, repetition by repetition, so drift on a
shared machine hits them alike. QEMU boots the same micro-guest bytes as kiln, wrapped as a
PVH ELF (bench/pvh_wrap.S), with an isa-debug-exit device at port 0xf4, which the guests'
power-off writes after kiln's ACPI power-off port (kiln has stopped by then; QEMU has not).
"""
import argparse
import os
import platform
import re
import select
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import report  # noqa: E402
import snapmig  # noqa: E402

MICRO = ("start", "memory", "exits", "density", "snap")
SLOW = ("linux", "blk", "net")
EXIT_LOOPS = 100000  # guest/micro/exits.S
QEMU_EXIT_POWEROFF = (0x34 << 1) | 1  # isa-debug-exit: (value << 1) | 1


class BenchError(Exception):
    pass


# ---- how each VMM runs a micro-guest ----

def vmm_configs(build, with_bare=False):
    """{name: function(guest, memory) -> argv}; the first is kiln, QEMU microvm is the peer."""
    kiln = os.path.join(build, "src", "kiln")
    micro = os.path.join(build, "guest", "micro")
    pvh = os.path.join(build, "bench")

    def kiln_argv(guest, mem):
        return [kiln, "run", "-k", os.path.join(micro, guest + ".bin"), "--kernel-format", "raw",
                "-m", mem, "--no-reboot"]

    def qemu_argv(machine):
        def argv(guest, mem):
            return ["qemu-system-x86_64", "-M", machine, "-accel", "kvm", "-m", mem,
                    "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
                    "-device", "isa-debug-exit,iobase=0xf4,iosize=1",
                    "-kernel", os.path.join(pvh, guest + ".pvh.elf")]
        return argv

    def bare_argv(guest, mem):
        return [os.path.join(build, "bench", "bare_kvm"), os.path.join(micro, guest + ".bin"),
                str(parse_mib(mem))]

    cfgs = {"kiln": kiln_argv, "QEMU microvm": qemu_argv("microvm"), "QEMU q35": qemu_argv("q35")}
    if with_bare:
        cfgs = {"bare KVM_RUN loop": bare_argv, **cfgs}
    return cfgs


def parse_mib(mem):
    return int(mem[:-1]) * (1024 if mem.endswith("G") else 1)


def exited_ok(name, status):
    return status == (QEMU_EXIT_POWEROFF if name.startswith("QEMU") else 0)


def spawn(argv):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def read_lines(proc, markers, timeout, start):
    """Reads proc's stdout until every marker was seen; {marker: seconds since start}."""
    seen, buf, fd = {}, b"", proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    while len(seen) < len(markers):
        left = deadline - time.monotonic()
        r, _, _ = select.select([fd], [], [], max(left, 0))
        if not r:
            raise BenchError(f"timed out waiting for {markers[len(seen)]!r}: {buf[-200:]!r}")
        chunk = os.read(fd, 65536)
        now = time.monotonic() - start
        if not chunk:
            raise BenchError(f"output ended before {markers[len(seen)]!r}: {buf[-200:]!r} "
                             f"{proc.stderr.read()[-300:]!r}")
        buf += chunk
        for m in markers:
            if m not in seen and m.encode() in buf:
                seen[m] = now
    return seen


def finish(proc, name, timeout=60):
    """Waits for a VMM that should exit by itself; returns (exit time, its rusage)."""
    proc.stdout.read()
    deadline = time.monotonic() + timeout
    while True:
        pid, wstatus, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise BenchError(f"{name} did not exit")
        time.sleep(0.002)
    end = time.monotonic()
    proc.returncode = status = os.waitstatus_to_exitcode(wstatus)
    if not exited_ok(name, status):
        raise BenchError(f"{name} exited with {status}: {proc.stderr.read()[-300:]!r}")
    return end, usage


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.stdout.close()
    proc.stderr.close()


# ---- /proc readings ----

def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {field} for pid {pid}")


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise BenchError(f"no Pss for pid {pid}")


def guest_ram_rss_kib(pid, guest_mib):
    """Resident KiB of the guest-RAM mapping(s): anonymous mappings at least as large as the
    guest's memory below 4 GiB would be (both VMMs map RAM in one or two big pieces)."""
    total, size, anon = 0, 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$", line)
            if m:
                size = (int(m.group(2), 16) - int(m.group(1), 16)) >> 10
                anon = m.group(3) == "" or m.group(3).startswith("/memfd:")
            elif line.startswith("Rss:") and anon and size >= min(guest_mib, 3072) * 1024 // 2:
                total += int(line.split()[1])
    return total


# ---- the micro-guest benchmarks ----

def bench_start(cfgs, reps, res):
    """exec to the first line of hello, and to the VMM's exit."""
    def one(name, argv):
        t0 = time.monotonic()
        proc = spawn(argv("hello", "256M"))
        try:
            seen = read_lines(proc, ["kiln-micro: ready"], 30, t0)
            end, _ = finish(proc, name)
        finally:
            stop(proc)
        res.add("start", "start to first guest line", "ms", name,
                seen["kiln-micro: ready"] * 1e3)
        res.add("start", "start to VMM exit", "ms", name, (end - t0) * 1e3)

    for rep in range(reps):
        for name, argv in list(cfgs.items()):
            attempt(cfgs, res, "start", name, lambda: one(name, argv))
        progress("start", rep, reps)


def bench_memory(cfgs, reps, res):
    """Peak RSS while an idle guest sits halted, and what is beyond guest RAM touched."""
    def one(name, argv, mem):
        t0 = time.monotonic()
        proc = spawn(argv("idle", mem))
        try:
            read_lines(proc, ["kiln-micro: ready"], 30, t0)
            time.sleep(0.2)  # let the VMM settle after the guest's last exit
            hwm = status_kib(proc.pid, "VmHWM")
            guest = guest_ram_rss_kib(proc.pid, parse_mib(mem))
        finally:
            stop(proc)
        label = f"{mem[:-1]} {'GiB' if mem.endswith('G') else 'MiB'} guest"
        res.add("memory", f"peak RSS, {label}", "MiB", name, hwm / 1024)
        res.add("memory", f"RSS beyond guest RAM touched, {label}", "MiB", name,
                (hwm - guest) / 1024)

    for rep in range(reps):
        for mem in ("256M", "2G"):
            for name, argv in list(cfgs.items()):
                attempt(cfgs, res, "memory", name, lambda: one(name, argv, mem))
        progress("memory", rep, reps)


def bench_exits(cfgs, reps, res):
    """Per-exit round trip from the exits guest's phase lines."""
    marks = ["exits: pio begin", "exits: pio end", "exits: mmio begin", "exits: mmio end"]
    def one(name, argv):
        t0 = time.monotonic()
        proc = spawn(argv("exits", "256M"))
        try:
            seen = read_lines(proc, marks, 300, t0)
            _, usage = finish(proc, name)
        finally:
            stop(proc)
        pio = (seen["exits: pio end"] - seen["exits: pio begin"]) / EXIT_LOOPS
        mmio = (seen["exits: mmio end"] - seen["exits: mmio begin"]) / EXIT_LOOPS
        res.add("exits", "port-I/O exit round trip", "µs", name, pio * 1e6)
        res.add("exits", "MMIO exit round trip", "µs", name, mmio * 1e6)
        # CPU time is what the VMM itself spends, whoever else shares the machine; it
        # includes the VMM's start-up, spread over the 2 x EXIT_LOOPS exits.
        exits = 2 * EXIT_LOOPS
        res.add("exits", "VMM user CPU per exit (whole run)", "µs", name,
                usage.ru_utime / exits * 1e6)
        res.add("exits", "VMM system CPU per exit (whole run)", "µs", name,
                usage.ru_stime / exits * 1e6)

    for rep in range(reps):
        for name, argv in list(cfgs.items()):
            attempt(cfgs, res, "exits", name, lambda: one(name, argv))
        progress("exits", rep, reps)


def start_many(argv, count, procs):
    """Starts count VMs at once (appending them to procs, which the caller stops); returns
    (procs, seconds until every one printed its line)."""
    t0 = time.monotonic()
    for _ in range(count):
        procs.append(spawn(argv))
    pending = {p.stdout.fileno(): p for p in procs}
    bufs = {fd: b"" for fd in pending}
    deadline = t0 + 300
    while pending:
        r, _, _ = select.select(list(pending), [], [], max(deadline - time.monotonic(), 0))
        if not r:
            raise BenchError(f"{len(pending)} of {count} VMs not up after 300 s")
        for fd in r:
            chunk = os.read(fd, 4096)
            if not chunk:
                p = pending[fd]
                raise BenchError(f"a VM ended early: {p.wait()} {p.stderr.read()[-300:]!r}")
            bufs[fd] += chunk
            if b"kiln-micro: ready" in bufs[fd]:
                del pending[fd]
    return procs, time.monotonic() - t0


def bench_density(cfgs, reps, res, counts):
    def one(name, argv, count):
        procs = []
        try:
            procs, up = start_many(argv("idle", "128M"), count, procs)
            time.sleep(0.2)
            rss = sum(status_kib(p.pid, "VmRSS") for p in procs)
            pss = sum(pss_kib(p.pid) for p in procs)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                stop(p)
        res.add("density", f"{count} VMs: time until all are up", "s", name, up)
        res.add("density", f"{count} VMs: total RSS", "MiB", name, rss / 1024)
        res.add("density", f"{count} VMs: total PSS", "MiB", name, pss / 1024)

    for rep in range(reps):
        for count in counts:
            for name, argv in list(cfgs.items()):
                attempt(cfgs, res, "density", name, lambda: one(name, argv, count))
        progress("density", rep, reps)


def attempt(cfgs, res, bench, name, body):
    """Runs body(); on failure notes it once and drops the configuration for the rest."""
    try:
        body()
    except (BenchError, OSError) as e:
        res.note(bench, f"{name} failed: {e}")
        print(f"  {bench}: {name} failed: {e}", flush=True)
        cfgs.pop(name, None)


def progress(what, rep, reps):
    print(f"  {what}: repetition {rep + 1}/{reps} done", flush=True)


# ---- the stock-KVM host benchmarks (scripts of their own; parsed from their output) ----

def run_script(argv, log_path, env=None):
    """Runs a benchmark script, its output going to log_path as it comes; returns the output."""
    print(f"  running {' '.join(argv)} (log {log_path})", flush=True)
    out = []
    with open(log_path, "w") as log, subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        for line in proc.stdout:
            log.write(line)
            log.flush()
            out.append(line)
    return "".join(out)


def bench_linux(build, reps, res, log_dir):
    out = run_script([sys.executable, os.path.join(HERE, "linux_boot.py"), "--kiln",
                      os.path.join(build, "src", "kiln"), "--runs", str(reps)],
                     os.path.join(log_dir, "linux_boot.log"))
    pat = re.compile(r"^run \d+ (.+?): ready ([0-9.]+) s, guest uptime ([0-9.]+) s", re.M)
    for m in pat.finditer(out):
        res.add("linux", "VMM start to guest /init", "s", m.group(1), float(m.group(2)))
        res.add("linux", "guest uptime at /init", "s", m.group(1), float(m.group(3)))
    if not pat.search(out):
        res.note("linux", "bench/linux_boot.py produced no figures: see its log")


def bench_blk(build, reps, res, log_dir):
    out = run_script([sys.executable, os.path.join(HERE, "blk.py"), "--kiln",
                      os.path.join(build, "src", "kiln"), "--runs", str(reps)],
                     os.path.join(log_dir, "blk.log"))
    names = {"seqwrite": ("sequential write", "MiB/s"), "seqread": ("sequential read", "MiB/s"),
             "randread": ("4 KiB random read, QD1", "IOPS")}
    pat = re.compile(r"^  (kiln default|kiln io_uring|kiln threads|qemu aio=threads|qemu aio=io_uring): "
                     r".*RESULT (\w+) ([0-9.]+)", re.M)
    runs = {}
    for m in pat.finditer(out):
        runs.setdefault((m.group(1), m.group(2)), []).append(float(m.group(3)))
    for (label, metric), vals in runs.items():
        if metric == "seqwrite":
            vals = vals[1:]  # the first write only fills the image (as bench/blk.py does)
        name = label.replace("qemu", "QEMU q35")
        for v in vals:
            res.add("blk", names[metric][0], names[metric][1], name, v, higher=True)
    if not runs:
        res.note("blk", "bench/blk.py produced no figures: see its log")


NET_SCENARIOS = [(vmm, net) for vmm in ("kiln", "qemu") for net in ("tap", "user")]
NET_INVOCATIONS = 3  # test_net runs at most this often to get every scenario's figures


def net_figures(out):
    """{(vmm, net): [(metric, [values])]} from test_net output, one entry per scenario: the
    last attempt that printed it wins. test_net keeps a scenario's figures only when every
    check in it passed, so those of an attempt that later lost its host are sound; they
    come from another boot of the stock-KVM host than the figures of the scenarios after."""
    pat = re.compile(r"^PERF: (kiln|qemu) (tap|user) (\S+): \S+ \(runs: ([^)]*)\)", re.M)
    found = {}
    for attempt in re.split(r"^RETRY:.*$", out, flags=re.M):
        this = {}
        for m in pat.finditer(attempt):
            vals = [float(v) for v in m.group(4).split() if v != "n/a"]
            this.setdefault((m.group(1), m.group(2)), []).append((m.group(3), vals))
        found.update(this)
    return found


def bench_net(build, reps, res, log_dir):
    found, attempts = {}, 0
    # Each run covers only the scenarios without figures yet (and never the transmit-offload
    # ones, which the report does not use).
    missing = [f"{v} {t}" for v, t in NET_SCENARIOS]
    for n in range(1, NET_INVOCATIONS + 1):
        env = dict(os.environ, KILN_NET_PERF="1", KILN_NET_BENCH_REPS=str(reps),
                   KILN_NET_ONLY=",".join(missing))
        out = run_script([sys.executable, os.path.join(ROOT, "tests", "linux", "test_net.py"),
                          "--kiln", os.path.join(build, "src", "kiln"), "--log-dir", log_dir],
                         os.path.join(log_dir, f"net-{n}.log"), env=env)
        found.update(net_figures(out))
        attempts += 1 + len(re.findall(r"^RETRY:", out, re.M))
        missing = [f"{v} {t}" for v, t in NET_SCENARIOS if (v, t) not in found]
        if not missing:
            break
        print(f"  net: no figures yet for {', '.join(missing)}: running those again", flush=True)
    if attempts > 1:
        res.note("net", f"tests/linux/test_net.py took {attempts} attempts (the stock-KVM host "
                 "or its inner guest failed under it, issue 3): each VMM's tap and user figures "
                 "are from the last attempt in which that scenario passed every check")
    for (vmm, net), metrics in sorted(found.items()):
        name = "kiln" if vmm == "kiln" else "QEMU q35"
        for metric, vals in metrics:
            for v in vals:
                if metric == "rr":  # median round trip of netbench rr, µs
                    res.add("net", f"TCP request latency, {net}", "µs", name, v, higher=False)
                else:
                    res.add("net", f"TCP {net} {metric}", "MB/s", name, v, higher=True)
    if not found:
        res.note("net", "tests/linux/test_net.py produced no PERF figures: see its log")


# ---- the conditions of the run ----

def command_output(argv):
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True).stdout.strip()
    except OSError:
        return "n/a"


def conditions(build, reps, only):
    cpu = "n/a"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    kvm = next((m for m in ("kvm_pvm", "kvm_amd", "kvm_intel")
                if os.path.isdir(f"/sys/module/{m}")), "n/a")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host": f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs, {mem_kib >> 20} GiB",
        "host kernel": platform.release(),
        "KVM": kvm,
        "kiln": command_output(["git", "-C", ROOT, "describe", "--always", "--dirty"]),
        "QEMU": command_output(["qemu-system-x86_64", "--version"]).splitlines()[0],
        "repetitions": str(reps),
        "benchmarks": ", ".join(only),
        "load average at start": " ".join(open("/proc/loadavg").read().split()[:3]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--reps", type=int, help="repetitions per configuration (default 5, quick 3)")
    ap.add_argument("--quick", action="store_true", help="micro-guest benchmarks only, 3 reps")
    ap.add_argument("--only", help="comma-separated: " + ",".join(MICRO + SLOW))
    ap.add_argument("--density", default="10,50,100", help="VM counts for density")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--charts", default=os.path.join(ROOT, "docs", "bench"))
    ap.add_argument("--log-dir", default="/tmp/kiln-bench")
    ap.add_argument("--from-json", metavar="FILE", nargs="+",
                    help="measure nothing: write the report from results.json files (of runs "
                         "of different benchmarks, e.g. a --quick run and an --only linux run)")
    a = ap.parse_args()
    if a.from_json:
        res, cond, only = report.Results.merge(a.from_json)
        report.write(res, cond, only, a.out, a.charts)
        print(f"wrote {a.out} and charts in {a.charts}")
        return
    only = [s.strip() for s in a.only.split(",")] if a.only else \
        list(MICRO if a.quick else MICRO + SLOW)
    unknown = [s for s in only if s not in MICRO + SLOW]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}")
    reps = a.reps or (3 if a.quick else 5)
    build = os.path.abspath(a.build)
    os.makedirs(a.log_dir, exist_ok=True)
    subprocess.run(["ninja", "-C", build], check=True, stdout=subprocess.DEVNULL)

    cond = conditions(build, reps, only)
    res = report.Results()
    cfgs = vmm_configs(build)
    steps = {
        "start": lambda: bench_start(cfgs, reps, res),
        "memory": lambda: bench_memory(cfgs, reps, res),
        "exits": lambda: bench_exits(vmm_configs(build, with_bare=True), reps, res),
        "density": lambda: bench_density(
            {k: v for k, v in cfgs.items() if k != "QEMU q35"}, max(1, reps // 3), res,
            [int(n) for n in a.density.split(",")]),
        "snap": lambda: snapmig.bench(build, reps, res, attempt, progress),
        "linux": lambda: bench_linux(build, reps, res, a.log_dir),
        "blk": lambda: bench_blk(build, max(1, reps // 2), res, a.log_dir),
        "net": lambda: bench_net(build, max(1, reps // 2), res, a.log_dir),
    }
    for name in only:
        print(f"{name}:", flush=True)
        t = time.monotonic()
        try:
            steps[name]()
        except (BenchError, OSError, subprocess.SubprocessError) as e:
            res.note(name, f"failed: {e}")
            print(f"  {name} failed: {e}", flush=True)
        print(f"  {name}: {time.monotonic() - t:.0f} s", flush=True)
    cond["load average at end"] = " ".join(open("/proc/loadavg").read().split()[:3])
    saved = os.path.join(a.log_dir, "results.json")
    res.save(saved, cond, only)
    report.write(res, cond, only, a.out, a.charts)
    print(f"wrote {a.out}, charts in {a.charts}, raw figures in {saved}")


if __name__ == "__main__":
    main()
