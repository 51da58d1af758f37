/*
 * virtio-net device logic over fake rings (guest memory is a malloc'd buffer) and a fake
 * backend: headers, mergeable receive buffers, flow control, hostile drivers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mem/guest_mem.h"
#include "net/backend.h"
#include "net/offload.h"
#include "virtio/net.h"
#include "vmm/event_loop.h"

#define RAM_SIZE (1 << 20)
#define QSIZE 16
#define F_NEXT 1
#define F_WRITE 2
#define DATA_GPA 0x10000

/* Ring addresses per queue. */
static const uint64_t desc_gpa[2] = {0x1000, 0x4000};
static const uint64_t avail_gpa[2] = {0x2000, 0x5000};
static const uint64_t used_gpa[2] = {0x3000, 0x6000};

#define MAX_FRAMES 8

struct fake_be {
    struct netdev be;
    uint8_t *rx[MAX_FRAMES];
    size_t rx_len[MAX_FRAMES];
    unsigned rx_head, rx_count;
    uint8_t sent[MAX_FRAMES][2048];
    size_t sent_len[MAX_FRAMES];
    unsigned nsent;
    int send_ret; /* what send returns (0 or -EAGAIN) */
    bool rx_on;
    unsigned set_rx_calls;
    unsigned offloads;
};

struct fixture {
    struct guest_mem mem;
    uint8_t *ram;
    struct fake_be fake;
    struct virtio_net net;
    uint16_t next_desc[2];
    uint64_t next_data;
};

/* ---- the fake backend ---- */

static int fake_send(struct netdev *be, const struct iovec *iov, unsigned n)
{
    struct fake_be *f = (struct fake_be *)be;
    if (f->send_ret)
        return f->send_ret;
    assert_true(f->nsent < MAX_FRAMES);
    f->sent_len[f->nsent] = iov_to_buf(iov, n, 0, f->sent[f->nsent], 2048);
    f->nsent++;
    return 0;
}

static const uint8_t *fake_rx_peek(struct netdev *be, size_t *len)
{
    struct fake_be *f = (struct fake_be *)be;
    if (f->rx_head == f->rx_count)
        return NULL;
    *len = f->rx_len[f->rx_head];
    return f->rx[f->rx_head];
}

static void fake_rx_consume(struct netdev *be)
{
    struct fake_be *f = (struct fake_be *)be;
    assert_true(f->rx_head < f->rx_count);
    f->rx_head++;
}

static void fake_set_rx(struct netdev *be, bool on)
{
    struct fake_be *f = (struct fake_be *)be;
    f->rx_on = on;
    f->set_rx_calls++;
}

static int fake_set_offload(struct netdev *be, unsigned offloads)
{
    ((struct fake_be *)be)->offloads = offloads;
    return 0;
}

static void fake_destroy(struct netdev *be)
{
    struct fake_be *f = (struct fake_be *)be;
    for (unsigned i = 0; i < f->rx_count; i++)
        free(f->rx[i]);
    f->rx_count = f->rx_head = 0;
}

static const struct netdev_ops fake_ops = {
    .name = "fake",
    .send = fake_send,
    .rx_peek = fake_rx_peek,
    .rx_consume = fake_rx_consume,
    .set_rx = fake_set_rx,
    .set_offload = fake_set_offload,
    .destroy = fake_destroy,
};

/* A frame from the "wire": header (flags given) then `len` payload bytes of a pattern. */
static void fake_queue_frame(struct fixture *fx, size_t len, uint8_t flags, uint8_t seed)
{
    struct fake_be *f = &fx->fake;
    assert_true(f->rx_count < MAX_FRAMES);
    uint8_t *p = calloc(1, NET_HDR_LEN + len);
    p[0] = flags;
    for (size_t i = 0; i < len; i++)
        p[NET_HDR_LEN + i] = (uint8_t)(seed + i * 7);
    f->rx[f->rx_count] = p;
    f->rx_len[f->rx_count] = NET_HDR_LEN + len;
    f->rx_count++;
}

/* ---- the driver side ---- */

