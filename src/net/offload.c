#include "net/offload.h"
#include "le.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86dd
#define ETH_P_8021Q 0x8100
#define IPPROTO_TCP_ 6
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    put_be16(p, (uint16_t)(v >> 16));
    put_be16(p + 2, (uint16_t)v);
}

void net_hdr_decode(const uint8_t *p, struct net_hdr *h)
{
    h->flags = p[0];
    h->gso_type = p[1];
    h->hdr_len = get_le16(p + 2);
    h->gso_size = get_le16(p + 4);
    h->csum_start = get_le16(p + 6);
    h->csum_offset = get_le16(p + 8);
    h->num_buffers = get_le16(p + 10);
}

void net_hdr_encode(const struct net_hdr *h, uint8_t *p)
{
    p[0] = h->flags;
    p[1] = h->gso_type;
    put_le16(p + 2, h->hdr_len);
    put_le16(p + 4, h->gso_size);
    put_le16(p + 6, h->csum_start);
    put_le16(p + 8, h->csum_offset);
    put_le16(p + 10, h->num_buffers);
}

uint32_t net_csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
    /* 64-bit accumulator: no carry is lost for any frame size we handle. */
    uint64_t s = sum;
    for (; len >= 2; p += 2, len -= 2)
        s += get_be16(p);
    if (len)
        s += (uint32_t)p[0] << 8;
    /* Folded to 16 bits, so callers can add small terms without overflow. */
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint32_t)s;
}

uint16_t net_csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

int net_csum_complete(uint8_t *frame, size_t len, uint16_t csum_start, uint16_t csum_offset)
{
    size_t field = (size_t)csum_start + csum_offset;
    if (csum_start >= len || field + 2 > len)
        return -EINVAL;
    uint16_t c = net_csum_fold(net_csum_add(0, frame + csum_start, len - csum_start));
    /* A computed 0 goes out as 0xffff only for UDP; TCP keeps 0. Either is valid for TCP. */
    put_be16(frame + field, c);
    return 0;
}

/* Where the headers of a TCP frame are. */
struct tcp_frame {
    bool v6;
    size_t l3;      /* IP header */
    size_t l4;      /* TCP header */
    size_t payload; /* first payload byte */
};

static int parse_l3(const uint8_t *f, size_t len, bool v6, struct tcp_frame *t)
{
    size_t off = ETH_HLEN;
    uint16_t type = get_be16(f + 12);
    if (type == ETH_P_8021Q) {
        if (len < ETH_HLEN + 4)
            return -EINVAL;
        type = get_be16(f + 16);
        off += 4;
    }
    t->v6 = v6;
    t->l3 = off;
    if (!v6) {
        if (type != ETH_P_IP || len < off + 20 || f[off] >> 4 != 4)
            return -EINVAL;
        size_t ihl = (size_t)(f[off] & 0xf) * 4;
        /* Not a fragment (MF clear, offset 0), TCP inside. */
        if (ihl < 20 || len < off + ihl || (get_be16(f + off + 6) & 0x3fff) ||
            f[off + 9] != IPPROTO_TCP_)
            return -EINVAL;
        t->l4 = off + ihl;
    } else {
        /* No extension headers: TCP follows the fixed header directly. */
        if (type != ETH_P_IPV6 || len < off + 40 || f[off] >> 4 != 6 || f[off + 6] != IPPROTO_TCP_)
            return -EINVAL;
        t->l4 = off + 40;
    }
    return 0;
}

static int parse_tcp_frame(const uint8_t *f, size_t len, bool v6, struct tcp_frame *t)
{
    if (len < ETH_HLEN || parse_l3(f, len, v6, t) < 0 || len < t->l4 + 20)
        return -EINVAL;
    size_t doff = (size_t)(f[t->l4 + 12] >> 4) * 4;
    if (doff < 20 || len < t->l4 + doff)
        return -EINVAL;
    t->payload = t->l4 + doff;
    return 0;
}

static uint32_t pseudo_header_sum(const uint8_t *seg, const struct tcp_frame *t, size_t tcp_len)
{
    uint32_t sum;
    if (t->v6) {
        sum = net_csum_add(0, seg + t->l3 + 8, 32); /* source and destination */
        sum += (uint32_t)(tcp_len >> 16) + (uint32_t)(tcp_len & 0xffff) + IPPROTO_TCP_;
    } else {
        sum = net_csum_add(0, seg + t->l3 + 12, 8);
        sum += (uint32_t)tcp_len + IPPROTO_TCP_;
    }
    return sum;
}

/* Fixes the copied headers in `seg` for segment `i` of `count`, with `plen` payload bytes. */
static void fix_segment(uint8_t *seg, const struct tcp_frame *t, unsigned i, unsigned count,
                        uint32_t seq, size_t plen)
{
    size_t tcp_len = t->payload - t->l4 + plen;
    if (t->v6) {
        put_be16(seg + t->l3 + 4, (uint16_t)(tcp_len + (t->l4 - t->l3 - 40)));
    } else {
        size_t ihl = t->l4 - t->l3;
        put_be16(seg + t->l3 + 2, (uint16_t)(ihl + tcp_len));
        put_be16(seg + t->l3 + 4, (uint16_t)(get_be16(seg + t->l3 + 4) + i));
        put_be16(seg + t->l3 + 10, 0);
        put_be16(seg + t->l3 + 10, net_csum_fold(net_csum_add(0, seg + t->l3, ihl)));
    }
    uint8_t *tcp = seg + t->l4;
    put_be32(tcp + 4, seq);
    if (i + 1 < count)
        tcp[13] &= (uint8_t) ~(TCP_FIN | TCP_PSH);
    if (i > 0)
        tcp[13] &= (uint8_t)~TCP_CWR;
    put_be16(tcp + 16, 0);
    uint32_t sum = pseudo_header_sum(seg, t, tcp_len);
    put_be16(tcp + 16, net_csum_fold(net_csum_add(sum, tcp, tcp_len)));
}

int net_gso_segment(const uint8_t *frame, size_t len, const struct net_hdr *hdr, uint8_t *seg,
                    net_emit_fn emit, void *opaque)
{
    uint8_t type = hdr->gso_type & (uint8_t)~NET_HDR_GSO_ECN;
    if (type != NET_HDR_GSO_TCPV4 && type != NET_HDR_GSO_TCPV6)
        return -EINVAL;
    struct tcp_frame t;
    /* A floor on the segment size bounds the work one frame can ask for (2048 segments). */
    if (hdr->gso_size < NET_GSO_MIN_SEG ||
        parse_tcp_frame(frame, len, type == NET_HDR_GSO_TCPV6, &t) < 0)
        return -EINVAL;
    size_t total = len - t.payload, mss = hdr->gso_size;
    /* The IPv4 id and the lengths must still fit their 16-bit fields. */
    if (t.payload - t.l3 + (total < mss ? total : mss) > 0xffff)
        return -EINVAL;
    unsigned count = total == 0 ? 1 : (unsigned)((total + mss - 1) / mss);
    uint32_t seq = get_be32(frame + t.l4 + 4);
    for (unsigned i = 0; i < count; i++) {
        size_t off = (size_t)i * mss, plen = total - off < mss ? total - off : mss;
        memcpy(seg, frame, t.payload);
        memcpy(seg + t.payload, frame + t.payload + off, plen);
        fix_segment(seg, &t, i, count, seq + (uint32_t)off, plen);
        emit(opaque, seg, t.payload + plen);
    }
    return (int)count;
}
