#include "virtio/net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "net/backend.h"
#include "net/offload.h"
#include "snapshot/state_file.h"
#include "util.h"
#include "vmm/vm.h"

#define NET_CONFIG_SIZE 12 /* mac, status, max_virtqueue_pairs, mtu (§5.1.4) */
#define NET_RX_BUDGET 256  /* frames per turn before other event sources get theirs */
#define NET_TX_BUDGET 256
/*
 * Sent frames' buffers go back to the driver after NET_TX_HOLD_NS, or at once when those
 * held add up to NET_TX_HOLD_BYTES. The time is long enough for the guest's next small
 * write to join a frame still in flight, short next to a round trip, and under the ~1 ms
 * of data Linux lets a socket keep below TCP (TSQ); it never delays a frame, which the
 * backend has already. The byte limit keeps a fast stream under TSQ's 1 MiB cap.
 */
#define NET_TX_HOLD_NS 500000
#define NET_TX_HOLD_BYTES (256 * 1024)

static uint64_t bit(unsigned b)
{
    return 1ULL << b;
}

static bool has(const struct virtio_net *n, unsigned b)
{
    return virtio_has_feature(&n->vdev, b);
}

/* Runs the queue's handler again from the event loop: used to yield after a budget. */
static void net_kick_self(struct virtio_net *n, unsigned q)
{
    uint64_t one = 1;
    if (n->vdev.kick_fd[q] >= 0 && write(n->vdev.kick_fd[q], &one, sizeof(one)) < 0) {
        /* an eventfd cannot overflow from single increments */
    }
}

/* ---- receive: backend -> guest ---- */

static void net_rx_pause(struct virtio_net *n)
{
    if (!n->rx_paused) {
        n->rx_paused = true;
        n->be->ops->set_rx(n->be, false);
    }
}

static void net_rx_resume(struct virtio_net *n)
{
    if (n->rx_paused) {
        n->rx_paused = false;
        n->be->ops->set_rx(n->be, true);
    }
}

/* The header the guest sees: the backend's, plus num_buffers and DATA_VALID. */
static void net_rx_finish_header(struct virtio_net *n, const uint8_t *frame)
{
    struct net_hdr h;
    uint8_t raw[NET_HDR_LEN];
    net_hdr_decode(frame, &h);
    h.num_buffers = (uint16_t)n->rx_nused;
    if (n->be->rx_csum_valid && has(n, VIRTIO_NET_F_GUEST_CSUM) &&
        !(h.flags & NET_HDR_F_NEEDS_CSUM))
        h.flags |= NET_HDR_F_DATA_VALID;
    net_hdr_encode(&h, raw);
    struct virtq_elem *e = &n->rx_first;
    iov_from_buf(e->iov + e->out_num, e->in_num, 0, raw, sizeof(raw));
    virtq_written(&n->vdev.queues[VIRTIO_NET_RXQ], e);
}

/* Takes the next receive buffer: the spare one first. 1, 0 (none) or -EIO. */
static int net_rx_next_buffer(struct virtio_net *n, struct virtq_elem **out)
{
    struct virtq_elem *e = n->rx_nused == 0 ? &n->rx_first : &n->rx_elem;
    *out = e;
    if (n->rx_nused == 0 && n->rx_spare) {
        n->rx_spare = false;
        return 1;
    }
    int ret = virtq_pop(&n->vdev.queues[VIRTIO_NET_RXQ], n->vdev.mem, e);
    return ret < 0 ? -EIO : ret;
}

/*
 * Copies the frame (header included) into as many buffers as it needs: one without
 * VIRTIO_NET_F_MRG_RXBUF, several with it (§5.1.6.4). Returns 1 when the frame is done
 * (placed, or dropped because a lone buffer is too small), 0 when the guest ran out of
 * buffers (progress is kept), -EIO when the driver broke the rules.
 */
