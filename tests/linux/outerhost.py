"""Drive the stock-KVM host: an outer VM (QEMU in software emulation, TCG)
whose kernel has kvm_amd with nested=1, so a real /dev/kvm exists inside it
even where the machine's own KVM cannot run Linux guests.

The outer VM shares this machine's root file system read-only over 9p and
runs bash chrooted into it on its serial port, which is connected to us
through pipes (see host-init.sh). So commands run inside use the machine's
own binaries at their usual paths; a scratch directory is shared writable
at the same path inside and out.

    with OuterHost(log_path="boot.log") as host:
        status, out = host.run("uname -r")
        host.spawn("kiln run --kernel ...")   # foreground, owns the console
        host.expect(r"kiln-guest: ready", timeout=120)
        host.send(b"poweroff\\r")
        status = host.wait_exit(timeout=60)

Every byte from the serial port goes to the transcript file, with the
driver's own actions on lines starting with ">>>".

Only the standard library is used.
"""
import os
import re
import secrets
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# EPYC and max both work (FACTS.md); qemu64,+svm hangs nested guests. The
# outer RAM is only allocated as it is touched; it must exceed the largest
# inner guest (kiln refuses a guest bigger than its host's RAM + swap).
DEFAULT_CPU = os.environ.get("KILN_HOST_CPU", "EPYC")
DEFAULT_MEM = os.environ.get("KILN_HOST_MEM", "6G")


def cache_dir():
    """Same rule as guest/lib.sh."""
    if os.environ.get("KILN_CACHE"):
        return os.environ["KILN_CACHE"]
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "kiln")


