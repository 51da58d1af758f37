#include "cli/run_options.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "cli/device_options.h"
#include "cli/jail_options.h"
#include "util.h"

const char run_options_usage[] =
    "Usage: kiln run [OPTIONS]\n"
    "\n"
    "Boot a virtual machine in the foreground with its serial console on this terminal\n"
    "(or on a Unix socket: --console-sock).\n"
    "Without --kernel, boots the default guest built by guest/build-guest.sh.\n"
    "\n"
    "Guest:\n"
    "  -k, --kernel FILE         kernel: a bzImage, an ELF vmlinux with a PVH note, or a raw\n"
    "                            binary (see --kernel-format)\n"
    "      --kernel-format FMT   auto (bzImage or ELF by magic number; the default), bzimage,\n"
    "                            elf, or raw: a flat binary loaded at 0x100000 and entered\n"
    "                            there in 64-bit mode (docs/ARCHITECTURE.md)\n"
    "  -i, --initrd FILE         initial ramdisk\n"
    "  -a, --cmdline TEXT        kernel command line (default: \"" VM_DEFAULT_CMDLINE "\")\n"
    "\n"
    "Machine:\n"
    "  -m, --memory SIZE         guest RAM; suffix K, M, G or T (default 256M, at least 8M)\n"
    "  -c, --cpus N              number of vCPUs (default 1, at most what KVM allows)\n"
    "      --no-reboot           exit when the guest reboots instead of restarting it\n"
    "\n"
    "Devices (virtio-pci):\n"
    "      --disk PATH[,ro][,id=NAME][,cache=none|writeback]\n"
    "                            a virtio-blk disk on a raw image or block device; repeat\n"
    "                            for more. ro: read-only; id: the serial the guest sees;\n"
    "                            cache=none bypasses the host page cache (O_DIRECT)\n"
    "      --net tap=IFNAME[,mac=MAC]\n"
    "                            a virtio-net NIC on an existing tap device\n"
    "      --net user[,mac=MAC][,hostfwd=tcp::HOSTPORT-:GUESTPORT]...\n"
    "                            a virtio-net NIC on user-mode networking (libslirp): DHCP,\n"
    "                            NAT, no privileges; hostfwd forwards a host port inward\n"
    "      --vsock cid=N,uds=PATH\n"
    "                            a virtio-vsock device with guest CID N; the host reaches\n"
    "                            it through the Unix socket PATH (\"CONNECT port\\n\"), and\n"
    "                            guest connections to CID 2 port P reach PATH_P\n"
    "      --rng                 an entropy device fed from the host's getrandom()\n"
    "      --console serial|virtio\n"
    "                            which guest console kiln serves: COM1 (ttyS0, the\n"
    "                            default) or a virtio-console port (hvc0)\n"
    "\n"
    "Jail (least privilege; needs root, see docs/threat-model.md):\n"
    "      --jail DIR            open the VM's files and devices as root, then confine the\n"
    "                            VM process: new mount, PID, IPC, UTS and cgroup\n"
    "                            namespaces, DIR as its read-only root (nothing of the host\n"
    "                            visible, no /proc), --jail-uid/--jail-gid, no capabilities,\n"
    "                            no_new_privs, no core dumps. A --vsock socket must lie\n"
    "                            inside DIR; DIR is created if missing\n"
    "      --jail-uid UID        user the VM runs as (default 65534); never 0\n"
    "      --jail-gid GID        group the VM runs as (default 65534); never 0\n"
    "      --jail-netns NAME     join the network namespace /run/netns/NAME first (tap\n"
    "                            devices are looked up there)\n"
    "      --jail-cgroup memory.max=SIZE,cpu.max=QUOTA[/PERIOD],pids.max=N\n"
    "                            put the VM in a new cgroup v2 (<cgroup2 mount>/kiln/vm-PID)\n"
    "                            with these limits (any subset; each may be max). Guest RAM\n"
    "                            counts against memory.max; the VM gets no swap. cpu.max in\n"
    "                            microseconds per period (default period 100000)\n"
    "      --jail-rlimit nofile=N,fsize=SIZE,nproc=N\n"
    "                            resource limits (default nofile=2048; fsize and nproc\n"
    "                            unchanged; the core size is always 0)\n"
    "\n"
    "Console:\n"
    "      --console-log FILE    also write the guest's console output to FILE\n"
    "      --console-sock PATH   serve the console on the Unix socket PATH instead of this\n"
    "                            terminal (which kiln then leaves alone: stdin may be\n"
    "                            /dev/null). A client that connects gets the last 64 KiB\n"
    "                            of output, then live output; its bytes go to the guest\n"
    "                            unchanged. One client at a time: another one is told the\n"
    "                            console is busy and closed. A client that does not read\n"
    "                            misses output but never slows the guest\n"
    "  On this terminal (without --console-sock), Ctrl-A then:\n"
    "                            x quits (the VM is stopped), p presses the ACPI power\n"
    "                            button (the guest shuts down), h lists the escapes,\n"
    "                            Ctrl-A sends a Ctrl-A\n"
    "\n"
    "Control (Firecracker-compatible API, docs/api.md):\n"
    "      --api-sock PATH       serve the HTTP API on the Unix socket PATH; the VM boots\n"
    "                            on PUT /actions InstanceStart (other options pre-fill\n"
    "                            its configuration; no default guest)\n"
    "      --config-file FILE    boot from FILE, a JSON configuration in Firecracker's\n"
    "                            schema (\"boot-source\", \"machine-config\", \"drives\"...)\n"
    "      --id NAME             the instance id the API reports (GET /)\n"
    "\n"
    "Security:\n"
    "      --seccomp on|off      per-thread system call filters (default on): a forbidden\n"
    "                            call stops kiln and names the call; off is for debugging\n"
    "                            only (docs/seccomp.md)\n"
    "\n"
    "Snapshots (docs/snapshot.md):\n"
    "      --restore DIR         continue the VM saved in DIR (its files 'state' and\n"
    "                            'memory', from PUT /snapshot/create) instead of booting a\n"
    "                            kernel; memory size and vCPUs come from the snapshot;\n"
    "                            give the same devices (--disk, --net, --vsock, --rng,\n"
    "                            --console) as the saved VM had\n"
    "\n"
    "Live migration (docs/migration.md):\n"
    "      --incoming tcp:ADDR:PORT  wait on ADDR:PORT for one VM sent by 'kiln migrate'\n"
    "                            (or PUT /migrate) and run it once it has all arrived and\n"
    "                            been checked; memory and vCPUs come from the sender; give\n"
    "                            the same devices as the sending VM has\n"
    "\n"
    "Other:\n"
    "  -v, --verbose             more messages: run statistics at exit; twice: debug,\n"
    "                            e.g. unclaimed I/O\n"
    "  -q, --quiet               errors only\n"
    "  -h, --help                show this help\n"
    "\n"
    "Exit status:\n"
    "  0  the guest powered off, or rebooted under --no-reboot, or you quit (Ctrl-A x)\n"
    "  1  the VM failed while running (KVM error, guest crash); details on stderr;\n"
    "     with --incoming, also: the source cancelled or went away before the hand-over\n"
    "  2  bad command line (unknown option, bad value, no default guest)\n"
    "  3  the kernel, initrd or snapshot could not be used (missing, unreadable, not a\n"
    "     kernel; a snapshot damaged, truncated or of another version or architecture;\n"
    "     an incoming migration stream that is malformed)\n"
    "  4  KVM is unavailable (/dev/kvm missing or inaccessible, or lacks a feature)\n"
    "  5  the host cannot provide the resources (memory, threads)\n"
    "  6  a device could not be set up (disk image missing or locked, tap device\n"
    "     missing, host port in use, socket path unusable, --incoming address in use)\n"
    "  9  the jail could not be set up (not root, no namespaces, cgroup v2 or one of its\n"
    "     controllers unavailable); with --jail-cgroup, 5 also means the OOM killer\n"
    "     ended the VM at memory.max\n"
    "\n"
    "Environment:\n"
    "  KILN_CACHE                where the default guest lives (default\n"
    "                            $XDG_CACHE_HOME/kiln or ~/.cache/kiln)\n";

