#!/usr/bin/env python3
"""kiln's Firecracker-compatible API (kiln run --api-sock / --config-file) with micro-guests.

Usage: api_test.py --kiln PATH --guests DIR TEST

DIR holds the micro-guests (count.bin, hello.bin, reset.bin). Each test starts kiln, talks HTTP over its
Unix socket (http.client, standard library only), checks the answers and what the guest did,
and exits 0 (pass), 1 (fail) or 77 (skipped: no usable /dev/kvm).
"""

import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

EXIT_SKIP = 77


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, ok, what):
        print(("PASS " if ok else "FAIL ") + what, flush=True)
        if not ok:
            self.failed += 1
        return ok


class Kiln:
    """One `kiln run` process; its stdout (the guest console) is collected by a thread."""

    def __init__(self, kiln, args, cwd, env=None):
        self.sock = os.path.join(cwd, "api.sock")
        self.proc = subprocess.Popen([kiln, "run"] + args, stdin=subprocess.DEVNULL, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=cwd, start_new_session=True)
        self.out = b""
        self.err = b""
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, "out")),
                        threading.Thread(target=self._pump, args=(self.proc.stderr, "err"))]
        for t in self.threads:
            t.daemon = True
            t.start()

    def _pump(self, f, name):
        for chunk in iter(lambda: f.read1(4096), b""):
            with self.lock:
                setattr(self, name, getattr(self, name) + chunk)

    def text(self):
        with self.lock:
            return self.out.decode(errors="replace")

    def stderr(self):
        with self.lock:
            return self.err.decode(errors="replace")

    def wait_socket(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.sock)
                s.close()
                return True
            except OSError:
                time.sleep(0.02)
        return False

    def request(self, method, path, body=None, raw=None):
        """Returns (status, parsed JSON or None, raw text)."""
        conn = UnixHTTPConnection(self.sock)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace")
        conn.close()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return resp.status, parsed, text

    def wait_exit(self, timeout=20):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            rc = None
        for t in self.threads:  # collect the output up to its end
            t.join(5)
        return rc

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def describe(self):
        return f"--- stdout (tail) ---\n{self.text()[-600:]}\n--- stderr ---\n{self.stderr()}"


def counts(text):
    return [int(n) for n in re.findall(r"count (\d+)\n", text)]


def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def configure_raw(c, k, guest, cpus=1, mem=64):
    st, _, text = k.request("PUT", "/boot-source", {
        "kernel_image_path": guest, "kiln_kernel_format": "raw",
        "boot_args": "console=ttyS0 reboot=k panic=1 pci=off"})
    c.check(st == 204, f"PUT /boot-source -> 204 (got {st} {text})")
    st, _, text = k.request("PUT", "/machine-config", {"vcpu_count": cpus, "mem_size_mib": mem})
    c.check(st == 204, f"PUT /machine-config -> 204 (got {st} {text})")


def state_is(c, k, want):
    st, body, text = k.request("GET", "/")
    return c.check(st == 200 and body and body.get("state") == want and
                   body.get("app_name") == "kiln", f"GET / state is {want!r} (got {st} {text})")


def fault(c, k, method, path, body=None, raw=None, what=""):
    st, parsed, text = k.request(method, path, body, raw)
    ok = 400 <= st < 500 and isinstance(parsed, dict) and parsed.get("fault_message")
    c.check(ok, f"{method} {path} {what}-> 4xx with fault_message (got {st} {text[:160]})")
    return parsed.get("fault_message", "") if isinstance(parsed, dict) else ""


