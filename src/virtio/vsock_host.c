/*
 * virtio-vsock, the host side: the connection table and its state machine, and every
 * host Unix socket (the listener on <uds>, host programs' connections, and connections
 * to <uds>_PORT for the guest). All nonblocking, in the device's own epoll set; called
 * with vdev->lock held. The queue side is in vsock.c.
 */
#include "virtio/vsock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "virtio/vsock_internal.h"

/* Tell the guest about freed buffer space once this much has gone to the host. */
#define VSOCK_CREDIT_THRESHOLD (VSOCK_BUF_ALLOC / 2)
#define VSOCK_READS_PER_EVENT 16 /* packets per connection per event: fairness */

static uint64_t conn_id(const struct virtio_vsock *dev, const struct vsock_conn *c)
{
    return (uint64_t)c->gen << 32 | (uint64_t)(c - dev->conns);
}

/* ---- connections: life cycle and epoll interest ---- */

static bool conn_wants_packets(const struct vsock_conn *c)
{
    return c->want_request || c->want_response || c->want_credit || c->want_rst || c->want_shutdown;
}

static uint32_t conn_credit(const struct vsock_conn *c)
{
    return vsock_peer_credit(c->peer_buf_alloc, c->peer_fwd_cnt, c->tx_cnt);
}

/* Whether bytes read from the host now could go straight to the guest. */
static bool conn_can_read(struct virtio_vsock *dev, const struct vsock_conn *c)
{
    return c->state == VSOCK_CONN_ESTABLISHED && !c->want_response && !c->host_eof &&
           !(c->guest_shut & VSOCK_SHUTDOWN_RCV) && vsock_rx_usable(dev) && conn_credit(c) > 0;
}

static uint32_t conn_events(struct virtio_vsock *dev, const struct vsock_conn *c)
{
    uint32_t ev = 0;
    switch (c->state) {
    case VSOCK_CONN_AWAIT_LINE:
        return EPOLLIN;
    case VSOCK_CONN_ESTABLISHED:
        if (conn_can_read(dev, c))
            ev |= EPOLLIN;
        /* fall through */
    case VSOCK_CONN_DRAINING:
        if (c->to_host.len)
            ev |= EPOLLOUT;
        return ev;
    default:
        return 0;
    }
}

/*
 * Brings the epoll interest and the "packets owed" mark in line with the connection's
 * state. A socket with nothing to wait for leaves the set altogether, so a hung-up peer
 * (EPOLLHUP is always reported) cannot make the loop spin.
 */
void vsock_conn_update(struct virtio_vsock *dev, struct vsock_conn *c)
{
    unsigned i = (unsigned)(c - dev->conns);
    if (conn_wants_packets(c))
        dev->ctrl_pending[i / 64] |= 1ULL << (i % 64);
    else
        dev->ctrl_pending[i / 64] &= ~(1ULL << (i % 64));
    uint32_t ev = conn_events(dev, c);
    if (ev == c->events)
        return;
    struct epoll_event e = {.events = ev, .data.u64 = conn_id(dev, c)};
    int op = ev == 0 ? EPOLL_CTL_DEL : c->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(dev->epfd, op, c->fd, &e) < 0 && ratelimit_allow(&dev->log))
        log_warn("virtio-vsock: epoll on port %u: %s", c->local_port, strerror(errno));
    c->events = ev;
}

static void vsock_listen_resume(struct virtio_vsock *dev)
{
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = VSOCK_LISTENER_ID};
    if (dev->listen_paused && epoll_ctl(dev->epfd, EPOLL_CTL_ADD, dev->listen_fd, &e) == 0)
        dev->listen_paused = false;
}

void vsock_conn_close(struct virtio_vsock *dev, struct vsock_conn *c)
{
    unsigned i = (unsigned)(c - dev->conns);
    if (c->events)
        epoll_ctl(dev->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    vsock_ring_free(&c->to_host);
    dev->ctrl_pending[i / 64] &= ~(1ULL << (i % 64));
    uint32_t gen = c->gen + 1;
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->gen = gen;
    vsock_listen_resume(dev);
}

static struct vsock_conn *conn_alloc(struct virtio_vsock *dev, int fd)
{
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
        struct vsock_conn *c = &dev->conns[i];
        if (vsock_conn_live(c))
            continue;
        c->fd = fd;
        vsock_ring_init(&c->to_host, VSOCK_BUF_ALLOC);
        return c;
    }
    return NULL;
}

