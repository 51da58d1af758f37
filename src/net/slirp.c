/*
 * User-mode networking through libslirp: the guest gets 10.0.2.15 by DHCP, 10.0.2.2 is
 * the host, 10.0.2.3 the DNS relay, and host ports can be forwarded to guest ports. No
 * privileges, no host setup.
 *
 * Why on the event-loop thread, not a thread of its own: libslirp is not thread-safe, and
 * the device's rx and tx paths already run on this thread; a slirp thread would need
 * queues and wake-ups in both directions for every batch of frames. libslirp wants
 * poll(2)-style sockets that come and go with connections, while kiln's event loop wants
 * its fds registered once: so slirp's sockets live in a private epoll set, which (with a
 * timerfd for slirp's timeouts and timers) is what the event loop watches. After every
 * call into slirp, slirp_pollfds_fill says which sockets to watch and the private set is
 * brought in line.
 *
 * Frames from slirp to the guest wait in a bounded backlog until the device takes them.
 * While the guest has no receive buffers, the device turns rx off and slirp's sockets are
 * not watched for input, so the host's TCP senders are held back rather than dropped.
 */
#include "net/backend.h"

#include <errno.h>
#include <libslirp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "net/offload.h"
#include "net/slirp_lib.h"
#include "util.h"
#include "virtio/virtqueue.h"
#include "vmm/event_loop.h"
#include "vmm/vm_config.h"

/* virtio-net feature bits, virtio 1.2 §5.1.3, that the software offloads cover. */
#define F_CSUM (1ULL << 0)
#define F_GUEST_CSUM (1ULL << 1)
#define F_HOST_TSO4 (1ULL << 11)
#define F_HOST_TSO6 (1ULL << 12)

#define SLIRP_BACKLOG_MAX (4 * MiB) /* frames waiting for the guest, in bytes */
/*
 * The guest network is virtual and slirp terminates every connection, so its link can
 * carry 64 KiB frames (as passt does): a TCP stream then costs slirp one segment and one
 * host socket call per 64 KiB instead of 45, each way. The guest learns the MTU from
 * VIRTIO_NET_F_MTU; a guest that ignores it talks 1500 and slirp follows its MSS.
 */
#define SLIRP_MTU 65520
#define SLIRP_REFRESH_MS 1000 /* re-assert every watched socket this often */
#define SLIRP_EVENTS_BATCH 64
#define SLIRP_TIMERS_PER_TURN 16
#define SLIRP_TXQ 4 /* frames copied from the guest, waiting for slirp_input */

struct slirp_frame {
    struct slirp_frame *next;
    size_t len; /* header + frame */
    uint8_t data[];
};

/* One entry of the latest slirp_pollfds_fill, at the index slirp was given. */
struct slirp_poll {
    int fd;
    int events;
    int revents;
};

/* A socket in the private epoll set. */
struct slirp_reg {
    int fd;
    uint32_t events;
    int idx; /* its slirp_poll index in the latest fill */
};

struct slirp_timer {
    struct slirp_timer *next;
    SlirpTimerId id;
    void *cb_opaque;
    int64_t expire_ms; /* -1: not armed */
};

struct slirp_net {
    struct netdev be;
    struct slirp_lib lib;
    Slirp *slirp;
    struct event_loop *loop;
    int epfd;
    int timerfd;
    int64_t armed_ms; /* the timerfd's deadline, -1 if none */
    int64_t refreshed_ms;
    struct slirp_poll *polls;
    unsigned npolls, polls_cap;
    struct slirp_reg *regs, *want; /* both sorted by fd, regs_cap entries each */
    unsigned nregs, regs_cap;
    bool rx_on;
    bool in_op; /* inside send: frames slirp emits now are the device's to collect */
    bool dirty; /* slirp ran since the last fill */
    struct slirp_frame *head, *tail;
    size_t backlog;
    struct slirp_timer *timers;
    unsigned long dropped;
    struct ratelimit log;
    unsigned tx_count; /* frames in tx_buf */
    size_t tx_len[SLIRP_TXQ];
    uint8_t tx_buf[SLIRP_TXQ][NET_MAX_FRAME];
    uint8_t seg_buf[NET_GSO_SEG_MAX];
};

