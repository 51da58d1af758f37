/*
 * virtio-net (virtio/net.c): transmit chains with their virtio-net headers and receive
 * buffer placement (mergeable buffers, frames split over chains), on a backend that
 * accepts every frame and offers frames cut from the input.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_guest.h"
#include "net/backend.h"
#include "net/offload.h"
#include "virtio/net.h"
#include "virtio/virtio.h"

#define MAX_RX_FRAMES 8

struct fake_backend {
    struct netdev be;
    const uint8_t *frames[MAX_RX_FRAMES];
    size_t frame_len[MAX_RX_FRAMES];
    unsigned count, head;
    size_t sent_bytes;
};

static struct fuzz_guest guest;
static struct fake_backend fake;
static struct virtio_net net;

static int fake_send(struct netdev *be, const struct iovec *iov, unsigned n)
{
    static uint8_t frame[NET_MAX_FRAME];
    struct fake_backend *f = (struct fake_backend *)be;
    f->sent_bytes += iov_to_buf(iov, n, 0, frame, sizeof(frame));
    return 0;
}

static const uint8_t *fake_rx_peek(struct netdev *be, size_t *len)
{
    struct fake_backend *f = (struct fake_backend *)be;
    if (f->head == f->count)
        return NULL;
    *len = f->frame_len[f->head];
    return f->frames[f->head];
}

static void fake_rx_consume(struct netdev *be)
{
    struct fake_backend *f = (struct fake_backend *)be;
    if (f->head == f->count)
        abort(); /* the device consumed a frame it was never offered */
    f->head++;
}

static void fake_set_rx(struct netdev *be, bool on) {}

static int fake_set_offload(struct netdev *be, unsigned offloads)
{
    return 0;
}

static void fake_destroy(struct netdev *be) {}

static const struct netdev_ops fake_ops = {
    .name = "fuzz",
    .send = fake_send,
    .rx_peek = fake_rx_peek,
    .rx_consume = fake_rx_consume,
    .set_rx = fake_set_rx,
    .set_offload = fake_set_offload,
    .destroy = fake_destroy,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_guest_init(&guest);
    fake.be.ops = &fake_ops;
    fake.be.features = 1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_GUEST_CSUM |
                       1ULL << VIRTIO_NET_F_HOST_TSO4 | 1ULL << VIRTIO_NET_F_GUEST_TSO4 |
                       1ULL << VIRTIO_NET_F_HOST_TSO6 | 1ULL << VIRTIO_NET_F_GUEST_TSO6 |
                       1ULL << VIRTIO_NET_F_MTU;
    fake.be.mtu = 1500;
    static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    if (virtio_net_init(&net, &fake.be, mac) < 0)
        abort();
    pthread_mutex_init(&net.vdev.lock, NULL);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        net.vdev.kick_fd[q] = -1;
    return 0;
}

/* Receive frames: byte 3's high nibble says how many, each cut from the input's tail. */
static void offer_frames(const uint8_t *data, size_t size)
{
    fake.count = fake.head = 0;
    unsigned want = data[3] >> 4;
    size_t off = FUZZ_VIO_HEADER;
    for (unsigned i = 0; i < want && i < MAX_RX_FRAMES; i++) {
        size_t len = NET_HDR_LEN + 14 + 97u * i * i;
        if (len > size - off)
            len = size - off;
        if (len < NET_HDR_LEN)
            break;
        fake.frames[fake.count] = data + size - len;
        fake.frame_len[fake.count++] = len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct virtio_device *vdev = &net.vdev;
    if (size < FUZZ_VIO_HEADER)
        return 0;
    offer_frames(data, size);
    unsigned rounds = fuzz_vio_start(&guest, vdev, data, size);
    for (unsigned r = 0; r < rounds; r++) {
        fuzz_vio_kick(vdev, data);
        if (fake.be.rx_ready) /* what the backend's event handler would do */
            fake.be.rx_ready(fake.be.opaque);
    }
    fuzz_vio_check_used(&guest, vdev);
    fuzz_vio_reset(vdev);
    return 0;
}