static int net_rx_place(struct virtio_net *n, const uint8_t *frame, size_t len, const char **why)
{
    struct virtq *vq = &n->vdev.queues[VIRTIO_NET_RXQ];
    bool mergeable = has(n, VIRTIO_NET_F_MRG_RXBUF);
    while (n->rx_off < len) {
        if (n->rx_nused == vq->state.size) {
            *why = "a frame needs more receive buffers than the queue holds";
            return -EIO;
        }
        struct virtq_elem *e;
        int ret = net_rx_next_buffer(n, &e);
        if (ret <= 0) {
            *why = "malformed receive descriptor chain";
            return ret;
        }
        /* §5.1.6.3.1: every buffer holds at least the header. */
        if (e->in_len < NET_HDR_LEN) {
            *why = "receive buffer smaller than the virtio-net header";
            return -EIO;
        }
        if (!mergeable && e->in_len < len) {
            n->rx_spare = true; /* keep the buffer for a frame that fits */
            n->rx_dropped++;
            return 1;
        }
        size_t chunk = len - n->rx_off < e->in_len ? len - n->rx_off : e->in_len;
        iov_from_buf(e->iov + e->out_num, e->in_num, 0, frame + n->rx_off, chunk);
        virtq_written(vq, e);
        n->rx_used[n->rx_nused++] = (struct virtq_used){e->head, (uint32_t)chunk};
        n->rx_off += chunk;
    }
    net_rx_finish_header(n, frame);
    virtq_push_batch(vq, n->rx_used, n->rx_nused);
    n->rx_off = 0;
    n->rx_nused = 0;
    n->rx_frames++;
    return 1;
}

/* Whether the device may use queue `q` now (bus mastering: PCI 3.0 §6.2.2). */
static bool net_queue_usable(struct virtio_net *n, unsigned q)
{
    const struct virtq *vq = &n->vdev.queues[q];
    return virtio_is_active(&n->vdev) && n->vdev.bus_master && vq->state.ready && !vq->broken;
}

/* Moves frames from the backend into the guest until one side runs dry (lock held). */
static void net_rx_drain(struct virtio_net *n)
{
    struct virtq *vq = &n->vdev.queues[VIRTIO_NET_RXQ];
    struct netdev *be = n->be;
    /* Frozen for a snapshot: frames wait in the backend; the thaw kick resumes. */
    if (!net_queue_usable(n, VIRTIO_NET_RXQ) || n->vdev.frozen) {
        net_rx_pause(n); /* no driver: frames wait in the backend (or it drops them) */
        return;
    }
    unsigned placed = 0;
    virtq_disable_notify(vq);
    for (unsigned budget = NET_RX_BUDGET;;) {
        size_t len = 0;
        const uint8_t *frame = be->ops->rx_peek(be, &len);
        if (!frame) {
            net_rx_resume(n);
            break;
        }
        if (n->rx_discard) {
            n->rx_discard = false; /* the tail of a frame a reset interrupted */
            be->ops->rx_consume(be);
            continue;
        }
        if (budget == 0) {
            net_kick_self(n, VIRTIO_NET_RXQ); /* more later: let other sources run */
            break;
        }
        const char *why = NULL;
        int ret = net_rx_place(n, frame, len, &why);
        if (ret < 0) {
            virtio_set_needs_reset(&n->vdev, why);
            net_rx_pause(n);
            break;
        }
        if (ret == 0) {
            /* Out of buffers: ask for a kick; re-check, one may have come meanwhile. */
            if (virtq_enable_notify(vq)) {
                virtq_disable_notify(vq);
                continue;
            }
            net_rx_pause(n);
            break;
        }
        be->ops->rx_consume(be);
        placed++;
        budget--;
    }
    if (placed)
        virtio_queue_interrupt(&n->vdev, VIRTIO_NET_RXQ);
}

static void net_on_rx_ready(void *opaque)
{
    struct virtio_net *n = opaque;
    pthread_mutex_lock(&n->vdev.lock);
    net_rx_drain(n);
    pthread_mutex_unlock(&n->vdev.lock);
}

/* ---- transmit: guest -> backend ---- */

/* Whether the header only asks for what was negotiated (§5.1.6.2.1). */
static bool net_tx_header_ok(struct virtio_net *n, const struct net_hdr *h)
{
    if ((h->flags & NET_HDR_F_NEEDS_CSUM) && !has(n, VIRTIO_NET_F_CSUM))
        return false;
    if ((h->gso_type & NET_HDR_GSO_ECN) && !has(n, VIRTIO_NET_F_HOST_ECN))
        return false;
    switch (h->gso_type & (uint8_t)~NET_HDR_GSO_ECN) {
    case NET_HDR_GSO_NONE:
        return true;
    case NET_HDR_GSO_TCPV4:
        return has(n, VIRTIO_NET_F_HOST_TSO4);
    case NET_HDR_GSO_TCPV6:
        return has(n, VIRTIO_NET_F_HOST_TSO6);
    default:
        return false;
    }
}