#define SOCKET_PATH_MAX 107 /* sun_path holds 108 bytes, NUL included */

enum {
    OPT_KERNEL_FORMAT = 0x100,
    OPT_NO_REBOOT,
    OPT_CONSOLE_LOG,
    OPT_RNG,
    OPT_DISK,
    OPT_NET,
    OPT_VSOCK,
    OPT_CONSOLE,
    OPT_JAIL,
    OPT_JAIL_UID,
    OPT_JAIL_GID,
    OPT_JAIL_NETNS,
    OPT_JAIL_CGROUP,
    OPT_JAIL_RLIMIT,
    OPT_API_SOCK,
    OPT_CONFIG_FILE,
    OPT_ID,
    OPT_CONSOLE_SOCK,
    OPT_SECCOMP,
    OPT_RESTORE,
    OPT_INCOMING,
};

static const struct option run_long_options[] = {
    {"kernel", required_argument, NULL, 'k'},
    {"kernel-format", required_argument, NULL, OPT_KERNEL_FORMAT},
    {"initrd", required_argument, NULL, 'i'},
    {"cmdline", required_argument, NULL, 'a'},
    {"append", required_argument, NULL, 'a'},
    {"memory", required_argument, NULL, 'm'},
    {"cpus", required_argument, NULL, 'c'},
    {"no-reboot", no_argument, NULL, OPT_NO_REBOOT},
    {"console-log", required_argument, NULL, OPT_CONSOLE_LOG},
    {"rng", no_argument, NULL, OPT_RNG},
    {"disk", required_argument, NULL, OPT_DISK},
    {"net", required_argument, NULL, OPT_NET},
    {"vsock", required_argument, NULL, OPT_VSOCK},
    {"console", required_argument, NULL, OPT_CONSOLE},
    {"jail", required_argument, NULL, OPT_JAIL},
    {"jail-uid", required_argument, NULL, OPT_JAIL_UID},
    {"jail-gid", required_argument, NULL, OPT_JAIL_GID},
    {"jail-netns", required_argument, NULL, OPT_JAIL_NETNS},
    {"jail-cgroup", required_argument, NULL, OPT_JAIL_CGROUP},
    {"jail-rlimit", required_argument, NULL, OPT_JAIL_RLIMIT},
    {"api-sock", required_argument, NULL, OPT_API_SOCK},
    {"config-file", required_argument, NULL, OPT_CONFIG_FILE},
    {"id", required_argument, NULL, OPT_ID},
    {"console-sock", required_argument, NULL, OPT_CONSOLE_SOCK},
    {"seccomp", required_argument, NULL, OPT_SECCOMP},
    {"restore", required_argument, NULL, OPT_RESTORE},
    {"incoming", required_argument, NULL, OPT_INCOMING},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int kernel_format_parse(const char *s, enum kernel_format *out)
{
    static const struct {
        const char *name;
        enum kernel_format format;
    } names[] = {
        {"auto", KERNEL_FORMAT_AUTO}, {"bzimage", KERNEL_FORMAT_BZIMAGE},
        {"elf", KERNEL_FORMAT_ELF},   {"pvh", KERNEL_FORMAT_ELF},
        {"raw", KERNEL_FORMAT_RAW},
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].format;
            return 0;
        }
    }
    return -EINVAL;
}