static int64_t now_ms(void)
{
    return (int64_t)(monotonic_ns() / 1000000);
}

/* ---- libslirp callbacks ---- */

static ssize_t slirp_cb_send(const void *buf, size_t len, void *opaque)
{
    struct slirp_net *s = opaque;
    if (s->backlog + len > SLIRP_BACKLOG_MAX) {
        s->dropped++; /* the guest stopped taking frames; TCP will resend */
        return (ssize_t)len;
    }
    struct slirp_frame *f = malloc(sizeof(*f) + NET_HDR_LEN + len);
    if (!f) {
        s->dropped++;
        return (ssize_t)len;
    }
    f->next = NULL;
    f->len = NET_HDR_LEN + len;
    memset(f->data, 0, NET_HDR_LEN);
    memcpy(f->data + NET_HDR_LEN, buf, len);
    if (s->tail)
        s->tail->next = f;
    else
        s->head = f;
    s->tail = f;
    s->backlog += f->len;
    if (s->in_op)
        s->be.rx_queued_in_op = true;
    return (ssize_t)len;
}

static void slirp_cb_guest_error(const char *msg, void *opaque)
{
    struct slirp_net *s = opaque;
    if (ratelimit_allow(&s->log))
        log_debug("--net user: guest error: %s", msg);
}

static int64_t slirp_cb_clock_ns(void *opaque)
{
    (void)opaque;
    return (int64_t)monotonic_ns();
}

static void *slirp_cb_timer_new(SlirpTimerId id, void *cb_opaque, void *opaque)
{
    struct slirp_net *s = opaque;
    struct slirp_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    *t = (struct slirp_timer){.next = s->timers, .id = id, .cb_opaque = cb_opaque, .expire_ms = -1};
    s->timers = t;
    return t;
}

static void slirp_cb_timer_free(void *timer, void *opaque)
{
    struct slirp_net *s = opaque;
    for (struct slirp_timer **p = &s->timers; *p; p = &(*p)->next) {
        if (*p == timer) {
            *p = (*p)->next;
            free(timer);
            return;
        }
    }
}

static void slirp_cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
    struct slirp_net *s = opaque;
    if (timer)
        ((struct slirp_timer *)timer)->expire_ms = expire_ms < 0 ? 0 : expire_ms;
    s->dirty = true;
}

static void slirp_cb_register_fd(int fd, void *opaque)
{
    (void)fd;
    (void)opaque; /* we learn about sockets from slirp_pollfds_fill */
}

static int reg_find(const struct slirp_net *s, int fd)
{
    unsigned lo = 0, hi = s->nregs;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (s->regs[mid].fd < fd)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nregs && s->regs[lo].fd == fd ? (int)lo : -1;
}

/* slirp closes this socket next: forget it now, since its number may come back. */
static void slirp_cb_unregister_fd(int fd, void *opaque)
{
    struct slirp_net *s = opaque;
    int i = reg_find(s, fd);
    if (i < 0)
        return;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
    memmove(&s->regs[i], &s->regs[i + 1], (s->nregs - (unsigned)i - 1) * sizeof(s->regs[0]));
    s->nregs--;
}

static void slirp_cb_notify(void *opaque)
{
    ((struct slirp_net *)opaque)->dirty = true;
}

static const SlirpCb slirp_callbacks = {
    .send_packet = slirp_cb_send,
    .guest_error = slirp_cb_guest_error,
    .clock_get_ns = slirp_cb_clock_ns,
    .timer_free = slirp_cb_timer_free,
    .timer_mod = slirp_cb_timer_mod,
    .register_poll_fd = slirp_cb_register_fd,
    .unregister_poll_fd = slirp_cb_unregister_fd,
    .notify = slirp_cb_notify,
    .timer_new_opaque = slirp_cb_timer_new,
};

/* ---- keeping the private epoll set in line with slirp_pollfds_fill ---- */