/* The connection the guest's packet belongs to: our port is its destination. */
struct vsock_conn *vsock_conn_find(struct virtio_vsock *dev, uint32_t local, uint32_t peer)
{
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
        struct vsock_conn *c = &dev->conns[i];
        if ((c->state == VSOCK_CONN_REQUESTING || c->state == VSOCK_CONN_ESTABLISHED) &&
            c->local_port == local && c->peer_port == peer)
            return c;
    }
    return NULL;
}

/*
 * Ends the guest's side of a connection with an RST. With `keep`, bytes the guest already
 * sent still reach the host before the host socket closes; without, the host side failed
 * and the socket closes as soon as the RST is out.
 */
void vsock_conn_reset(struct virtio_vsock *dev, struct vsock_conn *c, bool keep)
{
    if (!keep)
        vsock_ring_consume(&c->to_host, c->to_host.len);
    /* A connection whose REQUEST never went out needs no RST: the guest never heard of it. */
    c->want_rst = c->state != VSOCK_CONN_REQUESTING || c->request_sent;
    c->want_request = c->want_response = c->want_credit = false;
    c->want_shutdown = 0;
    c->state = VSOCK_CONN_DRAINING;
    if (!c->want_rst && c->to_host.len == 0)
        vsock_conn_close(dev, c);
    else
        vsock_conn_update(dev, c);
}

/* The guest reset the connection: nothing more goes to it. */
void vsock_conn_guest_gone(struct virtio_vsock *dev, struct vsock_conn *c)
{
    c->want_request = c->want_response = c->want_credit = c->want_rst = false;
    c->want_shutdown = 0;
    c->state = VSOCK_CONN_DRAINING;
    if (c->to_host.len == 0)
        vsock_conn_close(dev, c);
    else
        vsock_conn_update(dev, c);
}

/* ---- host socket -> guest ---- */

static void conn_maybe_credit(struct vsock_conn *c)
{
    if (c->state == VSOCK_CONN_ESTABLISHED &&
        c->fwd_cnt - c->fwd_cnt_sent >= VSOCK_CREDIT_THRESHOLD)
        c->want_credit = true;
}

/* Reads one packet's worth from the host into a receive buffer. Returns false to stop. */
static bool conn_read_one(struct virtio_vsock *dev, struct vsock_conn *c, uint32_t events)
{
    struct virtq_elem *e = vsock_rx_get(dev);
    if (!e)
        return false;
    size_t want = e->in_len - VSOCK_HDR_SIZE;
    if (want == 0) {
        /* No room for data: carry a credit update instead, so the buffer is not stuck. */
        struct vsock_hdr h = vsock_conn_hdr(dev, c, VSOCK_OP_CREDIT_UPDATE);
        vsock_conn_put(dev, c, &h);
        return true;
    }
    uint32_t credit = conn_credit(c);
    if (want > credit)
        want = credit;
    if (want > VSOCK_MAX_PKT)
        want = VSOCK_MAX_PKT;
    struct iovec iov[VIRTQ_MAX_SEGS];
    size_t got;
    unsigned n = vsock_iov_slice(e->iov + e->out_num, e->in_num, VSOCK_HDR_SIZE, want, iov,
                                 VIRTQ_MAX_SEGS, &got);
    ssize_t r = readv(c->fd, iov, (int)n);
    if (r > 0) {
        struct vsock_hdr h = vsock_conn_hdr(dev, c, VSOCK_OP_RW);
        h.len = (uint32_t)r;
        vsock_conn_put(dev, c, &h);
        c->tx_cnt += (uint32_t)r;
        return true;
    }
    if (r == 0) {
        /* EOF: the host sends no more; after a full close (HUP) it reads no more either. */
        c->host_eof = true;
        c->want_shutdown |= VSOCK_SHUTDOWN_SEND | (events & EPOLLHUP ? VSOCK_SHUTDOWN_RCV : 0);
        return false;
    }
    if (errno != EAGAIN && errno != EINTR)
        vsock_conn_reset(dev, c, false);
    return false;
}

static void vsock_conn_read_host(struct virtio_vsock *dev, struct vsock_conn *c, uint32_t events)
{
    for (int i = 0; i < VSOCK_READS_PER_EVENT && conn_can_read(dev, c); i++)
        if (!conn_read_one(dev, c, events))
            break;
}