/* Returns 1 if `opt` is a --jail option (parsed), 0 if it is not one. */
static int parse_jail_one(int opt, const char *arg, struct jail_config *jail, char *err,
                          size_t errlen)
{
    switch (opt) {
    case OPT_JAIL:
        if (!*arg)
            return invalid(err, errlen, "--jail: expected a directory");
        jail->dir = arg;
        return 1;
    case OPT_JAIL_UID:
        return parse_jail_id("--jail-uid", arg, &jail->uid, err, errlen) ?: 1;
    case OPT_JAIL_GID:
        return parse_jail_id("--jail-gid", arg, &jail->gid, err, errlen) ?: 1;
    case OPT_JAIL_NETNS:
        jail->netns = arg;
        return 1;
    case OPT_JAIL_CGROUP:
        return parse_jail_cgroup_option(arg, &jail->cgroup, err, errlen) ?: 1;
    case OPT_JAIL_RLIMIT:
        return parse_jail_rlimit_option(arg, &jail->rlimit, err, errlen) ?: 1;
    default:
        return 0;
    }
}

static int parse_one(int opt, const char *arg, struct vm_config *cfg, int *verbosity, char *err,
                     size_t errlen)
{
    uint64_t v;
    int jail = parse_jail_one(opt, arg, &cfg->jail, err, errlen);
    if (jail != 0)
        return jail < 0 ? jail : 0;
    switch (opt) {
    case 'k':
        cfg->kernel_path = arg;
        return 0;
    case 'i':
        cfg->initrd_path = arg;
        return 0;
    case 'a':
        cfg->cmdline = arg;
        return 0;
    case OPT_CONSOLE_LOG:
        cfg->console_log = arg;
        return 0;
    case OPT_API_SOCK:
        cfg->api_sock = arg;
        return 0;
    case OPT_CONFIG_FILE:
        cfg->config_file = arg;
        return 0;
    case OPT_ID:
        if (!arg[0] || strlen(arg) > 64)
            return invalid(err, errlen, "--id: ids have 1 to 64 bytes");
        cfg->instance_id = arg;
        return 0;
    case OPT_CONSOLE_SOCK:
        if (!*arg || strlen(arg) > SOCKET_PATH_MAX)
            return invalid(err, errlen, "--console-sock '%s': expected a path of 1 to %d bytes",
                        arg, SOCKET_PATH_MAX);
        cfg->console_sock = arg;
        return 0;
    case OPT_RESTORE:
        cfg->restore_dir = arg;
        return 0;
    case OPT_INCOMING:
        if (strncmp(arg, "tcp:", 4) != 0)
            return invalid(err, errlen, "--incoming '%s': expected tcp:ADDR:PORT", arg);
        cfg->incoming = arg;
        return 0;
    case OPT_NO_REBOOT:
        cfg->no_reboot = true;
        return 0;
    case OPT_RNG:
        cfg->rng = true;
        return 0;
    case OPT_DISK:
        if (cfg->ndisks >= VM_MAX_DISKS)
            return invalid(err, errlen, "--disk: at most %d disks", VM_MAX_DISKS);
        return parse_disk_option(arg, &cfg->disks[cfg->ndisks++], err, errlen);
    case OPT_NET:
        if (cfg->nnets >= VM_MAX_NETS)
            return invalid(err, errlen, "--net: at most %d network devices", VM_MAX_NETS);
        return parse_net_option(arg, &cfg->nets[cfg->nnets++], err, errlen);
    case OPT_VSOCK:
        return parse_vsock_option(arg, &cfg->vsock, err, errlen);
    case OPT_CONSOLE:
        if (strcmp(arg, "serial") == 0)
            cfg->console = CONSOLE_SERIAL;
        else if (strcmp(arg, "virtio") == 0)
            cfg->console = CONSOLE_VIRTIO;
        else
            return invalid(err, errlen, "--console '%s': expected serial or virtio", arg);
        return 0;
    case OPT_SECCOMP:
        if (strcmp(arg, "on") == 0)
            cfg->seccomp = true;
        else if (strcmp(arg, "off") == 0)
            cfg->seccomp = false;
        else
            return invalid(err, errlen, "--seccomp '%s': expected on or off", arg);
        return 0;
    case 'v':
        (*verbosity)++;
        return 0;
    case 'q':
        *verbosity = 0;
        return 0;
    case OPT_KERNEL_FORMAT:
        if (kernel_format_parse(arg, &cfg->kernel_format) < 0)
            return invalid(err, errlen, "--kernel-format '%s': expected auto, bzimage, elf or raw",
                        arg);
        return 0;
    case 'm':
        if (parse_size(arg, &v) < 0)
            return invalid(err, errlen, "--memory '%s': expected a size such as 512M or 4G", arg);
        if (v < X86_MIN_MEMORY)
            return invalid(err, errlen, "--memory %s: too small, kiln needs at least %lluM", arg,
                        X86_MIN_MEMORY >> 20);
        cfg->memory = v;
        return 0;
    case 'c':
        if (parse_uint(arg, 1, VM_MAX_CPUS, &v) < 0)
            return invalid(err, errlen, "--cpus '%s': expected a number from 1 to %u", arg,
                        VM_MAX_CPUS);
        cfg->cpus = (unsigned)v;
        return 0;
    default:
        return invalid(err, errlen, "unknown option (see 'kiln run --help')");
    }
}

