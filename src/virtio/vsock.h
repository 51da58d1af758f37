/*
 * The virtio socket device (virtio 1.2 §5.10) bridged to host Unix sockets, with
 * Firecracker's conventions so that its tools work unchanged:
 *
 *  - the guest connects to the host (CID 2) on port P: kiln connects to the Unix socket
 *    "<uds>_P" and relays; nobody listening there means an RST to the guest;
 *  - a host program connects to the Unix socket <uds> (kiln listens on it), sends
 *    "CONNECT <port>\n"; once the guest accepts, kiln answers "OK <host port>\n" and relays.
 *
 * Stream sockets only. Flow control is the spec's credit scheme in both directions: kiln
 * never sends the guest more than it has room for, and never accepts more from the guest
 * than the buffer it advertised, so a slow host reader pushes back on the guest instead of
 * growing kiln's memory.
 *
 * The only guest-visible state that outlives a connection is the CID. Connections are host
 * sockets and cannot be saved: a restored guest would need a TRANSPORT_RESET event
 * (§5.10.6, Device Events), which kiln does not send yet since it has no snapshots.
 */
#ifndef KILN_VIRTIO_VSOCK_H
#define KILN_VIRTIO_VSOCK_H

#include "util.h"
#include "virtio/virtio.h"
#include "virtio/vsock_proto.h"
#include "vmm/vm_config.h"

struct vm;

#define VSOCK_QUEUE_RX 0
#define VSOCK_QUEUE_TX 1
#define VSOCK_QUEUE_EVENT 2

#define VSOCK_MAX_CONNS 128          /* host sockets at once, listener excluded */
#define VSOCK_BUF_ALLOC (256 * 1024) /* per connection: what kiln takes from the guest unread */
#define VSOCK_MAX_PKT (64 * 1024)    /* payload kiln puts in one packet to the guest */
#define VSOCK_RST_BACKLOG 64         /* RSTs for packets that match no connection */

enum vsock_conn_state {
    VSOCK_CONN_FREE,
    VSOCK_CONN_AWAIT_LINE,  /* a host program connected to <uds>: reading "CONNECT <port>" */
    VSOCK_CONN_REQUESTING,  /* host-initiated: REQUEST owed or sent, waiting for RESPONSE */
    VSOCK_CONN_ESTABLISHED, /* relaying */
    VSOCK_CONN_DRAINING,    /* the guest side is gone: flush what the host has not read, close */
};

struct vsock_conn {
    enum vsock_conn_state state;
    int fd;
    uint32_t gen;        /* bumped at every close: tells stale epoll events apart */
    uint32_t events;     /* epoll events registered for fd (0: not registered) */
    uint32_t local_port; /* the host side's port */
    uint32_t peer_port;  /* the guest's port */
    /* Packets owed to the guest, sent when it gives receive buffers. */
    bool want_request;
    bool want_response;
    bool want_credit;
    bool want_rst;
    uint32_t want_shutdown; /* VSOCK_SHUTDOWN_* flags still to send */
    bool request_sent;
    /* guest -> host */
    struct vsock_ring to_host; /* accepted from the guest, not yet taken by the host socket */
    uint32_t fwd_cnt;          /* bytes the host socket took */
    uint32_t fwd_cnt_sent;     /* fwd_cnt as last told to the guest */
    uint32_t guest_shut;       /* SHUTDOWN flags received */
    bool host_wr_shut;         /* shutdown(SHUT_WR) done on fd */
    /* host -> guest */
    uint32_t tx_cnt; /* bytes sent to the guest */
    uint32_t peer_buf_alloc;
    uint32_t peer_fwd_cnt;
    bool host_eof;
    /* "CONNECT <port>" read so far */
    char line[VSOCK_CONNECT_LINE_MAX];
    uint8_t line_len;
};

_Static_assert(VSOCK_MAX_CONNS % 64 == 0, "ctrl_pending is a bitmap of 64-bit words");

struct vsock_rst {
    uint32_t local_port;
    uint32_t peer_port;
};

struct virtio_vsock {
    struct virtio_device vdev;
    uint64_t guest_cid;
    char uds_path[sizeof(((struct vsock_config *)0)->uds_path)];
    int epfd;      /* every host socket of this device; itself watched by the VM's loop */
    int listen_fd; /* <uds> */
    bool listen_paused;
    bool listen_created; /* unlink <uds> at exit */
    struct vsock_conn conns[VSOCK_MAX_CONNS];
    uint64_t ctrl_pending[VSOCK_MAX_CONNS / 64]; /* connections with packets owed */
    struct vsock_rst rst[VSOCK_RST_BACKLOG];
    unsigned rst_head;
    unsigned rst_len;
    uint32_t next_port; /* next host port for host-initiated connections */
    /* Receive side: a buffer taken from the driver but not yet filled is kept for later. */
    struct virtq_elem rx_elem;
    bool rx_held;
    bool rx_starved; /* the driver gave no receive buffers: wait for its kick */
    bool rx_pushed;  /* interrupt owed on the receive queue */
    bool tx_blocked; /* transmit queue left alone until the RST backlog drains */
    struct virtq_elem tx_elem;
    struct ratelimit log;
};

/* Opens the backend and adds the device to `vm`. Returns 0 or -errno (already logged). */
int virtio_vsock_create(struct vm *vm, const struct vsock_config *cfg);

/*
 * The pieces virtio_vsock_create is made of, for unit tests: a device with its listener
 * open, not yet on any VM; the epoll fd its host sockets are watched through; and the
 * handler to call when that fd is readable.
 */
int vsock_device_new(struct virtio_vsock **out, const struct vsock_config *cfg);
void vsock_device_free(struct virtio_vsock *dev);
void vsock_device_poll(struct virtio_vsock *dev);

#endif