static void start_device(struct fixture *fx, uint64_t features)
{
    struct virtio_device *vdev = &fx->net.vdev;
    pthread_mutex_init(&vdev->lock, NULL);
    vdev->mem = &fx->mem;
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        vdev->kick_fd[q] = -1;
    vdev->state.driver_features = features | 1ULL << VIRTIO_F_VERSION_1;
    for (unsigned q = 0; q < 2; q++) {
        struct virtq *vq = &vdev->queues[q];
        vq->state.size = QSIZE;
        vq->state.desc_addr = desc_gpa[q];
        vq->state.avail_addr = avail_gpa[q];
        vq->state.used_addr = used_gpa[q];
        assert_int_equal(virtq_enable(vq, &fx->mem, false), 0);
    }
    vdev->bus_master = true;
    vdev->state.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                         VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
    assert_int_equal(vdev->ops->activate(vdev), 0);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    fx->ram = calloc(1, RAM_SIZE);
    guest_mem_add_region(&fx->mem, 0, RAM_SIZE, fx->ram);
    fx->fake.be.ops = &fake_ops;
    fx->fake.be.features = 1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_GUEST_CSUM;
    fx->next_data = DATA_GPA;
    static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    assert_int_equal(virtio_net_init(&fx->net, &fx->fake.be, mac), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    virtio_net_fini(&fx->net);
    pthread_mutex_destroy(&fx->net.vdev.lock);
    free(fx->ram);
    free(fx);
    return 0;
}

static void set_desc(struct fixture *fx, unsigned q, uint16_t i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    uint8_t *d = fx->ram + desc_gpa[q] + 16u * i;
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

static void publish(struct fixture *fx, unsigned q, uint16_t head)
{
    uint16_t idx;
    memcpy(&idx, fx->ram + avail_gpa[q] + 2, 2);
    memcpy(fx->ram + avail_gpa[q] + 4 + 2 * (idx % QSIZE), &head, 2);
    idx++;
    memcpy(fx->ram + avail_gpa[q] + 2, &idx, 2);
}

static uint64_t alloc_data(struct fixture *fx, size_t len)
{
    uint64_t gpa = fx->next_data;
    fx->next_data += (len + 15) & ~(size_t)15;
    assert_true(fx->next_data <= RAM_SIZE);
    return gpa;
}

/* One writable buffer of `len` bytes on the receive queue; returns its address. */
static uint64_t post_rx(struct fixture *fx, uint32_t len, uint16_t *head)
{
    uint16_t d = fx->next_desc[VIRTIO_NET_RXQ]++ % QSIZE;
    uint64_t gpa = alloc_data(fx, len);
    set_desc(fx, VIRTIO_NET_RXQ, d, gpa, len, F_WRITE, 0);
    publish(fx, VIRTIO_NET_RXQ, d);
    if (head)
        *head = d;
    return gpa;
}

/* A transmit chain: the 12-byte header, then the frame cut in `nseg` pieces. */
static void post_tx(struct fixture *fx, const uint8_t *hdr, const uint8_t *frame, size_t len,
                    unsigned nseg)
{
    unsigned q = VIRTIO_NET_TXQ;
    uint16_t head = fx->next_desc[q] % QSIZE, d = head;
    uint64_t hgpa = alloc_data(fx, NET_HDR_LEN);
    memcpy(fx->ram + hgpa, hdr, NET_HDR_LEN);
    size_t off = 0;
    for (unsigned s = 0; s <= nseg; s++) {
        uint16_t next = (uint16_t)((d + 1) % QSIZE);
        bool last = s == nseg;
        if (s == 0) {
            set_desc(fx, q, d, hgpa, NET_HDR_LEN, last ? 0 : F_NEXT, next);
        } else {
            size_t piece = s == nseg ? len - off : len / nseg;
            uint64_t g = alloc_data(fx, piece);
            memcpy(fx->ram + g, frame + off, piece);
            off += piece;
            set_desc(fx, q, d, g, (uint32_t)piece, last ? 0 : F_NEXT, next);
        }
        d = next;
    }
    fx->next_desc[q] = (uint16_t)(fx->next_desc[q] + nseg + 1);
    publish(fx, q, head);
}

static uint16_t used_idx(struct fixture *fx, unsigned q)
{
    uint16_t idx;
    memcpy(&idx, fx->ram + used_gpa[q] + 2, 2);
    return idx;
}

static void used_elem(struct fixture *fx, unsigned q, uint16_t slot, uint32_t *id, uint32_t *len)
{
    const uint8_t *e = fx->ram + used_gpa[q] + 4 + 8 * (slot % QSIZE);
    memcpy(id, e, 4);
    memcpy(len, e + 4, 4);
}

static void notify(struct fixture *fx, unsigned q)
{
    fx->net.vdev.ops->queue_notify(&fx->net.vdev, q);
}

static void backend_has_frames(struct fixture *fx)
{
    fx->fake.be.rx_ready(fx->fake.be.opaque);
}

static bool needs_reset(struct fixture *fx)
{
    return fx->net.vdev.state.status & VIRTIO_STATUS_NEEDS_RESET;
}

static uint16_t hdr_num_buffers(struct fixture *fx, uint64_t gpa)
{
    uint16_t nb;
    memcpy(&nb, fx->ram + gpa + 10, 2);
    return nb;
}

static bool payload_matches(const uint8_t *p, size_t len, uint8_t seed, size_t from)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != (uint8_t)(seed + (from + i) * 7))
            return false;
    return true;
}

