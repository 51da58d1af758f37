/*
 * The io_uring engine: requests become SQEs (readv, writev, fsync, fallocate) submitted in a
 * batch by kick(); the kernel posts completions and signals the eventfd registered with
 * io_uring_register_eventfd, which the event loop watches. Short reads and writes are
 * resubmitted for the rest. Opcodes the kernel lacks (fallocate before 5.6) fail with
 * -EOPNOTSUPP through a local done list, like any other completion.
 *
 * The ring is locked down before it starts (IORING_REGISTER_RESTRICTIONS): it accepts only
 * those four opcodes, on the disk image alone (registered as fixed file 0, which every SQE
 * must use), and no further registrations. io_uring work bypasses seccomp, so this is what
 * keeps a compromised kiln from using the ring to open, read or send anything else.
 */
#include "block/aio.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

struct aio_uring {
    struct aio_engine base;
    struct io_uring ring;
    bool has_fallocate;
    bool files_registered; /* the image is fixed file 0 */
    unsigned queued;       /* SQEs prepared since the last submission */
    struct aio_req *local; /* finished without reaching the kernel */
    unsigned nlocal;
    struct ratelimit log_rl;
};

static void uring_flush(struct aio_uring *u)
{
    if (!u->queued)
        return;
    int ret = io_uring_submit(&u->ring);
    if (ret >= 0) {
        u->queued -= (unsigned)ret < u->queued ? (unsigned)ret : u->queued;
        return;
    }
    /* -EBUSY/-EAGAIN: the SQEs stay in the ring; the next reap or kick tries again. */
    if (ratelimit_allow(&u->log_rl))
        log_warn("io_uring submission deferred: %s", strerror(-ret));
}

static void uring_finish_local(struct aio_uring *u, struct aio_req *req, int result)
{
    req->result = result;
    req->next = u->local;
    u->local = req;
    u->nlocal++;
    uint64_t one = 1;
    if (write(u->base.event_fd, &one, sizeof(one)) < 0) {
        /* cannot overflow with single increments */
    }
}

/* Fills an SQE for `req`. Returns 0, or -EAGAIN if the ring has no free entry. */
static int uring_prep(struct aio_uring *u, struct aio_req *req)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe) {
        uring_flush(u);
        sqe = io_uring_get_sqe(&u->ring);
        if (!sqe)
            return -EAGAIN;
    }
    int fd = 0; /* fixed file 0: the image (see uring_lock_down) */
    switch (req->op) {
    case AIO_READ:
        io_uring_prep_readv(sqe, fd, req->iov, req->iovcnt, req->offset);
        break;
    case AIO_WRITE:
        io_uring_prep_writev2(sqe, fd, req->iov, req->iovcnt, req->offset,
                              req->dsync ? RWF_DSYNC : 0);
        break;
    case AIO_FDATASYNC:
        io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
        break;
    case AIO_PUNCH_HOLE:
    case AIO_ZERO_RANGE:
        io_uring_prep_fallocate(sqe, fd, aio_fallocate_mode(req->op), req->offset, req->len);
        break;
    }
    io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
    io_uring_sqe_set_data(sqe, req);
    u->queued++;
    return 0;
}

static int uring_submit(struct aio_engine *e, struct aio_req *req)
{
    struct aio_uring *u = (struct aio_uring *)e;
    bool is_falloc = req->op == AIO_PUNCH_HOLE || req->op == AIO_ZERO_RANGE;
    if ((req->op == AIO_READ || req->op == AIO_WRITE) && req->len == 0) {
        uring_finish_local(u, req, 0);
    } else if (is_falloc && !u->has_fallocate) {
        uring_finish_local(u, req, -EOPNOTSUPP);
    } else {
        int ret = uring_prep(u, req);
        if (ret < 0)
            return ret;
    }
    e->inflight++;
    return 0;
}

static bool uring_kick(struct aio_engine *e)
{
    struct aio_uring *u = (struct aio_uring *)e;
    uring_flush(u);
    return u->local || io_uring_cq_ready(&u->ring) > 0;
}

static void uring_done(struct aio_uring *u, struct aio_req *req, int result)
{
    req->result = result;
    u->base.inflight--;
    u->base.done(u->base.opaque, req);
}

/* One completion from the kernel: finished, or resubmitted for what is left. */
static void uring_complete(struct aio_uring *u, struct aio_req *req, int res)
{
    bool transfer = req->op == AIO_READ || req->op == AIO_WRITE;
    if (res == -EINTR || res == -EAGAIN ||
        (transfer && res > 0 && aio_advance(req, (uint64_t)res))) {
        if (uring_prep(u, req) == 0)
            return;
        res = -EIO; /* cannot happen: the ring is sized for every request in flight */
    } else if (transfer && res == 0) {
        res = -EIO; /* end of file inside the disk: the image shrank */
    } else if (res > 0) {
        res = 0;
    }
    uring_done(u, req, res);
}

static void uring_reap_local(struct aio_uring *u)
{
    while (u->local) {
        struct aio_req *req = u->local;
        u->local = req->next;
        u->nlocal--;
        uring_done(u, req, req->result);
    }
}

