/*
 * The virtio block device (virtio 1.2 §5.2) with one request queue. Kicks arrive on the
 * event-loop thread; each request is checked there and handed to an asynchronous engine
 * (block/aio.h). The used ring is filled when the engine reports the request done, on the
 * same thread, so neither the vCPUs nor the event loop ever wait for the disk.
 *
 * The one exception is a device reset: the kernel may still be moving data into guest memory
 * for requests in flight, so the reset waits for them and completes them without touching
 * the rings or guest memory again.
 */
#include "virtio/blk.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "block/aio.h"
#include "block/disk.h"
#include "snapshot/state_file.h"
#include "util.h"
#include "virtio/virtio.h"
#include "vmm/event_loop.h"
#include "vmm/vm.h"
#include "le.h"

#define BLK_QUEUE_SIZE 256
#define BLK_SECTOR_SHIFT 9
#define BLK_HDR_SIZE 16 /* struct virtio_blk_req header: type, reserved, sector */
#define BLK_DWZ_SIZE 16 /* struct virtio_blk_discard_write_zeroes */
#define BLK_ID_BYTES 20
/* Every chain holds a header and a status byte besides its data segments. */
#define BLK_SEG_MAX (VIRTQ_MAX_SEGS - 2)
#define BLK_SIZE_MAX (1u << 20)
#define BLK_MAX_TRANSFER ((uint64_t)BLK_SEG_MAX * BLK_SIZE_MAX)
/* Per discard or write-zeroes request (1 GiB); the driver splits larger ranges. */
#define BLK_DWZ_MAX_SECTORS (1u << 21)
#define BLK_ZERO_CHUNK (1u << 20)
#define BLK_BOUNCE_BUDGET (64ull << 20)
#define BLK_CONFIG_SIZE 60
#define BLK_REAP_ROUNDS 16 /* up to write_zeroes_may_unmap and its padding, §5.2.4 */

/* Feature bits, §5.2.3. */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values, §5.2.6. */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_WZ_F_UNMAP 1

/* blk_start() results besides a status to complete with at once. */
#define BLK_QUEUED (-1)
#define BLK_MALFORMED (-2)

/* How a discard or write-zeroes request is being carried out. */
enum blk_stage {
    BLK_STAGE_NONE,
    BLK_STAGE_DISCARD,    /* punch a hole; unsupported is fine, discard is a hint */
    BLK_STAGE_ZERO_PUNCH, /* write zeroes with unmap: punch a hole, which reads as zeroes */
    BLK_STAGE_ZERO_RANGE, /* fallocate ZERO_RANGE */
    BLK_STAGE_ZERO_WRITE, /* no fallocate support: write zeroes, a chunk at a time */
    BLK_STAGE_SYNC,       /* without FLUSH, what fallocate changed must be stable too */
};

struct blk_req {
    struct virtq_elem elem; /* the chain; its iovecs are trimmed in place to the data */
    struct aio_req aio;
    uint8_t *status; /* the chain's last writable byte */
    uint32_t type;
    uint32_t used_ok;   /* used length on success: bytes written from the first writable one */
    uint32_t used_err;  /* used length on failure: the status byte only */
    struct iovec *data; /* guest buffers of a bounced read, for the copy back */
    unsigned ndata;
    void *bounce; /* aligned copy of guest buffers that O_DIRECT cannot take */
    uint64_t bounce_len;
    struct iovec bounce_iov;
    enum blk_stage stage;
    uint64_t range_off, range_len, zero_done, zero_chunk;
    struct iovec zero_iov;
    struct blk_req *next_free;
};

struct virtio_blk {
    struct virtio_device vdev;
    struct disk disk;
    struct aio_engine *engine;
    struct event_loop *loop;
    char *path;
    uint8_t id[BLK_ID_BYTES];
    uint8_t config[BLK_CONFIG_SIZE];
    struct blk_req *reqs; /* BLK_QUEUE_SIZE slots */
    struct blk_req *free_reqs;
    unsigned busy;
    bool starved;  /* stopped taking requests: every slot busy */
    bool draining; /* in reset: finish I/O without touching the rings or guest memory */
    bool pushed;   /* used entries since the last interrupt */
    bool no_punch, no_zero_range;
    void *zeroes; /* BLK_ZERO_CHUNK zero bytes, made on first need */
    uint64_t bounce_bytes;
    struct ratelimit log_rl;
};

