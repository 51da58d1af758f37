/*
 * virtio-vsock (virtio 1.2 §5.10), implemented in kiln: the guest's packets are terminated
 * here and relayed to host Unix sockets (see vsock.h for the conventions). This file is
 * the queue side: packets to and from the driver, what is owed to it, the device hooks.
 * The connections and their host sockets are in vsock_host.c.
 *
 * Threads: queue kicks and host socket events both run on the VM's event-loop thread with
 * vdev->lock held; the driver's resets come from vCPU threads under the same lock. Host
 * sockets are nonblocking and live in the device's own epoll set, which the VM's loop
 * watches as one fd: connections come and go at run time without touching that loop.
 */
#include "virtio/vsock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "snapshot/state_file.h"
#include "virtio/vsock_internal.h"
#include "vmm/vm.h"

#define VSOCK_QUEUE_SIZE 256
#define VSOCK_CONFIG_SIZE 8 /* struct virtio_vsock_config: le64 guest_cid */

bool vsock_rx_usable(struct virtio_vsock *dev)
{
    return virtio_is_active(&dev->vdev) && dev->vdev.queues[VSOCK_QUEUE_RX].state.ready &&
           !dev->vdev.queues[VSOCK_QUEUE_RX].broken && !dev->rx_starved && !dev->vdev.frozen;
}

/* ---- receive queue: packets to the guest ---- */

/* A receive buffer to fill: the one kept from last time, or the driver's next one. */
struct virtq_elem *vsock_rx_get(struct virtio_vsock *dev)
{
    struct virtio_device *vdev = &dev->vdev;
    struct virtq *vq = &vdev->queues[VSOCK_QUEUE_RX];
    if (dev->rx_held)
        return &dev->rx_elem;
    if (!vsock_rx_usable(dev))
        return NULL;
    int ret = virtq_pop(vq, vdev->mem, &dev->rx_elem);
    if (ret == 0 && virtq_enable_notify(vq))
        ret = virtq_pop(vq, vdev->mem, &dev->rx_elem);
    if (ret == 0) {
        dev->rx_starved = true; /* enable_notify asked for a kick when buffers arrive */
        return NULL;
    }
    if (ret < 0) {
        virtio_set_needs_reset(vdev, "malformed receive descriptor chain");
        return NULL;
    }
    /* §5.10.6 (Virtqueue Flow Control): receive buffers are writable and fit a header. */
    if (dev->rx_elem.in_len < VSOCK_HDR_SIZE) {
        virtio_set_needs_reset(vdev, "receive buffer smaller than a packet header");
        return NULL;
    }
    dev->rx_held = true;
    return &dev->rx_elem;
}

static void vsock_rx_put(struct virtio_vsock *dev, const struct vsock_hdr *hdr)
{
    struct virtq_elem *e = &dev->rx_elem;
    uint8_t raw[VSOCK_HDR_SIZE];
    vsock_hdr_encode(hdr, raw);
    iov_from_buf(e->iov + e->out_num, e->in_num, 0, raw, sizeof(raw));
    virtq_written(&dev->vdev.queues[VSOCK_QUEUE_RX], e); /* the payload was read in before */
    virtq_push(&dev->vdev.queues[VSOCK_QUEUE_RX], e->head, VSOCK_HDR_SIZE + hdr->len);
    dev->rx_held = false;
    dev->rx_pushed = true;
}

static struct vsock_hdr vsock_reply_hdr(const struct virtio_vsock *dev, uint32_t local,
                                        uint32_t peer, uint16_t op)
{
    return (struct vsock_hdr){
        .src_cid = VSOCK_HOST_CID,
        .dst_cid = dev->guest_cid,
        .src_port = local,
        .dst_port = peer,
        .type = VSOCK_TYPE_STREAM,
        .op = op,
    };
}

