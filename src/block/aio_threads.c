/*
 * The thread-pool engine: a few workers take requests off a queue and run them with plain
 * blocking system calls (preadv, pwritev2, fdatasync, fallocate), then post them on a done
 * list and bump the eventfd. Used where io_uring is unavailable, or on request.
 * The workers start with the first request, not when the disk is opened: a jailed VM
 * (--jail) drops its privileges after opening its disks, and threads started before that
 * would keep them (capabilities and no_new_privs are per thread).
 */
#include "block/aio.h"
#include "util.h"
#include "vmm/seccomp.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define THREADS_MAX_WORKERS 4

struct aio_list {
    struct aio_req *head;
    struct aio_req **tail;
};

struct aio_threads {
    struct aio_engine base;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t work;  /* queue gained a request, or stop */
    pthread_cond_t idle;  /* busy dropped to 0 */
    struct aio_list queue;
    struct aio_list done;
    unsigned busy; /* queued or running */
    bool stop;
    pthread_t workers[THREADS_MAX_WORKERS];
    unsigned nworkers;
    unsigned want_workers;
};

static void list_init(struct aio_list *l)
{
    l->head = NULL;
    l->tail = &l->head;
}

static void list_append(struct aio_list *l, struct aio_req *req)
{
    req->next = NULL;
    *l->tail = req;
    l->tail = &req->next;
}

static struct aio_req *list_pop(struct aio_list *l)
{
    struct aio_req *req = l->head;
    if (req) {
        l->head = req->next;
        if (!l->head)
            l->tail = &l->head;
    }
    return req;
}

/*
 * Workers normally start with the guest's first request, under the VMM filter they inherit
 * from the main thread; one started before the main thread confined itself inherits
 * nothing. Either way, the first request after the main thread's filter is on makes the
 * worker add its own, narrower one (it must not wait for an inherited filter: there is no
 * TSYNC to give it one).
 */
enum worker_confinement { WORKER_OPEN, WORKER_CONFINED, WORKER_BROKEN };

/* Whether the worker may run a request: never unconfined once the rest of kiln is. */
static bool threads_worker_confine(enum worker_confinement *state)
{
    if (*state == WORKER_OPEN && seccomp_main_confined()) {
        int ret = seccomp_install(SECCOMP_THREAD_WORKER);
        if (ret < 0) {
            log_error("disk worker: installing its seccomp filter: %s; its requests fail",
                      strerror(-ret));
            *state = WORKER_BROKEN;
        } else {
            *state = WORKER_CONFINED;
            seccomp_test_trigger(SECCOMP_THREAD_WORKER);
        }
    }
    return *state != WORKER_BROKEN;
}

static void *threads_worker(void *opaque)
{
    struct aio_threads *t = opaque;
    enum worker_confinement confinement = WORKER_OPEN;
    pthread_mutex_lock(&t->lock);
    for (;;) {
        while (!t->stop && !t->queue.head)
            pthread_cond_wait(&t->work, &t->lock);
        struct aio_req *req = list_pop(&t->queue);
        if (!req)
            break; /* stopping, and nothing left to do */
        pthread_mutex_unlock(&t->lock);
        req->result = threads_worker_confine(&confinement) ? aio_run_sync(t->base.fd, req) : -EPERM;
        pthread_mutex_lock(&t->lock);
        list_append(&t->done, req);
        if (--t->busy == 0)
            pthread_cond_broadcast(&t->idle);
        uint64_t one = 1;
        if (write(t->base.event_fd, &one, sizeof(one)) < 0) {
            /* cannot overflow with single increments */
        }
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

/* Starts the workers (event loop thread only). Some is enough; none is an error. */
static int threads_start(struct aio_threads *t)
{
    int ret = 0;
    /* Workers only run the I/O: they must not take signals meant for the main thread. SIGSYS
     * stays open: a blocked one would kill kiln without seccomp's report. */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSYS);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    while (ret == 0 && t->nworkers < t->want_workers) {
        ret = -pthread_create(&t->workers[t->nworkers], NULL, threads_worker, t);
        if (ret == 0)
            t->nworkers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return t->nworkers ? 0 : ret;
}

static int threads_submit(struct aio_engine *e, struct aio_req *req)
{
    struct aio_threads *t = (struct aio_threads *)e;
    if (t->nworkers == 0) {
        int ret = threads_start(t);
        if (ret < 0)
            return ret;
    }
    pthread_mutex_lock(&t->lock);
    list_append(&t->queue, req);
    t->busy++;
    pthread_cond_signal(&t->work);
    pthread_mutex_unlock(&t->lock);
    e->inflight++;
    return 0;
}

static bool threads_kick(struct aio_engine *e)
{
    (void)e; /* submit already woke a worker, which cannot have finished yet */
    return false;
}

static void threads_reap(struct aio_engine *e)
{
    struct aio_threads *t = (struct aio_threads *)e;
    pthread_mutex_lock(&t->lock);
    struct aio_req *req = t->done.head;
    list_init(&t->done);
    pthread_mutex_unlock(&t->lock);
    while (req) {
        struct aio_req *next = req->next;
        e->inflight--;
        e->done(e->opaque, req); /* may submit more */
        req = next;
    }
}

static void threads_drain(struct aio_engine *e)
{
    struct aio_threads *t = (struct aio_threads *)e;
    /* done() may submit follow-ups (it should not while draining, but be safe): loop. */
    while (e->inflight > 0) {
        pthread_mutex_lock(&t->lock);
        while (t->busy > 0)
            pthread_cond_wait(&t->idle, &t->lock);
        pthread_mutex_unlock(&t->lock);
        threads_reap(e);
    }
}

static void threads_destroy(struct aio_engine *e)
{
    struct aio_threads *t = (struct aio_threads *)e;
    pthread_mutex_lock(&t->lock);
    t->stop = true;
    pthread_cond_broadcast(&t->work);
    pthread_mutex_unlock(&t->lock);
    for (unsigned i = 0; i < t->nworkers; i++)
        pthread_join(t->workers[i], NULL);
    if (e->event_fd >= 0)
        close(e->event_fd);
    pthread_cond_destroy(&t->work);
    pthread_cond_destroy(&t->idle);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static const struct aio_engine_ops threads_ops = {
    .name = "threads",
    .submit = threads_submit,
    .kick = threads_kick,
    .reap = threads_reap,
    .drain = threads_drain,
    .destroy = threads_destroy,
};

int aio_threads_create(struct aio_engine **out, int fd, unsigned depth)
{
    struct aio_threads *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->base.ops = &threads_ops;
    t->base.fd = fd;
    t->base.event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->work, NULL);
    pthread_cond_init(&t->idle, NULL);
    list_init(&t->queue);
    list_init(&t->done);
    t->want_workers = depth < THREADS_MAX_WORKERS ? (depth ? depth : 1) : THREADS_MAX_WORKERS;
    if (t->base.event_fd < 0) {
        int ret = -errno;
        threads_destroy(&t->base);
        return ret;
    }
    *out = &t->base;
    return 0;
}