static struct blk_req *blk_req_of(struct aio_req *aio)
{
    return (struct blk_req *)((char *)aio - offsetof(struct blk_req, aio));
}

static void blk_log_error(struct virtio_blk *blk, const char *what, uint64_t offset, int err)
{
    if (ratelimit_allow(&blk->log_rl))
        log_warn("--disk %s: %s at byte %llu: %s", blk->path, what, (unsigned long long)offset,
                 strerror(-err));
}

/* ---- completion ---- */

static void blk_release(struct virtio_blk *blk, struct blk_req *req)
{
    if (req->bounce) {
        free(req->bounce);
        blk->bounce_bytes -= req->bounce_len;
        req->bounce = NULL;
    }
    req->next_free = blk->free_reqs;
    blk->free_reqs = req;
    blk->busy--;
}

static void blk_complete(struct virtio_blk *blk, struct blk_req *req, int status)
{
    if (!blk->draining) {
        struct virtq *vq = &blk->vdev.queues[0];
        *req->status = (uint8_t)status;
        uint32_t len = status == VIRTIO_BLK_S_OK ? req->used_ok : req->used_err;
        /* The data segments (trimmed in place) and the status byte cut off their end. */
        virtq_written(vq, &req->elem);
        virtq_written_iov(vq, &(struct iovec){req->status, 1}, 1);
        virtq_push(vq, req->elem.head, len);
        blk->pushed = true;
    }
    blk_release(blk, req);
}

static void blk_notify_guest(struct virtio_blk *blk)
{
    if (!blk->pushed)
        return;
    blk->pushed = false;
    virtio_queue_interrupt(&blk->vdev, 0);
}

static int blk_submit(struct virtio_blk *blk, struct blk_req *req)
{
    int ret = aio_submit(blk->engine, &req->aio);
    if (ret < 0) {
        blk_log_error(blk, "submitting I/O", req->aio.offset, ret);
        return VIRTIO_BLK_S_IOERR;
    }
    return BLK_QUEUED;
}

/* ---- reads and writes ---- */

static bool blk_range_ok(const struct virtio_blk *blk, uint64_t sector, uint64_t bytes)
{
    uint32_t bs = blk->disk.block_size;
    uint64_t capacity = blk->disk.size >> BLK_SECTOR_SHIFT;
    /* §5.2.6.1: whole sectors; a 4 KiB-sector backend needs whole blocks, aligned. */
    if (bytes % bs || sector % (bs >> BLK_SECTOR_SHIFT))
        return false;
    return sector <= capacity && (bytes >> BLK_SECTOR_SHIFT) <= capacity - sector;
}

static bool blk_dio_aligned(const struct virtio_blk *blk, const struct iovec *iov, unsigned n)
{
    uintptr_t mem_mask = blk->disk.dio_mem_align - 1, len_mask = blk->disk.block_size - 1;
    for (unsigned i = 0; i < n; i++)
        if (((uintptr_t)iov[i].iov_base & mem_mask) || (iov[i].iov_len & len_mask))
            return false;
    return true;
}

/* O_DIRECT refuses the guest's buffers: go through an aligned copy, within a budget. */
static int blk_bounce(struct virtio_blk *blk, struct blk_req *req, bool write)
{
    uint64_t len = req->aio.len;
    void *buf;
    if (len > BLK_BOUNCE_BUDGET - blk->bounce_bytes || posix_memalign(&buf, 4096, len) != 0)
        return -ENOMEM;
    if (write)
        iov_to_buf(req->aio.iov, req->aio.iovcnt, 0, buf, len);
    req->data = req->aio.iov;
    req->ndata = req->aio.iovcnt;
    req->bounce = buf;
    req->bounce_len = len;
    blk->bounce_bytes += len;
    req->bounce_iov = (struct iovec){buf, len};
    req->aio.iov = &req->bounce_iov;
    req->aio.iovcnt = 1;
    return 0;
}

