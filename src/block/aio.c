#include "block/aio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

int aio_kind_from_env(enum aio_kind *kind)
{
    const char *v = getenv("KILN_BLK_ENGINE");
    if (!v || !*v || !strcmp(v, "auto"))
        *kind = AIO_KIND_AUTO;
    else if (!strcmp(v, "io_uring"))
        *kind = AIO_KIND_IO_URING;
    else if (!strcmp(v, "threads"))
        *kind = AIO_KIND_THREADS;
    else
        return -EINVAL;
    return 0;
}

int aio_engine_create(struct aio_engine **out, enum aio_kind kind, int fd, unsigned depth,
                      aio_done_fn done, void *opaque)
{
    int ret = -ENOSYS;
    *out = NULL;
    if (kind != AIO_KIND_THREADS) {
        ret = aio_uring_create(out, fd, depth);
        if (ret < 0 && kind == AIO_KIND_AUTO)
            log_verbose("io_uring is not usable here (%s); disks use a thread pool",
                        strerror(-ret));
    }
    if (ret < 0 && kind != AIO_KIND_IO_URING)
        ret = aio_threads_create(out, fd, depth);
    if (ret < 0)
        return ret;
    (*out)->fd = fd;
    (*out)->done = done;
    (*out)->opaque = opaque;
    (*out)->inflight = 0;
    return 0;
}

void aio_engine_destroy(struct aio_engine *e)
{
    if (e)
        e->ops->destroy(e);
}

bool aio_advance(struct aio_req *req, uint64_t n)
{
    if (n >= req->len) {
        req->offset += req->len;
        req->len = 0;
        return false;
    }
    req->offset += n;
    req->len -= n;
    while (n > 0 && req->iovcnt > 0) {
        if (n < req->iov->iov_len) {
            req->iov->iov_base = (uint8_t *)req->iov->iov_base + n;
            req->iov->iov_len -= n;
            break;
        }
        n -= req->iov->iov_len;
        req->iov++;
        req->iovcnt--;
    }
    return req->iovcnt > 0;
}

int aio_fallocate_mode(enum aio_op op)
{
    /* KEEP_SIZE: the image never grows; block devices accept only these combinations. */
    if (op == AIO_PUNCH_HOLE)
        return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
    return FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
}

static int aio_transfer_sync(int fd, struct aio_req *req)
{
    for (;;) {
        ssize_t n;
        if (req->op == AIO_READ)
            n = preadv(fd, req->iov, (int)req->iovcnt, (off_t)req->offset);
        else
            n = pwritev2(fd, req->iov, (int)req->iovcnt, (off_t)req->offset,
                         req->dsync ? RWF_DSYNC : 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO; /* end of file inside the disk: the image shrank */
        if (!aio_advance(req, (uint64_t)n))
            return 0;
    }
}

int aio_run_sync(int fd, struct aio_req *req)
{
    switch (req->op) {
    case AIO_READ:
    case AIO_WRITE:
        return req->len ? aio_transfer_sync(fd, req) : 0;
    case AIO_FDATASYNC:
        return fdatasync(fd) < 0 ? -errno : 0;
    case AIO_PUNCH_HOLE:
    case AIO_ZERO_RANGE:
        if (fallocate(fd, aio_fallocate_mode(req->op), (off_t)req->offset, (off_t)req->len) < 0)
            return -errno;
        return 0;
    }
    return -EINVAL;
}