/*
 * Everything is reset but the disk table: --disk fills its entries one at a time
 * (parse_disk_option) and nothing reads past ndisks. Left alone, its 32 KiB of path buffers
 * are never touched, so they cost a VM no resident memory (a plain `kiln run` keeps its
 * configuration on the stack).
 */
static void set_defaults(struct vm_config *cfg)
{
    size_t table = offsetof(struct vm_config, disks), after = table + sizeof(cfg->disks);
    memset(cfg, 0, table);
    memset((char *)cfg + after, 0, sizeof(*cfg) - after);
    cfg->kernel_format = KERNEL_FORMAT_AUTO;
    cfg->cmdline = VM_DEFAULT_CMDLINE;
    cfg->memory = VM_DEFAULT_MEMORY;
    cfg->seccomp = true;
    cfg->cpus = 1;
    cfg->jail.uid = JAIL_DEFAULT_ID;
    cfg->jail.gid = JAIL_DEFAULT_ID;
    cfg->jail.rlimit.nofile = JAIL_DEFAULT_NOFILE;
}

int run_options_parse(int argc, char **argv, struct vm_config *cfg, char *err, size_t errlen)
{
    set_defaults(cfg);
    bool jail_extras = false;
    int verbosity = 1;
    optind = 0; /* rescan from the start: glibc's full reinitialization */
    opterr = 0; /* kiln prints its own one-line errors */
    for (;;) {
        int opt = getopt_long(argc, argv, "+:k:i:a:m:c:vqh", run_long_options, NULL);
        if (opt == -1)
            break;
        if (opt == 'h')
            return RUN_OPTIONS_HELP;
        if (opt == ':')
            return invalid(err, errlen, "option '%s' needs a value (see 'kiln run --help')",
                        argv[optind - 1]);
        if (opt == '?') {
            if (optopt)
                return invalid(err, errlen, "option '-%c' is unknown (see 'kiln run --help')", optopt);
            return invalid(err, errlen, "option '%s' is unknown (see 'kiln run --help')",
                        argv[optind - 1]);
        }
        jail_extras |= opt > OPT_JAIL && opt <= OPT_JAIL_RLIMIT;
        int ret = parse_one(opt, optarg, cfg, &verbosity, err, errlen);
        if (ret < 0)
            return ret;
    }
    if (optind < argc)
        return invalid(err, errlen, "unexpected argument '%s' (see 'kiln run --help')", argv[optind]);
    if (jail_extras && !cfg->jail.dir)
        return invalid(err, errlen, "the --jail-* options need --jail DIR");
    log_set_verbosity(verbosity);
    return 0;
}