/* The guest's view of one request: header fields and data on each side of it. */
struct blk_chain {
    uint32_t type;
    uint64_t sector;
    struct iovec *out; /* readable bytes after the header */
    unsigned nout;
    uint64_t out_len;
    struct iovec *in; /* writable bytes before the status byte */
    unsigned nin;
    uint64_t in_len;
};

static int blk_start_rw(struct virtio_blk *blk, struct blk_req *req, const struct blk_chain *c)
{
    bool write = c->type == VIRTIO_BLK_T_OUT;
    /* §5.2.6.2: the device MUST fail writes to a read-only disk without writing. */
    if (write && blk->disk.readonly)
        return VIRTIO_BLK_S_IOERR;
    /* Data must travel the right way: reads into writable buffers, writes from readable. */
    if ((write ? c->in_len : c->out_len) != 0)
        return VIRTIO_BLK_S_IOERR;
    uint64_t len = write ? c->out_len : c->in_len;
    if (len > BLK_MAX_TRANSFER || !blk_range_ok(blk, c->sector, len))
        return VIRTIO_BLK_S_IOERR;
    req->used_ok = write ? req->used_err : (uint32_t)len + 1;
    if (len == 0)
        return VIRTIO_BLK_S_OK;
    req->aio = (struct aio_req){
        .op = write ? AIO_WRITE : AIO_READ,
        /* §5.2.6.2: without a negotiated FLUSH, a completed write must be stable. */
        .dsync = write && !virtio_has_feature(&blk->vdev, VIRTIO_BLK_F_FLUSH),
        .iov = write ? c->out : c->in,
        .iovcnt = write ? c->nout : c->nin,
        .offset = c->sector << BLK_SECTOR_SHIFT,
        .len = len,
    };
    if (blk->disk.direct && !blk_dio_aligned(blk, req->aio.iov, req->aio.iovcnt) &&
        blk_bounce(blk, req, write) < 0) {
        blk_log_error(blk, "bounce buffer", req->aio.offset, -ENOMEM);
        return VIRTIO_BLK_S_IOERR;
    }
    return blk_submit(blk, req);
}

static int blk_rw_done(struct virtio_blk *blk, struct blk_req *req, int result)
{
    if (result < 0) {
        const char *what = req->type == VIRTIO_BLK_T_IN    ? "read"
                           : req->type == VIRTIO_BLK_T_OUT ? "write"
                                                           : "flush";
        blk_log_error(blk, what, req->aio.offset, result);
        return VIRTIO_BLK_S_IOERR;
    }
    if (req->bounce && req->type == VIRTIO_BLK_T_IN && !blk->draining)
        iov_from_buf(req->data, req->ndata, 0, req->bounce, req->bounce_len);
    return VIRTIO_BLK_S_OK;
}

static int blk_start_flush(struct virtio_blk *blk, struct blk_req *req)
{
    /* Stable storage for everything completed so far (§5.2.6.2), metadata included. */
    if (blk->disk.readonly)
        return VIRTIO_BLK_S_OK;
    req->aio = (struct aio_req){.op = AIO_FDATASYNC};
    return blk_submit(blk, req);
}

static int blk_get_id(struct virtio_blk *blk, struct blk_req *req, const struct blk_chain *c)
{
    /* §5.2.6: up to 20 bytes, not NUL-terminated when all 20 are used. */
    if (c->in_len == 0)
        return VIRTIO_BLK_S_IOERR;
    uint64_t n = c->in_len < BLK_ID_BYTES ? c->in_len : BLK_ID_BYTES;
    iov_from_buf(c->in, c->nin, 0, blk->id, n);
    req->used_ok = n == c->in_len ? (uint32_t)n + 1 : (uint32_t)n;
    return VIRTIO_BLK_S_OK;
}

/* ---- discard and write zeroes ---- */

static int blk_alloc_zeroes(struct virtio_blk *blk)
{
    if (blk->zeroes)
        return 0;
    if (posix_memalign(&blk->zeroes, 4096, BLK_ZERO_CHUNK) != 0) {
        blk->zeroes = NULL;
        return -ENOMEM;
    }
    memset(blk->zeroes, 0, BLK_ZERO_CHUNK);
    return 0;
}

