/*
 * The tap backend: an existing tap device opened through /dev/net/tun with IFF_VNET_HDR, so
 * that frames carry the virtio-net header and checksum/TSO offloads pass straight through
 * between the guest and the host kernel. The fd is nonblocking and lives on the event
 * loop; the device pauses it (no events) while the guest has no receive buffers.
 */
#include "net/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util.h"
#include "virtio/virtqueue.h"
#include "vmm/event_loop.h"

#define TUN_PATH "/dev/net/tun"
#define TAP_TXQ 4 /* frames copied from the guest, waiting for write(2) */
#define TAP_OFFLOADS_ALL (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)

/* virtio-net feature bits, virtio 1.2 §5.1.3. */
#define F_CSUM (1ULL << 0)
#define F_GUEST_CSUM (1ULL << 1)
#define F_GUEST_TSO4 (1ULL << 7)
#define F_GUEST_TSO6 (1ULL << 8)
#define F_GUEST_ECN (1ULL << 9)
#define F_HOST_TSO4 (1ULL << 11)
#define F_HOST_TSO6 (1ULL << 12)
#define F_HOST_ECN (1ULL << 13)

struct tap {
    struct netdev be;
    struct event_loop *loop;
    char ifname[IFNAMSIZ];
    int fd;
    bool want_rx;               /* the device wants frames */
    bool want_tx;               /* a send hit EAGAIN: wake the device when writable */
    bool dead;                  /* the device went away under us: the fd only reports errors */
    size_t rx_len;              /* bytes of the frame in rx_buf, 0 if none */
    unsigned tx_head, tx_count; /* tx_buf[tx_head..tx_count) wait for write(2) */
    size_t tx_len[TAP_TXQ];
    struct ratelimit log;
    uint8_t
        rx_buf[NET_MAX_FRAME + 1]; /* +1 tells a frame of exactly the maximum from one cut short */
    uint8_t tx_buf[TAP_TXQ][NET_MAX_FRAME];
};

static void tap_update_events(struct tap *t)
{
    uint32_t ev = 0;
    if (t->dead)
        ev = EPOLLET; /* errors are reported once more, then stay quiet */
    else
        ev = (t->want_rx ? EPOLLIN : 0) | (t->want_tx ? EPOLLOUT : 0);
    event_loop_modify(t->loop, t->fd, ev);
}

static void tap_fail(struct tap *t, int err)
{
    if (t->dead)
        return;
    log_error("--net tap=%s: %s; the guest's network is down", t->ifname, strerror(err));
    t->dead = true;
    tap_update_events(t);
}

/* Writes the queued frames. 0, or -EAGAIN if the kernel cannot take more now. */
static int tap_write_queued(struct tap *t)
{
    while (t->tx_head < t->tx_count && !t->dead) {
        ssize_t ret = write(t->fd, t->tx_buf[t->tx_head], t->tx_len[t->tx_head]);
        if (ret < 0 && errno == EINTR)
            continue;
        if (ret < 0 && errno == EAGAIN) {
            t->want_tx = true;
            tap_update_events(t);
            return -EAGAIN;
        }
        if (ret < 0 && (errno == EBADFD || errno == EIO)) {
            tap_fail(t, errno);
        } else if (ret < 0 && ratelimit_allow(&t->log)) {
            /* The kernel refused this frame (malformed header, too long): drop it. */
            log_debug("--net tap=%s: frame dropped: %s", t->ifname, strerror(errno));
        }
        t->tx_head++;
    }
    t->tx_head = t->tx_count = 0;
    return 0;
}

