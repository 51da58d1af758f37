/*
 * Live migration, the source side (docs/migration.md): a thread that sends a running VM's
 * RAM to a destination in passes while the guest runs, then pauses it, sends the pages
 * still dirty and the vCPU and device state, and hands the VM over once the destination
 * has loaded everything. Until that hand-over any failure (cancel, network, destination
 * gone) thaws and resumes the VM here, as if nothing had happened.
 */
#ifndef KILN_MIGRATE_H
#define KILN_MIGRATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "migrate/channel.h"

struct vm;

enum migrate_state {
    MIGRATE_NONE,      /* never started */
    MIGRATE_ACTIVE,    /* sending */
    MIGRATE_COMPLETED, /* the destination runs the VM; this process exits */
    MIGRATE_FAILED,    /* the VM runs here again (or, after the hand-over, stays paused) */
    MIGRATE_CANCELLED, /* cancelled; the VM runs here again */
};

struct migrate_progress {
    enum migrate_state state;
    char destination[80];
    unsigned pass;           /* 1: all of RAM; then the passes over dirty pages */
    uint64_t ram_pages;
    uint64_t pages_sent;     /* all passes, zero runs included */
    uint64_t zero_pages;
    uint64_t bytes_sent;     /* on the wire */
    uint64_t dirty_pages;    /* left to send after the current pass */
    uint64_t elapsed_ns;     /* since the start (total, once finished) */
    uint64_t downtime_ns;    /* pause here -> the destination said it runs */
    bool paused_here;        /* the final stage has paused the VM */
    char error[256];
};

struct migration {
    struct vm *vm;
    int fd;
    pthread_t thread;
    bool thread_started;
    atomic_bool cancel;
    pthread_mutex_t lock; /* guards progress and reported */
    pthread_cond_t cond;
    struct migrate_progress progress;
    bool reported; /* a client read the final progress: the process may exit */
    uint64_t pass_pages; /* pages the current pass sends */
    uint64_t pass_base;  /* pages sent before it */
    uint64_t start_ns;
};

void migration_init(struct migration *m);
/*
 * Connects to `destination` (tcp:HOST:PORT) and starts the sending thread. -EBUSY if one
 * is active; -EINVAL, -ECONNREFUSED... with a reason in `err`.
 */
int migration_start(struct migration *m, struct vm *vm, const char *destination, char *err,
                    size_t errlen);
/* Asks an active migration to stop (the VM resumes here, unless it was handed over). */
void migration_cancel(struct migration *m);
/* Cancels and waits for the thread: before the VM is destroyed. */
void migration_stop(struct migration *m);
/* A copy of the progress; after the end, marks it reported. */
void migration_progress(struct migration *m, struct migrate_progress *out);
bool migration_active(struct migration *m);
void migration_destroy(struct migration *m);

const char *migrate_state_name(enum migrate_state s);

#endif
