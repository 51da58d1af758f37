/*
 * Split virtqueues (virtio 1.2 §2.7), shared by every virtio device. The driver's ring
 * memory is reached only through the guest-memory layer, and every descriptor chain is
 * checked as it is walked: addresses and lengths must be RAM, chains are capped, loops and
 * nested or malformed indirect tables are refused. A queue that sees a malformed chain is
 * marked broken; its device then reports DEVICE_NEEDS_RESET instead of crashing kiln.
 */
#ifndef KILN_VIRTQUEUE_H
#define KILN_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct guest_mem;

#define VIRTQ_MAX_SIZE 1024     /* largest queue a device offers */
#define VIRTQ_MAX_SEGS 256      /* segments in one chain, direct or indirect */
#define VIRTQ_MAX_INDIRECT 1024 /* entries in one indirect table */

/* Guest-visible queue configuration and progress: plain data, savable. */
struct virtq_state {
    uint16_t size;
    uint16_t ready;
    uint64_t desc_addr;
    uint64_t avail_addr;
    uint64_t used_addr;
    uint16_t last_avail; /* next avail ring slot the device consumes */
    uint16_t used_idx;   /* next used ring slot the device fills */
    uint16_t signalled_used;
    uint16_t signalled_used_valid;
};

struct virtq {
    struct virtq_state state;
    bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */
    bool broken;    /* a malformed chain was seen; stop using the queue */
    const struct guest_mem *mem; /* set by virtq_enable: the RAM the rings live in */
    /* Host views of the rings, checked once when the queue is enabled. */
    uint8_t *desc;
    uint8_t *avail;
    uint8_t *used;
};

/* One popped chain: readable segments first (out), then writable ones (in). */
struct virtq_elem {
    uint16_t head;
    unsigned out_num;
    unsigned in_num;
    uint64_t out_len;
    uint64_t in_len;
    struct iovec iov[VIRTQ_MAX_SEGS];
};

/*
 * Checks the ring addresses against guest memory and resets progress. Returns 0, or
 * -EINVAL if the size is not a power of two up to VIRTQ_MAX_SIZE or a ring is not RAM.
 */
int virtq_enable(struct virtq *vq, const struct guest_mem *mem, bool event_idx);
void virtq_disable(struct virtq *vq);

/*
 * Takes the next available chain. Returns 1 with `elem` filled, 0 if the queue is empty,
 * or -EIO if the driver supplied something malformed (the queue is then broken).
 */
int virtq_pop(struct virtq *vq, const struct guest_mem *mem, struct virtq_elem *elem);

/* Hands a chain back with `len` bytes written to its writable part. */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t len);

/* One used element for virtq_push_batch. */
struct virtq_used {
    uint16_t head;
    uint32_t len;
};
/*
 * Hands `count` chains back with a single used->idx update (§2.7.8), so a driver polling
 * meanwhile sees all of them or none (a merged virtio-net frame must appear at once).
 */
void virtq_push_batch(struct virtq *vq, const struct virtq_used *used, unsigned count);

/*
 * Records that the device wrote the writable segments of `elem` (guest_mem_mark_dirty):
 * call it once the data is in place and before the chain is pushed, so that migration and
 * diff snapshots carry what devices put into guest RAM. virtq_push records the used ring.
 */
void virtq_written(const struct virtq *vq, const struct virtq_elem *elem);
/* The same for `n` segments the device wrote outside an element's own list. */
void virtq_written_iov(const struct virtq *vq, const struct iovec *iov, unsigned n);

/* Whether the driver wants an interrupt for what was pushed since the last one. */
bool virtq_should_interrupt(struct virtq *vq);

/*
 * Notification suppression while the device drains the queue. virtq_enable_notify returns
 * true if more buffers arrived meanwhile (process them before sleeping).
 */
void virtq_disable_notify(struct virtq *vq);
bool virtq_enable_notify(struct virtq *vq);

/* True if the driver made buffers available that the device has not taken. */
bool virtq_has_work(struct virtq *vq);

/* Copy helpers over an element's segments: skip `offset` bytes, return bytes copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t offset, const void *buf,
                    size_t len);

#endif
