/*
 * The seccomp filters (vmm/seccomp.c), each in a forked child so that the test runner stays
 * unfiltered: what a thread kind needs still works, what it must not do stops the process
 * with status 1 and a message naming the call and the thread kind, and argument checks
 * (ioctl requests, PROT_EXEC, socket families) hold. The worker kind is tested through the
 * real thread-pool engine, which confines its workers once the main thread's filter lands.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "block/aio.h"
#include "vmm/seccomp.h"

struct child_result {
    int status; /* exit status, or 128 + signal */
    char err[1024];
};

/* Runs fn(arg) in a child whose stderr is captured; the child exits 0 if fn returns. */
static void run_child(void (*fn)(const void *), const void *arg, struct child_result *r)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[0]);
        fn(arg);
        _exit(0);
    }
    close(pipefd[1]);
    size_t n = 0;
    ssize_t got;
    while (n + 1 < sizeof(r->err) && (got = read(pipefd[0], r->err + n, sizeof(r->err) - 1 - n)) > 0)
        n += (size_t)got;
    r->err[n] = 0;
    close(pipefd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void install(enum seccomp_thread_kind kind)
{
    if (seccomp_prepare() < 0 || seccomp_install(kind) < 0)
        _exit(99);
}

static void expect_killed(const struct child_result *r, const char *call, const char *kind)
{
    char want[128];
    snprintf(want, sizeof(want), "kiln: seccomp: forbidden system call %s (", call);
    if (r->status != 1 || !strstr(r->err, want) || !strstr(r->err, kind))
        fail_msg("expected %s to stop a %s thread; status %d, stderr: %s", call, kind, r->status,
                 r->err);
}

/* ---- each kind: its everyday calls work ---- */

static void everyday_calls(const void *arg)
{
    install(*(const enum seccomp_thread_kind *)arg);
    void *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        _exit(2);
    memset(p, 1, 1 << 20);
    munmap(p, 1 << 20);
    void *heap = malloc(4 << 20); /* large: mmap inside malloc */
    free(heap);
    if (write(STDERR_FILENO, "still here\n", 11) != 11)
        _exit(3);
}

static void kinds_allow_their_work(void **state)
{
    for (int k = 0; k < SECCOMP_THREAD_KINDS; k++) {
        struct child_result r;
        run_child(everyday_calls, &k, &r);
        if (r.status != 0 || !strstr(r.err, "still here"))
            fail_msg("kind %s: status %d, stderr: %s", seccomp_thread_kind_name(k), r.status,
                     r.err);
    }
    (void)state;
}

/* ---- what no kind may do ---- */

static void do_execve(const void *arg)
{
    install(*(const enum seccomp_thread_kind *)arg);
    char *const argv[] = {"true", NULL};
    execve("/bin/true", argv, argv + 1);
    _exit(4); /* the exec failed but was not stopped */
}

static void no_kind_may_exec(void **state)
{
    for (int k = 0; k < SECCOMP_THREAD_KINDS; k++) {
        struct child_result r;
        run_child(do_execve, &k, &r);
        expect_killed(&r, "execve", seccomp_thread_kind_name(k));
    }
    (void)state;
}

static void do_exec_mapping(const void *arg)
{
    install(*(const enum seccomp_thread_kind *)arg);
    mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    _exit(4);
}

static void no_kind_may_map_code(void **state)
{
    for (int k = 0; k < SECCOMP_THREAD_KINDS; k++) {
        struct child_result r;
        run_child(do_exec_mapping, &k, &r);
        expect_killed(&r, "mmap", seccomp_thread_kind_name(k));
    }
    (void)state;
}

/* ---- argument checks ---- */

static void vcpu_creates_vm(const void *arg)
{
    int fd = open("/dev/null", O_RDONLY);
    enum seccomp_thread_kind k = SECCOMP_THREAD_VCPU;
    install(k);
    ioctl(fd, KVM_CREATE_VM, 0); /* a vCPU thread only runs its vCPU */
    _exit(4);
    (void)arg;
}

static void vcpu_ioctls_are_checked(void **state)
{
    struct child_result r;
    run_child(vcpu_creates_vm, NULL, &r);
    expect_killed(&r, "ioctl", "vcpu");
    assert_non_null(strstr(r.err, "0xae01")); /* KVM_CREATE_VM, named by its request */
    (void)state;
}

static void vmm_opens_packet_socket(const void *arg)
{
    install(SECCOMP_THREAD_VMM);
    int fd = socket(AF_INET, SOCK_DGRAM, 0); /* user networking: allowed */
    if (fd < 0)
        _exit(5);
    close(fd);
    socket(AF_PACKET, SOCK_RAW, 0); /* raw frames on host interfaces: not */
    _exit(4);
    (void)arg;
}

static void vmm_socket_families_are_checked(void **state)
{
    struct child_result r;
    run_child(vmm_opens_packet_socket, NULL, &r);
    expect_killed(&r, "socket", "vmm");
    (void)state;
}

static void vmm_forks(const void *arg)
{
    install(SECCOMP_THREAD_VMM);
    fork(); /* glibc: clone without CLONE_THREAD */
    _exit(4);
    (void)arg;
}

static void vmm_makes_threads_not_processes(void **state)
{
    if (seccomp_relaxed_for_sanitizers())
        skip(); /* LeakSanitizer's tracer is a clone without CLONE_THREAD */
    struct child_result r;
    run_child(vmm_forks, NULL, &r);
    expect_killed(&r, "clone", "vmm");
    (void)state;
}

/* A thread that may not open files gets EACCES (glibc's malloc copes with that), not a file. */
static void open_refused(const void *arg)
{
    install(*(const enum seccomp_thread_kind *)arg);
    int fd = open("/etc/hostname", O_RDONLY);
    _exit(fd < 0 && errno == EACCES ? 0 : 4);
}

static void only_api_opens_files(void **state)
{
    if (seccomp_relaxed_for_sanitizers())
        skip(); /* sanitizer reports read /proc/self/maps */
    for (int k = 0; k < SECCOMP_THREAD_KINDS; k++) {
        if (k == SECCOMP_THREAD_API)
            continue;
        struct child_result r;
        run_child(open_refused, &k, &r);
        if (r.status != 0)
            fail_msg("kind %s opened a file (status %d): %s", seccomp_thread_kind_name(k), r.status,
                     r.err);
    }
    (void)state;
}

/* The API thread writes snapshots: a new file, written, synced, renamed into place. */
static void api_writes_file(const void *arg)
{
    const char *dir = arg;
    char tmp[256], final[256];
    snprintf(tmp, sizeof(tmp), "%s/state.tmp", dir);
    snprintf(final, sizeof(final), "%s/state", dir);
    install(SECCOMP_THREAD_API);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, 4096) < 0 || pwrite(fd, "kiln", 4, 0) != 4 || fsync(fd) < 0)
        _exit(5);
    close(fd);
    if (rename(tmp, final) < 0)
        _exit(6);
    /* a TCP socket for live migration, but no Unix socket: only the main thread makes them */
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    if (tcp < 0)
        _exit(7);
    close(tcp);
    socket(AF_UNIX, SOCK_DGRAM, 0);
    _exit(4);
}

