/*
 * Per-thread seccomp allowlists; see seccomp.h and docs/seccomp.md.
 *
 * Each table below lists what one thread kind may call. Calls that need their arguments
 * checked are not in the tables but added by functions of their own (rule_*), so every
 * argument check is in one place.
 */
#include "vmm/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <linux/if_tun.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "cli/exit_codes.h"
#include "console/console.h"
#include "dynlib.h"
#include "util.h"

#if defined(__SANITIZE_ADDRESS__)
#define KILN_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KILN_SANITIZED 1
#endif
#endif

/* ---- allowlists ---- */

/* Every thread: memory (no executable mappings, see rule_memory), locks, exit, logging. */
static const int common_calls[] = {
    SCMP_SYS(brk),           SCMP_SYS(munmap),          SCMP_SYS(madvise),
    SCMP_SYS(mremap),        SCMP_SYS(futex),           SCMP_SYS(exit),
    SCMP_SYS(exit_group),    SCMP_SYS(rt_sigreturn),    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(restart_syscall), SCMP_SYS(write),         SCMP_SYS(getpid),
    SCMP_SYS(gettid),        SCMP_SYS(sched_yield),     SCMP_SYS(nanosleep),
    SCMP_SYS(clock_nanosleep), SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday),
    SCMP_SYS(fstat),         SCMP_SYS(newfstatat),
    SCMP_SYS(sched_getaffinity), /* glibc malloc sizes its arenas when a thread first allocates */
};

/* The main thread: the event loop, every device backend, and rebuilding the VM on reset. */
static const int vmm_calls[] = {
    SCMP_SYS(read),          SCMP_SYS(readv),           SCMP_SYS(writev),
    SCMP_SYS(pread64),       SCMP_SYS(pwrite64),        SCMP_SYS(preadv),
    SCMP_SYS(pwritev),       SCMP_SYS(preadv2),         SCMP_SYS(pwritev2),
    SCMP_SYS(lseek),         SCMP_SYS(close),           SCMP_SYS(fsync),
    SCMP_SYS(fdatasync),     SCMP_SYS(fallocate),       SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),   SCMP_SYS(epoll_ctl),       SCMP_SYS(poll),
    SCMP_SYS(ppoll),         SCMP_SYS(eventfd2),        SCMP_SYS(timerfd_create),
    SCMP_SYS(timerfd_settime), SCMP_SYS(timerfd_gettime), SCMP_SYS(getrandom),
    SCMP_SYS(io_uring_enter), SCMP_SYS(set_robust_list), SCMP_SYS(rseq),
    SCMP_SYS(getrusage), /* peak RSS for -v where a jail hides /proc */
    SCMP_SYS(rt_sigaction),  SCMP_SYS(seccomp),
    /* user networking (libslirp) and vsock's host sockets */
    SCMP_SYS(connect),       SCMP_SYS(accept),          SCMP_SYS(accept4),
    SCMP_SYS(bind),          SCMP_SYS(listen),          SCMP_SYS(sendto),
    SCMP_SYS(recvfrom),      SCMP_SYS(sendmsg),         SCMP_SYS(recvmsg),
    SCMP_SYS(setsockopt),    SCMP_SYS(getsockopt),      SCMP_SYS(getsockname),
    SCMP_SYS(getpeername),   SCMP_SYS(shutdown),
    SCMP_SYS(unlink), /* vsock removes its listening socket's path at exit */
};

/*
 * vCPU threads: KVM_RUN and the register handlers of the devices it exits to. A driver's
 * status write lands here too, so device activation and reset run on this thread: vsock
 * closes its host connections, a disk waits for its I/O in flight, user networking
 * re-arms its descriptors and timer.
 */
static const int vcpu_calls[] = {
    SCMP_SYS(read),       SCMP_SYS(close),           SCMP_SYS(epoll_ctl),
    SCMP_SYS(io_uring_enter), SCMP_SYS(timerfd_settime),
    /* plus tgkill (rule_tgkill) and the ioctls in vcpu_ioctls */
};

/* Block I/O workers: positioned reads and writes on the image, flush, discard. */
static const int worker_calls[] = {
    SCMP_SYS(preadv),    SCMP_SYS(pwritev),   SCMP_SYS(preadv2), SCMP_SYS(pwritev2),
    SCMP_SYS(pread64),   SCMP_SYS(pwrite64),  SCMP_SYS(fdatasync), SCMP_SYS(fsync),
    SCMP_SYS(fallocate),
};