static int blk_dwz_submit(struct virtio_blk *blk, struct blk_req *req)
{
    struct aio_req *a = &req->aio;
    *a = (struct aio_req){.offset = req->range_off, .len = req->range_len};
    switch (req->stage) {
    case BLK_STAGE_DISCARD:
    case BLK_STAGE_ZERO_PUNCH:
        a->op = AIO_PUNCH_HOLE;
        break;
    case BLK_STAGE_ZERO_RANGE:
        a->op = AIO_ZERO_RANGE;
        break;
    case BLK_STAGE_SYNC:
        a->op = AIO_FDATASYNC;
        break;
    case BLK_STAGE_ZERO_WRITE:
    case BLK_STAGE_NONE: {
        if (blk_alloc_zeroes(blk) < 0)
            return VIRTIO_BLK_S_IOERR;
        uint64_t left = req->range_len - req->zero_done;
        req->zero_chunk = left < BLK_ZERO_CHUNK ? left : BLK_ZERO_CHUNK;
        req->zero_iov = (struct iovec){blk->zeroes, req->zero_chunk};
        a->op = AIO_WRITE;
        a->dsync = !virtio_has_feature(&blk->vdev, VIRTIO_BLK_F_FLUSH);
        a->iov = &req->zero_iov;
        a->iovcnt = 1;
        a->offset += req->zero_done;
        a->len = req->zero_chunk;
        break;
    }
    }
    return blk_submit(blk, req);
}

static enum blk_stage blk_zero_stage(const struct virtio_blk *blk, bool unmap)
{
    if (unmap && !blk->no_punch)
        return BLK_STAGE_ZERO_PUNCH;
    return blk->no_zero_range ? BLK_STAGE_ZERO_WRITE : BLK_STAGE_ZERO_RANGE;
}

static int blk_start_dwz(struct virtio_blk *blk, struct blk_req *req, const struct blk_chain *c)
{
    bool discard = c->type == VIRTIO_BLK_T_DISCARD;
    if (blk->disk.readonly)
        return VIRTIO_BLK_S_IOERR;
    if (!virtio_has_feature(&blk->vdev, discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES))
        return VIRTIO_BLK_S_UNSUPP;
    /* One segment (max_*_seg is 1) and nothing writable but the status. */
    if (c->out_len != BLK_DWZ_SIZE || c->in_len != 0)
        return VIRTIO_BLK_S_IOERR;
    uint8_t seg[BLK_DWZ_SIZE];
    iov_to_buf(c->out, c->nout, 0, seg, sizeof(seg));
    uint64_t sector = get_le64(seg);
    uint32_t nsect = get_le32(seg + 8), flags = get_le32(seg + 12);
    /* §5.2.6.2: unknown flags, and unmap on a discard, are unsupported. */
    if ((flags & ~VIRTIO_BLK_WZ_F_UNMAP) || (discard && flags))
        return VIRTIO_BLK_S_UNSUPP;
    uint64_t bytes = (uint64_t)nsect << BLK_SECTOR_SHIFT;
    if (nsect > BLK_DWZ_MAX_SECTORS || !blk_range_ok(blk, sector, bytes))
        return VIRTIO_BLK_S_IOERR;
    if (nsect == 0 || (discard && blk->no_punch))
        return VIRTIO_BLK_S_OK;
    req->range_off = sector << BLK_SECTOR_SHIFT;
    req->range_len = bytes;
    req->zero_done = 0;
    req->stage = discard ? BLK_STAGE_DISCARD : blk_zero_stage(blk, flags & VIRTIO_BLK_WZ_F_UNMAP);
    return blk_dwz_submit(blk, req);
}

static bool blk_unsupported(int err)
{
    return err == -EOPNOTSUPP || err == -EINVAL || err == -ENOSYS || err == -ENOTTY;
}