static void uring_reap(struct aio_engine *e)
{
    struct aio_uring *u = (struct aio_uring *)e;
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
        struct aio_req *req = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&u->ring, cqe);
        uring_complete(u, req, res);
    }
    uring_reap_local(u);
    uring_flush(u); /* resubmissions, and whatever done() submitted */
}

static void uring_drain(struct aio_engine *e)
{
    struct aio_uring *u = (struct aio_uring *)e;
    while (e->inflight > 0) {
        uring_reap(e);
        if (e->inflight == 0 || e->inflight == u->nlocal)
            continue;
        struct io_uring_cqe *cqe;
        int ret;
        if (u->queued) {
            ret = io_uring_submit_and_wait(&u->ring, 1);
            if (ret > 0)
                u->queued -= (unsigned)ret < u->queued ? (unsigned)ret : u->queued;
        } else {
            ret = io_uring_wait_cqe(&u->ring, &cqe);
        }
        if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
            /* The kernel still owns the buffers; waiting is the only safe thing to do. */
            if (ratelimit_allow(&u->log_rl))
                log_warn("io_uring wait: %s", strerror(-ret));
            usleep(1000);
        }
    }
}

static void uring_destroy(struct aio_engine *e)
{
    struct aio_uring *u = (struct aio_uring *)e;
    /* The ring's own teardown is asynchronous in the kernel; a fixed file it still held
     * would keep the image (and its lock) open after kiln exits. Let go of it first. */
    if (u->files_registered)
        io_uring_unregister_files(&u->ring);
    io_uring_queue_exit(&u->ring);
    if (e->event_fd >= 0)
        close(e->event_fd);
    free(u);
}

static const struct aio_engine_ops uring_ops = {
    .name = "io_uring",
    .submit = uring_submit,
    .kick = uring_kick,
    .reap = uring_reap,
    .drain = uring_drain,
    .destroy = uring_destroy,
};

/* The opcodes every request needs; fallocate is optional (fallbacks exist). */
static int uring_probe(struct aio_uring *u)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(&u->ring);
    if (!p)
        return -ENOSYS;
    bool ok = io_uring_opcode_supported(p, IORING_OP_READV) &&
              io_uring_opcode_supported(p, IORING_OP_WRITEV) &&
              io_uring_opcode_supported(p, IORING_OP_FSYNC);
    u->has_fallocate = io_uring_opcode_supported(p, IORING_OP_FALLOCATE);
    io_uring_free_probe(p);
    return ok ? 0 : -ENOSYS;
}

/* Restrictions, then start the ring (it was created disabled). Needs Linux 5.10. */
static int uring_lock_down(struct aio_uring *u)
{
    int ret = io_uring_register_files(&u->ring, &u->base.fd, 1);
    if (ret < 0)
        return ret;
    u->files_registered = true;
    static const uint8_t ops[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC,
                                  IORING_OP_FALLOCATE};
    struct io_uring_restriction res[ARRAY_SIZE(ops) + 3];
    memset(res, 0, sizeof(res));
    for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
        res[i].opcode = IORING_RESTRICTION_SQE_OP;
        res[i].sqe_op = ops[i];
    }
    res[ARRAY_SIZE(ops)].opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED;
    res[ARRAY_SIZE(ops)].sqe_flags = IOSQE_FIXED_FILE;
    res[ARRAY_SIZE(ops) + 1].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
    res[ARRAY_SIZE(ops) + 1].sqe_flags = IOSQE_FIXED_FILE;
    /* The one registration left: giving the image back at exit (uring_destroy). */
    res[ARRAY_SIZE(ops) + 2].opcode = IORING_RESTRICTION_REGISTER_OP;
    res[ARRAY_SIZE(ops) + 2].register_op = IORING_UNREGISTER_FILES;
    /* Debian's liburing declares but does not export the wrappers for these two. */
    if (syscall(__NR_io_uring_register, u->ring.ring_fd, IORING_REGISTER_RESTRICTIONS, res,
                ARRAY_SIZE(res)) < 0 ||
        syscall(__NR_io_uring_register, u->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) <
            0)
        return -errno;
    return 0;
}

int aio_uring_create(struct aio_engine **out, int fd, unsigned depth)
{
    struct aio_uring *u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    u->base.ops = &uring_ops;
    u->base.fd = fd;
    u->log_rl = (struct ratelimit)RATELIMIT_INIT(10, 5);
    u->base.event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (u->base.event_fd < 0) {
        int ret = -errno;
        free(u);
        return ret;
    }
    /* The CQ is twice the SQ: every request in flight fits in both. */
    int ret = io_uring_queue_init(depth ? depth : 1, &u->ring, IORING_SETUP_R_DISABLED);
    if (ret < 0) {
        close(u->base.event_fd);
        free(u);
        return ret;
    }
    ret = uring_probe(u);
    if (ret == 0)
        ret = io_uring_register_eventfd(&u->ring, u->base.event_fd);
    if (ret == 0)
        ret = uring_lock_down(u);
    if (ret < 0) {
        uring_destroy(&u->base);
        return ret;
    }
    *out = &u->base;
    return 0;
}