def build_images(log=print):
    """Build (or find cached) the default guest and the outer host images.
    Returns (guest_dir, host_dir)."""
    for script in (os.path.join(REPO, "guest", "build-guest.sh"),
                   os.path.join(HERE, "build-host.sh")):
        t = time.monotonic()
        proc = subprocess.run(["bash", script], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout.splitlines():
            log(line)
        if proc.returncode != 0:
            raise HostError(f"{os.path.basename(script)} failed (status {proc.returncode})")
        log(f"{os.path.basename(script)}: {time.monotonic() - t:.1f} s")
    return os.path.join(cache_dir(), "guest"), os.path.join(cache_dir(), "host")


def unix_lines(text):
    """Terminal output to plain lines: CR LF (or CR CR LF, when two tty
    layers each add a CR) becomes LF."""
    return re.sub("\r+\n", "\n", text)


def qemu_argv(host_dir, scratch, mode, mem, cpus, cpu_model, extra_append="",
              qemu="qemu-system-x86_64"):
    """The outer QEMU command line, without its serial port. The kernel is
    the uncompressed vmlinux, booted through PVH: that skips ~5 s of XZ
    decompression under TCG. No network device at all. See host-init.sh
    for the kilnhost.* options."""
    # HOME and the cache are passed on so that kiln finds its default guest
    # inside as it does outside (kernel parameters cannot hold spaces).
    home, cache = os.path.expanduser("~"), os.path.abspath(cache_dir())
    append = " ".join(filter(None, [
        "console=ttyS0 quiet loglevel=3 panic=-1",
        f"kilnhost.mode={mode}",
        f"kilnhost.scratch={scratch}",
        f"kilnhost.home={home}" if not re.search(r"\s", home) else "",
        f"kilnhost.cache={cache}" if not re.search(r"\s", cache) else "",
        extra_append]))
    return [
        qemu, "-nodefaults", "-no-user-config",
        "-accel", "tcg,thread=multi", "-cpu", cpu_model,
        "-smp", str(cpus), "-m", mem,
        "-display", "none", "-no-reboot",
        "-kernel", os.path.join(host_dir, "vmlinux"),
        "-initrd", os.path.join(host_dir, "initramfs.cpio.gz"),
        "-append", append,
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,"
                   "readonly=on,multidevs=remap",
        "-virtfs", f"local,path={scratch},mount_tag=scratch,"
                   "security_model=none,multidevs=remap",
    ]


class HostError(Exception):
    """The outer host did not behave (boot failure, hang, lost shell)."""


class Timeout(HostError):
    pass


class CommandExited(HostError):
    """The spawned command ended while we waited for something else."""


class HostDied(HostError):
    """The outer QEMU exited under us: the stock-KVM host's own kernel died
    (its nested KVM under TCG panics now and then, see died_reason()), which
    is no verdict on the inner VMM. Tests may boot a new host and retry."""

    def __init__(self, message):
        super().__init__(message)
        DEATHS.append(message)


class GuestReset(HostError):
    """kiln reported that the inner guest triple-faulted."""

    def __init__(self, message):
        super().__init__(message)
        RESETS.append(message)


# Every GuestReset of this process (linuxtest.run() gives the file one more chance).
RESETS = []


TRIPLE_FAULT = re.compile(r"kiln: warning: vCPU \d+: guest triple-faulted")

# Every HostDied of this process, caught or not (linuxtest.run() retries on them).
DEATHS = []


class OuterHost:
    def __init__(self, log_path, mem=None, cpus=2, cpu_model=None, boot_timeout=180,
                 host_dir=None, qemu="qemu-system-x86_64", extra_append=""):
        self.log_path = log_path
        self.mem = mem or DEFAULT_MEM
        self.cpus = cpus
        self.cpu_model = cpu_model or DEFAULT_CPU
        self.boot_timeout = boot_timeout
        self.host_dir = host_dir or os.path.join(cache_dir(), "host")
        self.qemu = qemu
        self.extra_append = extra_append
        self.proc = None
        self.scratch = None
        self.buf = ""          # everything received, as latin-1 text (1 char per byte)
        self.pos = 0           # expect() searches from here
        self.tag = secrets.token_hex(3)
        self.seq = 0
        self.t0 = None
        self.boot_seconds = None
        self._log = None
        self._cmd_marker = None  # end marker of the command started by spawn()
        self._cmd_deadline = None  # when its `timeout` SIGKILLs it (spawn's limit)

    # ---- life cycle -----------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def qemu_argv(self):
        return qemu_argv(self.host_dir, self.scratch, "driver", self.mem, self.cpus,
                         self.cpu_model, self.extra_append, self.qemu)

    def start(self):
        for f in ("vmlinux", "initramfs.cpio.gz"):
            if not os.path.exists(os.path.join(self.host_dir, f)):
                raise HostError(f"{self.host_dir}/{f} missing: run tests/linux/build-host.sh")
        # Under /tmp, which the outer VM sees (read-only) at the same path;
        # host-init.sh mounts the writable share on top of it.
        self.scratch = tempfile.mkdtemp(prefix="kiln-outer-", dir="/tmp")
        os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), exist_ok=True)
        self._log = open(self.log_path, "wb")
        argv = self.qemu_argv() + ["-serial", "stdio"]
        self.note("start: " + " ".join(shlex.quote(a) for a in argv))
        self.t0 = time.monotonic()
        # QEMU's own messages (TCG CPUID warnings...) go to a side file.
        self._qemu_err = open(self.log_path + ".qemu-stderr", "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._qemu_err, start_new_session=True)
        os.set_blocking(self.proc.stdout.fileno(), False)
        try:
            self.expect(r"kiln-host: ready\r*\n", timeout=self.boot_timeout)
            errors = re.findall(r"kiln-host: error: [^\r\n]*", self.buf)
            if errors:
                raise HostError("; ".join(errors))
            self._sync()
        except HostError:
            self.close()
            raise
        self.boot_seconds = time.monotonic() - self.t0
        self.note(f"outer host up in {self.boot_seconds:.2f} s")

    def _sync(self):
        """Wait until bash reads its terminal. Input that reaches ttyS0 before
        anything opened it is lost, so ask again until an answer comes."""
        for _ in range(30):
            marker = self._marker("S")
            self.send(f"printf '\\n@@%s\\n' {marker}\n")
            try:
                self.expect(f"@@{marker}\r*\n", timeout=2)
                return
            except Timeout:
                pass
        raise Timeout("the outer shell never answered")

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.note("stopping QEMU")
            # Do not rely on a clean power-off (FACTS.md: the outer host can
            # freeze after its inner VMM exits): end QEMU ourselves.
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc is not None:
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
            self.proc = None
        if self.scratch and os.environ.get("KILN_KEEP_SCRATCH") != "1":
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None
        if self._log:
            self._log.close()
            self._log = None
            self._qemu_err.close()

    # ---- low level I/O --------------------------------------------------

    def note(self, text):
        """A driver line in the transcript."""
        if self._log:
            t = time.monotonic() - self.t0 if self.t0 else 0.0
            self._log.write(f"\n>>> [{t:8.3f}] {text}\n".encode("utf-8", "replace"))
            self._log.flush()

    def send(self, data, chunk=0, delay=0.0):
        """Write bytes (or str) to the serial port. With chunk > 0, write
        that many bytes at a time with `delay` seconds between, like typing."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.note(f"send {data!r}")
        if self.proc is None or self.proc.poll() is not None:
            raise HostError("QEMU is not running")
        step = chunk or len(data) or 1
        for i in range(0, len(data), step):
            if i and delay:
                self._drain(delay)
            try:
                os.write(self.proc.stdin.fileno(), data[i:i + step])
            except BrokenPipeError:
                raise HostDied(f"QEMU exited while we typed: {self.died_reason()}") from None

    def died_reason(self):
        """What the outer kernel said last before QEMU exited: its BUG/Oops
        and panic lines, or the tail of the console."""
        tail = self.buf[-20000:]
        lines = re.findall(r"\][ ]((?:BUG|Kernel panic|Oops|general protection|RIP)[^\r\n]*)",
                           tail)
        if lines:
            return "; ".join(lines[-4:])
        return "no panic message; console ended with " + repr(unix_lines(tail[-300:]))

    def _pump(self, wait):
        """Read whatever arrives within `wait` seconds (at least one poll)."""
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + wait
        while True:
            left = max(0.0, end - time.monotonic())
            r, _, _ = select.select([fd], [], [], left)
            if r:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    data = None
                if data == b"":
                    return False  # EOF: QEMU exited
                if data:
                    self._log.write(data)
                    self._log.flush()
                    self.buf += data.decode("latin-1")
                    return True
            if time.monotonic() >= end:
                return True

    def _drain(self, seconds):
        """Keep reading (into the transcript) for `seconds`."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and self._pump(end - time.monotonic()):
            pass

    def expect(self, pattern, timeout):
        """Wait for regex `pattern` in the output after the last match;
        return the match and move past it. Raise Timeout otherwise."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        # While a spawned command runs, its end marker means whatever we
        # wait for will never come: fail at once, with what it said.
        gone = None
        if self._cmd_marker and self._cmd_marker not in rx.pattern:
            gone = re.compile(f"@@{self._cmd_marker}E (\\d+)\r*\n")
        end = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf, self.pos)
            if m:
                self.pos = m.end()
                return m
            self._check_guest_reset(rx)
            g = gone.search(self.buf, self.pos) if gone else None
            if g:
                tail = unix_lines(self.buf[max(self.pos, g.start() - 600):g.start()]).strip()
                self.pos = g.end()
                self._cmd_marker = None
                self.note(f"command exited (status {g.group(1)}) while waiting for {rx.pattern!r}")
                raise CommandExited(f"the command exited with status {g.group(1)} "
                                    f"while waiting for {rx.pattern!r}; it printed: {tail!r}")
            left = end - time.monotonic()
            if left <= 0:
                self.note(f"timeout after {timeout} s waiting for {rx.pattern!r}")
                raise Timeout(f"timed out after {timeout} s waiting for {rx.pattern!r}")
            if self.proc is None or not self._pump(min(left, 0.5)):
                self.note(f"QEMU exited while waiting for {rx.pattern!r}")
                raise HostDied(f"QEMU exited while waiting for {rx.pattern!r}: "
                               f"{self.died_reason()}")

    def _check_guest_reset(self, rx):
        """kiln reports a guest triple fault with the vCPU's registers; whatever
        we wait for is then not coming (the guest is rebooting or gone): fail at
        once with kiln's report, instead of at the timeout."""
        t = TRIPLE_FAULT.search(self.buf, self.pos)
        if not t:
            return
        report = unix_lines(self.buf[t.start():t.start() + 800]).strip()
        self.pos = t.end()
        self.note(f"the guest triple-faulted while waiting for {rx.pattern!r}")
        raise GuestReset(f"the guest triple-faulted while waiting for {rx.pattern!r}: {report!r}")

    def _marker(self, kind):
        self.seq += 1
        return f"K{self.tag}{kind}{self.seq}"

    # ---- commands -------------------------------------------------------

    def run(self, cmd, timeout=60):
        """Run a shell command in the outer host (stdin from /dev/null);
        return (exit status, output as unix_lines()).

        The command is framed by markers that the command itself prints:
        the terminal's echo of what we typed has '%s' where the marker text
        will be, so it cannot be mistaken for them."""
        if self._cmd_marker:
            raise HostError("run() while a spawned command is still in the foreground")
        mark = self._marker("R")
        self.send(f"printf '\\n@@%sB\\n' {mark}; {{ {cmd}\n}} </dev/null; "
                  f"printf '\\n@@%sE %s\\n' {mark} \"$?\"\n")
        self.expect(f"@@{mark}B\r*\n", timeout=timeout)
        start = self.pos
        m = self.expect(f"\r*\n@@{mark}E (\\d+)\r*\n", timeout=timeout)
        out = unix_lines(self.buf[start:m.start()])
        return int(m.group(1)), out

    def check(self, cmd, timeout=60):
        """run(), raising HostError on a non-zero status; returns the output."""
        status, out = self.run(cmd, timeout)
        if status != 0:
            raise HostError(f"'{cmd}' failed with status {status}: {out.strip()[-500:]}")
        return out

    def spawn(self, cmd, limit=None):
        """Start `cmd` (one line) in the foreground of the outer shell, with
        the terminal: use expect()/send() to talk to it, wait_exit() for its
        end. The end marker is on the same line, so bash prints it as soon as
        the command exits; what we type meanwhile goes to the command.
        With `limit`, the command is killed after that many seconds, so a
        hung VMM cannot take the outer shell with it."""
        if "\n" in cmd:
            raise ValueError("spawn() takes a one-line command")
        if self._cmd_marker:
            raise HostError("spawn() while another command is in the foreground")
        if limit:
            # --foreground: the command stays in the terminal's foreground
            # process group, so it can read the terminal and set its modes.
            cmd = f"timeout --foreground -s KILL {int(limit)} {cmd}"
        mark = self._marker("C")
        self.send(f"printf '\\n@@%sB\\n' {mark}; {cmd}; printf '\\n@@%sE %s\\n' {mark} \"$?\"\n")
        self.expect(f"@@{mark}B\r*\n", timeout=30)
        self._cmd_marker = mark
        self._cmd_deadline = time.monotonic() + limit if limit else None

    def wait_exit(self, timeout):
        """Wait for the spawned command to end; return its exit status
        (128+N if killed by signal N, as bash reports it)."""
        if not self._cmd_marker:
            raise HostError("wait_exit() with no spawned command")
        m = self.expect(f"@@{self._cmd_marker}E (\\d+)\r*\n", timeout=timeout)
        self._cmd_marker = None
        return int(m.group(1))

    def abort_spawned(self):
        """Best effort to get the shell back after a failed interactive
        check: kill whatever runs in the foreground (from another
        terminal is impossible here, so use ^C and the VMM's own quit keys)."""
        if not self._cmd_marker:
            return True
        for keys in (b"\x01x", b"\x03", b"\x1c"):
            self.send(keys)
            try:
                self.wait_exit(timeout=10)
                return True
            except Timeout:
                continue
        return self._wait_for_limit()

    def _wait_for_limit(self):
        """The command ignores its quit keys. Its `timeout` SIGKILLs it at the
        spawn's limit: if the shell then reports the kill, the command itself
        had hung (a verdict on it: False). If even that never comes, the
        stock-KVM host has stopped running its processes (nested KVM under
        TCG freezes now and then, FACTS.md; or the VMM sits in uninterruptible
        I/O on the 9p share): no verdict on the VMM, recorded in DEATHS like a
        dead host, so linuxtest.run() runs the file again."""
        if self._cmd_deadline is None:
            return False
        try:
            self.wait_exit(timeout=max(0.0, self._cmd_deadline - time.monotonic()) + 30)
            return False
        except Timeout:
            DEATHS.append("the stock-KVM host stopped answering: the VMM ignored its quit keys "
                          "and was still not gone after its SIGKILL deadline")
            self.note(DEATHS[-1])
            return False

    def since(self, mark=None):
        """Text received after position `mark` (default: the last match)."""
        return self.buf[self.pos if mark is None else mark:]


def interactive(command):
    """Boot the outer host on this terminal (tests/linux/shell.sh). With a
    command, run it there and return its exit status; else give a shell."""
    _, host_dir = build_images(log=lambda line: print(line, file=sys.stderr))
    scratch = tempfile.mkdtemp(prefix="kiln-outer-", dir="/tmp")
    try:
        size = shutil.get_terminal_size((80, 24))
        cwd = os.getcwd()
        extra = [f"kilnhost.rows={size.lines}", f"kilnhost.cols={size.columns}",
                 f"kilnhost.term={os.environ.get('TERM', 'vt100')}"]
        if not re.search(r"\s", cwd):
            extra.append(f"kilnhost.cwd={cwd}")
        if command:
            script = os.path.join(scratch, "autorun.sh")
            with open(script, "w") as f:
                f.write("#!/bin/bash\n" + " ".join(shlex.quote(a) for a in command) + "\n")
            os.chmod(script, 0o755)
        argv = qemu_argv(host_dir, scratch, "interactive", DEFAULT_MEM, 2, DEFAULT_CPU,
                         " ".join(extra))
        # The outer QEMU's escape key is Ctrl-] so that Ctrl-A reaches kiln.
        argv += ["-serial", "mon:stdio", "-echr", "29"]
        print("stock-KVM host: booting (about 5 s). Ctrl-] x ends it; "
              "Ctrl-A x still goes to kiln inside.", file=sys.stderr)
        # QEMU warns once per vCPU about each EPYC feature that TCG lacks;
        # pass its other messages on.
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE)
        for line in proc.stderr:
            if b"TCG doesn't support requested feature" not in line:
                sys.stderr.buffer.write(line)
                sys.stderr.flush()
        status = proc.wait()
        if command:
            try:
                with open(os.path.join(scratch, "autorun.status")) as f:
                    return int(f.read().strip() or 1)
            except (OSError, ValueError):
                print("stock-KVM host: the command did not finish", file=sys.stderr)
                return 1
        return status
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] != ["shell"]:
        sys.exit("usage: outerhost.py shell [COMMAND [ARG...]]")
    try:
        sys.exit(interactive(sys.argv[2:]))
    except HostError as e:
        sys.exit(f"stock-KVM host: {e}")