/* Write-through (§5.2.6.2, FLUSH not negotiated): sync after a successful fallocate. */
static int blk_dwz_finish(struct virtio_blk *blk, struct blk_req *req)
{
    bool hole = req->stage != BLK_STAGE_ZERO_WRITE && req->stage != BLK_STAGE_SYNC;
    if (hole && !virtio_has_feature(&blk->vdev, VIRTIO_BLK_F_FLUSH)) {
        req->stage = BLK_STAGE_SYNC;
        return blk_dwz_submit(blk, req);
    }
    return VIRTIO_BLK_S_OK;
}

/* A discard/write-zeroes step finished: done, next chunk, or the next way to zero. */
static int blk_dwz_done(struct virtio_blk *blk, struct blk_req *req, int result)
{
    if (blk->draining)
        return VIRTIO_BLK_S_IOERR; /* no follow-ups; nobody sees the status */
    switch (req->stage) {
    case BLK_STAGE_DISCARD:
        if (blk_unsupported(result)) {
            blk->no_punch = true;
            return VIRTIO_BLK_S_OK;
        }
        break;
    case BLK_STAGE_ZERO_PUNCH:
    case BLK_STAGE_ZERO_RANGE:
        if (blk_unsupported(result)) {
            if (req->stage == BLK_STAGE_ZERO_PUNCH)
                blk->no_punch = true;
            else
                blk->no_zero_range = true;
            req->stage = blk_zero_stage(blk, false);
            return blk_dwz_submit(blk, req);
        }
        break;
    case BLK_STAGE_ZERO_WRITE:
    case BLK_STAGE_NONE:
        if (result < 0)
            break;
        req->zero_done += req->zero_chunk;
        if (req->zero_done < req->range_len)
            return blk_dwz_submit(blk, req);
        break;
    case BLK_STAGE_SYNC:
        break;
    }
    if (result < 0) {
        blk_log_error(blk, req->type == VIRTIO_BLK_T_DISCARD ? "discard" : "write zeroes",
                      req->range_off, result);
        return VIRTIO_BLK_S_IOERR;
    }
    return blk_dwz_finish(blk, req);
}

/* ---- requests ---- */

/* Drops the first `n` bytes of `*cnt` iovecs, in place; returns the new first one. */
static struct iovec *iov_skip(struct iovec *iov, unsigned *cnt, uint64_t n)
{
    while (*cnt > 0 && n >= iov->iov_len) {
        n -= iov->iov_len;
        iov++;
        (*cnt)--;
    }
    if (*cnt > 0 && n > 0) {
        iov->iov_base = (uint8_t *)iov->iov_base + n;
        iov->iov_len -= n;
    }
    return iov;
}

/* §5.2.6: a readable 16-byte header first, a writable status byte last. */
static bool blk_parse_chain(struct blk_req *req, struct blk_chain *c)
{
    struct virtq_elem *e = &req->elem;
    if (e->out_len < BLK_HDR_SIZE || e->in_len < 1)
        return false;
    uint8_t hdr[BLK_HDR_SIZE];
    iov_to_buf(e->iov, e->out_num, 0, hdr, sizeof(hdr));
    c->type = get_le32(hdr);
    c->sector = get_le64(hdr + 8);
    /* Segments are never empty (virtq_pop drops those), so the status is in the last one. */
    struct iovec *last = &e->iov[e->out_num + e->in_num - 1];
    req->status = (uint8_t *)last->iov_base + last->iov_len - 1;
    last->iov_len--;
    c->nout = e->out_num;
    c->out = iov_skip(e->iov, &c->nout, BLK_HDR_SIZE);
    c->out_len = e->out_len - BLK_HDR_SIZE;
    c->in = e->iov + e->out_num;
    c->nin = e->in_num - (last->iov_len == 0);
    c->in_len = e->in_len - 1;
    req->type = c->type;
    /* On failure only the status byte is known to be written; it leads when it is alone. */
    req->used_err = c->in_len == 0;
    req->used_ok = req->used_err;
    req->bounce = NULL;
    req->stage = BLK_STAGE_NONE;
    return true;
}

