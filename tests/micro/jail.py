#!/usr/bin/env python3
"""kiln run --jail on this machine's /dev/kvm with micro-guests (no Linux needed).

  jail.py --kiln PATH --echo echo.bin --hello hello.bin --smp smp.bin --memtouch memtouch.bin

While a jailed echo guest waits for input, the VM process (the supervisor's child) is
inspected through /proc: it runs as the jail uid/gid with no supplementary groups, every
capability set is empty, NoNewPrivs is 1, it is PID 1 of a new PID namespace and has its
own mount, IPC, UTS and cgroup namespaces, its root is the jail directory (a marker file is
there; /etc/passwd and /proc are not), that root is its only mount and is read-only, and
its core and open-file limits are set. Then the guest still echoes and powers off (exit 0).
The same with --jail-netns and a tap device that only exists in a test-made namespace.
Every thread of the VM process is checked, not only the main one. Also: a guest reset
inside the jail, a vsock socket outside the jail (refused), a non-root caller (refused), the
disk thread pool (its workers start after the jail), signals through the supervisor, and
--jail-cgroup memory.max: enforced (the OOM killer ends a guest that touches more memory,
exit 5) where cgroup v2 has the memory controller, else a clear refusal (exit 9).

Prints PASS/FAIL lines; exits 0, 1 on failure, 77 without root or a usable /dev/kvm.
Python 3 standard library only.
"""
import argparse
import http.client
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

USAGE, RESOURCES, DEVICE, JAIL = 2, 5, 6, 9
JAIL_ID = 65534
NAMESPACES = ("mnt", "pid", "ipc", "uts", "cgroup")


class Checks:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def check(self, ok, what, detail=""):
        print(f"{'PASS' if ok else 'FAIL'}: {what}" + (f" ({detail})" if detail and not ok else ""),
              flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok


def jail_env():
    # LeakSanitizer stops the world through /proc and ptrace: neither exists inside the jail.
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    return env


def run(argv, timeout=20, **kw):
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, env=jail_env(), **kw)
    except subprocess.TimeoutExpired:
        return None, "", "timed out"
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def raw_guest(kiln, guest, *extra):
    return [kiln, "run", "--kernel", guest, "--kernel-format", "raw", "-m", "64M"] + list(extra)