/*
 * The HTTP API thread (api/api_server.c): libmicrohttpd on the listening Unix socket, and
 * what the requests run there: pause and resume (they kick the vCPUs), and snapshots, which
 * this thread writes itself (snapshot/snapshot.c, snapshot/memory_file.c). The file calls
 * are granted here and nowhere else: the threads that handle guest-controlled data cannot
 * create or rename files.
 */
static const int api_calls[] = {
    SCMP_SYS(accept4),     SCMP_SYS(accept),     SCMP_SYS(read),       SCMP_SYS(readv),
    SCMP_SYS(recvfrom),    SCMP_SYS(recvmsg),    SCMP_SYS(writev),     SCMP_SYS(sendto),
    SCMP_SYS(sendmsg),     SCMP_SYS(close),      SCMP_SYS(shutdown),   SCMP_SYS(poll),
    SCMP_SYS(ppoll),       SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
    SCMP_SYS(getsockopt),  SCMP_SYS(setsockopt), SCMP_SYS(getrandom), /* a snapshot's id */
    /* snapshots: temporary file, size, write, sync, rename into place, sync the directory;
     * realpath() for the base a later diff snapshot refers to */
    SCMP_SYS(open),        SCMP_SYS(openat),     SCMP_SYS(ftruncate),  SCMP_SYS(pwrite64),
    SCMP_SYS(fsync),       SCMP_SYS(rename),     SCMP_SYS(renameat),   SCMP_SYS(renameat2),
    SCMP_SYS(unlink),      SCMP_SYS(unlinkat),   SCMP_SYS(readlink),   SCMP_SYS(getcwd),
    /* live migration: connect to the destination, start the thread that streams the VM */
    SCMP_SYS(connect),     SCMP_SYS(set_robust_list), SCMP_SYS(rseq),
    /* both: which guest pages were never touched (/proc/self/pagemap, mem/untouched.c) */
    SCMP_SYS(pread64),
};

/*
 * ioctl requests, per kind. Terminal restore (TCSETS*) is in every list: see the handler.
 * Filters stack, and vCPU threads started after a guest reset are the main thread's
 * children, so the VMM list must hold every vCPU request too (KVM_RUN included); a vCPU
 * thread's own list then narrows what it may do.
 */
static const unsigned long vmm_ioctls[] = {
    KVM_RUN,
    KVM_CREATE_VM, KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE, KVM_GET_SUPPORTED_CPUID,
    KVM_SET_IDENTITY_MAP_ADDR, KVM_SET_TSS_ADDR, KVM_SET_USER_MEMORY_REGION,
    KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2, KVM_SET_GSI_ROUTING, KVM_IRQFD, KVM_IOEVENTFD,
    KVM_IRQ_LINE, KVM_CREATE_VCPU, KVM_SET_CPUID2, KVM_SET_FPU, KVM_SET_LAPIC, KVM_GET_LAPIC,
    KVM_SET_MSRS, KVM_SET_REGS, KVM_GET_REGS, KVM_SET_SREGS, KVM_GET_SREGS,
    TUNSETOFFLOAD, TCGETS, TCSETS, TCSETSW, TIOCGWINSZ, FIONBIO, FIONREAD,
    KVM_GET_CLOCK, KVM_SET_CLOCK, /* a migrated VM resumes on the main thread (--incoming) */
};
static const unsigned long vcpu_ioctls[] = {
    KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS, /* the run loop and its crash dump */
    KVM_IRQ_LINE, KVM_IRQFD, KVM_IOEVENTFD, KVM_SET_GSI_ROUTING, /* PCI/MSI-X registers */
    TUNSETOFFLOAD, /* virtio-net's feature negotiation lands here */
    TCSETS, TCSETSW,
};
static const unsigned long worker_ioctls[] = {TCSETS, TCSETSW};
/* Pause and resume freeze the guest clock; a snapshot reads the parked VM's state, starts
 * dirty-page logging (which re-registers the memory slots) or reads the dirty log; a
 * SendCtrlAltDel raises the keyboard's interrupt line. */