def t_lifecycle(a, c, tmp):
    """Configure, start, pause (no progress), resume (progress), errors, SIGTERM."""
    k = Kiln(a.kiln, ["--api-sock", "api.sock", "--id", "vm-one"], tmp)
    if not c.check(k.wait_socket(), "the API socket accepts connections"):
        print(k.describe())
        return
    state_is(c, k, "Not started")
    st, body, _ = k.request("GET", "/")
    c.check(body.get("id") == "vm-one", "GET / reports the --id")
    fault(c, k, "PUT", "/actions", {"action_type": "InstanceStart"}, what="without a kernel ")
    fault(c, k, "PATCH", "/vm", {"state": "Paused"}, what="before start ")
    configure_raw(c, k, os.path.join(a.guests, "count.bin"), cpus=2)
    st, body, _ = k.request("GET", "/machine-config")
    c.check(st == 200 and body == {"vcpu_count": 2, "mem_size_mib": 64, "smt": False,
                                   "track_dirty_pages": False, "huge_pages": "None"},
            f"GET /machine-config echoes the configuration ({body})")
    st, _, text = k.request("PUT", "/actions", {"action_type": "InstanceStart"})
    c.check(st == 204, f"InstanceStart -> 204 (got {st} {text})")
    state_is(c, k, "Running")
    c.check(wait_for(lambda: len(counts(k.text())) >= 3, 10), "the guest counts")
    c.check("dropped \"pci=off\"" in k.stderr(), "pci=off is dropped with a note")

    st, _, text = k.request("PATCH", "/vm", {"state": "Paused"})
    c.check(st == 204, f"PATCH /vm Paused -> 204 (got {st} {text})")
    state_is(c, k, "Paused")
    time.sleep(0.3)  # output already in the UART/pipe drains
    before = counts(k.text())
    time.sleep(1.5)
    after = counts(k.text())
    c.check(before and after == before, f"no progress while paused ({len(before)} -> {len(after)} lines)")
    st, _, text = k.request("PATCH", "/vm", {"state": "Paused"})
    c.check(st == 204, "pausing a paused VM is fine (idempotent)")
    st, _, text = k.request("PATCH", "/vm", {"state": "Resumed"})
    c.check(st == 204, f"PATCH /vm Resumed -> 204 (got {st} {text})")
    state_is(c, k, "Running")
    c.check(wait_for(lambda: len(counts(k.text())) >= len(after) + 3, 10),
            "progress continues after resume")
    n = counts(k.text())
    c.check(n == list(range(len(n))), "the count has no gaps or repeats")

    # Hostile and wrong-state requests: 4xx, and the VM keeps running.
    fault(c, k, "PUT", "/actions", {"action_type": "InstanceStart"}, what="twice ")
    fault(c, k, "PUT", "/boot-source", {"kernel_image_path": "/x"}, what="after start ")
    fault(c, k, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}, what="after start ")
    fault(c, k, "PUT", "/drives/d1", {"drive_id": "d1", "path_on_host": "/x",
                                      "is_root_device": False}, what="after start ")
    fault(c, k, "PUT", "/actions", raw="{\"action_type\": ", what="malformed JSON ")
    fault(c, k, "PUT", "/actions", raw="[1, 2]", what="not an object ")
    fault(c, k, "PUT", "/actions", {"action_type": "Explode"}, what="unknown action ")
    fault(c, k, "PUT", "/actions", {"action_type": 7}, what="wrong type ")
    fault(c, k, "PATCH", "/vm", {"state": "Frozen"}, what="unknown state ")
    fault(c, k, "PATCH", "/vm", {"state": "Paused", "extra": 1}, what="unknown field ")
    fault(c, k, "PUT", "/actions", raw="x" * 200000, what="oversized body ")
    fault(c, k, "GET", "/no/such/path", what="unknown path ")
    fault(c, k, "DELETE", "/", what="wrong method ")
    st, _, text = k.request("PUT", "/actions", {"action_type": "PowerButton"})
    c.check(st == 204, f"PowerButton (kiln extension) -> 204 (got {st} {text})")
    msg = fault(c, k, "PUT", "/actions", {"action_type": "SendCtrlAltDel"})
    c.check("keyboard" in msg, "SendCtrlAltDel says why it cannot work")
    state_is(c, k, "Running")
    m = len(counts(k.text()))
    c.check(wait_for(lambda: len(counts(k.text())) > m, 10), "still counting after the errors")

    rc = k.stop()
    c.check(rc == 0, f"SIGTERM stops kiln with status 0 (got {rc})")
    c.check("seccomp:" not in k.stderr(), "no seccomp report")
    c.check(not os.path.exists(k.sock), "the socket file is removed on exit")
    if c.failed:
        print(k.describe())


