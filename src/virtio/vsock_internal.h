/*
 * What vsock.c (the queues) and vsock_host.c (the connections and host sockets) call of
 * each other. Everything here runs with vdev->lock held.
 */
#ifndef KILN_VIRTIO_VSOCK_INTERNAL_H
#define KILN_VIRTIO_VSOCK_INTERNAL_H

#include "virtio/vsock.h"

#define VSOCK_FIRST_HOST_PORT (1u << 30) /* host-initiated ports, as Firecracker numbers them */
#define VSOCK_LISTENER_ID UINT64_MAX     /* epoll data of the listener; a connection's: id */

static inline bool vsock_conn_live(const struct vsock_conn *c)
{
    return c->state != VSOCK_CONN_FREE;
}

/* ---- vsock.c: packets to the guest ---- */

/* Whether the driver is up with receive buffers to fill (as far as we know). */
bool vsock_rx_usable(struct virtio_vsock *dev);
/* The receive buffer to fill next (kept until used), or NULL if the driver has none. */
struct virtq_elem *vsock_rx_get(struct virtio_vsock *dev);
/* A header for a packet of `c`, carrying our credit. */
struct vsock_hdr vsock_conn_hdr(const struct virtio_vsock *dev, const struct vsock_conn *c,
                                uint16_t op);
/* Hands the buffer from vsock_rx_get to the driver with header `h` (payload already in). */
void vsock_conn_put(struct virtio_vsock *dev, struct vsock_conn *c, const struct vsock_hdr *h);
/* An RST owed for a packet that matches no connection. */
void vsock_queue_rst(struct virtio_vsock *dev, uint32_t local, uint32_t peer);

/* ---- vsock_host.c: connections ---- */

/* Syncs epoll interest and the "packets owed" mark with the connection's state. */
void vsock_conn_update(struct virtio_vsock *dev, struct vsock_conn *c);
void vsock_conn_close(struct virtio_vsock *dev, struct vsock_conn *c);
/* The live connection between host port `local` and guest port `peer`, or NULL. */
struct vsock_conn *vsock_conn_find(struct virtio_vsock *dev, uint32_t local, uint32_t peer);
/* Ends the guest's side with an RST; `keep`: still deliver what the guest sent. */
void vsock_conn_reset(struct virtio_vsock *dev, struct vsock_conn *c, bool keep);
/* The guest sent RST: deliver what it sent, then close. */
void vsock_conn_guest_gone(struct virtio_vsock *dev, struct vsock_conn *c);
/* An RW packet's payload (after the header in `e`) towards the host socket. */
void vsock_conn_forward(struct virtio_vsock *dev, struct vsock_conn *c, const struct virtq_elem *e,
                        uint32_t len);
/* Everything from the guest reached the host: apply its SHUTDOWN(SEND), or finish draining. */
void vsock_conn_flushed(struct virtio_vsock *dev, struct vsock_conn *c);
/* The guest answered our REQUEST: "OK <port>" to the host program. */
void vsock_conn_accepted(struct virtio_vsock *dev, struct vsock_conn *c);
/* The guest's REQUEST: connect to <uds>_PORT, or queue an RST. */
void vsock_guest_connect(struct virtio_vsock *dev, const struct vsock_hdr *h);
/* Binds and listens on <uds>. Returns 0 or -errno. */
int vsock_host_listen(struct virtio_vsock *dev);
/* One epoll event from the device's set. */
void vsock_host_event(struct virtio_vsock *dev, uint64_t id, uint32_t events);

#endif