/* Starts a request: BLK_QUEUED, BLK_MALFORMED, or a status to complete it with now. */
static int blk_start(struct virtio_blk *blk, struct blk_req *req)
{
    struct blk_chain c;
    if (!blk_parse_chain(req, &c))
        return BLK_MALFORMED;
    switch (c.type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        return blk_start_rw(blk, req, &c);
    case VIRTIO_BLK_T_FLUSH:
        return blk_start_flush(blk, req);
    case VIRTIO_BLK_T_GET_ID:
        return blk_get_id(blk, req, &c);
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        return blk_start_dwz(blk, req, &c);
    default:
        return VIRTIO_BLK_S_UNSUPP;
    }
}

static void blk_aio_done(void *opaque, struct aio_req *aio)
{
    struct virtio_blk *blk = opaque;
    struct blk_req *req = blk_req_of(aio);
    int status = req->type == VIRTIO_BLK_T_DISCARD || req->type == VIRTIO_BLK_T_WRITE_ZEROES
                     ? blk_dwz_done(blk, req, aio->result)
                     : blk_rw_done(blk, req, aio->result);
    if (status != BLK_QUEUED)
        blk_complete(blk, req, status);
}

static bool blk_queue_usable(struct virtio_blk *blk)
{
    struct virtq *vq = &blk->vdev.queues[0];
    return virtio_is_active(&blk->vdev) && vq->state.ready && !vq->broken;
}

/*
 * Takes every available request, as long as there are free slots. Lock held. True if the
 * engine finished some requests already (blk_reap answers them without a trip through
 * the event loop).
 */
static bool blk_process_queue(struct virtio_blk *blk)
{
    struct virtio_device *vdev = &blk->vdev;
    struct virtq *vq = &vdev->queues[0];
    blk->starved = false;
    do {
        virtq_disable_notify(vq);
        for (;;) {
            struct blk_req *req = blk->free_reqs;
            if (!blk_queue_usable(blk))
                goto out;
            if (!req) {
                blk->starved = true; /* a completion resumes us */
                goto out;
            }
            int ret = virtq_pop(vq, vdev->mem, &req->elem);
            if (ret == 0)
                break;
            if (ret < 0) {
                virtio_set_needs_reset(vdev, "malformed descriptor chain");
                goto out;
            }
            blk->free_reqs = req->next_free;
            blk->busy++;
            int status = blk_start(blk, req);
            if (status == BLK_MALFORMED) {
                blk_release(blk, req);
                virtio_set_needs_reset(vdev, "request without a 16-byte header or status byte");
                goto out;
            }
            if (status != BLK_QUEUED)
                blk_complete(blk, req, status);
        }
    } while (virtq_enable_notify(vq));
out:
    return aio_kick(blk->engine);
}

/*
 * Completes what the engine finished and, if every slot was busy, takes more requests;
 * again while those finish at once, a bounded number of rounds so that a busy guest
 * cannot keep the event loop to itself (the eventfd is still signalled then).
 */
static void blk_reap(struct virtio_blk *blk)
{
    for (int round = 0; round < BLK_REAP_ROUNDS; round++) {
        uint64_t count;
        /* Clear the eventfd first: whatever finishes after this read signals it again. */
        if (read(blk->engine->event_fd, &count, sizeof(count)) < 0) {
            /* EAGAIN: nothing was signalled (or a reset drained it meanwhile) */
        }
        aio_reap(blk->engine);
        if (!blk->starved || !blk->free_reqs || !blk_queue_usable(blk))
            return;
        if (!blk_process_queue(blk))
            return;
    }
}

/* ---- device hooks ---- */

static void blk_queue_notify(struct virtio_device *vdev, unsigned q)
{
    struct virtio_blk *blk = vdev->opaque;
    (void)q;
    if (blk_process_queue(blk))
        blk_reap(blk);
    blk_notify_guest(blk);
}

/* The engine finished something: event-loop thread, device lock not yet held. */
static void blk_on_io(void *opaque, uint32_t events)
{
    struct virtio_blk *blk = opaque;
    pthread_mutex_lock(&blk->vdev.lock);
    blk_reap(blk);
    blk_notify_guest(blk);
    pthread_mutex_unlock(&blk->vdev.lock);
    (void)events;
}

