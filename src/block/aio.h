/*
 * Asynchronous disk I/O behind one small ops table: io_uring (block/aio_uring.c), or a pool
 * of threads doing ordinary system calls (block/aio_threads.c) where io_uring is missing.
 * A device submits requests and later gets each back through its done() callback, called
 * from reap() or drain(); an engine's event_fd becomes readable when reap() has work.
 *
 * Engines are not thread-safe: the owner serializes every call (virtio-blk holds its device
 * lock). Reads and writes always transfer everything or fail: short transfers are resumed.
 */
#ifndef KILN_BLOCK_AIO_H
#define KILN_BLOCK_AIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum aio_op {
    AIO_READ,
    AIO_WRITE,
    AIO_FDATASYNC,
    AIO_PUNCH_HOLE, /* fallocate PUNCH_HOLE | KEEP_SIZE */
    AIO_ZERO_RANGE, /* fallocate ZERO_RANGE | KEEP_SIZE */
};

struct aio_req {
    enum aio_op op;
    bool dsync;        /* AIO_WRITE: stable on completion (RWF_DSYNC) */
    struct iovec *iov; /* AIO_READ/AIO_WRITE buffers, consumed in place as data moves */
    unsigned iovcnt;
    uint64_t offset;
    uint64_t len; /* bytes left to transfer, or the fallocate range */
    int result;   /* at done(): 0 or -errno */
    struct aio_req *next;
};

struct aio_engine;
typedef void (*aio_done_fn)(void *opaque, struct aio_req *req);

struct aio_engine_ops {
    const char *name;
    /* Queues `req`, which stays the caller's but must live until done(). 0 or -errno. */
    int (*submit)(struct aio_engine *e, struct aio_req *req);
    /*
     * Starts whatever submit() queued (lets submissions be batched). True if some requests
     * already finished (io_uring completes page-cache hits inside the submission): reap()
     * now answers them without waiting for the eventfd to come round.
     */
    bool (*kick)(struct aio_engine *e);
    /* Calls done() for every finished request; never blocks. */
    void (*reap)(struct aio_engine *e);
    /* Blocks until nothing is in flight, calling done() for each request. */
    void (*drain)(struct aio_engine *e);
    void (*destroy)(struct aio_engine *e);
};

struct aio_engine {
    const struct aio_engine_ops *ops;
    int fd;            /* the disk */
    int event_fd;      /* readable (eventfd counter) when reap() has something to do */
    unsigned inflight; /* submitted, done() not yet called */
    aio_done_fn done;
    void *opaque;
};

enum aio_kind {
    AIO_KIND_AUTO,     /* io_uring if it works here, else threads */
    AIO_KIND_IO_URING, /* io_uring only */
    AIO_KIND_THREADS,  /* the thread pool */
};

/* KILN_BLK_ENGINE=io_uring|threads picks the engine (tests use it); unset means auto. */
int aio_kind_from_env(enum aio_kind *kind);

/*
 * Creates an engine for `fd` with room for `depth` requests in flight. Returns 0 or -errno
 * (-ENOSYS: io_uring asked for but unusable here).
 */
int aio_engine_create(struct aio_engine **out, enum aio_kind kind, int fd, unsigned depth,
                      aio_done_fn done, void *opaque);

static inline int aio_submit(struct aio_engine *e, struct aio_req *req)
{
    return e->ops->submit(e, req);
}

static inline bool aio_kick(struct aio_engine *e)
{
    return e->ops->kick(e);
}

static inline void aio_reap(struct aio_engine *e)
{
    e->ops->reap(e);
}

static inline void aio_drain(struct aio_engine *e)
{
    e->ops->drain(e);
}

void aio_engine_destroy(struct aio_engine *e);

/* For engines. */
int aio_uring_create(struct aio_engine **out, int fd, unsigned depth);
int aio_threads_create(struct aio_engine **out, int fd, unsigned depth);
/* Marks `n` bytes of a read or write done; true if some are left. */
bool aio_advance(struct aio_req *req, uint64_t n);
/* Runs `req` to the end with blocking system calls; returns 0 or -errno. */
int aio_run_sync(int fd, struct aio_req *req);
/* fallocate(2) mode for an AIO_PUNCH_HOLE / AIO_ZERO_RANGE request. */
int aio_fallocate_mode(enum aio_op op);

#endif