/* Every packet of a connection carries our credit (§5.10.6, Buffer Space Management). */
struct vsock_hdr vsock_conn_hdr(const struct virtio_vsock *dev, const struct vsock_conn *c,
                                uint16_t op)
{
    struct vsock_hdr h = vsock_reply_hdr(dev, c->local_port, c->peer_port, op);
    h.buf_alloc = VSOCK_BUF_ALLOC;
    h.fwd_cnt = c->fwd_cnt;
    return h;
}

/* Fills the held receive buffer with a packet of `c`; the guest now knows our credit. */
void vsock_conn_put(struct virtio_vsock *dev, struct vsock_conn *c, const struct vsock_hdr *h)
{
    vsock_rx_put(dev, h);
    c->fwd_cnt_sent = h->fwd_cnt;
    c->want_credit = false;
}

/* Sends a header-only packet; false if the driver has no receive buffer for it now. */
static bool vsock_send(struct virtio_vsock *dev, struct vsock_conn *c, const struct vsock_hdr *h)
{
    if (!vsock_rx_get(dev))
        return false;
    if (c)
        vsock_conn_put(dev, c, h);
    else
        vsock_rx_put(dev, h);
    return true;
}

/* An RST for a packet that matches no connection; dropped if the backlog is full. */
void vsock_queue_rst(struct virtio_vsock *dev, uint32_t local, uint32_t peer)
{
    if (dev->rst_len == VSOCK_RST_BACKLOG) {
        if (ratelimit_allow(&dev->log))
            log_warn("virtio-vsock: RST backlog full; not answering port %u", local);
        return;
    }
    unsigned i = (dev->rst_head + dev->rst_len++) % VSOCK_RST_BACKLOG;
    dev->rst[i] = (struct vsock_rst){local, peer};
}

/* ---- transmit queue: packets from the guest ---- */

static void conn_guest_shutdown(struct virtio_vsock *dev, struct vsock_conn *c, uint32_t flags)
{
    c->guest_shut |= flags & VSOCK_SHUTDOWN_BOTH;
    if (c->guest_shut == VSOCK_SHUTDOWN_BOTH) {
        /* §5.10.6 (Stream Sockets): the peer answers a full shutdown with an RST. */
        vsock_conn_reset(dev, c, true);
        return;
    }
    if (c->to_host.len == 0)
        vsock_conn_flushed(dev, c);
}

static void conn_handle(struct virtio_vsock *dev, struct vsock_conn *c, const struct vsock_hdr *h,
                        const struct virtq_elem *e)
{
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
    bool established = c->state == VSOCK_CONN_ESTABLISHED;
    switch (h->op) {
    case VSOCK_OP_REQUEST: /* a second REQUEST for a live connection */
        vsock_conn_reset(dev, c, true);
        return;
    case VSOCK_OP_RESPONSE:
        if (c->state == VSOCK_CONN_REQUESTING && c->request_sent)
            vsock_conn_accepted(dev, c);
        else
            vsock_conn_reset(dev, c, true);
        break;
    case VSOCK_OP_RST:
        vsock_conn_guest_gone(dev, c);
        return;
    case VSOCK_OP_SHUTDOWN:
        conn_guest_shutdown(dev, c, h->flags);
        break;
    case VSOCK_OP_RW:
        if (established && !(c->guest_shut & VSOCK_SHUTDOWN_SEND))
            vsock_conn_forward(dev, c, e, h->len);
        else
            vsock_conn_reset(dev, c, true);
        break;
    case VSOCK_OP_CREDIT_REQUEST:
        c->want_credit = established;
        break;
    default: /* CREDIT_UPDATE: the new numbers are all it carries */
        break;
    }
    if (vsock_conn_live(c))
        vsock_conn_update(dev, c);
}

