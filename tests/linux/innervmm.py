"""The inner VMM that the Linux-guest tests drive inside the stock-KVM host:
kiln (the default) or, to validate the test harness itself, QEMU.

Both take kiln's options; QEMU's command line is mapped to behave alike:
console on stdin/stdout in raw mode, Ctrl-A x quits, exit status 0 when the
guest powers off, reboot restarts the guest unless no_reboot.

Select with KILN_INNER_VMM: "qemu", or the path of a kiln binary; when it
is unset, the tests use the kiln binary they were given (by meson).
"""
import os
import shlex


class Kiln:
    name = "kiln"

    def __init__(self, path):
        self.path = os.path.abspath(path)

    def available(self):
        return os.access(self.path, os.X_OK)

    def command(self, kernel, initrd=None, cmdline=None, mem=None, cpus=None,
                no_reboot=False, console_log=None):
        argv = [self.path, "run", "--kernel", kernel]
        if initrd:
            argv += ["--initrd", initrd]
        if cmdline:
            argv += ["--cmdline", cmdline]
        if mem:
            argv += ["-m", mem]
        if cpus:
            argv += ["-c", str(cpus)]
        if no_reboot:
            argv.append("--no-reboot")
        if console_log:
            argv += ["--console-log", console_log]
        return " ".join(shlex.quote(a) for a in argv)


class Qemu:
    name = "qemu"

    def __init__(self, path="qemu-system-x86_64"):
        self.path = path

    def available(self):
        return True

    def command(self, kernel, initrd=None, cmdline=None, mem=None, cpus=None,
                no_reboot=False, console_log=None):
        # mux=on: serial and monitor share the terminal, so Ctrl-A x quits;
        # signal=off: ^C goes to the guest, as in kiln's raw mode.
        chardev = "stdio,id=con,mux=on,signal=off"
        if console_log:
            chardev += ",logfile=" + console_log
        argv = [self.path, "-enable-kvm", "-M", "q35", "-cpu", "host",
                "-nodefaults", "-no-user-config", "-display", "none",
                "-chardev", chardev, "-serial", "chardev:con", "-mon", "chardev=con",
                "-kernel", kernel]
        if initrd:
            argv += ["-initrd", initrd]
        if cmdline:
            argv += ["-append", cmdline]
        if mem:
            argv += ["-m", mem]
        if cpus:
            argv += ["-smp", str(cpus)]
        if no_reboot:
            argv.append("-no-reboot")
        return " ".join(shlex.quote(a) for a in argv)


def select_vmm(default_kiln=None):
    """The inner VMM from KILN_INNER_VMM, else the given kiln binary."""
    choice = os.environ.get("KILN_INNER_VMM") or default_kiln
    if not choice:
        raise SystemExit("no inner VMM: pass --kiln PATH or set KILN_INNER_VMM (qemu or a path)")
    if choice == "qemu":
        return Qemu()
    return Kiln(choice)