class Running:
    """A kiln started in its own session; stdout is read as it comes."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True,
                                     env=jail_env())
        self.out = b""

    def wait_for(self, text, timeout=15):
        deadline = time.monotonic() + timeout
        while text not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                data = os.read(self.proc.stdout.fileno(), 65536)
                if not data:
                    return False
                self.out += data
        return True

    def send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def finish(self, timeout=15):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            rc = self.proc.wait()
        err = self.proc.stderr.read().decode(errors="replace")
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except BrokenPipeError:
                pass
        return rc, err


def vm_pid(supervisor, timeout=5):
    path = f"/proc/{supervisor}/task/{supervisor}/children"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kids = open(path).read().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.02)
    return None


def status_fields(pid):
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return fields


def check_threads(c, pid):
    """Capabilities and no_new_privs belong to each thread: check every one."""
    bad = []
    tids = os.listdir(f"/proc/{pid}/task")
    for tid in tids:
        st = status_fields(f"{pid}/task/{tid}")
        caps = [int(st[k][0], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")]
        if any(caps) or st["NoNewPrivs"] != ["1"] or st["Uid"] != [str(JAIL_ID)] * 4:
            bad.append(tid)
    c.check(len(tids) > 1 and not bad,
            f"all {len(tids)} threads (vCPU included) are unprivileged, with no_new_privs",
            f"privileged threads: {bad}")


def check_confined(c, pid, supervisor, jail_dir, netns_path):
    st = status_fields(pid)
    c.check(st["Uid"] == [str(JAIL_ID)] * 4, "the VM runs as the jail uid", str(st["Uid"]))
    c.check(st["Gid"] == [str(JAIL_ID)] * 4, "the VM runs as the jail gid", str(st["Gid"]))
    c.check(st.get("Groups", []) == [], "no supplementary groups", str(st.get("Groups")))
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        c.check(int(st[cap][0], 16) == 0, f"{cap} is empty", st[cap][0])
    c.check(st["NoNewPrivs"] == ["1"], "NoNewPrivs is 1", str(st["NoNewPrivs"]))
    check_threads(c, pid)
    c.check(st["NSpid"][-1] == "1" and len(st["NSpid"]) == 2,
            "the VM is PID 1 of a new PID namespace", str(st["NSpid"]))
    for ns in NAMESPACES:
        mine = os.readlink(f"/proc/{pid}/ns/{ns}")
        c.check(mine != os.readlink(f"/proc/{supervisor}/ns/{ns}") and
                mine != os.readlink(f"/proc/self/ns/{ns}"),
                f"the VM has its own {ns} namespace", mine)
    net = os.stat(f"/proc/{pid}/ns/net").st_ino
    want = os.stat(netns_path).st_ino if netns_path else os.stat("/proc/self/ns/net").st_ino
    c.check(net == want, "the VM is in the network namespace asked for"
            if netns_path else "without --jail-netns the VM keeps the network namespace")
    root = f"/proc/{pid}/root"
    c.check(os.stat(root).st_ino == os.stat(jail_dir).st_ino, "the VM's root is the jail dir")
    c.check(sorted(os.listdir(root)) == ["marker"], "the VM sees only the jail's contents",
            str(os.listdir(root)))
    c.check(not os.path.exists(f"{root}/etc/passwd") and not os.path.exists(f"{root}/proc"),
            "/etc/passwd and /proc are not visible to the VM")
    mounts = open(f"/proc/{pid}/mountinfo").read().splitlines()
    opts = mounts[0].split()[5].split(",") if len(mounts) == 1 else []
    c.check(len(mounts) == 1 and mounts[0].split()[4] == "/" and
            {"ro", "nosuid", "nodev", "noexec"} <= set(opts),
            "the jail root is the VM's only mount, read-only, nosuid, nodev, noexec",
            "; ".join(mounts))
    limits = open(f"/proc/{pid}/limits").read()
    c.check(any(l.startswith("Max core file size") and l.split()[4:6] == ["0", "0"]
                for l in limits.splitlines()), "no core dumps (RLIMIT_CORE 0)")
    c.check(any(l.startswith("Max open files") and l.split()[3:5] == ["2048", "2048"]
                for l in limits.splitlines()), "RLIMIT_NOFILE is 2048")


def t_confined(a, c, tmp, netns=None):
    jail_dir = os.path.join(tmp, "jail-netns" if netns else "jail")
    os.mkdir(jail_dir)
    open(os.path.join(jail_dir, "marker"), "w").close()
    extra = ["--jail", jail_dir]
    if netns:
        extra += ["--jail-netns", netns, "--net", "tap=ktap0"]
    k = Running(raw_guest(a.kiln, a.echo, *extra))
    ready = c.check(k.wait_for(b"echo: ready\n"), "the jailed echo guest starts", k.out.decode())
    pid = vm_pid(k.proc.pid) if ready else None
    if c.check(pid is not None, "the supervisor has one child, the VM process"):
        check_confined(c, pid, k.proc.pid, jail_dir,
                       f"/run/netns/{netns}" if netns else None)
    if ready:
        k.send(b"abc")
        c.check(k.wait_for(b"ABC"), "the jailed guest still echoes input", k.out.decode())
        k.send(b"q")
    rc, err = k.finish()
    c.check(rc == 0, "the jailed guest powers off: exit 0", f"rc {rc}: {err}")


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def api(path, method, url, body=None):
    """(status, parsed JSON or None) of one request on the API socket at `path`."""
    conn = UnixHTTP(path)
    data = json.dumps(body) if body is not None else None
    conn.request(method, url, body=data,
                 headers={"Content-Type": "application/json"} if data else {})
    resp = conn.getresponse()
    text = resp.read().decode(errors="replace")
    conn.close()
    return resp.status, json.loads(text) if text else None


def wait_socket(path, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            api(path, "GET", "/")
            return True
        except OSError:
            time.sleep(0.05)
    return False


def t_api(a, c, tmp):
    """--jail with --api-sock: the socket is bound before pivot_root, at its host path; the
    main thread serves the API until InstanceStart, which opens everything as root and
    enters the jail; the API thread starts after that, unprivileged and under its own
    seccomp filter. A failed start can be retried; the supervisor removes the socket."""
    jail_dir = os.path.join(tmp, "jail-api")
    os.mkdir(jail_dir)
    sock = os.path.join(tmp, "api.sock")
    k = Running([a.kiln, "run", "--jail", jail_dir, "--api-sock", sock])
    if not c.check(wait_socket(sock, k.proc), "the jailed VM's API socket answers on the host"):
        print(k.finish())
        return
    st, body = api(sock, "GET", "/")
    c.check(st == 200 and body.get("state") == "Not started", "GET / -> Not started",
            f"{st} {body}")
    boot = {"kernel_image_path": os.path.join(tmp, "no-such-kernel"), "kiln_kernel_format": "raw"}
    api(sock, "PUT", "/boot-source", boot)
    api(sock, "PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 64})
    st, body = api(sock, "PUT", "/actions", {"action_type": "InstanceStart"})
    c.check(st == 400 and "no-such-kernel" in (body or {}).get("fault_message", ""),
            "a start that fails before the jail is refused with the reason", f"{st} {body}")
    boot["kernel_image_path"] = a.echo
    st, _ = api(sock, "PUT", "/boot-source", boot)
    st2, body = api(sock, "PUT", "/actions", {"action_type": "InstanceStart"})
    c.check((st, st2) == (204, 204), "... and can be retried: InstanceStart -> 204", f"{body}")
    ready = c.check(k.wait_for(b"echo: ready\n"), "the jailed guest runs", k.out.decode())
    pid = vm_pid(k.proc.pid)
    if ready and c.check(pid is not None, "the supervisor has one child, the VM process"):
        check_threads(c, pid)
        names = {}
        for tid in os.listdir(f"/proc/{pid}/task"):
            st_ = status_fields(f"{pid}/task/{tid}")
            names[st_["Name"][0]] = st_.get("Seccomp_filters", ["?"])[0]
        c.check(names.get("kiln-api") == "1" and names.get("kiln") == "1",
                "the jailed API thread runs under its own filter only", f"{names}")
    st, body = api(sock, "GET", "/")
    c.check(st == 200 and body.get("state") == "Running", "GET / -> Running", f"{st} {body}")
    st, _ = api(sock, "PATCH", "/vm", {"state": "Paused"})
    st2, body = api(sock, "GET", "/")
    c.check(st == 204 and body.get("state") == "Paused", "PATCH /vm Paused -> 204, Paused")
    if ready:
        k.send(b"abc")
        c.check(not k.wait_for(b"ABC", timeout=0.7), "a paused guest does not echo")
    st, _ = api(sock, "PATCH", "/vm", {"state": "Resumed"})
    c.check(st == 204, "PATCH /vm Resumed -> 204")
    if ready:
        c.check(k.wait_for(b"ABC"), "the resumed guest echoes", k.out.decode())
        k.send(b"q")
    rc, err = k.finish()
    c.check(rc == 0 and "seccomp" not in err, "the guest powers off: exit 0", f"rc {rc}: {err}")
    c.check(not os.path.exists(sock), "the supervisor removes the socket file")
    rc, _, err = run(raw_guest(a.kiln, a.hello, "--jail", jail_dir, "--config-file",
                               os.path.join(tmp, "x.json")))
    c.check(rc == USAGE and "--config-file" in err, "--jail --config-file is refused (exit 2)",
            f"rc {rc}: {err}")


def t_control_plane(a, c, tmp):
    """kiln create --jail: `kiln start` runs the VM jailed (through --api-sock), and the
    lifecycle commands reach it; limits that a definition cannot store are refused."""
    jail_dir = os.path.join(tmp, "jail-cp")
    os.mkdir(jail_dir)
    env = dict(jail_env(), KILN_STATE_DIR=os.path.join(tmp, "state"))

    def cli(*args):
        p = subprocess.run([a.kiln] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                           env=env, timeout=60)
        return p.returncode, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")

    rc, out = cli("create", "jv", "--kernel", a.echo, "--kernel-format", "raw", "-m", "64M",
                  "--jail", jail_dir)
    c.check(rc == 0, "kiln create --jail", out)
    rc, out = cli("start", "jv")
    c.check(rc == 0, "kiln start of a jailed definition", out)
    pid = None
    try:
        with open(os.path.join(env["KILN_STATE_DIR"], "jv", "runtime.json")) as f:
            pid = vm_pid(json.load(f)["pid"])
    except (OSError, ValueError, KeyError):
        pass
    if c.check(pid is not None, "the supervisor has one child, the VM process"):
        st = status_fields(pid)
        c.check(st["Uid"] == [str(JAIL_ID)] * 4 and st["NoNewPrivs"] == ["1"],
                "the started VM runs jailed", f"{st['Uid']}")
    rc1, out1 = cli("pause", "jv")
    rc2, out2 = cli("resume", "jv")
    c.check((rc1, rc2) == (0, 0), "kiln pause and resume reach the jailed VM", out1 + out2)
    rc, out = cli("kill", "jv")
    c.check(rc == 0, "kiln kill ends it", out)
    rc, out = cli("create", "jw", "--kernel", a.echo, "--jail", jail_dir, "--jail-cgroup",
                  "pids.max=64")
    c.check(rc == USAGE and "not stored" in out, "create --jail-cgroup is refused (exit 2)", out)


def t_netns(a, c, tmp):
    name = f"kiln-jail-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", name]).returncode != 0:
        c.check(False, "ip netns add")
        return
    try:
        subprocess.run(["ip", "-n", name, "tuntap", "add", "dev", "ktap0", "mode", "tap"],
                       check=True)
        rc, _, err = run(raw_guest(a.kiln, a.hello, "--jail", os.path.join(tmp, "nonet"),
                                   "--net", "tap=ktap0"))
        c.check(rc == DEVICE, "without --jail-netns the namespace's tap device is not found "
                "(exit 6)", f"rc {rc}: {err}")
        rc, _, err = run(raw_guest(a.kiln, a.hello, "--jail", os.path.join(tmp, "nonet"),
                                   "--jail-netns", "no-such-ns"))
        c.check(rc == JAIL and "no-such-ns" in err, "a missing --jail-netns is refused (exit 9)",
                f"rc {rc}: {err}")
        t_confined(a, c, tmp, netns=name)
    finally:
        subprocess.run(["ip", "netns", "del", name])


def t_signals(a, c, tmp):
    """SIGTERM to the supervisor reaches the VM (a clean stop, exit 0); if the supervisor
    itself is killed, the VM process dies with it (parent-death signal)."""
    for how in ("term", "kill"):
        k = Running(raw_guest(a.kiln, a.echo, "--jail", os.path.join(tmp, f"sig-{how}")))
        ready = k.wait_for(b"echo: ready\n")
        pid = vm_pid(k.proc.pid) if ready else None
        if not c.check(pid is not None, f"jailed echo guest runs ({how})", k.out.decode()):
            k.finish(timeout=1)
            continue
        if how == "term":
            os.kill(k.proc.pid, 15)
            rc, err = k.finish()
            c.check(rc == 0 and "received signal 15" in err,
                    "SIGTERM to the supervisor stops the jailed VM cleanly (exit 0)",
                    f"rc {rc}: {err}")
        else:
            os.kill(k.proc.pid, 9)
            k.proc.wait()
            deadline = time.monotonic() + 5
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.05)
            gone = not os.path.exists(f"/proc/{pid}")
            c.check(gone, "the VM process dies with its supervisor (SIGKILL)")
            if not gone:
                os.kill(pid, 9)
            k.finish(timeout=5)


def t_bad_kernel(a, c, tmp):
    rc, _, err = run(raw_guest(a.kiln, os.path.join(tmp, "no-such-kernel"), "--jail",
                               os.path.join(tmp, "badk")))
    c.check(rc == 3 and "no-such-kernel" in err,
            "a missing kernel under --jail: the VM's status (3) comes through the supervisor",
            f"rc {rc}: {err}")


def t_reboot(a, c, tmp):
    rc, out, err = run(raw_guest(a.kiln, a.smp, "-v", "--cpus", "2", "--cmdline", "reboot=1",
                                 "--jail", os.path.join(tmp, "reboot")))
    c.check(rc == 0 and "booted 2 time(s)" in err,
            "a guest reset inside the jail boots the guest again (2 vCPUs, exit 0)",
            f"rc {rc}: {err}")


def t_refusals(a, c, tmp):
    jail_dir = os.path.join(tmp, "refuse")
    rc, _, err = run(raw_guest(a.kiln, a.hello, "--jail", jail_dir, "--vsock",
                               f"cid=3,uds={tmp}/outside.sock"))
    c.check(rc == USAGE and "must lie inside" in err,
            "a vsock socket outside the jail is refused (exit 2)", f"rc {rc}: {err}")
    os.makedirs(os.path.join(jail_dir, "run"))
    rc, _, err = run(raw_guest(a.kiln, a.hello, "--jail", jail_dir, "--vsock",
                               "cid=3,uds=refuse/run/v.sock"), cwd=tmp)
    sock = os.path.join(jail_dir, "run", "v.sock")
    c.check(rc == 0 and os.path.exists(sock) and (os.stat(sock).st_mode & 0o170000) == 0o140000,
            "a vsock socket inside the jail (relative path) is made there", f"rc {rc}: {err}")
    rc, _, err = run(raw_guest(a.kiln, a.hello, "--jail", jail_dir),
                     user=JAIL_ID, group=JAIL_ID, extra_groups=[])
    c.check(rc == JAIL and "needs root" in err, "--jail as a non-root user is refused (exit 9)",
            f"rc {rc}: {err}")
    rc, _, err = run(raw_guest(a.kiln, a.hello, "--jail-uid", "1000"))
    c.check(rc == USAGE, "--jail-uid without --jail is a usage error", f"rc {rc}: {err}")
    rc, _, err = run(raw_guest(a.kiln, a.hello, "--jail", jail_dir, "--jail-uid", "0"))
    c.check(rc == USAGE, "--jail-uid 0 is a usage error", f"rc {rc}: {err}")
    disk = os.path.join(tmp, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    os.environ["KILN_BLK_ENGINE"] = "threads"
    try:
        rc, out, err = run(raw_guest(a.kiln, a.hello, "-v", "--jail", jail_dir, "--disk", disk))
    finally:
        del os.environ["KILN_BLK_ENGINE"]
    c.check(rc == 0 and "threads engine" in err and "kiln-micro: ready" in out,
            "a jailed VM with the disk thread pool boots (its workers start after the jail)",
            f"rc {rc}: {err}")
    rc, out, err = run(raw_guest(a.kiln, a.hello, "--jail", jail_dir, "--disk", "disk.img"),
                       cwd=tmp)
    c.check(rc == 0 and "kiln-micro: ready" in out,
            "a jailed VM with a disk given by a relative path boots", f"rc {rc}: {err}")


def cgroup2_memory():
    for line in open("/proc/self/mountinfo"):
        left, _, right = line.partition(" - ")
        if right.startswith("cgroup2 "):
            mnt = left.split()[4]
            return "memory" in open(f"{mnt}/cgroup.controllers").read().split()
    return False


def t_cgroup(a, c, tmp):
    jail_dir = os.path.join(tmp, "cg")
    big = raw_guest(a.kiln, a.memtouch, "-m", "256M", "--cmdline", "touch=192",
                    "--jail", jail_dir, "--jail-cgroup", "memory.max=64M,pids.max=16")
    if not cgroup2_memory():
        rc, _, err = run(big)
        c.check(rc == JAIL and "no 'memory' controller" in err,
                "without cgroup v2's memory controller --jail-cgroup is refused clearly (exit 9)",
                f"rc {rc}: {err}")
        return
    rc, out, err = run(big, timeout=60)
    c.check(rc == RESOURCES and "OOM killer" in err and "touched all" not in out,
            "a guest touching 192M under memory.max=64M is killed by the OOM killer (exit 5)",
            f"rc {rc}: {err}")
    small = big[:big.index("--cmdline") + 1] + ["touch=32"] + big[big.index("--cmdline") + 2:]
    rc, out, err = run(small, timeout=60)
    c.check(rc == 0 and "touched all" in out, "a guest touching 32M under memory.max=64M runs",
            f"rc {rc}: {err}")


def main():
    p = argparse.ArgumentParser()
    for opt in ("--kiln", "--echo", "--hello", "--smp", "--memtouch"):
        p.add_argument(opt, required=True)
    a = p.parse_args()
    for opt in ("kiln", "echo", "hello", "smp", "memtouch"):
        setattr(a, opt, os.path.abspath(getattr(a, opt)))
    if os.geteuid() != 0:
        print("SKIP: --jail needs root")
        return 77
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as e:
        print(f"SKIP: /dev/kvm: {e}")
        return 77
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="kiln-jail-")
    os.chmod(tmp, 0o755)
    try:
        t_confined(a, c, tmp)
        t_api(a, c, tmp)
        t_control_plane(a, c, tmp)
        if shutil.which("ip"):
            t_netns(a, c, tmp)
        t_reboot(a, c, tmp)
        t_signals(a, c, tmp)
        t_bad_kernel(a, c, tmp)
        t_refusals(a, c, tmp)
        t_cgroup(a, c, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{c.passed} checks passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
