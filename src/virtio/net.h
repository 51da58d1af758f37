/*
 * The virtio network device (virtio 1.2 §5.1) on a tap device or user-mode networking
 * (src/net/). One receive and one transmit queue; mergeable receive buffers, MAC, link
 * status, and the checksum/TSO offloads the backend can honour.
 */
#ifndef KILN_VIRTIO_NET_H
#define KILN_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/virtio.h"
#include "vmm/vm_config.h"

struct vm;
struct netdev;
struct event_loop;

#define VIRTIO_NET_RXQ 0
#define VIRTIO_NET_TXQ 1
#define VIRTIO_NET_QUEUE_SIZE 256

/* Feature bits, §5.1.3. */
#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN 9
#define VIRTIO_NET_F_GUEST_UFO 10
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_HOST_ECN 13
#define VIRTIO_NET_F_HOST_UFO 14
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16

#define VIRTIO_NET_S_LINK_UP 1

/* Guest-visible device state: plain data, savable. */
struct virtio_net_state {
    uint8_t mac[6];
    uint16_t status;
    uint16_t mtu; /* advised with VIRTIO_NET_F_MTU when not 0 */
};

struct virtio_net {
    struct virtio_device vdev;
    struct netdev *be;
    struct virtio_net_state state;
    /*
     * Progress on the backend's current receive frame, which it keeps offering until the
     * device consumes it: when the guest runs out of buffers in the middle of a frame, the
     * buffers filled so far wait here and the frame is finished when more arrive.
     */
    size_t rx_off;              /* bytes of the frame already in guest buffers */
    unsigned rx_nused;          /* buffers filled for it */
    struct virtq_used *rx_used; /* VIRTQ_MAX_SIZE entries */
    struct virtq_elem rx_first; /* its first buffer: num_buffers goes in that header */
    struct virtq_elem rx_elem;  /* the buffers after the first */
    bool rx_spare;              /* rx_first was popped but holds nothing yet */
    bool rx_discard;            /* reset in the middle of a frame: drop the rest of it */
    bool rx_paused;             /* the backend is off until the guest gives buffers */
    struct virtq_elem tx_elem;
    bool tx_pending; /* tx_elem waits for the backend to take it (tx_ready) */
    /*
     * Sent frames whose buffers go back to the driver when tx_timer_fd fires, a moment
     * later, or once they add up to a lot of bytes. While its last frame is still in
     * flight, the guest's TCP gathers small writes into one larger frame (autocorking), as
     * it does behind a real NIC. Giving every buffer back at once cost an exit and an
     * interrupt per small frame instead.
     */
    struct virtq_used *tx_done; /* VIRTQ_MAX_SIZE entries */
    unsigned tx_ndone;
    uint64_t tx_held_bytes;
    int tx_timer_fd;         /* -1: buffers go back at once (no event loop) */
    struct event_loop *loop; /* that watches tx_timer_fd */
    /* Counters, for -v logs and tests. */
    uint64_t rx_frames, tx_frames, rx_dropped, tx_dropped;
};

/* Opens the backend and adds the device to `vm`. Returns 0 or -errno (already logged). */
int virtio_net_create(struct vm *vm, const struct net_config *cfg, unsigned index);

/*
 * Sets up `n` over an open backend (which it then owns): ops, features, MAC. The caller
 * adds n->vdev to the VM (or, in unit tests, drives it directly). Returns 0 or -ENOMEM.
 */
int virtio_net_init(struct virtio_net *n, struct netdev *be, const uint8_t mac[6]);
/*
 * From now on, sent frames' buffers go back to the driver in batches, on a timer that
 * `loop` runs (see tx_done). Without it they go back at once. Returns 0 or -errno.
 */
int virtio_net_hold_tx(struct virtio_net *n, struct event_loop *loop);
/* Frees what virtio_net_init allocated and the backend; not `n` itself. */
void virtio_net_fini(struct virtio_net *n);

#endif
