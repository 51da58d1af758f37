#include "virtio/rng.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#define RNG_QUEUE_SIZE 256
#define RNG_MAX_REQUEST (64 * 1024) /* bytes served per buffer; the driver asks again */

/* Fills the writable segments; returns bytes written (short only if getrandom came up short). */
static uint32_t rng_fill(struct virtq_elem *elem)
{
    uint32_t done = 0;
    for (unsigned i = elem->out_num; i < elem->out_num + elem->in_num; i++) {
        uint8_t *p = elem->iov[i].iov_base;
        size_t want = elem->iov[i].iov_len;
        if (want > RNG_MAX_REQUEST - done)
            want = RNG_MAX_REQUEST - done;
        while (want > 0) {
            ssize_t n = getrandom(p, want, GRND_NONBLOCK);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return done; /* entropy pool not ready: hand back what we have */
            p += n;
            want -= (size_t)n;
            done += (uint32_t)n;
        }
        if (done >= RNG_MAX_REQUEST)
            break;
    }
    return done;
}

static void rng_queue_notify(struct virtio_device *vdev, unsigned q)
{
    struct virtq *vq = &vdev->queues[q];
    struct virtq_elem elem;
    bool pushed = false;
    do {
        virtq_disable_notify(vq);
        int ret;
        while ((ret = virtq_pop(vq, vdev->mem, &elem)) == 1) {
            uint32_t len = rng_fill(&elem);
            virtq_written(vq, &elem);
            virtq_push(vq, elem.head, len);
            pushed = true;
        }
        if (ret < 0) {
            virtio_set_needs_reset(vdev, "malformed descriptor chain");
            return;
        }
    } while (virtq_enable_notify(vq));
    if (pushed)
        virtio_queue_interrupt(vdev, q);
}

/* Requests are answered synchronously: nothing is ever in flight, nothing else to save. */
static bool rng_idle(struct virtio_device *vdev)
{
    (void)vdev;
    return true;
}

static const struct virtio_device_ops rng_ops = {
    .name = "rng",
    .device_id = 4,
    .num_queues = 1,
    .queue_size = RNG_QUEUE_SIZE,
    .config_size = 0,
    .queue_notify = rng_queue_notify,
    .idle = rng_idle,
};

void virtio_rng_init(struct virtio_rng *rng)
{
    memset(rng, 0, sizeof(*rng));
    rng->vdev.ops = &rng_ops;
    rng->vdev.opaque = rng;
}