static const unsigned long api_ioctls[] = {
    FIONBIO, TCSETS, TCSETSW,
    KVM_GET_CLOCK, KVM_SET_CLOCK, KVM_IRQ_LINE,
    KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_XCRS, KVM_GET_LAPIC, KVM_GET_VCPU_EVENTS,
    KVM_GET_MP_STATE, KVM_GET_DEBUGREGS, KVM_GET_MSR_INDEX_LIST, KVM_GET_MSRS, KVM_GET_XSAVE,
    KVM_GET_IRQCHIP, KVM_GET_PIT2, KVM_GET_DIRTY_LOG, KVM_SET_USER_MEMORY_REGION,
};

#ifdef KILN_SANITIZED
/*
 * Sanitizer builds only: what ASan/UBSan need to print a report (symbolizing reads
 * /proc/self/maps) and LeakSanitizer's exit-time check (a tracer task, cloned without
 * CLONE_THREAD, that ptraces every thread, lists /proc/self/task and waits for them). These
 * are allowed with any arguments; release builds never get them.
 */
static const int sanitizer_calls[] = {
    SCMP_SYS(openat),     SCMP_SYS(open),     SCMP_SYS(readlink), SCMP_SYS(readlinkat),
    SCMP_SYS(read),       SCMP_SYS(close),    SCMP_SYS(getdents64), SCMP_SYS(getdents),
    SCMP_SYS(ptrace),
    SCMP_SYS(wait4),      SCMP_SYS(waitid),   SCMP_SYS(clone),    SCMP_SYS(prctl),
    SCMP_SYS(getppid),    SCMP_SYS(sched_getaffinity), SCMP_SYS(prlimit64),
    SCMP_SYS(sigaltstack), SCMP_SYS(rt_sigaction), SCMP_SYS(process_vm_readv),
    SCMP_SYS(pipe2),      SCMP_SYS(lseek),    SCMP_SYS(uname),    SCMP_SYS(tgkill),
    SCMP_SYS(tkill),      SCMP_SYS(kill),     SCMP_SYS(rt_sigtimedwait),
};
#endif

bool seccomp_relaxed_for_sanitizers(void)
{
#ifdef KILN_SANITIZED
    return true;
#else
    return false;
#endif
}

/* Whether a sanitizer build already allows `nr` outright (then no argument rule is added). */
static bool sanitizer_allows(int nr)
{
#ifdef KILN_SANITIZED
    for (size_t i = 0; i < ARRAY_SIZE(sanitizer_calls); i++)
        if (sanitizer_calls[i] == nr)
            return true;
#endif
    (void)nr;
    return false;
}

/* Argument `n` compared with `op` (libseccomp's SCMP_An macros leave datum_b out). */
static struct scmp_arg_cmp arg_is(unsigned n, enum scmp_compare op, scmp_datum_t a, scmp_datum_t b)
{
    return (struct scmp_arg_cmp){.arg = n, .op = op, .datum_a = a, .datum_b = b};
}

/*
 * libseccomp's entry points. The library is only ever loaded in the short-lived child that
 * compiles the filters (compile_filters): kiln itself never maps it, nor keeps the heap it
 * builds a filter in.
 */
struct scmp_lib {
    scmp_filter_ctx (*init)(uint32_t def_action);
    int (*rule_add_array)(scmp_filter_ctx ctx, uint32_t action, int syscall, unsigned arg_cnt,
                          const struct scmp_arg_cmp *args);
    int (*export_bpf)(const scmp_filter_ctx ctx, int fd);
    void (*release)(scmp_filter_ctx ctx);
    uint32_t (*arch_native)(void);
    const char *(*resolve_num_arch)(uint32_t arch, int num);
};

/* A filter being built: the library, its context and the pid that tgkill may target. */
struct builder {
    const struct scmp_lib *lib;
    scmp_filter_ctx ctx;
    pid_t pid;
};

static int add_rule(struct builder *b, uint32_t action, int nr, unsigned n,
                    const struct scmp_arg_cmp *cmp)
{
    return b->lib->rule_add_array(b->ctx, action, nr, n, n ? cmp : NULL);
}

/* One allow rule, with argument checks (n of them) unless the call is allowed outright. */
static int allow(struct builder *b, int nr, unsigned n, struct scmp_arg_cmp cmp)
{
    if (sanitizer_allows(nr))
        return 0;
    int ret = add_rule(b, SCMP_ACT_ALLOW, nr, n, &cmp);
    return ret == -EEXIST ? 0 : ret; /* listed twice (a kind's and a common call) */
}