static void blk_reset(struct virtio_device *vdev)
{
    struct virtio_blk *blk = vdev->opaque;
    /* Wait for the I/O in flight (it may still write guest memory), then forget it. */
    blk->draining = true;
    aio_drain(blk->engine);
    blk->draining = false;
    blk->starved = false;
    blk->pushed = false;
}

static void blk_config_read(struct virtio_device *vdev, uint32_t offset, uint8_t *data,
                            uint32_t len)
{
    struct virtio_blk *blk = vdev->opaque;
    memcpy(data, blk->config + offset, len); /* the transport checked the range */
}

static void blk_free(struct virtio_blk *blk)
{
    if (blk->engine) {
        aio_drain(blk->engine);
        aio_engine_destroy(blk->engine);
    }
    disk_close(&blk->disk);
    free(blk->reqs);
    free(blk->zeroes);
    free(blk->path);
    free(blk);
}

static void blk_destroy(struct virtio_device *vdev)
{
    struct virtio_blk *blk = vdev->opaque;
    blk->draining = true;
    blk_free(blk);
}

/* ---- snapshots: saved only when no request is in flight ---- */

static bool blk_idle(struct virtio_device *vdev)
{
    return ((struct virtio_blk *)vdev->opaque)->busy == 0;
}

/* What the guest knows of the disk: it must be the same disk shape at restore. */
static void blk_save(struct virtio_device *vdev, struct state_writer *w)
{
    struct virtio_blk *blk = vdev->opaque;
    state_put_u64(w, blk->disk.size);
    state_put_u32(w, blk->disk.block_size);
    state_put_bool(w, blk->disk.readonly);
    state_put_bytes(w, blk->id, BLK_ID_BYTES);
}

static int blk_check(struct virtio_device *vdev, struct state_reader *r)
{
    struct virtio_blk *blk = vdev->opaque;
    uint64_t size = state_get_u64(r);
    uint32_t block_size = state_get_u32(r);
    bool readonly = state_get_bool(r);
    uint8_t id[BLK_ID_BYTES];
    state_get_bytes(r, id, sizeof(id));
    if (state_reader_done(r) < 0 || size != blk->disk.size || block_size != blk->disk.block_size ||
        readonly != blk->disk.readonly || memcmp(id, blk->id, sizeof(id)) != 0)
        return -EINVAL;
    return 0;
}

static const struct virtio_device_ops blk_ops = {
    .name = "blk",
    .device_id = 2,
    .num_queues = 1,
    .queue_size = BLK_QUEUE_SIZE,
    .config_size = BLK_CONFIG_SIZE,
    .config_read = blk_config_read,
    .reset = blk_reset,
    .queue_notify = blk_queue_notify,
    .destroy = blk_destroy,
    .idle = blk_idle,
    .save = blk_save,
    .check = blk_check,
};

/* ---- creation ---- */

static void blk_build_config(struct virtio_blk *blk)
{
    uint8_t *c = blk->config;
    uint32_t bs = blk->disk.block_size;
    memset(c, 0, BLK_CONFIG_SIZE);
    put_le64(c + 0, blk->disk.size >> BLK_SECTOR_SHIFT); /* capacity */
    put_le32(c + 8, BLK_SIZE_MAX);
    put_le32(c + 12, BLK_SEG_MAX);
    put_le32(c + 20, bs); /* blk_size */
    put_le32(c + 36, BLK_DWZ_MAX_SECTORS);
    put_le32(c + 40, 1);                                           /* max_discard_seg */
    put_le32(c + 44, (bs > 4096 ? bs : 4096) >> BLK_SECTOR_SHIFT); /* discard alignment */
    put_le32(c + 48, BLK_DWZ_MAX_SECTORS);
    put_le32(c + 52, 1); /* max_write_zeroes_seg */
    c[56] = 1;        /* write_zeroes_may_unmap: a punched hole reads as zeroes */
}