def t_start_errors(a, c, tmp):
    """A failed InstanceStart says why and leaves the VM configurable; then it boots."""
    k = Kiln(a.kiln, ["--api-sock", "api.sock"], tmp)
    if not c.check(k.wait_socket(), "the API socket accepts connections"):
        print(k.describe())
        return
    st, _, _ = k.request("PUT", "/boot-source", {"kernel_image_path": "/nonexistent/vmlinux"})
    c.check(st == 204, "a boot source is only checked at start")
    msg = fault(c, k, "PUT", "/actions", {"action_type": "InstanceStart"}, what="missing kernel ")
    c.check("/nonexistent/vmlinux" in msg, f"the fault names the kernel ({msg!r})")
    fault(c, k, "PUT", "/machine-config", {"vcpu_count": 0, "mem_size_mib": 64}, what="0 vCPUs ")
    fault(c, k, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 1}, what="1 MiB ")
    fault(c, k, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64, "smt": True},
          what="smt ")
    fault(c, k, "PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "guest_mac": "zz"},
          what="no backend ")
    fault(c, k, "PUT", "/vsock", {"guest_cid": 2, "uds_path": "v.sock"}, what="cid 2 ")
    fault(c, k, "PUT", "/drives/a/b", {}, what="bad id path ")
    state_is(c, k, "Not started")
    configure_raw(c, k, os.path.join(a.guests, "hello.bin"))
    st, _, text = k.request("PUT", "/actions", {"action_type": "InstanceStart"})
    c.check(st == 204, f"InstanceStart after the fix -> 204 (got {st} {text})")
    rc = k.wait_exit()
    c.check(rc == 0, f"the guest powers off and kiln exits 0 (got {rc})")
    c.check("kiln-micro: ready" in k.text(), "the guest ran")
    if c.failed:
        print(k.describe())


def t_config_file(a, c, tmp):
    """--config-file boots without the API; with --api-sock the API reports it running."""
    conf = os.path.join(tmp, "vm.json")
    with open(conf, "w") as f:
        json.dump({"boot-source": {"kernel_image_path": os.path.join(a.guests, "hello.bin"),
                                   "kiln_kernel_format": "raw", "boot_args": "console=ttyS0"},
                   "machine-config": {"vcpu_count": 1, "mem_size_mib": 32},
                   "entropy": {}, "logger": None}, f)
    k = Kiln(a.kiln, ["--config-file", conf], tmp)
    rc = k.wait_exit()
    c.check(rc == 0 and "kiln-micro: ready" in k.text(), f"config-file boot runs the guest (rc {rc})")
    if c.failed:
        print(k.describe())

    with open(conf, "w") as f:
        json.dump({"boot-source": {"kernel_image_path": os.path.join(a.guests, "count.bin"),
                                   "kiln_kernel_format": "raw"}}, f)
    k = Kiln(a.kiln, ["--config-file", conf, "--api-sock", "api.sock"], tmp)
    if c.check(k.wait_socket(), "with --api-sock too, the API is live"):
        state_is(c, k, "Running")
        st, body, _ = k.request("GET", "/vm/config")
        c.check(st == 200 and body["boot-source"]["kernel_image_path"].endswith("count.bin") and
                body["machine-config"]["mem_size_mib"] == 256,
                "GET /vm/config returns the file's configuration with defaults")
        fault(c, k, "PUT", "/actions", {"action_type": "InstanceStart"}, what="already started ")
        st, _, _ = k.request("PATCH", "/vm", {"state": "Paused"})
        c.check(st == 204, "PATCH /vm Paused -> 204")
    c.check(k.stop() == 0, "SIGTERM stops a paused VM, exit 0")

    for bad, what in [("{", "malformed"), ('{"boot-source": {}}', "no kernel path"),
                      ('{"machine-config": {"vcpu_count": 1, "mem_size_mib": 32}}', "no boot-source"),
                      ('{"boot-source": {"kernel_image_path": "x"}, "unknown": 1}', "unknown section")]:
        with open(conf, "w") as f:
            f.write(bad)
        k = Kiln(a.kiln, ["--config-file", conf], tmp)
        rc = k.wait_exit()
        c.check(rc == 2 and "config file" in k.stderr(), f"bad config file ({what}) -> exit 2 (got {rc})")