static int slirp_add_poll(int fd, int events, void *opaque)
{
    struct slirp_net *s = opaque;
    if (s->npolls == s->polls_cap) {
        unsigned cap = s->polls_cap ? 2 * s->polls_cap : 16;
        void *p = realloc(s->polls, cap * sizeof(*s->polls));
        if (!p)
            return -1; /* slirp then simply does not watch this socket this round */
        s->polls = p;
        s->polls_cap = cap;
    }
    s->polls[s->npolls] = (struct slirp_poll){fd, events, 0};
    return (int)s->npolls++;
}

static int slirp_get_revents(int idx, void *opaque)
{
    struct slirp_net *s = opaque;
    return idx >= 0 && (unsigned)idx < s->npolls ? s->polls[idx].revents : 0;
}

static uint32_t to_epoll(int events, bool rx_on)
{
    uint32_t ev = 0;
    if ((events & SLIRP_POLL_IN) && rx_on)
        ev |= EPOLLIN;
    if ((events & SLIRP_POLL_PRI) && rx_on)
        ev |= EPOLLPRI;
    if (events & SLIRP_POLL_OUT)
        ev |= EPOLLOUT;
    return ev; /* errors and hang-ups are always reported */
}

static int from_epoll(uint32_t ev)
{
    return (ev & EPOLLIN ? SLIRP_POLL_IN : 0) | (ev & EPOLLOUT ? SLIRP_POLL_OUT : 0) |
           (ev & EPOLLPRI ? SLIRP_POLL_PRI : 0) | (ev & EPOLLERR ? SLIRP_POLL_ERR : 0) |
           (ev & EPOLLHUP ? SLIRP_POLL_HUP : 0);
}

static int reg_cmp(const void *a, const void *b)
{
    int x = ((const struct slirp_reg *)a)->fd, y = ((const struct slirp_reg *)b)->fd;
    return (x > y) - (x < y);
}

static void slirp_epoll(struct slirp_net *s, int op, const struct slirp_reg *r)
{
    struct epoll_event ev = {.events = r->events, .data.fd = r->fd};
    int ret = epoll_ctl(s->epfd, op, r->fd, &ev);
    /* A socket closed and reopened under the same number between two fills. */
    if (ret < 0 && errno == ENOENT && op == EPOLL_CTL_MOD)
        ret = epoll_ctl(s->epfd, EPOLL_CTL_ADD, r->fd, &ev);
    else if (ret < 0 && errno == EEXIST && op == EPOLL_CTL_ADD)
        ret = epoll_ctl(s->epfd, EPOLL_CTL_MOD, r->fd, &ev);
    if (ret < 0 && op != EPOLL_CTL_DEL && ratelimit_allow(&s->log))
        log_warn("--net user: watching socket %d: %s", r->fd, strerror(errno));
}

static int slirp_grow_regs(struct slirp_net *s, unsigned n)
{
    if (n <= s->regs_cap)
        return 0;
    unsigned cap = n < 16 ? 16 : 2 * n;
    struct slirp_reg *a = realloc(s->regs, cap * sizeof(*a));
    if (!a)
        return -ENOMEM;
    s->regs = a;
    struct slirp_reg *b = realloc(s->want, cap * sizeof(*b));
    if (!b)
        return -ENOMEM;
    s->want = b;
    s->regs_cap = cap;
    return 0;
}

/* Brings the epoll set from regs to want (both sorted by fd); want becomes regs. */
static void slirp_apply(struct slirp_net *s, unsigned nwant, bool refresh)
{
    unsigned i = 0, j = 0;
    while (i < s->nregs || j < nwant) {
        const struct slirp_reg *r = i < s->nregs ? &s->regs[i] : NULL;
        const struct slirp_reg *w = j < nwant ? &s->want[j] : NULL;
        if (r && (!w || r->fd < w->fd)) {
            slirp_epoll(s, EPOLL_CTL_DEL, r);
            i++;
        } else if (w && (!r || w->fd < r->fd)) {
            slirp_epoll(s, EPOLL_CTL_ADD, w);
            j++;
        } else {
            if (refresh || r->events != w->events)
                slirp_epoll(s, EPOLL_CTL_MOD, w);
            i++;
            j++;
        }
    }
    struct slirp_reg *t = s->regs;
    s->regs = s->want;
    s->want = t;
    s->nregs = nwant;
}