/* Sends tx_elem. 0 when it is done with (sent or dropped), -EAGAIN to wait for tx_ready. */
static int net_tx_one(struct virtio_net *n)
{
    struct virtq_elem *e = &n->tx_elem;
    uint8_t raw[NET_HDR_LEN];
    struct net_hdr h;
    /* Only the device-readable part matters; a writable tail is ignored (§5.1.6.2). */
    if (e->out_len < NET_HDR_LEN + 14 || e->out_len > NET_MAX_FRAME ||
        iov_to_buf(e->iov, e->out_num, 0, raw, sizeof(raw)) != sizeof(raw)) {
        n->tx_dropped++;
        return 0;
    }
    net_hdr_decode(raw, &h);
    if (!net_tx_header_ok(n, &h)) {
        n->tx_dropped++;
        return 0;
    }
    int ret = n->be->ops->send(n->be, e->iov, e->out_num);
    if (ret == 0)
        n->tx_frames++;
    return ret == -EAGAIN ? -EAGAIN : 0;
}

/* Takes the next transmit chain into tx_elem (or keeps the one waiting): 1, 0 or -EIO. */
static int net_tx_next(struct virtio_net *n)
{
    if (n->tx_pending)
        return 1;
    int ret = virtq_pop(&n->vdev.queues[VIRTIO_NET_TXQ], n->vdev.mem, &n->tx_elem);
    return ret < 0 ? -EIO : ret;
}

/* Gives the held transmit buffers back to the driver (lock held). */
static void net_tx_release(struct virtio_net *n)
{
    if (n->tx_ndone == 0)
        return;
    virtq_push_batch(&n->vdev.queues[VIRTIO_NET_TXQ], n->tx_done, n->tx_ndone);
    n->tx_ndone = 0;
    n->tx_held_bytes = 0;
    virtio_queue_interrupt(&n->vdev, VIRTIO_NET_TXQ);
}

/* A frame went to the backend: its buffer waits in tx_done with the others. */
static void net_tx_done(struct virtio_net *n, const struct virtq_elem *e)
{
    n->tx_done[n->tx_ndone++] = (struct virtq_used){.head = e->head, .len = 0};
    n->tx_held_bytes += e->out_len;
    /* A driver has at most a queue's worth in flight; the check keeps tx_done in bounds. */
    if (n->tx_held_bytes >= NET_TX_HOLD_BYTES || n->tx_ndone == VIRTQ_MAX_SIZE) {
        net_tx_release(n);
    } else if (n->tx_ndone == 1 && n->tx_timer_fd >= 0) {
        struct itimerspec due = {.it_value = {.tv_nsec = NET_TX_HOLD_NS}};
        if (timerfd_settime(n->tx_timer_fd, 0, &due, NULL) < 0)
            net_tx_release(n);
    }
}

static void net_on_tx_timer(void *opaque, uint32_t events)
{
    (void)events;
    struct virtio_net *n = opaque;
    uint64_t expirations;
    if (read(n->tx_timer_fd, &expirations, sizeof(expirations)) < 0) {
        /* EAGAIN: a release since the timer fired already did the work */
    }
    pthread_mutex_lock(&n->vdev.lock);
    net_tx_release(n);
    pthread_mutex_unlock(&n->vdev.lock);
}

/* Sends what the driver queued (lock held). */
static void net_tx_run(struct virtio_net *n)
{
    if (n->vdev.frozen)
        return; /* a snapshot is being taken; the thaw kick sends what waits */
    struct virtq *vq = &n->vdev.queues[VIRTIO_NET_TXQ];
    if (!net_queue_usable(n, VIRTIO_NET_TXQ))
        return;
    unsigned budget = NET_TX_BUDGET;
    bool more = true;
    while (more) {
        virtq_disable_notify(vq);
        int ret = 0;
        while (budget && (ret = net_tx_next(n)) == 1) {
            if (net_tx_one(n) == -EAGAIN) {
                n->tx_pending = true; /* notifications stay off until tx_ready */
                more = false;
                break;
            }
            n->tx_pending = false;
            net_tx_done(n, &n->tx_elem);
            budget--;
        }
        if (!more)
            break;
        if (ret < 0) {
            virtio_set_needs_reset(&n->vdev, "malformed transmit descriptor chain");
            break;
        }
        if (budget == 0) {
            net_kick_self(n, VIRTIO_NET_TXQ);
            break;
        }
        more = virtq_enable_notify(vq);
    }
    /* Without a timer the buffers go back now, before the host's network stack runs, so
     * the driver's next frames overlap with that work. */
    if (n->tx_timer_fd < 0)
        net_tx_release(n);
    if (n->be->ops->tx_flush)
        n->be->ops->tx_flush(n->be);
    /* A user-mode stack may have answered at once (ARP, DHCP, ACKs): deliver it now. */
    if (n->be->rx_queued_in_op) {
        n->be->rx_queued_in_op = false;
        net_rx_drain(n);
    }
}

