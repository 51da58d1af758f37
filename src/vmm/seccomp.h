/*
 * Per-thread seccomp-bpf allowlists (libseccomp). Each kind of kiln thread gets the system
 * calls its work needs and nothing else, with arguments checked where it matters (ioctl
 * requests, mmap/mprotect without PROT_EXEC, clone only for threads, socket families).
 * A forbidden call raises SIGSYS; the handler names the call and the thread kind on stderr,
 * restores the terminal and ends kiln (exit status 1). docs/seccomp.md describes the design.
 *
 * Filters stack: a thread keeps every filter it inherited. The main thread installs the VMM
 * filter with TSYNC, so every thread it has at that point (I/O workers) gets it too; vCPU
 * threads and workers then add their own, stricter filter on themselves.
 */
#ifndef KILN_SECCOMP_H
#define KILN_SECCOMP_H

#include <stdbool.h>

enum seccomp_thread_kind {
    SECCOMP_THREAD_VMM,    /* main thread: event loop, devices, backends, guest resets */
    SECCOMP_THREAD_VCPU,   /* KVM_RUN and the device register handlers it calls */
    SECCOMP_THREAD_WORKER, /* block I/O thread pool (block/aio_threads.c) */
    SECCOMP_THREAD_API,    /* an HTTP server on an accepted Unix socket */
    SECCOMP_THREAD_KINDS
};

/*
 * Once, on the main thread, before any install: the SIGSYS handler and the syscall names it
 * prints, and what libc would otherwise load lazily under a filter (the time zone).
 */
int seccomp_prepare(void);

/*
 * Loads the filter for `kind` on the calling thread (the VMM kind: on every thread of the
 * process). Returns 0 or a negative errno; on failure nothing was installed.
 */
int seccomp_install(enum seccomp_thread_kind kind);

/* Whether the calling thread runs under any seccomp filter (inherited ones included). */
bool seccomp_thread_filtered(void);

/* How many system calls the filter for `kind` allows (for docs and tests). */
unsigned seccomp_allowed_count(enum seccomp_thread_kind kind);

const char *seccomp_thread_kind_name(enum seccomp_thread_kind kind);

/* True in ASan/UBSan builds, whose filters also allow what the sanitizer runtime needs
 * (opening /proc files, ptrace, clone for LeakSanitizer); see docs/seccomp.md. */
bool seccomp_relaxed_for_sanitizers(void);

/*
 * Test builds only (KILN_SECCOMP_TEST defined): if the environment variable
 * KILN_SECCOMP_TRIGGER names this thread kind ("vmm", "vcpu", "worker"), make a system
 * call that kind may not make (so the test sees kiln stopped, with the call named).
 */
void seccomp_test_trigger(enum seccomp_thread_kind kind);

#endif