static void slirp_arm(struct slirp_net *s, uint32_t timeout_ms)
{
    int64_t now = now_ms();
    int64_t deadline = timeout_ms == UINT32_MAX ? INT64_MAX : now + timeout_ms;
    for (struct slirp_timer *t = s->timers; t; t = t->next)
        if (t->expire_ms >= 0 && t->expire_ms < deadline)
            deadline = t->expire_ms;
    if (deadline == s->armed_ms)
        return;
    struct itimerspec its = {{0, 0}, {0, 0}};
    if (deadline != INT64_MAX) {
        int64_t at = deadline > 0 ? deadline : 1; /* all zero would disarm */
        its.it_value.tv_sec = at / 1000;
        its.it_value.tv_nsec = (at % 1000) * 1000000;
    }
    timerfd_settime(s->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
    s->armed_ms = deadline;
}

/* After any call into slirp: what to watch, and until when to sleep. */
static void slirp_sync(struct slirp_net *s)
{
    uint32_t timeout = UINT32_MAX;
    s->npolls = 0;
    s->lib.pollfds_fill(s->slirp, &timeout, slirp_add_poll, s);
    s->dirty = false;
    if (slirp_grow_regs(s, s->npolls) < 0) {
        log_warn("--net user: out of memory watching sockets");
        slirp_arm(s, 10);
        return;
    }
    unsigned nwant = 0;
    for (unsigned i = 0; i < s->npolls; i++) {
        uint32_t ev = to_epoll(s->polls[i].events, s->rx_on);
        if (ev)
            s->want[nwant++] = (struct slirp_reg){s->polls[i].fd, ev, (int)i};
    }
    if (nwant) /* qsort(NULL, 0, ...) is undefined (UBSan) before the first socket exists */
        qsort(s->want, nwant, sizeof(s->want[0]), reg_cmp);
    /* Every so often MOD every socket, in case one was closed without a word from slirp
     * and its number reused: epoll would have dropped it silently. */
    int64_t now = now_ms();
    bool refresh = now - s->refreshed_ms >= SLIRP_REFRESH_MS;
    if (refresh)
        s->refreshed_ms = now;
    slirp_apply(s, nwant, refresh);
    slirp_arm(s, timeout);
}

static void slirp_run_timers(struct slirp_net *s)
{
    int64_t now = now_ms();
    bool fired = true;
    /* A handler may re-arm or free timers: rescan after each one. The bound keeps a timer
     * that re-arms itself in the past from holding the loop; it fires next turn. */
    for (unsigned n = 0; fired && n < SLIRP_TIMERS_PER_TURN; n++) {
        fired = false;
        for (struct slirp_timer *t = s->timers; t; t = t->next) {
            if (t->expire_ms >= 0 && t->expire_ms <= now) {
                t->expire_ms = -1;
                s->lib.handle_timer(s->slirp, t->id, t->cb_opaque);
                fired = true;
                break;
            }
        }
    }
}

/* The private epoll set or the timerfd is ready. */
static void slirp_on_event(void *opaque, uint32_t events)
{
    struct slirp_net *s = opaque;
    uint64_t expirations;
    if (read(s->timerfd, &expirations, sizeof(expirations)) == sizeof(expirations))
        s->armed_ms = -1;
    struct epoll_event ev[SLIRP_EVENTS_BATCH];
    int n = epoll_wait(s->epfd, ev, SLIRP_EVENTS_BATCH, 0);
    for (int i = 0; i < n; i++) {
        int r = reg_find(s, ev[i].data.fd);
        if (r >= 0 && (unsigned)s->regs[r].idx < s->npolls)
            s->polls[s->regs[r].idx].revents = from_epoll(ev[i].events);
    }
    s->lib.pollfds_poll(s->slirp, n < 0 && errno != EINTR, slirp_get_revents, s);
    slirp_run_timers(s);
    slirp_sync(s);
    if (s->head)
        s->be.rx_ready(s->be.opaque);
    (void)events;
}

/* ---- the backend ops ---- */

static void slirp_input_frame(void *opaque, const uint8_t *frame, size_t len)
{
    struct slirp_net *s = opaque;
    s->lib.input(s->slirp, frame, (int)len);
}

static void slirp_drop(struct slirp_net *s, const char *why)
{
    s->dropped++;
    if (ratelimit_allow(&s->log))
        log_debug("--net user: frame from the guest dropped: %s", why);
}

/* Hands one frame from the guest to slirp, doing the offloads it asked for. */
static void slirp_input_guest_frame(struct slirp_net *s, uint8_t *buf, size_t len)
{
    if (len < NET_HDR_LEN + 14) {
        slirp_drop(s, "runt");
        return;
    }
    struct net_hdr hdr;
    net_hdr_decode(buf, &hdr);
    uint8_t *frame = buf + NET_HDR_LEN;
    size_t flen = len - NET_HDR_LEN;
    if (hdr.gso_type != NET_HDR_GSO_NONE) {
        /* TSO: cut it up here, with full checksums (slirp wants MTU-sized frames). */
        if (net_gso_segment(frame, flen, &hdr, s->seg_buf, slirp_input_frame, s) < 0)
            slirp_drop(s, "malformed GSO frame");
    } else if ((hdr.flags & NET_HDR_F_NEEDS_CSUM) &&
               net_csum_complete(frame, flen, hdr.csum_start, hdr.csum_offset) < 0) {
        slirp_drop(s, "checksum offsets outside the frame");
    } else {
        slirp_input_frame(s, frame, flen);
    }
}

static void slirp_input_queued(struct slirp_net *s)
{
    s->in_op = true;
    for (unsigned i = 0; i < s->tx_count; i++)
        slirp_input_guest_frame(s, s->tx_buf[i], s->tx_len[i]);
    s->in_op = false;
    if (s->tx_count)
        s->dirty = true;
    s->tx_count = 0;
}

static int slirp_send(struct netdev *be, const struct iovec *iov, unsigned n)
{
    struct slirp_net *s = (struct slirp_net *)be;
    if (s->tx_count == SLIRP_TXQ)
        slirp_input_queued(s);
    s->tx_len[s->tx_count] = iov_to_buf(iov, n, 0, s->tx_buf[s->tx_count], NET_MAX_FRAME);
    s->tx_count++;
    return 0;
}

static void slirp_tx_flush(struct netdev *be)
{
    struct slirp_net *s = (struct slirp_net *)be;
    slirp_input_queued(s);
    if (s->dirty)
        slirp_sync(s);
}

static const uint8_t *slirp_rx_peek(struct netdev *be, size_t *len)
{
    struct slirp_net *s = (struct slirp_net *)be;
    if (!s->head)
        return NULL;
    *len = s->head->len;
    return s->head->data;
}

static void slirp_rx_consume(struct netdev *be)
{
    struct slirp_net *s = (struct slirp_net *)be;
    struct slirp_frame *f = s->head;
    if (!f)
        return;
    s->head = f->next;
    if (!s->head)
        s->tail = NULL;
    s->backlog -= f->len;
    free(f);
}

static void slirp_set_rx(struct netdev *be, bool on)
{
    struct slirp_net *s = (struct slirp_net *)be;
    if (s->rx_on == on)
        return;
    s->rx_on = on;
    slirp_sync(s);
}

static void slirp_destroy(struct netdev *be)
{
    struct slirp_net *s = (struct slirp_net *)be;
    if (s->slirp)
        s->lib.cleanup(s->slirp);
    while (s->head)
        slirp_rx_consume(be);
    while (s->timers) {
        struct slirp_timer *t = s->timers;
        s->timers = t->next;
        free(t);
    }
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->timerfd >= 0)
        close(s->timerfd);
    free(s->polls);
    free(s->regs);
    free(s->want);
    slirp_lib_unload(&s->lib);
    free(s);
}