static void api_writes_snapshots_only(void **state)
{
    char dir[] = "/tmp/kiln-test-seccomp-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct child_result r;
    run_child(api_writes_file, dir, &r);
    char path[256];
    snprintf(path, sizeof(path), "%s/state", dir);
    bool written = access(path, F_OK) == 0;
    unlink(path);
    rmdir(dir);
    assert_true(written);
    expect_killed(&r, "socket", "api");
    (void)state;
}

/* ---- the worker kind, through the thread-pool engine ---- */

static void worker_breaks_rule(const void *arg)
{
    const char *path = arg;
    int fd = open(path, O_RDWR);
    struct aio_engine *e;
    if (fd < 0 || aio_threads_create(&e, fd, 2) < 0)
        _exit(6);
    install(SECCOMP_THREAD_VMM); /* the workers see it and add theirs on the next request */
    setenv("KILN_SECCOMP_TRIGGER", "worker", 1);
    static uint8_t buf[512];
    struct iovec iov = {buf, sizeof(buf)};
    struct aio_req req = {.op = AIO_READ, .iov = &iov, .iovcnt = 1, .len = sizeof(buf)};
    if (e->ops->submit(e, &req) < 0)
        _exit(7);
    e->ops->drain(e);
    _exit(4); /* the worker's forbidden call was not stopped */
}

static void worker_filter_reaches_workers(void **state)
{
    char path[] = "/tmp/kiln-test-seccomp-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 4096), 0);
    close(fd);
    struct child_result r;
    run_child(worker_breaks_rule, path, &r);
    unlink(path);
    expect_killed(&r, "socket", "worker");
    (void)state;
}

static void counts_are_plausible(void **state)
{
    unsigned vmm = seccomp_allowed_count(SECCOMP_THREAD_VMM);
    unsigned vcpu = seccomp_allowed_count(SECCOMP_THREAD_VCPU);
    unsigned worker = seccomp_allowed_count(SECCOMP_THREAD_WORKER);
    unsigned api = seccomp_allowed_count(SECCOMP_THREAD_API);
    print_message("allowed system calls: vmm %u, vcpu %u, worker %u, api %u\n", vmm, vcpu, worker,
                  api);
    assert_true(vcpu < vmm && worker < vmm && api < vmm && worker < api);
    assert_true(vcpu > 10);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kinds_allow_their_work),
        cmocka_unit_test(no_kind_may_exec),
        cmocka_unit_test(no_kind_may_map_code),
        cmocka_unit_test(vcpu_ioctls_are_checked),
        cmocka_unit_test(vmm_socket_families_are_checked),
        cmocka_unit_test(vmm_makes_threads_not_processes),
        cmocka_unit_test(only_api_opens_files),
        cmocka_unit_test(api_writes_snapshots_only),
        cmocka_unit_test(worker_filter_reaches_workers),
        cmocka_unit_test(counts_are_plausible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