/* The call fails with `err` instead of stopping kiln. */
static int refuse(struct builder *b, int nr, int err)
{
    return add_rule(b, SCMP_ACT_ERRNO((uint32_t)err), nr, 0, NULL);
}

struct kind_table {
    const char *name;
    const int *calls;
    unsigned ncalls;
    const unsigned long *ioctls;
    unsigned nioctls;
};

#define TABLE(n, c, i) {n, c, ARRAY_SIZE(c), i, ARRAY_SIZE(i)}
static const struct kind_table kinds[SECCOMP_THREAD_KINDS] = {
    [SECCOMP_THREAD_VMM] = TABLE("vmm", vmm_calls, vmm_ioctls),
    [SECCOMP_THREAD_VCPU] = TABLE("vcpu", vcpu_calls, vcpu_ioctls),
    [SECCOMP_THREAD_WORKER] = TABLE("worker", worker_calls, worker_ioctls),
    [SECCOMP_THREAD_API] = TABLE("api", api_calls, api_ioctls),
};

/* ---- rules with argument checks ---- */

static int rule_ioctls(struct builder *b, const struct kind_table *t)
{
    int ret = 0;
    for (unsigned i = 0; i < t->nioctls && ret == 0; i++)
        /* The kernel reads the request as 32 bits: compare those. */
        ret = allow(b, SCMP_SYS(ioctl), 1,
                    arg_is(1, SCMP_CMP_MASKED_EQ, 0xffffffffUL, t->ioctls[i]));
    return ret;
}