static void net_on_tx_ready(void *opaque)
{
    struct virtio_net *n = opaque;
    pthread_mutex_lock(&n->vdev.lock);
    net_tx_run(n);
    pthread_mutex_unlock(&n->vdev.lock);
}

/* ---- device hooks ---- */

static void net_queue_notify(struct virtio_device *vdev, unsigned q)
{
    struct virtio_net *n = vdev->opaque;
    if (q == VIRTIO_NET_RXQ)
        net_rx_drain(n); /* new buffers: finish a waiting frame, turn the backend back on */
    else if (q == VIRTIO_NET_TXQ)
        net_tx_run(n);
}

static void net_config_read(struct virtio_device *vdev, uint32_t offset, uint8_t *data,
                            uint32_t len)
{
    struct virtio_net *n = vdev->opaque;
    uint8_t img[NET_CONFIG_SIZE];
    memcpy(img, n->state.mac, 6);
    img[6] = (uint8_t)n->state.status;
    img[7] = (uint8_t)(n->state.status >> 8);
    img[8] = 1; /* max_virtqueue_pairs, read only with VIRTIO_NET_F_MQ */
    img[9] = 0;
    img[10] = (uint8_t)n->state.mtu; /* read only with VIRTIO_NET_F_MTU */
    img[11] = (uint8_t)(n->state.mtu >> 8);
    memcpy(data, img + offset, len); /* the transport checked offset + len */
}

static unsigned net_offloads(const struct virtio_net *n)
{
    unsigned o = 0;
    o |= has(n, VIRTIO_NET_F_GUEST_CSUM) ? NET_OFFLOAD_CSUM : 0;
    o |= has(n, VIRTIO_NET_F_GUEST_TSO4) ? NET_OFFLOAD_TSO4 : 0;
    o |= has(n, VIRTIO_NET_F_GUEST_TSO6) ? NET_OFFLOAD_TSO6 : 0;
    o |= has(n, VIRTIO_NET_F_GUEST_ECN) ? NET_OFFLOAD_ECN : 0;
    return o;
}

static int net_activate(struct virtio_device *vdev)
{
    struct virtio_net *n = vdev->opaque;
    /* The rx kick that DRIVER_OK sends turns the backend on (on the event-loop thread). */
    if (n->be->ops->set_offload) {
        int ret = n->be->ops->set_offload(n->be, net_offloads(n));
        if (ret < 0)
            log_warn("virtio-net: setting the backend's offloads: %s", strerror(-ret));
    }
    return 0;
}

static void net_reset(struct virtio_device *vdev)
{
    struct virtio_net *n = vdev->opaque;
    /* Buffers we hold belong to the old driver; a half-delivered frame is dropped. The
     * backend is paused by the event-loop thread when it next offers a frame. */
    if (n->rx_off || n->rx_nused)
        n->rx_discard = true;
    n->rx_off = 0;
    n->rx_nused = 0;
    n->rx_spare = false;
    n->tx_pending = false;
    n->tx_ndone = 0; /* the old driver's buffers; a timer still due finds nothing */
    n->tx_held_bytes = 0;
    if (n->be->ops->set_offload)
        n->be->ops->set_offload(n->be, 0);
}

static void net_destroy(struct virtio_device *vdev)
{
    struct virtio_net *n = vdev->opaque;
    virtio_net_fini(n);
    free(n);
}

/* ---- snapshots ---- */

/*
 * Idle: no frame half placed in guest buffers and no transmit waiting for the backend. A
 * spare receive buffer (popped, still empty) is handed back to the avail ring: the driver
 * cannot have reused it, so the restored device simply pops it again.
 */
static bool net_idle(struct virtio_device *vdev)
{
    struct virtio_net *n = vdev->opaque;
    if (n->rx_spare && n->rx_nused == 0) {
        n->rx_spare = false;
        n->vdev.queues[VIRTIO_NET_RXQ].state.last_avail--;
    }
    net_tx_release(n); /* sent already: the saved rings must say so */
    return n->rx_off == 0 && n->rx_nused == 0 && !n->tx_pending;
}