static const struct netdev_ops slirp_ops = {
    .name = "user",
    .send = slirp_send,
    .tx_flush = slirp_tx_flush,
    .rx_peek = slirp_rx_peek,
    .rx_consume = slirp_rx_consume,
    .set_rx = slirp_set_rx,
    .destroy = slirp_destroy,
};

/* ---- start-up ---- */

static struct in_addr ipv4(uint32_t host_order)
{
    return (struct in_addr){.s_addr = htonl(host_order)};
}

static int slirp_start(struct slirp_net *s)
{
    SlirpConfig cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.version = 4;
    cfg.in_enabled = true;
    cfg.vnetwork = ipv4(0x0a000200);    /* 10.0.2.0 */
    cfg.vnetmask = ipv4(0xffffff00);    /* /24 */
    cfg.vhost = ipv4(0x0a000202);       /* 10.0.2.2: the host */
    cfg.vdhcp_start = ipv4(0x0a00020f); /* 10.0.2.15: the guest */
    cfg.vnameserver = ipv4(0x0a000203); /* 10.0.2.3 */
    cfg.in6_enabled = false;
    cfg.if_mtu = cfg.if_mru = SLIRP_MTU;
    s->slirp = s->lib.new_instance(&cfg, &slirp_callbacks, s);
    return s->slirp ? 0 : -ENOMEM;
}

