/*
 * Network backends: where the frames of a virtio-net device come from and go to (a tap
 * device, or libslirp's user-mode stack), behind one small ops table.
 *
 * Every frame crossing this interface starts with the 12-byte virtio-net header
 * (virtio 1.2 §5.1.6, struct virtio_net_hdr with num_buffers), then the Ethernet frame.
 *
 * Threading: the ops run on the event-loop thread with the device lock held, except
 * set_offload, which runs wherever the driver's status write lands (a vCPU thread), also
 * with the device lock held. The backend calls the device's rx_ready/tx_ready from its own
 * event-loop handlers only, never from inside an op (the device lock is not recursive).
 */
#ifndef KILN_NET_BACKEND_H
#define KILN_NET_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct event_loop;
struct net_config;
struct netdev;

#define NET_HDR_LEN 12 /* struct virtio_net_hdr with num_buffers (VIRTIO_F_VERSION_1) */
/* Largest frame a backend hands over: a 64 KiB GSO packet plus its Ethernet, VLAN and
 * virtio-net headers. */
#define NET_MAX_FRAME (65536 + 14 + 4 + NET_HDR_LEN)

/* Offload bits the guest negotiated, as set_offload receives them. */
#define NET_OFFLOAD_CSUM 1u /* the guest accepts partial checksums (GUEST_CSUM) */
#define NET_OFFLOAD_TSO4 2u /* ... and TCPv4 GSO frames (GUEST_TSO4) */
#define NET_OFFLOAD_TSO6 4u /* ... and TCPv6 GSO frames (GUEST_TSO6) */
#define NET_OFFLOAD_ECN 8u  /* ... with ECN (GUEST_ECN) */

struct netdev_ops {
    const char *name;
    /*
     * Takes one frame (header + frame, as the driver laid it out). The backend copies what
     * it needs before returning, so the device can hand the buffers back (and interrupt
     * the driver) before the frame is processed: transmit completions then do not wait
     * for the host's network stack. Returns 0 when the frame was taken or dropped for
     * good, -EAGAIN when the backend cannot take it now: the device keeps it and waits for
     * tx_ready.
     */
    int (*send)(struct netdev *be, const struct iovec *iov, unsigned n);
    /* After a batch of send calls: process what was taken. May be NULL. */
    void (*tx_flush)(struct netdev *be);
    /*
     * The next frame for the guest (header + frame), or NULL if none is waiting. The same
     * frame is returned until rx_consume, so the device can place it in several steps.
     */
    const uint8_t *(*rx_peek)(struct netdev *be, size_t *len);
    void (*rx_consume)(struct netdev *be);
    /* Flow control: stop (false) or resume (true) producing frames for the guest. */
    void (*set_rx)(struct netdev *be, bool on);
    /* The offloads the guest negotiated (NET_OFFLOAD_*). May be NULL. */
    int (*set_offload)(struct netdev *be, unsigned offloads);
    void (*destroy)(struct netdev *be);
};

struct netdev {
    const struct netdev_ops *ops;
    /* virtio-net feature bits (§5.1.3) the backend can honour: offloads, mainly. */
    uint64_t features;
    /* Frames the backend produces carry correct checksums (the device may say DATA_VALID). */
    bool rx_csum_valid;
    /* The MTU to advise the driver of (VIRTIO_NET_F_MTU), 0 for none. */
    uint16_t mtu;
    /*
     * Set by a backend whose send or tx_flush queued frames for the guest (a user-mode
     * stack answering at once): the device drains them before it drops its lock.
     */
    bool rx_queued_in_op;
    /* The device's side, set by the device before any traffic. */
    void (*rx_ready)(void *opaque); /* frames may be waiting */
    void (*tx_ready)(void *opaque); /* send may succeed again */
    void *opaque;
};

/*
 * Opens an existing tap device (never creates one). Returns 0 with *out set, or a negative
 * errno after logging why ("--net tap=NAME: no such tap device").
 */
int net_tap_open(struct netdev **out, const char *ifname, struct event_loop *loop);

/*
 * Starts a libslirp stack (10.0.2.0/24, gateway 10.0.2.2, DNS 10.0.2.3, DHCP from
 * 10.0.2.15) with cfg's host port forwards. Returns 0 or a negative errno (logged).
 */
int net_slirp_open(struct netdev **out, const struct net_config *cfg, struct event_loop *loop);

#endif