/* ---- configuration and features ---- */

static void config_has_mac_and_link_up(void **state)
{
    struct fixture *fx = *state;
    uint8_t cfg[10];
    fx->net.vdev.ops->config_read(&fx->net.vdev, 0, cfg, sizeof(cfg));
    static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    assert_memory_equal(cfg, mac, 6);
    assert_int_equal(cfg[6] | cfg[7] << 8, VIRTIO_NET_S_LINK_UP);
    uint8_t status[2];
    fx->net.vdev.ops->config_read(&fx->net.vdev, 6, status, 2);
    assert_int_equal(status[0], 1);
    uint64_t f = fx->net.vdev.host_features;
    assert_true(f >> VIRTIO_NET_F_MAC & 1);
    assert_true(f >> VIRTIO_NET_F_STATUS & 1);
    assert_true(f >> VIRTIO_NET_F_MRG_RXBUF & 1);
    assert_true(f >> VIRTIO_NET_F_CSUM & 1);       /* from the backend */
    assert_false(f >> VIRTIO_NET_F_HOST_TSO4 & 1); /* the backend did not offer it */
}

static void activate_passes_offloads(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 1ULL << VIRTIO_NET_F_GUEST_CSUM);
    assert_int_equal(fx->fake.offloads, NET_OFFLOAD_CSUM);
    fx->net.vdev.ops->reset(&fx->net.vdev);
    assert_int_equal(fx->fake.offloads, 0);
}

/* ---- transmit ---- */

static void tx_frame_reaches_backend(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 0);
    uint8_t hdr[NET_HDR_LEN] = {0}, frame[100];
    for (unsigned i = 0; i < sizeof(frame); i++)
        frame[i] = (uint8_t)i;
    post_tx(fx, hdr, frame, sizeof(frame), 3);
    notify(fx, VIRTIO_NET_TXQ);
    assert_int_equal(fx->fake.nsent, 1);
    assert_int_equal(fx->fake.sent_len[0], NET_HDR_LEN + sizeof(frame));
    assert_memory_equal(fx->fake.sent[0] + NET_HDR_LEN, frame, sizeof(frame));
    assert_int_equal(used_idx(fx, VIRTIO_NET_TXQ), 1);
    uint32_t id, len;
    used_elem(fx, VIRTIO_NET_TXQ, 0, &id, &len);
    assert_int_equal(id, 0);
    assert_int_equal(len, 0);
    assert_true(fx->net.vdev.state.isr & 1); /* INTx path: the queue interrupt was raised */
}

/* The device as kiln runs it: transmit buffers go back on a timer of `loop`. */
static void start_device_holding_tx(struct fixture *fx, struct event_loop *loop)
{
    assert_int_equal(event_loop_init(loop), 0);
    assert_int_equal(virtio_net_hold_tx(&fx->net, loop), 0);
    start_device(fx, 0);
}

static void stop_device_holding_tx(struct fixture *fx, struct event_loop *loop)
{
    virtio_net_fini(&fx->net); /* takes the timer off the loop */
    event_loop_destroy(loop);
}