/* ---- guest -> host socket ---- */

static ssize_t vsock_sendv(int fd, struct iovec *iov, unsigned n)
{
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n};
    return sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* What follows once everything the guest sent has reached the host socket. */
void vsock_conn_flushed(struct virtio_vsock *dev, struct vsock_conn *c)
{
    if (c->state == VSOCK_CONN_DRAINING && !c->want_rst) {
        vsock_conn_close(dev, c);
        return;
    }
    if ((c->guest_shut & VSOCK_SHUTDOWN_SEND) && !c->host_wr_shut) {
        shutdown(c->fd, SHUT_WR);
        c->host_wr_shut = true;
    }
}

/* Writes buffered guest bytes to the host socket. Returns false if the connection ended. */
static bool vsock_conn_flush(struct virtio_vsock *dev, struct vsock_conn *c)
{
    while (c->to_host.len) {
        struct iovec iov[2];
        unsigned n = vsock_ring_peek(&c->to_host, iov);
        ssize_t r = vsock_sendv(c->fd, iov, n);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return true;
        if (r < 0) {
            if (c->state == VSOCK_CONN_DRAINING && !c->want_rst)
                vsock_conn_close(dev, c);
            else
                vsock_conn_reset(dev, c, false);
            return false;
        }
        vsock_ring_consume(&c->to_host, (uint32_t)r);
        c->fwd_cnt += (uint32_t)r;
    }
    conn_maybe_credit(c);
    bool closes = c->state == VSOCK_CONN_DRAINING && !c->want_rst;
    vsock_conn_flushed(dev, c);
    return !closes;
}

/* An RW packet: straight from guest memory to the socket; what it does not take, buffered. */
void vsock_conn_forward(struct virtio_vsock *dev, struct vsock_conn *c, const struct virtq_elem *e,
                        uint32_t len)
{
    if (len > vsock_ring_room(&c->to_host)) {
        if (ratelimit_allow(&dev->log))
            log_warn("virtio-vsock: guest port %u sent beyond its credit; resetting", c->peer_port);
        vsock_conn_reset(dev, c, true);
        return;
    }
    size_t sent = 0;
    if (c->to_host.len == 0 && len > 0) {
        struct iovec iov[VIRTQ_MAX_SEGS];
        size_t got;
        unsigned n =
            vsock_iov_slice(e->iov, e->out_num, VSOCK_HDR_SIZE, len, iov, VIRTQ_MAX_SEGS, &got);
        ssize_t r = vsock_sendv(c->fd, iov, n);
        if (r < 0 && errno != EAGAIN && errno != EINTR) {
            vsock_conn_reset(dev, c, false);
            return;
        }
        sent = r > 0 ? (size_t)r : 0;
        c->fwd_cnt += (uint32_t)sent;
    }
    if (vsock_ring_append(&c->to_host, e->iov, e->out_num, VSOCK_HDR_SIZE + sent, len - sent) < 0) {
        vsock_conn_reset(dev, c, true);
        return;
    }
    conn_maybe_credit(c);
}

/* ---- host-initiated connections ---- */

static uint32_t vsock_alloc_port(struct virtio_vsock *dev, uint32_t peer)
{
    for (;;) {
        uint32_t port = dev->next_port++;
        if (dev->next_port == UINT32_MAX)
            dev->next_port = VSOCK_FIRST_HOST_PORT;
        /* At most VSOCK_MAX_CONNS ports are taken, so this ends quickly. */
        if (!vsock_conn_find(dev, port, peer))
            return port;
    }
}

static void vsock_host_accept(struct virtio_vsock *dev)
{
    for (int i = 0; i < 8; i++) {
        int fd = accept4(dev->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop listening until a connection closes. */
                epoll_ctl(dev->epfd, EPOLL_CTL_DEL, dev->listen_fd, NULL);
                dev->listen_paused = true;
            }
            return;
        }
        struct vsock_conn *c = conn_alloc(dev, fd);
        if (!c) {
            if (ratelimit_allow(&dev->log))
                log_warn("virtio-vsock: %d connections already; refusing a host client",
                         VSOCK_MAX_CONNS);
            close(fd);
            continue;
        }
        c->state = VSOCK_CONN_AWAIT_LINE;
        vsock_conn_update(dev, c);
    }
}

