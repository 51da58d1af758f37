#include "virtio/vsock_proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtqueue.h"

/* ---- header codec: explicit little-endian bytes, whatever the host's order ---- */

static uint64_t get_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Field offsets of struct virtio_vsock_hdr (virtio 1.2 §5.10.6). */
enum {
    OFF_SRC_CID = 0,
    OFF_DST_CID = 8,
    OFF_SRC_PORT = 16,
    OFF_DST_PORT = 20,
    OFF_LEN = 24,
    OFF_TYPE = 28,
    OFF_OP = 30,
    OFF_FLAGS = 32,
    OFF_BUF_ALLOC = 36,
    OFF_FWD_CNT = 40,
};
_Static_assert(OFF_FWD_CNT + 4 == VSOCK_HDR_SIZE, "virtio_vsock_hdr is 44 bytes");

void vsock_hdr_decode(const uint8_t raw[VSOCK_HDR_SIZE], struct vsock_hdr *hdr)
{
    hdr->src_cid = get_le(raw + OFF_SRC_CID, 8);
    hdr->dst_cid = get_le(raw + OFF_DST_CID, 8);
    hdr->src_port = (uint32_t)get_le(raw + OFF_SRC_PORT, 4);
    hdr->dst_port = (uint32_t)get_le(raw + OFF_DST_PORT, 4);
    hdr->len = (uint32_t)get_le(raw + OFF_LEN, 4);
    hdr->type = (uint16_t)get_le(raw + OFF_TYPE, 2);
    hdr->op = (uint16_t)get_le(raw + OFF_OP, 2);
    hdr->flags = (uint32_t)get_le(raw + OFF_FLAGS, 4);
    hdr->buf_alloc = (uint32_t)get_le(raw + OFF_BUF_ALLOC, 4);
    hdr->fwd_cnt = (uint32_t)get_le(raw + OFF_FWD_CNT, 4);
}

void vsock_hdr_encode(const struct vsock_hdr *hdr, uint8_t raw[VSOCK_HDR_SIZE])
{
    put_le(raw + OFF_SRC_CID, hdr->src_cid, 8);
    put_le(raw + OFF_DST_CID, hdr->dst_cid, 8);
    put_le(raw + OFF_SRC_PORT, hdr->src_port, 4);
    put_le(raw + OFF_DST_PORT, hdr->dst_port, 4);
    put_le(raw + OFF_LEN, hdr->len, 4);
    put_le(raw + OFF_TYPE, hdr->type, 2);
    put_le(raw + OFF_OP, hdr->op, 2);
    put_le(raw + OFF_FLAGS, hdr->flags, 4);
    put_le(raw + OFF_BUF_ALLOC, hdr->buf_alloc, 4);
    put_le(raw + OFF_FWD_CNT, hdr->fwd_cnt, 4);
}

/* ---- what the device accepts from the driver ---- */

enum vsock_verdict vsock_hdr_check(const struct vsock_hdr *hdr, uint64_t guest_cid,
                                   uint64_t payload, const char **why)
{
    *why = NULL;
    /* A forged source cannot be answered: the reply would go to someone else. */
    if (hdr->src_cid != guest_cid) {
        *why = "source CID is not the guest's";
        return VSOCK_DROP;
    }
    /* Never answer an RST with an RST, or two peers could ping-pong forever. */
    if (hdr->op == VSOCK_OP_RST) {
        if (hdr->dst_cid != VSOCK_HOST_CID) {
            *why = "RST to a CID other than the host";
            return VSOCK_DROP;
        }
        return VSOCK_ACCEPT;
    }
    if (hdr->dst_cid != VSOCK_HOST_CID) {
        *why = "destination CID is not the host (2)";
        return VSOCK_RESET;
    }
    if (hdr->type != VSOCK_TYPE_STREAM) {
        *why = "socket type is not stream";
        return VSOCK_RESET;
    }
    if (hdr->op == VSOCK_OP_INVALID || hdr->op > VSOCK_OP_CREDIT_REQUEST) {
        *why = "unknown operation";
        return VSOCK_RESET;
    }
    if (hdr->len > payload) {
        *why = "header length exceeds the buffer";
        return VSOCK_RESET;
    }
    return VSOCK_ACCEPT;
}