/* With a timer, sent frames leave at once but their buffers go back together, later. */
static void tx_buffers_go_back_on_the_timer(void **state)
{
    struct fixture *fx = *state;
    struct event_loop loop;
    start_device_holding_tx(fx, &loop);
    uint8_t hdr[NET_HDR_LEN] = {0}, frame[100] = {1};
    post_tx(fx, hdr, frame, sizeof(frame), 1);
    notify(fx, VIRTIO_NET_TXQ);
    post_tx(fx, hdr, frame, sizeof(frame), 2);
    notify(fx, VIRTIO_NET_TXQ);
    assert_int_equal(fx->fake.nsent, 2);
    assert_int_equal(used_idx(fx, VIRTIO_NET_TXQ), 0);
    assert_false(fx->net.vdev.state.isr & 1);

    assert_int_equal(event_loop_run_once(&loop, 1000), 1); /* the timer */
    assert_int_equal(used_idx(fx, VIRTIO_NET_TXQ), 2);
    uint32_t id, len;
    used_elem(fx, VIRTIO_NET_TXQ, 0, &id, &len);
    assert_int_equal(id, 0);
    used_elem(fx, VIRTIO_NET_TXQ, 1, &id, &len);
    assert_int_equal(id, 2);
    assert_true(fx->net.vdev.state.isr & 1); /* one interrupt for the batch */
    stop_device_holding_tx(fx, &loop);
}

/* A snapshot saves the rings: held buffers go back first. A reset forgets them. */
static void tx_held_buffers_before_snapshot_and_reset(void **state)
{
    struct fixture *fx = *state;
    struct event_loop loop;
    start_device_holding_tx(fx, &loop);
    uint8_t hdr[NET_HDR_LEN] = {0}, frame[60] = {2};
    post_tx(fx, hdr, frame, sizeof(frame), 1);
    notify(fx, VIRTIO_NET_TXQ);
    assert_int_equal(used_idx(fx, VIRTIO_NET_TXQ), 0);
    assert_true(fx->net.vdev.ops->idle(&fx->net.vdev));
    assert_int_equal(used_idx(fx, VIRTIO_NET_TXQ), 1);

    post_tx(fx, hdr, frame, sizeof(frame), 1);
    notify(fx, VIRTIO_NET_TXQ);
    fx->net.vdev.ops->reset(&fx->net.vdev);
    assert_int_equal(event_loop_run_once(&loop, 1000), 1); /* the timer still fires */
    assert_int_equal(used_idx(fx, VIRTIO_NET_TXQ), 1);     /* and gives nothing back */
    stop_device_holding_tx(fx, &loop);
}

static void tx_refuses_what_was_not_negotiated(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 0); /* neither CSUM nor HOST_TSO4 */
    uint8_t frame[60] = {0};
    uint8_t csum[NET_HDR_LEN] = {NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 0, 0, 14, 0, 16, 0};
    uint8_t gso[NET_HDR_LEN] = {0, NET_HDR_GSO_TCPV4, 54, 0, 0xa8, 0x05};
    uint8_t ufo[NET_HDR_LEN] = {0, NET_HDR_GSO_UDP};
    post_tx(fx, csum, frame, sizeof(frame), 1);
    post_tx(fx, gso, frame, sizeof(frame), 1);
    post_tx(fx, ufo, frame, sizeof(frame), 1);
    post_tx(fx, (uint8_t[NET_HDR_LEN]){0}, frame, 4, 1); /* a runt */
    notify(fx, VIRTIO_NET_TXQ);
    assert_int_equal(fx->fake.nsent, 0);
    assert_int_equal(fx->net.tx_dropped, 4);
    assert_int_equal(used_idx(fx, VIRTIO_NET_TXQ), 4); /* every chain is given back */
    assert_false(needs_reset(fx));
}

