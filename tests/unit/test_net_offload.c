/* Software offloads for user-mode networking: checksum completion and TCP segmentation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "net/offload.h"

#define ETH 14

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reference checksum, bit by bit as RFC 1071 describes it. */
static uint16_t ref_csum(const uint8_t *p, size_t len, uint32_t sum)
{
    for (size_t i = 0; i + 1 < len; i += 2) {
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if (len & 1) {
        sum += (uint32_t)p[len - 1] << 8;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

/* Ethernet + IPv4 (20) + TCP (20) + payload; returns the frame length. */
static size_t build_v4(uint8_t *f, size_t payload, uint8_t tcp_flags)
{
    memset(f, 0, ETH + 40);
    put16(f + 12, 0x0800);
    uint8_t *ip = f + ETH;
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(40 + (payload > 0xffff - 40 ? 0 : payload)));
    put16(ip + 4, 0x1234); /* id */
    put16(ip + 6, 0x4000); /* DF */
    ip[8] = 64;
    ip[9] = 6;
    memcpy(ip + 12, (uint8_t[]){10, 0, 2, 15, 10, 0, 2, 2}, 8);
    uint8_t *tcp = ip + 20;
    put16(tcp, 40000);
    put16(tcp + 2, 5001);
    memcpy(tcp + 4, (uint8_t[]){0x10, 0x20, 0x30, 0x40}, 4);
    tcp[12] = 5 << 4;
    tcp[13] = tcp_flags;
    put16(tcp + 14, 64240);
    for (size_t i = 0; i < payload; i++)
        tcp[20 + i] = (uint8_t)(i * 13 + 1);
    return ETH + 40 + payload;
}

static uint32_t pseudo_v4(const uint8_t *ip, size_t tcp_len)
{
    uint32_t sum = 0;
    for (int i = 12; i < 20; i += 2)
        sum += get16(ip + i);
    sum += 6 + (uint32_t)tcp_len;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return sum;
}

static void header_round_trip(void **state)
{
    (void)state;
    struct net_hdr h = {NET_HDR_F_NEEDS_CSUM, NET_HDR_GSO_TCPV4, 54, 1448, 34, 16, 3}, g;
    uint8_t raw[12];
    net_hdr_encode(&h, raw);
    assert_int_equal(raw[4], 1448 & 0xff); /* little-endian */
    assert_int_equal(raw[5], 1448 >> 8);
    net_hdr_decode(raw, &g);
    assert_memory_equal(&h, &g, sizeof(h));
}

static void csum_matches_reference(void **state)
{
    (void)state;
    for (size_t n = 0; n < 70; n++) {
        uint8_t buf[80];
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)(i * 37 + n);
        assert_int_equal(net_csum_fold(net_csum_add(0, buf, n)), ref_csum(buf, n, 0));
    }
}

static void csum_complete_fills_tcp_checksum(void **state)
{
    (void)state;
    uint8_t f[ETH + 40 + 101];
    size_t len = build_v4(f, 101, 0x18);
    uint8_t *ip = f + ETH, *tcp = ip + 20;
    size_t tcp_len = 20 + 101;
    /* What a driver hands over with NEEDS_CSUM: the pseudo-header sum, not complemented. */
    uint16_t partial = (uint16_t)pseudo_v4(ip, tcp_len);
    put16(tcp + 16, partial);
    assert_int_equal(net_csum_complete(f, len, ETH + 20, 16), 0);
    uint16_t got = get16(tcp + 16);
    put16(tcp + 16, 0);
    assert_int_equal(got, ref_csum(tcp, tcp_len, pseudo_v4(ip, tcp_len)));
}

static void csum_complete_checks_offsets(void **state)
{
    (void)state;
    uint8_t f[100] = {0};
    assert_int_equal(net_csum_complete(f, sizeof(f), 100, 0), -EINVAL);
    assert_int_equal(net_csum_complete(f, sizeof(f), 90, 9), -EINVAL);
    assert_int_equal(net_csum_complete(f, sizeof(f), 0xffff, 0xffff), -EINVAL);
    assert_int_equal(net_csum_complete(f, sizeof(f), 90, 8), 0);
}

struct segs {
    uint8_t data[8][2000];
    size_t len[8];
    unsigned n;
};

static void collect(void *opaque, const uint8_t *frame, size_t len)
{
    struct segs *s = opaque;
    assert_true(s->n < 8 && len <= 2000);
    memcpy(s->data[s->n], frame, len);
    s->len[s->n++] = len;
}

static void gso_v4_segments(void **state)
{
    (void)state;
    static uint8_t f[ETH + 40 + 4000], seg[NET_GSO_SEG_MAX];
    static struct segs s;
    memset(&s, 0, sizeof(s));
    size_t len = build_v4(f, 4000, 0x19 /* FIN PSH ACK */);
    struct net_hdr h = {NET_HDR_F_NEEDS_CSUM, NET_HDR_GSO_TCPV4, 54, 1448, 34, 16, 0};
    assert_int_equal(net_gso_segment(f, len, &h, seg, collect, &s), 3);
    size_t sizes[3] = {1448, 1448, 1104};
    for (unsigned i = 0; i < 3; i++) {
        uint8_t *ip = s.data[i] + ETH, *tcp = ip + 20;
        assert_int_equal(s.len[i], ETH + 40 + sizes[i]);
        assert_int_equal(get16(ip + 2), 40 + sizes[i]);
        assert_int_equal(get16(ip + 4), 0x1234 + i);
        assert_int_equal(ref_csum(ip, 20, 0), 0); /* a valid IPv4 header sums to zero */
        assert_int_equal(get32(tcp + 4), 0x10203040u + 1448 * i);
        uint8_t want_flags = i == 2 ? 0x19 : 0x10;
        assert_int_equal(tcp[13], want_flags);
        assert_int_equal(ref_csum(tcp, 20 + sizes[i], pseudo_v4(ip, 20 + sizes[i])), 0);
        assert_memory_equal(tcp + 20, f + ETH + 40 + 1448 * i, sizes[i]);
    }
}

static void gso_v6_segments(void **state)
{
    (void)state;
    static uint8_t f[ETH + 60 + 3000], seg[NET_GSO_SEG_MAX];
    static struct segs s;
    memset(&s, 0, sizeof(s));
    memset(f, 0, sizeof(f));
    put16(f + 12, 0x86dd);
    uint8_t *ip = f + ETH;
    ip[0] = 0x60;
    put16(ip + 4, 20 + 3000);
    ip[6] = 6;
    ip[7] = 64;
    ip[8] = 0xfe;
    ip[9] = 0x80;
    ip[23] = 1;
    ip[24] = 0xfe;
    ip[25] = 0x80;
    ip[39] = 2;
    uint8_t *tcp = ip + 40;
    tcp[12] = 5 << 4;
    tcp[13] = 0x10;
    for (int i = 0; i < 3000; i++)
        tcp[20 + i] = (uint8_t)i;
    struct net_hdr h = {NET_HDR_F_NEEDS_CSUM, NET_HDR_GSO_TCPV6, 74, 1440, 54, 16, 0};
    assert_int_equal(net_gso_segment(f, sizeof(f), &h, seg, collect, &s), 3);
    for (unsigned i = 0; i < 3; i++) {
        size_t plen = i < 2 ? 1440 : 120;
        uint8_t *sip = s.data[i] + ETH, *stcp = sip + 40;
        assert_int_equal(get16(sip + 4), 20 + plen);
        uint32_t sum = 0;
        for (int k = 8; k < 40; k += 2)
            sum += get16(sip + k);
        sum += (uint32_t)(20 + plen) + 6;
        while (sum >> 16)
            sum = (sum & 0xffff) + (sum >> 16);
        assert_int_equal(ref_csum(stcp, 20 + plen, sum), 0);
        assert_int_equal(get32(stcp + 4), 1440 * i);
    }
}

static void gso_refuses_malformed(void **state)
{
    (void)state;
    static uint8_t f[ETH + 40 + 100], seg[NET_GSO_SEG_MAX];
    static struct segs s;
    size_t len = build_v4(f, 100, 0x10);
    struct net_hdr h = {NET_HDR_F_NEEDS_CSUM, NET_HDR_GSO_TCPV4, 54, 0, 34, 16, 0};
    assert_int_equal(net_gso_segment(f, len, &h, seg, collect, &s), -EINVAL); /* mss 0 */
    h.gso_size = NET_GSO_MIN_SEG - 1; /* a frame that would cost thousands of segments */
    assert_int_equal(net_gso_segment(f, len, &h, seg, collect, &s), -EINVAL);
    h.gso_size = 50;
    h.gso_type = NET_HDR_GSO_TCPV6; /* an IPv4 frame */
    assert_int_equal(net_gso_segment(f, len, &h, seg, collect, &s), -EINVAL);
    h.gso_type = NET_HDR_GSO_UDP;
    assert_int_equal(net_gso_segment(f, len, &h, seg, collect, &s), -EINVAL);
    h.gso_type = NET_HDR_GSO_TCPV4;
    assert_int_equal(net_gso_segment(f, ETH + 30, &h, seg, collect, &s), -EINVAL); /* cut */
    f[ETH + 9] = 17;                                                               /* UDP inside */
    assert_int_equal(net_gso_segment(f, len, &h, seg, collect, &s), -EINVAL);
    f[ETH + 9] = 6;
    f[ETH] = 0x4f; /* IHL 60 with 40 bytes of headers: still inside, TCP header cut */
    assert_int_equal(net_gso_segment(f, ETH + 70, &h, seg, collect, &s), -EINVAL);
    f[ETH] = 0x45;
    put16(f + ETH + 6, 0x2000); /* a fragment */
    assert_int_equal(net_gso_segment(f, len, &h, seg, collect, &s), -EINVAL);
    put16(f + ETH + 6, 0);
    f[ETH + 20 + 12] = 0x40; /* TCP data offset below 20 bytes */
    assert_int_equal(net_gso_segment(f, len, &h, seg, collect, &s), -EINVAL);
    assert_int_equal(s.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_round_trip),
        cmocka_unit_test(csum_matches_reference),
        cmocka_unit_test(csum_complete_fills_tcp_checksum),
        cmocka_unit_test(csum_complete_checks_offsets),
        cmocka_unit_test(gso_v4_segments),
        cmocka_unit_test(gso_v6_segments),
        cmocka_unit_test(gso_refuses_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
