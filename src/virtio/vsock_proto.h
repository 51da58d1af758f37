/*
 * The virtio-vsock wire format and the pure rules around it (virtio 1.2 §5.10.6): packet
 * headers, what the device accepts from the driver, credit arithmetic, the per-connection
 * byte buffer, and the host side's "CONNECT <port>" handshake. No I/O and no device state
 * here, so all of it is unit-tested on its own (tests/unit/test_vsock_proto.c).
 */
#ifndef KILN_VIRTIO_VSOCK_PROTO_H
#define KILN_VIRTIO_VSOCK_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VSOCK_HOST_CID 2 /* VMADDR_CID_HOST: what the guest dials to reach kiln's host side */
#define VSOCK_HDR_SIZE 44

#define VSOCK_TYPE_STREAM 1

enum vsock_op {
    VSOCK_OP_INVALID = 0,
    VSOCK_OP_REQUEST = 1,
    VSOCK_OP_RESPONSE = 2,
    VSOCK_OP_RST = 3,
    VSOCK_OP_SHUTDOWN = 4,
    VSOCK_OP_RW = 5,
    VSOCK_OP_CREDIT_UPDATE = 6,
    VSOCK_OP_CREDIT_REQUEST = 7,
};

/* SHUTDOWN flags: the sender will receive (RCV) or send (SEND) no more. */
#define VSOCK_SHUTDOWN_RCV 1u
#define VSOCK_SHUTDOWN_SEND 2u
#define VSOCK_SHUTDOWN_BOTH (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)

/* struct virtio_vsock_hdr in host byte order; on the wire it is 44 packed little-endian bytes. */
struct vsock_hdr {
    uint64_t src_cid;
    uint64_t dst_cid;
    uint32_t src_port;
    uint32_t dst_port;
    uint32_t len;
    uint16_t type;
    uint16_t op;
    uint32_t flags;
    uint32_t buf_alloc;
    uint32_t fwd_cnt;
};

void vsock_hdr_decode(const uint8_t raw[VSOCK_HDR_SIZE], struct vsock_hdr *hdr);
void vsock_hdr_encode(const struct vsock_hdr *hdr, uint8_t raw[VSOCK_HDR_SIZE]);

/* What to do with a packet the driver put on the transmit queue. */
enum vsock_verdict {
    VSOCK_ACCEPT, /* well formed: handle it */
    VSOCK_DROP,   /* ignore it without an answer (forged source, or an RST we cannot answer) */
    VSOCK_RESET,  /* refuse it with an RST to its sender */
};

/*
 * Checks a header from the driver against the guest's CID and the `payload` bytes that
 * follow it in the descriptor chain. `*why` gets a short reason for anything not accepted.
 */
enum vsock_verdict vsock_hdr_check(const struct vsock_hdr *hdr, uint64_t guest_cid,
                                   uint64_t payload, const char **why);

/*
 * Credit (§5.10.6, Buffer Space Management): bytes the peer can still take, given the
 * buffer size and forwarded count it advertised and all we have sent it. Counters wrap
 * modulo 2^32; a peer whose numbers do not add up gets none.
 */
uint32_t vsock_peer_credit(uint32_t peer_buf_alloc, uint32_t peer_fwd_cnt, uint32_t tx_cnt);

/*
 * Bytes received from one side and not yet delivered to the other, in a fixed-size ring
 * whose memory is allocated on first use (most connections never need it).
 */
struct vsock_ring {
    uint8_t *buf;
    uint32_t cap;
    uint32_t head; /* offset of the oldest byte */
    uint32_t len;
};

void vsock_ring_init(struct vsock_ring *ring, uint32_t cap);
void vsock_ring_free(struct vsock_ring *ring);
static inline uint32_t vsock_ring_room(const struct vsock_ring *ring)
{
    return ring->cap - ring->len;
}
/*
 * Appends `len` bytes taken from `iov` after skipping `offset` bytes. Returns 0, -ENOSPC
 * if they do not fit (nothing is appended), or -ENOMEM.
 */
int vsock_ring_append(struct vsock_ring *ring, const struct iovec *iov, unsigned n, size_t offset,
                      size_t len);
/* Describes the buffered bytes, oldest first, in at most two segments; returns how many. */
unsigned vsock_ring_peek(const struct vsock_ring *ring, struct iovec out[2]);
void vsock_ring_consume(struct vsock_ring *ring, uint32_t len);

/*
 * Fills `out` (room for `max` entries) with the part of `iov` that starts `offset` bytes in
 * and is at most `len` long. Returns the entry count; `*got` is the bytes covered.
 */
unsigned vsock_iov_slice(const struct iovec *iov, unsigned n, size_t offset, size_t len,
                         struct iovec *out, unsigned max, size_t *got);

/* The longest "CONNECT <port>\n" line a host program may send, newline included. */
#define VSOCK_CONNECT_LINE_MAX 32

/*
 * Parses the host side's request line (without its '\n'; a trailing '\r' is allowed):
 * "CONNECT <port>" with a decimal port below 2^32 - 1 (VMADDR_PORT_ANY). Returns 0 or
 * -EINVAL.
 */
int vsock_parse_connect(const char *line, size_t len, uint32_t *port);

#endif