static void tx_waits_for_backend(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 0);
    uint8_t hdr[NET_HDR_LEN] = {0}, frame[64] = {1, 2, 3};
    post_tx(fx, hdr, frame, sizeof(frame), 1);
    fx->fake.send_ret = -EAGAIN;
    notify(fx, VIRTIO_NET_TXQ);
    assert_int_equal(used_idx(fx, VIRTIO_NET_TXQ), 0);
    assert_true(fx->net.tx_pending);
    fx->fake.send_ret = 0;
    fx->fake.be.tx_ready(fx->fake.be.opaque);
    assert_int_equal(fx->fake.nsent, 1);
    assert_int_equal(used_idx(fx, VIRTIO_NET_TXQ), 1);
    assert_false(fx->net.tx_pending);
}

static void tx_malformed_chain_needs_reset(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 0);
    set_desc(fx, VIRTIO_NET_TXQ, 0, RAM_SIZE - 4, 64, 0, 0); /* runs off the end of RAM */
    publish(fx, VIRTIO_NET_TXQ, 0);
    notify(fx, VIRTIO_NET_TXQ);
    assert_true(needs_reset(fx));
    assert_int_equal(fx->fake.nsent, 0);
}

/* ---- receive ---- */

static void rx_one_buffer(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 0);
    uint16_t head;
    uint64_t gpa = post_rx(fx, 2048, &head);
    fake_queue_frame(fx, 100, 0, 5);
    notify(fx, VIRTIO_NET_RXQ); /* as DRIVER_OK does */
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 1);
    uint32_t id, len;
    used_elem(fx, VIRTIO_NET_RXQ, 0, &id, &len);
    assert_int_equal(id, head);
    assert_int_equal(len, NET_HDR_LEN + 100);
    assert_int_equal(hdr_num_buffers(fx, gpa), 1);
    assert_true(payload_matches(fx->ram + gpa + NET_HDR_LEN, 100, 5, 0));
    /* The backend ran dry with buffers to spare: it stays on. */
    assert_true(fx->fake.rx_on);
    assert_int_equal(fx->fake.rx_head, 1);
}

static void rx_mergeable_spans_buffers(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 1ULL << VIRTIO_NET_F_MRG_RXBUF);
    uint64_t gpa[4];
    for (int i = 0; i < 4; i++)
        gpa[i] = post_rx(fx, 1000, NULL);
    fake_queue_frame(fx, 2500 - NET_HDR_LEN, 0, 9); /* 2500 bytes with the header */
    notify(fx, VIRTIO_NET_RXQ);
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 3);
    assert_int_equal(hdr_num_buffers(fx, gpa[0]), 3);
    uint32_t id, len;
    used_elem(fx, VIRTIO_NET_RXQ, 0, &id, &len);
    assert_int_equal(len, 1000);
    used_elem(fx, VIRTIO_NET_RXQ, 2, &id, &len);
    assert_int_equal(id, 2);
    assert_int_equal(len, 500);
    assert_true(payload_matches(fx->ram + gpa[0] + NET_HDR_LEN, 1000 - NET_HDR_LEN, 9, 0));
    assert_true(payload_matches(fx->ram + gpa[1], 1000, 9, 1000 - NET_HDR_LEN));
    assert_true(payload_matches(fx->ram + gpa[2], 500, 9, 2000 - NET_HDR_LEN));
    /* A second frame goes into the fourth buffer. */
    fake_queue_frame(fx, 50, 0, 1);
    backend_has_frames(fx);
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 4);
    assert_int_equal(hdr_num_buffers(fx, gpa[3]), 1);
}

static void rx_mergeable_waits_for_enough_buffers(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 1ULL << VIRTIO_NET_F_MRG_RXBUF);
    uint64_t first = post_rx(fx, 1000, NULL);
    post_rx(fx, 1000, NULL);
    fake_queue_frame(fx, 2500 - NET_HDR_LEN, 0, 3);
    notify(fx, VIRTIO_NET_RXQ);
    /* Two buffers filled, none published: the driver must see the frame whole. */
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 0);
    assert_false(fx->fake.rx_on);
    assert_int_equal(fx->fake.rx_head, 0);
    uint64_t third = post_rx(fx, 1000, NULL);
    notify(fx, VIRTIO_NET_RXQ);
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 3);
    assert_int_equal(hdr_num_buffers(fx, first), 3);
    assert_true(payload_matches(fx->ram + third, 500, 3, 2000 - NET_HDR_LEN));
    assert_true(fx->fake.rx_on);
    assert_int_equal(fx->fake.rx_head, 1);
}