/* The guest knows the NIC by its MAC (and MTU): the restored one must have the same. */
static void net_save(struct virtio_device *vdev, struct state_writer *w)
{
    struct virtio_net *n = vdev->opaque;
    state_put_bytes(w, n->state.mac, 6);
    state_put_u16(w, n->state.mtu);
}

static int net_check(struct virtio_device *vdev, struct state_reader *r)
{
    struct virtio_net *n = vdev->opaque;
    uint8_t mac[6];
    state_get_bytes(r, mac, 6);
    uint16_t mtu = state_get_u16(r);
    return state_reader_done(r) == 0 && memcmp(mac, n->state.mac, 6) == 0 && mtu == n->state.mtu
               ? 0
               : -EINVAL;
}

static const struct virtio_device_ops net_ops = {
    .name = "net",
    .device_id = 1,
    .num_queues = 2,
    .queue_size = VIRTIO_NET_QUEUE_SIZE,
    .config_size = NET_CONFIG_SIZE,
    .config_read = net_config_read,
    .activate = net_activate,
    .reset = net_reset,
    .queue_notify = net_queue_notify,
    .destroy = net_destroy,
    .idle = net_idle,
    .save = net_save,
    .check = net_check,
};

int virtio_net_init(struct virtio_net *n, struct netdev *be, const uint8_t mac[6])
{
    memset(n, 0, sizeof(*n));
    n->be = be;
    n->tx_timer_fd = -1;
    n->rx_used = calloc(VIRTQ_MAX_SIZE, sizeof(*n->rx_used));
    n->tx_done = calloc(VIRTQ_MAX_SIZE, sizeof(*n->tx_done));
    if (!n->rx_used || !n->tx_done) {
        free(n->rx_used);
        free(n->tx_done);
        n->rx_used = NULL;
        n->tx_done = NULL;
        return -ENOMEM;
    }
    be->rx_ready = net_on_rx_ready;
    be->tx_ready = net_on_tx_ready;
    be->opaque = n;
    memcpy(n->state.mac, mac, 6);
    n->state.status = VIRTIO_NET_S_LINK_UP;
    n->state.mtu = be->mtu;
    n->rx_paused = true; /* backends start off; the driver's first rx kick turns them on */
    n->vdev.ops = &net_ops;
    n->vdev.opaque = n;
    n->vdev.host_features = bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS) |
                            bit(VIRTIO_NET_F_MRG_RXBUF) | be->features;
    if (be->mtu)
        n->vdev.host_features |= bit(VIRTIO_NET_F_MTU);
    return 0;
}

void virtio_net_fini(struct virtio_net *n)
{
    if (n->be)
        n->be->ops->destroy(n->be);
    n->be = NULL;
    if (n->tx_timer_fd >= 0) {
        event_loop_remove(n->loop, n->tx_timer_fd);
        close(n->tx_timer_fd);
        n->tx_timer_fd = -1;
    }
    free(n->rx_used);
    n->rx_used = NULL;
    free(n->tx_done);
    n->tx_done = NULL;
}

int virtio_net_hold_tx(struct virtio_net *n, struct event_loop *loop)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    int ret = event_loop_add(loop, fd, EPOLLIN, net_on_tx_timer, n);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    n->tx_timer_fd = fd;
    n->loop = loop;
    return 0;
}

int virtio_net_create(struct vm *vm, const struct net_config *cfg, unsigned index)
{
    struct netdev *be;
    int ret = cfg->backend == NET_TAP ? net_tap_open(&be, cfg->ifname, &vm->loop)
                                      : net_slirp_open(&be, cfg, &vm->loop);
    if (ret < 0)
        return ret;
    /* QEMU's default MAC scheme, one address per NIC. */
    uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, (uint8_t)(0x56 + index)};
    if (cfg->has_mac)
        memcpy(mac, cfg->mac, 6);
    struct virtio_net *n = calloc(1, sizeof(*n));
    if (!n) {
        be->ops->destroy(be);
        return -ENOMEM;
    }
    ret = virtio_net_init(n, be, mac);
    if (ret == 0)
        ret = virtio_net_hold_tx(n, &vm->loop);
    if (ret == 0)
        ret = vm_add_virtio(vm, &n->vdev);
    if (ret < 0) {
        log_error("--net: adding the device: %s", strerror(-ret));
        virtio_net_fini(n);
        free(n);
    }
    return ret;
}