static void vsock_handle_tx(struct virtio_vsock *dev, const struct virtq_elem *e)
{
    uint8_t raw[VSOCK_HDR_SIZE];
    struct vsock_hdr h;
    const char *why;
    if (iov_to_buf(e->iov, e->out_num, 0, raw, sizeof(raw)) < sizeof(raw)) {
        if (ratelimit_allow(&dev->log))
            log_warn("virtio-vsock: packet shorter than its header; dropped");
        return;
    }
    vsock_hdr_decode(raw, &h);
    enum vsock_verdict v = vsock_hdr_check(&h, dev->guest_cid, e->out_len - VSOCK_HDR_SIZE, &why);
    struct vsock_conn *c = vsock_conn_find(dev, h.dst_port, h.src_port);
    if (v != VSOCK_ACCEPT) {
        if (ratelimit_allow(&dev->log))
            log_warn("virtio-vsock: packet to port %u: %s; %s", h.dst_port, why,
                     v == VSOCK_DROP ? "dropped" : "reset");
        if (v == VSOCK_RESET && c)
            vsock_conn_reset(dev, c, true);
        else if (v == VSOCK_RESET)
            vsock_queue_rst(dev, h.dst_port, h.src_port);
        return;
    }
    if (c)
        conn_handle(dev, c, &h, e);
    else if (h.op == VSOCK_OP_REQUEST)
        vsock_guest_connect(dev, &h);
    else if (h.op != VSOCK_OP_RST)
        vsock_queue_rst(dev, h.dst_port, h.src_port);
}

static void vsock_process_tx(struct virtio_vsock *dev)
{
    struct virtio_device *vdev = &dev->vdev;
    struct virtq *vq = &vdev->queues[VSOCK_QUEUE_TX];
    bool pushed = false;
    dev->tx_blocked = false;
    do {
        virtq_disable_notify(vq);
        int ret = 0;
        for (;;) {
            /* Answers may need RSTs: take no packet while no room is left to queue one. */
            dev->tx_blocked = dev->rst_len == VSOCK_RST_BACKLOG;
            if (dev->tx_blocked || (ret = virtq_pop(vq, vdev->mem, &dev->tx_elem)) != 1)
                break;
            vsock_handle_tx(dev, &dev->tx_elem);
            virtq_push(vq, dev->tx_elem.head, 0);
            pushed = true;
        }
        if (ret < 0) {
            virtio_set_needs_reset(vdev, "malformed transmit descriptor chain");
            return;
        }
    } while (!dev->tx_blocked && virtq_enable_notify(vq));
    if (pushed)
        virtio_queue_interrupt(vdev, VSOCK_QUEUE_TX);
}

/* ---- sending what is owed, in order ---- */

static bool conn_send_owed(struct virtio_vsock *dev, struct vsock_conn *c)
{
    struct vsock_hdr h;
    if (c->want_rst) {
        h = vsock_conn_hdr(dev, c, VSOCK_OP_RST);
        if (!vsock_send(dev, c, &h))
            return false;
        c->want_rst = false;
        if (c->to_host.len == 0)
            vsock_conn_close(dev, c);
        else
            vsock_conn_update(dev, c);
        return true;
    }
    static const uint16_t ops[] = {VSOCK_OP_REQUEST, VSOCK_OP_RESPONSE, VSOCK_OP_SHUTDOWN,
                                   VSOCK_OP_CREDIT_UPDATE};
    bool *flags[] = {&c->want_request, &c->want_response, NULL, &c->want_credit};
    for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
        bool owed = flags[i] ? *flags[i] : c->want_shutdown != 0;
        if (!owed)
            continue;
        h = vsock_conn_hdr(dev, c, ops[i]);
        h.flags = flags[i] ? 0 : c->want_shutdown;
        if (!vsock_send(dev, c, &h))
            return false;
        if (flags[i])
            *flags[i] = false;
        else
            c->want_shutdown = 0;
        c->request_sent |= ops[i] == VSOCK_OP_REQUEST;
    }
    vsock_conn_update(dev, c);
    return true;
}