static uint64_t blk_features(const struct disk *disk)
{
    uint64_t f = 1ULL << VIRTIO_BLK_F_SIZE_MAX | 1ULL << VIRTIO_BLK_F_SEG_MAX |
                 1ULL << VIRTIO_BLK_F_BLK_SIZE | 1ULL << VIRTIO_BLK_F_FLUSH;
    if (disk->readonly)
        return f | 1ULL << VIRTIO_BLK_F_RO;
    return f | 1ULL << VIRTIO_BLK_F_DISCARD | 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
}

static struct virtio_blk *blk_alloc(const struct disk_config *cfg)
{
    struct virtio_blk *blk = calloc(1, sizeof(*blk));
    if (!blk)
        return NULL;
    blk->disk.fd = -1;
    blk->path = strdup(cfg->path);
    blk->reqs = calloc(BLK_QUEUE_SIZE, sizeof(*blk->reqs));
    if (!blk->path || !blk->reqs) {
        blk_free(blk);
        return NULL;
    }
    for (unsigned i = BLK_QUEUE_SIZE; i-- > 0;) {
        blk->reqs[i].next_free = blk->free_reqs;
        blk->free_reqs = &blk->reqs[i];
    }
    memcpy(blk->id, cfg->id, strnlen(cfg->id, BLK_ID_BYTES));
    blk->log_rl = (struct ratelimit)RATELIMIT_INIT(10, 5);
    blk->vdev.ops = &blk_ops;
    blk->vdev.opaque = blk;
    return blk;
}

int virtio_blk_new(const struct disk_config *cfg, struct event_loop *loop, struct virtio_blk **out)
{
    enum aio_kind kind;
    if (aio_kind_from_env(&kind) < 0) {
        log_error("KILN_BLK_ENGINE=%s: expected io_uring or threads", getenv("KILN_BLK_ENGINE"));
        return -EINVAL;
    }
    struct virtio_blk *blk = blk_alloc(cfg);
    if (!blk)
        return -ENOMEM;
    char err[256];
    int ret = disk_open(&blk->disk, cfg, err, sizeof(err));
    if (ret < 0) {
        log_error("--disk %s: %s", cfg->path, err);
        goto fail;
    }
    ret = aio_engine_create(&blk->engine, kind, blk->disk.fd, BLK_QUEUE_SIZE, blk_aio_done, blk);
    if (ret < 0) {
        log_error("--disk %s: cannot start disk I/O: %s", cfg->path, strerror(-ret));
        goto fail;
    }
    ret = event_loop_add(loop, blk->engine->event_fd, EPOLLIN, blk_on_io, blk);
    if (ret < 0) {
        log_error("--disk %s: %s", cfg->path, strerror(-ret));
        goto fail;
    }
    blk->loop = loop;
    blk->vdev.host_features = blk_features(&blk->disk);
    blk_build_config(blk);
    log_verbose("--disk %s: %llu bytes, %s%s, %s engine", cfg->path,
                (unsigned long long)blk->disk.size, blk->disk.readonly ? "read-only" : "read-write",
                blk->disk.direct ? ", cache=none" : "", blk->engine->ops->name);
    *out = blk;
    return 0;
fail:
    blk_free(blk);
    /* Not -ENOMEM unless it was: kiln maps that to a different exit status. */
    return ret;
}

int virtio_blk_create(struct vm *vm, const struct disk_config *cfg)
{
    struct virtio_blk *blk;
    int ret = virtio_blk_new(cfg, &vm->loop, &blk);
    if (ret < 0)
        return ret;
    ret = vm_add_virtio(vm, &blk->vdev);
    if (ret < 0) {
        log_error("--disk %s: cannot add the device: %s", cfg->path,
                  ret == -ENOSPC ? "too many devices" : strerror(-ret));
        event_loop_remove(&vm->loop, blk->engine->event_fd);
        if (ret != -ENOSPC)
            virtio_pci_destroy(&blk->vdev); /* the transport got as far as its eventfds */
        blk_free(blk);
        return ret;
    }
    return 0;
}

struct virtio_device *virtio_blk_vdev(struct virtio_blk *blk)
{
    return &blk->vdev;
}

const char *virtio_blk_engine_name(const struct virtio_blk *blk)
{
    return blk->engine->ops->name;
}

unsigned virtio_blk_busy(const struct virtio_blk *blk)
{
    return blk->busy;
}