static void rx_no_buffers_pauses_backend(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 1ULL << VIRTIO_NET_F_MRG_RXBUF);
    fake_queue_frame(fx, 60, 0, 0);
    backend_has_frames(fx);
    assert_false(fx->fake.rx_on);
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 0);
    unsigned calls = fx->fake.set_rx_calls;
    backend_has_frames(fx); /* a spurious wake-up changes nothing */
    assert_int_equal(fx->fake.set_rx_calls, calls);
    post_rx(fx, 2048, NULL);
    notify(fx, VIRTIO_NET_RXQ);
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 1);
    assert_true(fx->fake.rx_on);
}

static void rx_inactive_device_takes_nothing(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 0);
    post_rx(fx, 2048, NULL);
    fx->net.vdev.state.status &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
    fake_queue_frame(fx, 60, 0, 0);
    backend_has_frames(fx);
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 0);
    assert_false(fx->fake.rx_on);
    assert_int_equal(fx->fake.rx_head, 0);
}

static void rx_small_buffer_without_mergeable_drops_frame(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 0);
    uint16_t head;
    uint64_t gpa = post_rx(fx, 100, &head);
    fake_queue_frame(fx, 200, 0, 0); /* does not fit */
    fake_queue_frame(fx, 50, 0, 4);  /* fits */
    notify(fx, VIRTIO_NET_RXQ);
    assert_int_equal(fx->net.rx_dropped, 1);
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 1);
    uint32_t id, len;
    used_elem(fx, VIRTIO_NET_RXQ, 0, &id, &len);
    assert_int_equal(id, head); /* the same buffer, kept for the frame that fits */
    assert_int_equal(len, NET_HDR_LEN + 50);
    assert_true(payload_matches(fx->ram + gpa + NET_HDR_LEN, 50, 4, 0));
    assert_false(needs_reset(fx));
}

static void rx_buffer_smaller_than_header_needs_reset(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 1ULL << VIRTIO_NET_F_MRG_RXBUF);
    post_rx(fx, 8, NULL);
    fake_queue_frame(fx, 60, 0, 0);
    notify(fx, VIRTIO_NET_RXQ);
    assert_true(needs_reset(fx));
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 0);
    assert_false(fx->fake.rx_on);
}

static void rx_readable_only_buffer_needs_reset(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 1ULL << VIRTIO_NET_F_MRG_RXBUF);
    set_desc(fx, VIRTIO_NET_RXQ, 0, DATA_GPA, 2048, 0 /* not writable */, 0);
    publish(fx, VIRTIO_NET_RXQ, 0);
    fake_queue_frame(fx, 60, 0, 0);
    notify(fx, VIRTIO_NET_RXQ);
    assert_true(needs_reset(fx));
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 0);
}

static void rx_reset_mid_frame_drops_the_rest(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 1ULL << VIRTIO_NET_F_MRG_RXBUF);
    post_rx(fx, 1000, NULL);
    fake_queue_frame(fx, 2500, 0, 0);
    fake_queue_frame(fx, 40, 0, 6);
    notify(fx, VIRTIO_NET_RXQ);
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 0);
    /* The driver resets and starts over with fresh rings. */
    fx->net.vdev.ops->reset(&fx->net.vdev);
    memset(fx->ram, 0, DATA_GPA);
    fx->next_desc[0] = fx->next_desc[1] = 0;
    start_device(fx, 1ULL << VIRTIO_NET_F_MRG_RXBUF);
    uint64_t gpa = post_rx(fx, 2048, NULL);
    notify(fx, VIRTIO_NET_RXQ);
    assert_int_equal(fx->fake.rx_head, 2);
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 1);
    assert_true(payload_matches(fx->ram + gpa + NET_HDR_LEN, 40, 6, 0));
}