uint32_t vsock_peer_credit(uint32_t peer_buf_alloc, uint32_t peer_fwd_cnt, uint32_t tx_cnt)
{
    uint32_t in_flight = tx_cnt - peer_fwd_cnt; /* modulo 2^32, as the spec's counters are */
    return in_flight >= peer_buf_alloc ? 0 : peer_buf_alloc - in_flight;
}

/* ---- per-connection ring ---- */

void vsock_ring_init(struct vsock_ring *ring, uint32_t cap)
{
    *ring = (struct vsock_ring){.cap = cap};
}

void vsock_ring_free(struct vsock_ring *ring)
{
    free(ring->buf);
    ring->buf = NULL;
    ring->head = ring->len = 0;
}

int vsock_ring_append(struct vsock_ring *ring, const struct iovec *iov, unsigned n, size_t offset,
                      size_t len)
{
    if (len > vsock_ring_room(ring))
        return -ENOSPC;
    if (len == 0)
        return 0;
    if (!ring->buf && !(ring->buf = malloc(ring->cap)))
        return -ENOMEM;
    uint32_t tail = (uint32_t)(((uint64_t)ring->head + ring->len) % ring->cap);
    struct iovec dst[2] = {{ring->buf + tail, ring->cap - tail}, {ring->buf, tail}};
    size_t done = 0;
    for (unsigned i = 0; i < 2 && done < len; i++) {
        size_t want = len - done < dst[i].iov_len ? len - done : dst[i].iov_len;
        done += iov_to_buf(iov, n, offset + done, dst[i].iov_base, want);
    }
    ring->len += (uint32_t)done;
    return 0;
}

unsigned vsock_ring_peek(const struct vsock_ring *ring, struct iovec out[2])
{
    if (ring->len == 0)
        return 0;
    uint32_t first = ring->cap - ring->head;
    if (ring->len <= first) {
        out[0] = (struct iovec){ring->buf + ring->head, ring->len};
        return 1;
    }
    out[0] = (struct iovec){ring->buf + ring->head, first};
    out[1] = (struct iovec){ring->buf, ring->len - first};
    return 2;
}

void vsock_ring_consume(struct vsock_ring *ring, uint32_t len)
{
    if (len > ring->len)
        len = ring->len;
    ring->len -= len;
    ring->head = ring->len ? (uint32_t)(((uint64_t)ring->head + len) % ring->cap) : 0;
}

unsigned vsock_iov_slice(const struct iovec *iov, unsigned n, size_t offset, size_t len,
                         struct iovec *out, unsigned max, size_t *got)
{
    unsigned k = 0;
    *got = 0;
    for (unsigned i = 0; i < n && k < max && *got < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = iov[i].iov_len - offset;
        if (chunk > len - *got)
            chunk = len - *got;
        out[k++] = (struct iovec){(uint8_t *)iov[i].iov_base + offset, chunk};
        *got += chunk;
        offset = 0;
    }
    return k;
}

/* ---- the host side's handshake (Firecracker's convention) ---- */

int vsock_parse_connect(const char *line, size_t len, uint32_t *port)
{
    static const char verb[] = "CONNECT ";
    const size_t vlen = sizeof(verb) - 1;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len <= vlen || len - vlen > 10 || memcmp(line, verb, vlen) != 0)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = vlen; i < len; i++) {
        if (line[i] < '0' || line[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(line[i] - '0');
    }
    if (v >= UINT32_MAX)
        return -EINVAL;
    *port = (uint32_t)v;
    return 0;
}