/* No new executable memory: guest-influenced data must never become code. */
static int rule_memory(struct builder *b)
{
    return allow(b, SCMP_SYS(mmap), 1, arg_is(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))
               ?: allow(b, SCMP_SYS(mprotect), 1, arg_is(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
}

/* Signals only to our own threads (vCPU kicks, raise). */
static int rule_tgkill(struct builder *b)
{
    return allow(b, SCMP_SYS(tgkill), 1, arg_is(0, SCMP_CMP_EQ, (scmp_datum_t)b->pid, 0));
}

static int rule_vmm(struct builder *b)
{
    int ret = rule_tgkill(b);
    /* Threads (vCPUs after a reset), never processes. glibc falls back from clone3, whose
     * flags live in memory a filter cannot read, to clone when told ENOSYS. */
    ret = ret ?: allow(b, SCMP_SYS(clone), 1,
                       arg_is(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    ret = ret ?: refuse(b, SCMP_SYS(clone3), ENOSYS);
    /* A disk's ring gives its image back at exit (block/aio_uring.c); no other registration. */
    ret = ret ?: allow(b, SCMP_SYS(io_uring_register), 1,
                       arg_is(1, SCMP_CMP_EQ, IORING_UNREGISTER_FILES, 0));
    /* Sockets for user networking and vsock only: IP and Unix. */
    static const int families[] = {AF_UNIX, AF_INET, AF_INET6};
    for (unsigned i = 0; i < ARRAY_SIZE(families) && ret == 0; i++)
        ret = allow(b, SCMP_SYS(socket), 1, arg_is(0, SCMP_CMP_EQ, (scmp_datum_t)families[i], 0));
    /* New vCPU threads name themselves and add their own filter. */
    static const int prctls[] = {PR_SET_NAME, PR_GET_SECCOMP, PR_SET_NO_NEW_PRIVS};
    for (unsigned i = 0; i < ARRAY_SIZE(prctls) && ret == 0; i++)
        ret = allow(b, SCMP_SYS(prctl), 1, arg_is(0, SCMP_CMP_EQ, (scmp_datum_t)prctls[i], 0));
    /* Nonblocking mode and close-on-exec on sockets; nothing else fcntl can do. */
    static const int fcntls[] = {F_GETFL, F_SETFL, F_GETFD, F_SETFD};
    for (unsigned i = 0; i < ARRAY_SIZE(fcntls) && ret == 0; i++)
        ret = allow(b, SCMP_SYS(fcntl), 1, arg_is(1, SCMP_CMP_EQ, (scmp_datum_t)fcntls[i], 0));
    return ret;
}

static int rule_api(struct builder *b)
{
    int ret = rule_tgkill(b);
    /* PUT /migrate (migrate/source.c): a TCP connection to the destination, then the
     * migration thread, which inherits this filter. IP sockets only; threads, not processes. */
    static const int families[] = {AF_INET, AF_INET6};
    for (unsigned i = 0; i < ARRAY_SIZE(families) && ret == 0; i++)
        ret = allow(b, SCMP_SYS(socket), 1, arg_is(0, SCMP_CMP_EQ, (scmp_datum_t)families[i], 0));
    ret = ret ?: allow(b, SCMP_SYS(clone), 1,
                       arg_is(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    ret = ret ?: refuse(b, SCMP_SYS(clone3), ENOSYS);
    ret = ret ?: allow(b, SCMP_SYS(prctl), 1, arg_is(0, SCMP_CMP_EQ, PR_SET_NAME, 0));
    static const int fcntls[] = {F_GETFL, F_SETFL, F_GETFD, F_SETFD};
    for (unsigned i = 0; i < ARRAY_SIZE(fcntls) && ret == 0; i++)
        ret = allow(b, SCMP_SYS(fcntl), 1, arg_is(1, SCMP_CMP_EQ, (scmp_datum_t)fcntls[i], 0));
    return ret;
}

/*
 * Opening a file fails with EACCES instead of stopping kiln, in every kind but the API's.
 * glibc opens /proc/sys/vm/overcommit_memory once, lazily, from whichever thread first
 * gives memory back to the kernel from a secondary malloc arena (often the main thread
 * freeing what the API thread allocated); it copes with the failure. Nothing is opened
 * either way.
 */
static int rule_no_open(struct builder *b)
{
    static const int opens[] = {SCMP_SYS(open), SCMP_SYS(openat)};
    int ret = 0;
    for (unsigned i = 0; i < ARRAY_SIZE(opens) && ret == 0; i++)
        if (!sanitizer_allows(opens[i]))
            ret = refuse(b, opens[i], EACCES);
    return ret;
}

static int rule_kind(struct builder *b, enum seccomp_thread_kind kind)
{
    if (kind != SECCOMP_THREAD_API) {
        int ret = rule_no_open(b);
        if (ret < 0)
            return ret;
    }
    switch (kind) {
    case SECCOMP_THREAD_VMM:
        return rule_vmm(b);
    case SECCOMP_THREAD_VCPU:
        return rule_tgkill(b);
    case SECCOMP_THREAD_API:
        return rule_api(b);
    default:
        return 0;
    }
}

static int add_calls(struct builder *b, const int *calls, unsigned n)
{
    int ret = 0;
    for (unsigned i = 0; i < n && ret == 0; i++)
        ret = allow(b, calls[i], 0, (struct scmp_arg_cmp){0});
    return ret;
}

static int build_filter(struct builder *b, enum seccomp_thread_kind kind)
{
    const struct kind_table *t = &kinds[kind];
    int ret = 0;
#ifdef KILN_SANITIZED
    for (unsigned i = 0; i < ARRAY_SIZE(sanitizer_calls) && ret == 0; i++)
        ret = add_rule(b, SCMP_ACT_ALLOW, sanitizer_calls[i], 0, NULL);
#endif
    ret = ret ?: add_calls(b, common_calls, ARRAY_SIZE(common_calls));
    ret = ret ?: add_calls(b, t->calls, t->ncalls);
    ret = ret ?: rule_memory(b);
    ret = ret ?: rule_ioctls(b, t);
    ret = ret ?: rule_kind(b, kind);
    return ret;
}

/*
 * ---- compiling, in a child process ----
 *
 * libseccomp builds a filter in a few hundred KiB of heap and pulls in code of its own and
 * of libc; done in kiln, that stays resident for the VM's whole life (about 400 KiB with
 * four thread kinds, more than kiln's own data). So a forked child loads the library,
 * compiles every kind's filter to BPF and writes it, with the system call names the SIGSYS
 * report needs, to a memfd; kiln keeps those few KiB and installs them with seccomp(2).
 *
 * The memfd holds, for each kind in order, a 32-bit byte count and that many bytes of BPF,
 * then MAX_SYSCALL_NR NUL-terminated names (empty where the number has none).
 */
#define MAX_SYSCALL_NR 512
#define COMPILED_MAX_BYTES (1u << 20)

static int load_libseccomp(struct scmp_lib *lib)
{
    const struct dynlib_symbol syms[] = {
        {"seccomp_init", (void **)&lib->init},
        {"seccomp_rule_add_array", (void **)&lib->rule_add_array},
        {"seccomp_export_bpf", (void **)&lib->export_bpf},
        {"seccomp_release", (void **)&lib->release},
        {"seccomp_arch_native", (void **)&lib->arch_native},
        {"seccomp_syscall_resolve_num_arch", (void **)&lib->resolve_num_arch},
    };
    char err[256];
    if (!dynlib_load("libseccomp.so.2", syms, ARRAY_SIZE(syms), err, sizeof(err))) {
        log_error("seccomp: %s (Debian package libseccomp2)", err);
        return -ENOENT;
    }
    return 0;
}

/* One kind's program: its length goes in front once the export has written it. */
static int compile_kind(struct builder *b, enum seccomp_thread_kind kind, int fd)
{
    off_t at = lseek(fd, 0, SEEK_CUR);
    uint32_t len = 0;
    int ret = at < 0 ? -errno : write_full(fd, &len, sizeof(len));
    if (ret < 0)
        return ret;
    b->ctx = b->lib->init(SCMP_ACT_TRAP);
    if (!b->ctx)
        return -ENOMEM;
    ret = build_filter(b, kind) ?: b->lib->export_bpf(b->ctx, fd);
    b->lib->release(b->ctx);
    off_t end = lseek(fd, 0, SEEK_CUR);
    if (ret == 0 && end < 0)
        ret = -errno;
    len = (uint32_t)(end - at - (off_t)sizeof(len));
    if (ret == 0 && pwrite(fd, &len, sizeof(len), at) != (ssize_t)sizeof(len))
        ret = -EIO;
    return ret;
}

/* The child's whole work; its exit status is 0 or 1. */
static int compile_filters(int fd, pid_t pid)
{
    struct scmp_lib lib;
    int ret = load_libseccomp(&lib);
    struct builder b = {.lib = &lib, .pid = pid};
    for (unsigned k = 0; k < SECCOMP_THREAD_KINDS && ret == 0; k++)
        if ((ret = compile_kind(&b, k, fd)) < 0)
            log_error("seccomp: compiling the %s filter: %s", kinds[k].name, strerror(-ret));
    uint32_t arch = ret == 0 ? lib.arch_native() : 0;
    for (int nr = 0; nr < MAX_SYSCALL_NR && ret == 0; nr++) {
        const char *name = lib.resolve_num_arch(arch, nr);
        ret = write_full(fd, name ? name : "", name ? strlen(name) + 1 : 1);
    }
    return ret == 0 ? 0 : 1;
}

/* ---- the compiled filters, as kiln keeps them ---- */

/*
 * Process-wide by nature, like the filters they become; written on the main thread by
 * seccomp_compile_start and seccomp_prepare before any other thread exists, and only read
 * after that.
 */
static struct compiled_filters {
    pid_t compiler;  /* the child compiling them, until it is collected; 0: none */
    int compiler_fd; /* its memfd */
    uint8_t *blob;   /* the memfd's contents, programs and names pointing into it; NULL until
                        they are collected */
    struct sock_fprog prog[SECCOMP_THREAD_KINDS];
    const char *syscall_names[MAX_SYSCALL_NR];
} compiled;

/* Splits the child's output; it is kiln's own, but a short or odd file is still refused. */
static int parse_compiled(uint8_t *blob, size_t len)
{
    size_t at = 0;
    for (unsigned k = 0; k < SECCOMP_THREAD_KINDS; k++) {
        uint32_t n;
        if (len - at < sizeof(n))
            return -EBADMSG;
        memcpy(&n, blob + at, sizeof(n));
        at += sizeof(n);
        if (n == 0 || n % sizeof(struct sock_filter) || n > len - at ||
            n / sizeof(struct sock_filter) > BPF_MAXINSNS)
            return -EBADMSG;
        compiled.prog[k].len = (unsigned short)(n / sizeof(struct sock_filter));
        compiled.prog[k].filter = (struct sock_filter *)(blob + at);
        at += n;
    }
    for (int nr = 0; nr < MAX_SYSCALL_NR; nr++) {
        const uint8_t *nul = memchr(blob + at, 0, len - at);
        if (!nul)
            return -EBADMSG;
        compiled.syscall_names[nr] = nul > blob + at ? (const char *)blob + at : NULL;
        at = (size_t)(nul - blob) + 1;
    }
    return 0;
}

/* Waits for the compiling child and takes its output (the memfd, rewound). */
static int collect_compiled(int fd, pid_t child)
{
    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -ECHILD; /* the child said why */
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (st.st_size <= 0 || (uint64_t)st.st_size > COMPILED_MAX_BYTES)
        return -EBADMSG;
    uint8_t *blob = malloc((size_t)st.st_size);
    if (!blob)
        return -ENOMEM;
    int ret = pread(fd, blob, (size_t)st.st_size, 0) == st.st_size ? 0 : -EIO;
    ret = ret ?: parse_compiled(blob, (size_t)st.st_size);
    if (ret < 0) {
        free(blob);
        return ret;
    }
    compiled.blob = blob; /* kept for good: the filters and names point into it */
    return 0;
}

int seccomp_compile_start(void)
{
    if (compiled.blob || compiled.compiler > 0)
        return 0;
    int fd = memfd_create("kiln-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    pid_t self = getpid();
    pid_t child = fork();
    if (child == 0)
        _exit(compile_filters(fd, self));
    if (child < 0) {
        int ret = -errno;
        close(fd);
        return ret;
    }
    compiled.compiler = child;
    compiled.compiler_fd = fd;
    return 0;
}

/* ---- the violation handler ---- */

/*
 * Syscall names and each thread's kind, for the SIGSYS handler: it cannot be given a
 * context, and it may only use async-signal-safe calls (no malloc, no stdio), so the names
 * are resolved in advance. Process-wide by nature, written before any filter exists.
 */
static __thread int thread_kind = -1;
/* The main thread has its filter: threads started before that confine themselves now. */
static atomic_bool main_confined;

static size_t append(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at + 1 < cap)
        buf[at++] = *s++;
    return at;
}

static size_t append_uint(char *buf, size_t at, size_t cap, unsigned long v)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < (int)sizeof(digits));
    while (n > 0 && at + 1 < cap)
        buf[at++] = digits[--n];
    return at;
}

static size_t append_hex(char *buf, size_t at, size_t cap, unsigned long long v)
{
    char digits[16];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v && n < (int)sizeof(digits));
    at = append(buf, at, cap, "0x");
    while (n > 0 && at + 1 < cap)
        buf[at++] = digits[--n];
    return at;
}

static void seccomp_violation(int sig, siginfo_t *info, void *uctx)
{
    char msg[224];
    size_t n = append(msg, 0, sizeof(msg), "kiln: seccomp: forbidden system call ");
    int nr = info->si_syscall;
    const char *name = nr >= 0 && nr < MAX_SYSCALL_NR ? compiled.syscall_names[nr] : NULL;
    n = append(msg, n, sizeof(msg), name ? name : "?");
    n = append(msg, n, sizeof(msg), " (");
    n = append_uint(msg, n, sizeof(msg), (unsigned long)(unsigned)nr);
    /* The first two arguments tell an ioctl request or a socket family apart. */
    const ucontext_t *uc = uctx;
    n = append(msg, n, sizeof(msg), ", arguments ");
    n = append_hex(msg, n, sizeof(msg), (unsigned long long)uc->uc_mcontext.gregs[REG_RDI]);
    n = append(msg, n, sizeof(msg), " ");
    n = append_hex(msg, n, sizeof(msg), (unsigned long long)uc->uc_mcontext.gregs[REG_RSI]);
    const char *kind = thread_kind >= 0 ? kinds[thread_kind].name : "vmm (inherited)";
    n = append(msg, n, sizeof(msg), kind[0] == 'a' ? ") in an " : ") in a ");
    n = append(msg, n, sizeof(msg), kind);
    n = append(msg, n, sizeof(msg), " thread; stopping\n");
    ssize_t ignored = write(STDERR_FILENO, msg, n);
    (void)ignored;
    console_crash_restore();
    _exit(KILN_EXIT_VM_FAILED);
    (void)sig;
}

int seccomp_prepare(void)
{
    if (compiled.blob)
        return 0;
    int ret = seccomp_compile_start();
    if (ret < 0)
        return ret;
    ret = collect_compiled(compiled.compiler_fd, compiled.compiler);
    close(compiled.compiler_fd);
    compiled.compiler = 0;
    compiled.compiler_fd = -1;
    if (ret < 0)
        return ret;
    /* localtime_r (the RTC) reads /etc/localtime the first time; do it while we may. */
    tzset();
    struct sigaction sa = {.sa_sigaction = seccomp_violation, .sa_flags = SA_SIGINFO};
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGSYS, &sa, NULL) < 0 ? -errno : 0;
}

int seccomp_install(enum seccomp_thread_kind kind)
{
    if ((unsigned)kind >= SECCOMP_THREAD_KINDS || !compiled.blob)
        return -EINVAL;
    /* A blocked SIGSYS would kill kiln without the report: the kernel then resets the
     * handler. Threads that block everything else (I/O workers) must leave this one. */
    sigset_t sys;
    sigemptyset(&sys);
    sigaddset(&sys, SIGSYS);
    pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
    /* Set first: the handler must know the kind from the very first trapped call. */
    int old_kind = thread_kind;
    thread_kind = kind;
    int ret = 0;
    /* Unprivileged processes may only filter themselves with no_new_privs set. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &compiled.prog[kind]) < 0)
        ret = -errno;
    if (ret != 0)
        thread_kind = old_kind;
    else if (kind == SECCOMP_THREAD_VMM)
        atomic_store(&main_confined, true);
    return ret;
}

bool seccomp_main_confined(void)
{
    return atomic_load(&main_confined);
}

static void count_call(bool *seen, unsigned *count, int nr)
{
    if (nr >= 0 && nr < MAX_SYSCALL_NR && !seen[nr]) {
        seen[nr] = true;
        (*count)++;
    }
}

unsigned seccomp_allowed_count(enum seccomp_thread_kind kind)
{
    if ((unsigned)kind >= SECCOMP_THREAD_KINDS)
        return 0;
    const struct kind_table *t = &kinds[kind];
    bool seen[MAX_SYSCALL_NR] = {false};
    unsigned count = 0;
    for (unsigned i = 0; i < ARRAY_SIZE(common_calls); i++)
        count_call(seen, &count, common_calls[i]);
    for (unsigned i = 0; i < t->ncalls; i++)
        count_call(seen, &count, t->calls[i]);
    /* The calls allowed only with argument checks (rule_*). */
    count_call(seen, &count, SCMP_SYS(mmap));
    count_call(seen, &count, SCMP_SYS(mprotect));
    count_call(seen, &count, SCMP_SYS(ioctl));
    if (kind != SECCOMP_THREAD_WORKER)
        count_call(seen, &count, SCMP_SYS(tgkill));
    if (kind == SECCOMP_THREAD_VMM || kind == SECCOMP_THREAD_API)
        count_call(seen, &count, SCMP_SYS(fcntl));
    if (kind == SECCOMP_THREAD_VMM) {
        count_call(seen, &count, SCMP_SYS(clone));
        count_call(seen, &count, SCMP_SYS(socket));
        count_call(seen, &count, SCMP_SYS(prctl));
        count_call(seen, &count, SCMP_SYS(io_uring_register));
    }
    return count;
}

const char *seccomp_thread_kind_name(enum seccomp_thread_kind kind)
{
    return (unsigned)kind < SECCOMP_THREAD_KINDS ? kinds[kind].name : "?";
}

void seccomp_test_trigger(enum seccomp_thread_kind kind)
{
#ifdef KILN_SECCOMP_TEST
    const char *want = getenv("KILN_SECCOMP_TRIGGER");
    if (!want || strcmp(want, seccomp_thread_kind_name(kind)) != 0)
        return;
    log_info("seccomp test: making a forbidden call from a %s thread", want);
    if (kind == SECCOMP_THREAD_VMM) {
        char *const argv[] = {"true", NULL};
        execve("/nonexistent/kiln-seccomp-test", argv, argv + 1); /* no thread may exec */
    } else {
        int fd = socket(AF_UNIX, SOCK_DGRAM, 0); /* only the main thread makes Unix sockets */
        if (fd >= 0)
            close(fd);
    }
#else
    (void)kind;
#endif
}