static void rx_data_valid_when_backend_vouches(void **state)
{
    struct fixture *fx = *state;
    fx->fake.be.rx_csum_valid = true;
    start_device(fx, 1ULL << VIRTIO_NET_F_GUEST_CSUM);
    uint64_t a = post_rx(fx, 2048, NULL);
    uint64_t b = post_rx(fx, 2048, NULL);
    fake_queue_frame(fx, 60, 0, 0);
    fake_queue_frame(fx, 60, NET_HDR_F_NEEDS_CSUM, 0);
    notify(fx, VIRTIO_NET_RXQ);
    assert_int_equal(fx->ram[a], NET_HDR_F_DATA_VALID);
    assert_int_equal(fx->ram[b], NET_HDR_F_NEEDS_CSUM); /* partial stays partial */
}

static void rx_frame_larger_than_the_queue_needs_reset(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 1ULL << VIRTIO_NET_F_MRG_RXBUF);
    for (int i = 0; i < QSIZE; i++)
        post_rx(fx, 16, NULL);
    fake_queue_frame(fx, 16 * QSIZE + 100, 0, 0);
    notify(fx, VIRTIO_NET_RXQ);
    assert_true(needs_reset(fx));
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 0);
}

static void rx_header_split_across_descriptors(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 1ULL << VIRTIO_NET_F_MRG_RXBUF);
    /* One buffer made of a 6-byte and a 2000-byte descriptor: the header straddles them. */
    uint64_t a = alloc_data(fx, 6), b = alloc_data(fx, 2000);
    set_desc(fx, VIRTIO_NET_RXQ, 0, a, 6, F_WRITE | F_NEXT, 1);
    set_desc(fx, VIRTIO_NET_RXQ, 1, b, 2000, F_WRITE, 0);
    publish(fx, VIRTIO_NET_RXQ, 0);
    fake_queue_frame(fx, 100, 0, 8);
    notify(fx, VIRTIO_NET_RXQ);
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 1);
    uint16_t nb;
    memcpy(&nb, fx->ram + b + 4, 2); /* header bytes 10-11 */
    assert_int_equal(nb, 1);
    assert_true(payload_matches(fx->ram + b + 6, 100, 8, 0));
}

static void nothing_moves_without_bus_mastering(void **state)
{
    struct fixture *fx = *state;
    start_device(fx, 0);
    fx->net.vdev.bus_master = false; /* the driver turned DMA off */
    post_rx(fx, 2048, NULL);
    fake_queue_frame(fx, 60, 0, 0);
    uint8_t hdr[NET_HDR_LEN] = {0}, frame[64] = {0};
    post_tx(fx, hdr, frame, sizeof(frame), 1);
    backend_has_frames(fx);
    fx->fake.be.tx_ready(fx->fake.be.opaque);
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 0);
    assert_int_equal(used_idx(fx, VIRTIO_NET_TXQ), 0);
    assert_int_equal(fx->fake.nsent, 0);
    assert_false(fx->fake.rx_on);
    fx->net.vdev.bus_master = true;
    notify(fx, VIRTIO_NET_RXQ);
    notify(fx, VIRTIO_NET_TXQ);
    assert_int_equal(used_idx(fx, VIRTIO_NET_RXQ), 1);
    assert_int_equal(fx->fake.nsent, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(config_has_mac_and_link_up, setup, teardown),
        cmocka_unit_test_setup_teardown(activate_passes_offloads, setup, teardown),
        cmocka_unit_test_setup_teardown(tx_frame_reaches_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(tx_buffers_go_back_on_the_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(tx_held_buffers_before_snapshot_and_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(tx_refuses_what_was_not_negotiated, setup, teardown),
        cmocka_unit_test_setup_teardown(tx_waits_for_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(tx_malformed_chain_needs_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(rx_one_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(rx_mergeable_spans_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(rx_mergeable_waits_for_enough_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(rx_no_buffers_pauses_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(rx_inactive_device_takes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(rx_small_buffer_without_mergeable_drops_frame, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(rx_buffer_smaller_than_header_needs_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(rx_readable_only_buffer_needs_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(rx_reset_mid_frame_drops_the_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(rx_data_valid_when_backend_vouches, setup, teardown),
        cmocka_unit_test_setup_teardown(rx_frame_larger_than_the_queue_needs_reset, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(rx_header_split_across_descriptors, setup, teardown),
        cmocka_unit_test_setup_teardown(nothing_moves_without_bus_mastering, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