static void vsock_send_owed(struct virtio_vsock *dev)
{
    while (dev->rst_len) {
        const struct vsock_rst *r = &dev->rst[dev->rst_head];
        struct vsock_hdr h = vsock_reply_hdr(dev, r->local_port, r->peer_port, VSOCK_OP_RST);
        if (!vsock_send(dev, NULL, &h))
            return;
        dev->rst_head = (dev->rst_head + 1) % VSOCK_RST_BACKLOG;
        dev->rst_len--;
    }
    for (unsigned w = 0; w < ARRAY_SIZE(dev->ctrl_pending); w++) {
        while (dev->ctrl_pending[w]) {
            unsigned i = w * 64 + (unsigned)__builtin_ctzll(dev->ctrl_pending[w]);
            if (!conn_send_owed(dev, &dev->conns[i]))
                return;
        }
    }
}

/* End of every entry point: owed packets out, one interrupt for all that was pushed. */
static void vsock_finish(struct virtio_vsock *dev)
{
    /* Frozen for a snapshot: nothing goes to the guest; the thaw kick comes back here. */
    if (virtio_is_active(&dev->vdev) && !dev->vdev.frozen) {
        vsock_send_owed(dev);
        if (dev->tx_blocked && dev->rst_len < VSOCK_RST_BACKLOG) {
            vsock_process_tx(dev);
            vsock_send_owed(dev);
        }
    }
    if (dev->rx_pushed) {
        dev->rx_pushed = false;
        virtio_queue_interrupt(&dev->vdev, VSOCK_QUEUE_RX);
    }
}

/* ---- device hooks ---- */

static void vsock_queue_notify(struct virtio_device *vdev, unsigned q)
{
    struct virtio_vsock *dev = vdev->opaque;
    if (q == VSOCK_QUEUE_TX) {
        vsock_process_tx(dev);
    } else if (q == VSOCK_QUEUE_RX && dev->rx_starved) {
        /* New receive buffers: connections held back for lack of them may read again. */
        dev->rx_starved = false;
        vsock_send_owed(dev);
        for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
            if (vsock_conn_live(&dev->conns[i]))
                vsock_conn_update(dev, &dev->conns[i]);
    }
    /* The event queue only carries TRANSPORT_RESET, which kiln has no reason to send. */
    vsock_finish(dev);
}

static void vsock_config_read(struct virtio_device *vdev, uint32_t offset, uint8_t *data,
                              uint32_t len)
{
    struct virtio_vsock *dev = vdev->opaque;
    uint8_t cfg[VSOCK_CONFIG_SIZE];
    for (unsigned i = 0; i < sizeof(cfg); i++)
        cfg[i] = (uint8_t)(dev->guest_cid >> (8 * i));
    memcpy(data, cfg + offset, len); /* the transport checked offset + len */
}

/*
 * The driver reset the device: its connections are gone. Host programs still waiting for
 * their REQUEST to go out keep waiting, for the next driver.
 */
static void vsock_reset(struct virtio_device *vdev)
{
    struct virtio_vsock *dev = vdev->opaque;
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
        struct vsock_conn *c = &dev->conns[i];
        bool unseen = c->state == VSOCK_CONN_AWAIT_LINE ||
                      (c->state == VSOCK_CONN_REQUESTING && !c->request_sent);
        if (vsock_conn_live(c) && !unseen)
            vsock_conn_close(dev, c);
    }
    dev->rst_head = dev->rst_len = 0;
    dev->rx_held = dev->rx_starved = dev->rx_pushed = dev->tx_blocked = false;
}

void vsock_device_poll(struct virtio_vsock *dev)
{
    struct epoll_event ev[32];
    pthread_mutex_lock(&dev->vdev.lock);
    int n = epoll_wait(dev->epfd, ev, (int)ARRAY_SIZE(ev), 0);
    for (int i = 0; i < n; i++)
        vsock_host_event(dev, ev[i].data.u64, ev[i].events);
    vsock_finish(dev);
    pthread_mutex_unlock(&dev->vdev.lock);
}

static void vsock_on_host_events(void *opaque, uint32_t events)
{
    vsock_device_poll(opaque);
    (void)events;
}

/* ---- creation ---- */

static void vsock_destroy(struct virtio_device *vdev)
{
    vsock_device_free(vdev->opaque);
}

/* ---- snapshots ---- */