static int slirp_add_forwards(struct slirp_net *s, const struct net_config *cfg)
{
    for (unsigned i = 0; i < cfg->nhostfwd; i++) {
        const struct net_hostfwd *f = &cfg->hostfwd[i];
        errno = 0;
        if (s->lib.add_hostfwd(s->slirp, f->udp, ipv4(f->host_addr), f->host_port,
                               ipv4(0) /* slirp's DHCP address */, f->guest_port) == 0)
            continue;
        int err = errno ? errno : EADDRINUSE;
        if (err == EADDRINUSE)
            log_error("--net user: host port %u is already in use", f->host_port);
        else
            log_error("--net user: host port %u: %s", f->host_port, strerror(err));
        return -err;
    }
    return 0;
}

static int slirp_watch(struct slirp_net *s)
{
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (s->epfd < 0 || s->timerfd < 0)
        return -errno;
    int ret = event_loop_add(s->loop, s->epfd, EPOLLIN, slirp_on_event, s);
    return ret ?: event_loop_add(s->loop, s->timerfd, EPOLLIN, slirp_on_event, s);
}

int net_slirp_open(struct netdev **out, const struct net_config *cfg, struct event_loop *loop)
{
    struct slirp_net *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->be.ops = &slirp_ops;
    s->be.features = F_CSUM | F_HOST_TSO4 | F_HOST_TSO6 | F_GUEST_CSUM;
    s->be.rx_csum_valid = true; /* slirp computes every checksum it sends */
    s->be.mtu = SLIRP_MTU;
    s->loop = loop;
    s->epfd = s->timerfd = -1;
    s->armed_ms = -1;
    s->log = (struct ratelimit)RATELIMIT_INIT(10, 5);
    int ret = slirp_lib_load(&s->lib);
    if (ret == 0) {
        ret = slirp_start(s);
        if (ret < 0)
            log_error("--net user: cannot start libslirp");
    }
    if (ret == 0)
        ret = slirp_add_forwards(s, cfg);
    if (ret == 0) {
        ret = slirp_watch(s);
        if (ret < 0)
            log_error("--net user: event loop: %s", strerror(-ret));
    }
    if (ret < 0) {
        if (s->epfd >= 0)
            event_loop_remove(loop, s->epfd); /* kiln exits, but leave nothing dangling */
        if (s->timerfd >= 0)
            event_loop_remove(loop, s->timerfd);
        slirp_destroy(&s->be);
        return ret;
    }
    slirp_sync(s);
    *out = &s->be;
    return 0;
}
