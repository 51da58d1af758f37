/*
 * Per-thread seccomp-bpf allowlists (libseccomp). Each kind of kiln thread gets the system
 * calls its work needs and nothing else, with arguments checked where it matters (ioctl
 * requests, mmap/mprotect without PROT_EXEC, clone only for threads, socket families).
 * A forbidden call raises SIGSYS; the handler names the call and the thread kind on stderr,
 * restores the terminal and ends kiln (exit status 1). docs/seccomp.md describes the design.
 *
 * Each thread installs its own filter on itself; nothing is synchronized across threads
 * (no TSYNC). Filters stack, though: a thread keeps every filter it inherited from the
 * thread that created it. The HTTP API thread is started before the main thread confines
 * itself and so carries the API filter alone; vCPU threads (and block I/O workers started
 * after the guest boots) inherit the VMM filter and add their own, narrower one, which must
 * therefore be a subset of the VMM filter. docs/seccomp.md walks through the order.
 */
#ifndef KILN_SECCOMP_H
#define KILN_SECCOMP_H

#include <stdbool.h>

enum seccomp_thread_kind {
    SECCOMP_THREAD_VMM,    /* main thread: event loop, devices, backends, guest resets */
    SECCOMP_THREAD_VCPU,   /* KVM_RUN and the device register handlers it calls */
    SECCOMP_THREAD_WORKER, /* block I/O thread pool (block/aio_threads.c) */
    SECCOMP_THREAD_API,    /* the HTTP API server thread (api/api_server.c) */
    SECCOMP_THREAD_KINDS
};

/*
 * Starts compiling every kind's filter in a short-lived child, so that libseccomp is never
 * loaded into kiln itself. Call it on the main thread while that is the only thread (it
 * forks) and before entering a jail (the child loads the library); kiln goes on with its
 * set-up meanwhile. Returns 0 or a negative errno; a second call does nothing.
 */
int seccomp_compile_start(void);

/*
 * Before any install: waits for the compiled filters (starting the compiler first if
 * seccomp_compile_start was not called, with the same rules), sets up the SIGSYS handler
 * and the syscall names it prints, and what libc would otherwise load lazily under a filter
 * (the time zone). Later calls return at once.
 */
int seccomp_prepare(void);

/*
 * Loads the filter for `kind` on the calling thread only. Returns 0 or a negative errno; on
 * failure nothing was installed.
 */
int seccomp_install(enum seccomp_thread_kind kind);

/* Whether the main thread has installed the VMM filter (threads that existed before check
 * this to know it is time to install their own). */
bool seccomp_main_confined(void);

/* How many system calls the filter for `kind` allows (for docs and tests). */
unsigned seccomp_allowed_count(enum seccomp_thread_kind kind);

const char *seccomp_thread_kind_name(enum seccomp_thread_kind kind);

/* True in ASan/UBSan builds, whose filters also allow what the sanitizer runtime needs
 * (opening /proc files, ptrace, clone for LeakSanitizer); see docs/seccomp.md. */
bool seccomp_relaxed_for_sanitizers(void);

/*
 * Test builds only (KILN_SECCOMP_TEST defined): if the environment variable
 * KILN_SECCOMP_TRIGGER names this thread kind ("vmm", "vcpu", "worker", "api"), make a system
 * call that kind may not make (so the test sees kiln stopped, with the call named).
 */
void seccomp_test_trigger(enum seccomp_thread_kind kind);

#endif