/*
 * Reads the "CONNECT <port>\n" line without reading past it: whatever the host program
 * sends after the newline is payload for the guest and stays in the socket.
 */
static void vsock_conn_read_line(struct virtio_vsock *dev, struct vsock_conn *c)
{
    char buf[VSOCK_CONNECT_LINE_MAX];
    size_t room = sizeof(c->line) - c->line_len;
    ssize_t n = recv(c->fd, buf, room, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        vsock_conn_close(dev, c);
        return;
    }
    const char *nl = memchr(buf, '\n', (size_t)n);
    size_t take = nl ? (size_t)(nl - buf) + 1 : (size_t)n;
    if (recv(c->fd, c->line + c->line_len, take, 0) != (ssize_t)take) {
        vsock_conn_close(dev, c);
        return;
    }
    c->line_len = (uint8_t)(c->line_len + take);
    uint32_t port;
    if (!nl) {
        if (c->line_len == sizeof(c->line))
            vsock_conn_close(dev, c); /* too long to be a CONNECT line */
        return;
    }
    if (vsock_parse_connect(c->line, c->line_len - 1u, &port) < 0) {
        vsock_conn_close(dev, c);
        return;
    }
    c->peer_port = port;
    c->local_port = vsock_alloc_port(dev, port);
    c->state = VSOCK_CONN_REQUESTING;
    c->want_request = true;
    vsock_conn_update(dev, c);
}

/* The guest accepted: tell the host program, then relay. */
void vsock_conn_accepted(struct virtio_vsock *dev, struct vsock_conn *c)
{
    char ok[24];
    int len = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
    c->state = VSOCK_CONN_ESTABLISHED;
    /* A fresh socket's buffer is empty: a short write means the host program is gone. */
    if (send(c->fd, ok, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) != len)
        vsock_conn_reset(dev, c, false);
}

/* ---- guest-initiated connections ---- */

void vsock_guest_connect(struct virtio_vsock *dev, const struct vsock_hdr *h)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int len = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", dev->uds_path, h->dst_port);
    int fd = -1;
    if (len > 0 && (size_t)len < sizeof(sa.sun_path))
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* Unix sockets connect at once or fail (EAGAIN: the listener's backlog is full). */
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        log_debug("virtio-vsock: guest port %u -> '%s': %s", h->src_port, sa.sun_path,
                  strerror(errno));
        close(fd);
        fd = -1;
    }
    struct vsock_conn *c = fd >= 0 ? conn_alloc(dev, fd) : NULL;
    if (!c) {
        if (fd >= 0)
            close(fd);
        vsock_queue_rst(dev, h->dst_port, h->src_port);
        return;
    }
    c->state = VSOCK_CONN_ESTABLISHED;
    c->local_port = h->dst_port;
    c->peer_port = h->src_port;
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
    c->want_response = true;
    vsock_conn_update(dev, c);
}

int vsock_host_listen(struct virtio_vsock *dev)
{
    dev->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (dev->listen_fd < 0)
        return -errno;
    int ret = unix_bind_replacing_stale(dev->listen_fd, dev->uds_path);
    if (ret < 0)
        return ret;
    dev->listen_created = true;
    if (listen(dev->listen_fd, 64) < 0)
        return -errno;
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = VSOCK_LISTENER_ID};
    return epoll_ctl(dev->epfd, EPOLL_CTL_ADD, dev->listen_fd, &e) < 0 ? -errno : 0;
}

/* ---- events on host sockets ---- */

void vsock_host_event(struct virtio_vsock *dev, uint64_t id, uint32_t events)
{
    if (id == VSOCK_LISTENER_ID) {
        vsock_host_accept(dev);
        return;
    }
    struct vsock_conn *c = &dev->conns[(uint32_t)id % VSOCK_MAX_CONNS];
    uint32_t gen = (uint32_t)(id >> 32);
    /* An event for a connection closed earlier in the same batch is stale. */
    if (!vsock_conn_live(c) || c->gen != gen)
        return;
    if (c->state == VSOCK_CONN_AWAIT_LINE) {
        vsock_conn_read_line(dev, c);
        return;
    }
    if ((c->events & EPOLLOUT) && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) &&
        !vsock_conn_flush(dev, c))
        return;
    if ((c->events & EPOLLIN) && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        vsock_conn_read_host(dev, c, events);
    if (vsock_conn_live(c) && c->gen == gen)
        vsock_conn_update(dev, c);
}