static void tap_on_event(void *opaque, uint32_t events)
{
    struct tap *t = opaque;
    if (t->dead)
        return;
    if ((events & EPOLLOUT) && t->want_tx) {
        t->want_tx = false;
        tap_update_events(t);
        if (tap_write_queued(t) == 0)
            t->be.tx_ready(t->be.opaque); /* the device may hold a frame we refused */
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        t->be.rx_ready(t->be.opaque);
}

static int tap_send(struct netdev *be, const struct iovec *iov, unsigned n)
{
    struct tap *t = (struct tap *)be;
    if (t->dead)
        return 0;
    if (t->tx_count == TAP_TXQ && tap_write_queued(t) < 0)
        return -EAGAIN;
    t->tx_len[t->tx_count] = iov_to_buf(iov, n, 0, t->tx_buf[t->tx_count], NET_MAX_FRAME);
    t->tx_count++;
    return 0;
}

static void tap_tx_flush(struct netdev *be)
{
    tap_write_queued((struct tap *)be); /* on -EAGAIN, EPOLLOUT brings us back */
}

static const uint8_t *tap_rx_peek(struct netdev *be, size_t *len)
{
    struct tap *t = (struct tap *)be;
    while (t->rx_len == 0 && !t->dead) {
        ssize_t n = read(t->fd, t->rx_buf, sizeof(t->rx_buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                tap_fail(t, errno);
            return NULL;
        }
        /* Runts and frames longer than any the guest could take are dropped. */
        if (n >= NET_HDR_LEN + 14 && (size_t)n <= NET_MAX_FRAME)
            t->rx_len = (size_t)n;
    }
    *len = t->rx_len;
    return t->rx_len ? t->rx_buf : NULL;
}

static void tap_rx_consume(struct netdev *be)
{
    ((struct tap *)be)->rx_len = 0;
}

static void tap_set_rx(struct netdev *be, bool on)
{
    struct tap *t = (struct tap *)be;
    if (t->want_rx == on)
        return;
    t->want_rx = on;
    if (!t->dead)
        tap_update_events(t);
}

static int tap_set_offload(struct netdev *be, unsigned offloads)
{
    struct tap *t = (struct tap *)be;
    unsigned flags = 0;
    /* The kernel ignores TSO without CSUM, as virtio requires (§5.1.3.1). */
    if (offloads & NET_OFFLOAD_CSUM) {
        flags |= TUN_F_CSUM;
        if (offloads & NET_OFFLOAD_TSO4)
            flags |= TUN_F_TSO4;
        if (offloads & NET_OFFLOAD_TSO6)
            flags |= TUN_F_TSO6;
        if (offloads & NET_OFFLOAD_ECN)
            flags |= TUN_F_TSO_ECN;
    }
    return ioctl(t->fd, TUNSETOFFLOAD, (unsigned long)flags) < 0 ? -errno : 0;
}

static void tap_destroy(struct netdev *be)
{
    struct tap *t = (struct tap *)be;
    /* The event loop is gone by now (vm_destroy); closing the fd is enough. */
    if (t->fd >= 0)
        close(t->fd);
    free(t);
}

static const struct netdev_ops tap_ops = {
    .name = "tap",
    .send = tap_send,
    .tx_flush = tap_tx_flush,
    .rx_peek = tap_rx_peek,
    .rx_consume = tap_rx_consume,
    .set_rx = tap_set_rx,
    .set_offload = tap_set_offload,
    .destroy = tap_destroy,
};

static int tap_error(const char *ifname, int err)
{
    switch (err) {
    case ENODEV:
        log_error("--net tap=%s: no such tap device", ifname);
        break;
    case EINVAL:
        log_error("--net tap=%s: not a tap device (a tun device, or not a tun/tap at all)", ifname);
        break;
    case EBUSY:
        log_error("--net tap=%s: the tap device is in use by another process", ifname);
        break;
    case EPERM:
    case EACCES:
        log_error("--net tap=%s: permission denied (the tap device belongs to another user, "
                  "or CAP_NET_ADMIN is needed)",
                  ifname);
        break;
    default:
        log_error("--net tap=%s: %s", ifname, strerror(err));
    }
    return -err;
}

/*
 * TUNSETIFF creates the device if the name is free, and there is no flag that only attaches
 * (IFF_TUN_EXCL is the opposite). So: look the name up first, attach, then check that the
 * interface we got is the one we looked up. If it vanished in between, our fd created a new,
 * non-persistent device, which closing the fd destroys again.
 */
static int tap_attach(int fd, const char *ifname)
{
    unsigned before = if_nametoindex(ifname);
    if (before == 0)
        return errno == ENODEV || errno == ENXIO ? -ENODEV : -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0)
        return -errno;
    if (if_nametoindex(ifname) != before)
        return -ENODEV;
    return 0;
}

static int tap_setup(struct tap *t)
{
    unsigned features = 0;
    if (ioctl(t->fd, TUNGETFEATURES, &features) < 0 || !(features & IFF_VNET_HDR))
        return -ENOTSUP;
    int ret = tap_attach(t->fd, t->ifname);
    if (ret < 0)
        return ret;
    int hdr = NET_HDR_LEN;
    if (ioctl(t->fd, TUNSETVNETHDRSZ, &hdr) < 0)
        return -errno;
    /* What the guest may send, the kernel always accepts with IFF_VNET_HDR. */
    t->be.features = F_CSUM | F_HOST_TSO4 | F_HOST_TSO6 | F_HOST_ECN;
    /* What the guest may receive needs TUNSETOFFLOAD; probe it, then start with none. */
    if (ioctl(t->fd, TUNSETOFFLOAD, (unsigned long)TAP_OFFLOADS_ALL) == 0)
        t->be.features |= F_GUEST_CSUM | F_GUEST_TSO4 | F_GUEST_TSO6 | F_GUEST_ECN;
    if (ioctl(t->fd, TUNSETOFFLOAD, 0UL) < 0)
        t->be.features &= ~(F_GUEST_CSUM | F_GUEST_TSO4 | F_GUEST_TSO6 | F_GUEST_ECN);
    return 0;
}

int net_tap_open(struct netdev **out, const char *ifname, struct event_loop *loop)
{
    struct tap *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->be.ops = &tap_ops;
    t->loop = loop;
    t->log = (struct ratelimit)RATELIMIT_INIT(10, 5);
    snprintf(t->ifname, sizeof(t->ifname), "%s", ifname);
    t->fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (t->fd < 0) {
        int err = errno;
        log_error("--net tap=%s: %s: %s", ifname, TUN_PATH, strerror(err));
        free(t);
        return -err;
    }
    int ret = tap_setup(t);
    if (ret == -ENOTSUP) {
        log_error("--net tap=%s: %s lacks IFF_VNET_HDR", ifname, TUN_PATH);
    } else if (ret < 0) {
        tap_error(ifname, -ret);
    } else {
        /* Paused until the driver is ready for frames. */
        ret = event_loop_add(loop, t->fd, 0, tap_on_event, t);
        if (ret < 0)
            log_error("--net tap=%s: event loop: %s", ifname, strerror(-ret));
    }
    if (ret < 0) {
        close(t->fd);
        free(t);
        return ret;
    }
    *out = &t->be;
    return 0;
}