def t_socket(a, c, tmp):
    """A stale socket is replaced; a live one is not; SIGTERM before start exits cleanly."""
    path = os.path.join(tmp, "api.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # leaves the file with nobody listening
    k = Kiln(a.kiln, ["--api-sock", "api.sock"], tmp)
    c.check(k.wait_socket(), "a stale socket file is replaced")
    k2 = Kiln(a.kiln, ["--api-sock", "api.sock"], tmp)
    rc = k2.wait_exit()
    c.check(rc == 6 and "listening" in k2.stderr(), f"a live socket is refused, exit 6 (got {rc})")
    c.check(k.request("GET", "/")[0] == 200, "the first instance still answers")
    rc = k.stop()
    c.check(rc == 0 and not os.path.exists(path), f"SIGTERM before start: exit 0, socket gone (rc {rc})")
    with open(path, "w") as f:
        f.write("not a socket")
    k3 = Kiln(a.kiln, ["--api-sock", "api.sock"], tmp)
    rc = k3.wait_exit()
    c.check(rc == 6 and os.path.exists(path), f"a regular file is not removed, exit 6 (got {rc})")


def thread_filters(pid):
    """{thread name: [seccomp filter count per thread of that name]} from /proc."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                m = re.search(r"^Seccomp_filters:\s*(\d+)", f.read(), re.M)
        except OSError:
            continue
        found.setdefault(re.sub(r"\d+$", "", name), []).append(int(m.group(1)) if m else None)
    return found


def t_seccomp(a, c, tmp):
    """The API thread runs under its own filter (docs/seccomp.md): a forbidden call from it
    (KILN_SECCOMP_TRIGGER=api, made when it handles its first request) stops kiln with
    status 1 and names the call; the same trigger with --seccomp=off is harmless. With the
    VM running, the API thread carries exactly one filter (its own, not the VMM's), the
    vCPU threads two (the VMM's they inherit, and theirs), and every API route that reaches
    the VM still works: pause, resume, a snapshot written by the API thread, power button."""
    env = dict(os.environ, KILN_SECCOMP_TRIGGER="api")
    k = Kiln(a.kiln, ["--api-sock", "api.sock"], tmp, env=env)
    c.check(k.wait_socket(), "the API socket accepts connections")
    try:
        st = k.request("GET", "/")[0]
    except (OSError, http.client.HTTPException):
        st = None
    rc = k.wait_exit()
    want = "kiln: seccomp: forbidden system call socket ("
    c.check(st is None and rc == 1, f"the first request stops kiln, status 1 (got {st}, {rc})")
    c.check(any(l.startswith(want) and l.endswith("in an api thread; stopping")
                for l in k.stderr().splitlines()), "stderr names socket in an api thread")
    if c.failed:
        print(k.describe())

    k = Kiln(a.kiln, ["--api-sock", "api.sock", "--seccomp=off"], tmp, env=env)
    c.check(k.wait_socket() and k.request("GET", "/")[0] == 200,
            "--seccomp=off: the trigger is harmless, GET / -> 200")
    rc = k.stop()
    c.check(rc == 0 and "seccomp:" not in k.stderr(), f"--seccomp=off: exit 0, no report ({rc})")

    k = Kiln(a.kiln, ["--api-sock", "api.sock"], tmp)
    c.check(k.wait_socket(), "the API socket accepts connections")
    # (the socket listens before the thread starts: connections wait in the backlog)
    wait_for(lambda: thread_filters(k.proc.pid).get("kiln-api") == [1], 5)
    filters = thread_filters(k.proc.pid)
    c.check(filters.get("kiln-api") == [1] and filters.get("kiln") == [0],
            f"before boot: only the API thread is filtered ({filters})")
    configure_raw(c, k, os.path.join(a.guests, "count.bin"), cpus=2)
    st, _, text = k.request("PUT", "/actions", {"action_type": "InstanceStart"})
    c.check(st == 204, f"InstanceStart -> 204 (got {st} {text})")
    c.check(wait_for(lambda: len(counts(k.text())) >= 3, 10), "the guest counts")
    filters = thread_filters(k.proc.pid)
    c.check(filters.get("kiln") == [1] and filters.get("kiln-api") == [1] and
            filters.get("kiln-vcpu") == [2, 2],
            f"running: main 1 filter, API thread 1 (its own), vCPUs 2 ({filters})")
    with open(f"/proc/{k.proc.pid}/maps") as f:
        seccomp_libs = sorted({l.split()[-1] for l in f if "libseccomp" in l})
    c.check(not seccomp_libs, f"the filters were compiled elsewhere: kiln maps no libseccomp "
            f"({seccomp_libs})")
    for state in ("Paused", "Resumed", "Paused"):
        st, _, text = k.request("PATCH", "/vm", {"state": state})
        c.check(st == 204, f"PATCH /vm {state} -> 204 (got {st} {text})")
    snap = os.path.join(tmp, "snap")
    os.mkdir(snap)
    st, _, text = k.request("PUT", "/snapshot/create", {
        "snapshot_type": "Full", "snapshot_path": os.path.join(snap, "state"),
        "mem_file_path": os.path.join(snap, "mem")})
    c.check(st == 204 and os.path.exists(os.path.join(snap, "mem")),
            f"PUT /snapshot/create from the API thread -> 204 (got {st} {text})")
    for method, path, body in [("PATCH", "/vm", {"state": "Resumed"}), ("GET", "/", None),
                               ("GET", "/machine-config", None), ("GET", "/version", None),
                               ("PUT", "/actions", {"action_type": "PowerButton"})]:
        st, _, text = k.request(method, path, body)
        c.check(st in (200, 204), f"{method} {path} -> 2xx (got {st} {text})")
    m = len(counts(k.text()))
    c.check(wait_for(lambda: len(counts(k.text())) > m, 10), "the guest counts on")
    rc = k.stop()
    c.check(rc == 0 and "seccomp:" not in k.stderr(), f"SIGTERM: exit 0, no seccomp report ({rc})")
    if c.failed:
        print(k.describe())


def t_pause_stress(a, c, tmp):
    """Pause/resume hammered while a 2-vCPU guest resets itself 30 times, then powers off:
    every answer is 204 (or 400 once the VM is going away), the guest completes every boot,
    kiln exits 0 (no hang, no crash: run it under the sanitizer build too)."""
    resets = 30
    k = Kiln(a.kiln, ["--api-sock", "api.sock"], tmp)
    if not c.check(k.wait_socket(), "the API socket accepts connections"):
        print(k.describe())
        return
    st, _, _ = k.request("PUT", "/boot-source", {
        "kernel_image_path": os.path.join(a.guests, "reset.bin"), "kiln_kernel_format": "raw",
        "boot_args": f"via=acpi resets={resets}"})
    st2, _, _ = k.request("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 32})
    st3, _, _ = k.request("PUT", "/actions", {"action_type": "InstanceStart"})
    c.check((st, st2, st3) == (204, 204, 204), "configured and started")
    pauses, bad = 0, []
    deadline = time.monotonic() + 60
    while k.proc.poll() is None and time.monotonic() < deadline:
        for state in ("Paused", "Resumed"):
            try:
                st, body, text = k.request("PATCH", "/vm", {"state": state})
            except OSError:
                break  # the socket went away with the VM
            if st == 204:
                pauses += state == "Paused"
            elif not (st == 400 and "fault_message" in text):
                bad.append((st, text))
    rc = k.wait_exit()
    c.check(not bad, f"every PATCH /vm answered 204 or 400 ({bad[:3]})")
    c.check(pauses >= 10, f"{pauses} pause/resume rounds while the guest rebooted")
    c.check(rc == 0, f"the guest powered off after its resets, exit 0 (got {rc})")
    c.check(f"reset: boot {resets + 1} was the last" in k.text(),
            f"all {resets + 1} boots ran to the end")
    c.check("FAIL" not in k.text(), "no check failed inside the guest")
    c.check("seccomp:" not in k.stderr(), "no seccomp report")
    if c.failed:
        print(k.describe())


TESTS = {"lifecycle": t_lifecycle, "start-errors": t_start_errors,
         "config-file": t_config_file, "socket": t_socket,
         "pause-stress": t_pause_stress, "seccomp": t_seccomp}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kiln", required=True)
    p.add_argument("--guests", required=True)
    p.add_argument("test", choices=sorted(TESTS))
    a = p.parse_args()
    a.kiln = os.path.abspath(a.kiln)
    a.guests = os.path.abspath(a.guests)
    if a.test != "socket" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not usable")
        return EXIT_SKIP
    c = Checks()
    with tempfile.TemporaryDirectory(prefix="kiln-api-") as tmp:
        TESTS[a.test](a, c, tmp)
    print(f"{a.test}: {'FAIL' if c.failed else 'PASS'} ({c.failed} failed checks)")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