/*
 * Connections live on host sockets that a snapshot cannot carry, so the device is saved
 * only without any (guest listening sockets need none). A receive buffer held for later is
 * handed back to the avail ring: the restored device pops it again.
 */
static bool vsock_idle(struct virtio_device *vdev)
{
    struct virtio_vsock *dev = vdev->opaque;
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
        if (dev->conns[i].state != VSOCK_CONN_FREE)
            return false;
    if (dev->rst_len || dev->tx_blocked)
        return false;
    if (dev->rx_held) {
        dev->rx_held = false;
        vdev->queues[VSOCK_QUEUE_RX].state.last_avail--;
    }
    return true;
}

/* The guest knows the device by its CID: the restored one must have the same. */
static void vsock_save(struct virtio_device *vdev, struct state_writer *w)
{
    state_put_u64(w, ((struct virtio_vsock *)vdev->opaque)->guest_cid);
}

static int vsock_check(struct virtio_device *vdev, struct state_reader *r)
{
    uint64_t cid = state_get_u64(r);
    return state_reader_done(r) == 0 && cid == ((struct virtio_vsock *)vdev->opaque)->guest_cid
               ? 0
               : -EINVAL;
}

static const struct virtio_device_ops vsock_ops = {
    .name = "vsock",
    .device_id = 19,
    .num_queues = 3,
    .queue_size = VSOCK_QUEUE_SIZE,
    .config_size = VSOCK_CONFIG_SIZE,
    .config_read = vsock_config_read,
    .reset = vsock_reset,
    .queue_notify = vsock_queue_notify,
    .destroy = vsock_destroy,
    .idle = vsock_idle,
    .save = vsock_save,
    .check = vsock_check,
};

void vsock_device_free(struct virtio_vsock *dev)
{
    if (!dev)
        return;
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
        if (vsock_conn_live(&dev->conns[i]))
            vsock_conn_close(dev, &dev->conns[i]);
    if (dev->listen_fd >= 0)
        close(dev->listen_fd);
    if (dev->listen_created)
        unlink(dev->uds_path);
    if (dev->epfd >= 0)
        close(dev->epfd);
    free(dev);
}

int vsock_device_new(struct virtio_vsock **out, const struct vsock_config *cfg)
{
    struct virtio_vsock *dev = calloc(1, sizeof(*dev));
    if (!dev)
        return -ENOMEM;
    dev->vdev.ops = &vsock_ops;
    dev->vdev.opaque = dev;
    dev->guest_cid = cfg->guest_cid;
    snprintf(dev->uds_path, sizeof(dev->uds_path), "%s", cfg->uds_path);
    dev->next_port = VSOCK_FIRST_HOST_PORT;
    dev->log = (struct ratelimit)RATELIMIT_INIT(5, 10);
    dev->listen_fd = -1;
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
        dev->conns[i].fd = -1;
    dev->epfd = epoll_create1(EPOLL_CLOEXEC);
    int ret = dev->epfd < 0 ? -errno : vsock_host_listen(dev);
    if (ret < 0) {
        vsock_device_free(dev);
        return ret;
    }
    *out = dev;
    return 0;
}

int virtio_vsock_create(struct vm *vm, const struct vsock_config *cfg)
{
    struct virtio_vsock *dev;
    int ret = vsock_device_new(&dev, cfg);
    if (ret < 0) {
        log_error("--vsock uds '%s': %s", cfg->uds_path,
                  ret == -EADDRINUSE ? "in use by another process, or not a socket"
                                     : strerror(-ret));
        return ret;
    }
    ret = event_loop_add(&vm->loop, dev->epfd, EPOLLIN, vsock_on_host_events, dev);
    if (ret == 0)
        ret = vm_add_virtio(vm, &dev->vdev);
    if (ret < 0) {
        if (ret != -ENOMEM)
            log_error("--vsock: %s", strerror(-ret));
        event_loop_remove(&vm->loop, dev->epfd);
        vsock_device_free(dev);
    }
    return ret;
}
