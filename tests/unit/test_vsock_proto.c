/* virtio-vsock wire rules: header codec, what the device accepts, credit, ring, handshake. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "virtio/vsock_proto.h"

#define GUEST_CID 3

static struct vsock_hdr good_hdr(uint16_t op)
{
    return (struct vsock_hdr){
        .src_cid = GUEST_CID,
        .dst_cid = VSOCK_HOST_CID,
        .src_port = 1025,
        .dst_port = 52,
        .type = VSOCK_TYPE_STREAM,
        .op = op,
        .buf_alloc = 262144,
    };
}

static void hdr_layout_is_little_endian_packed(void **state)
{
    struct vsock_hdr h = {
        .src_cid = 0x0102030405060708ULL,
        .dst_cid = 0x1112131415161718ULL,
        .src_port = 0x21222324,
        .dst_port = 0x31323334,
        .len = 0x41424344,
        .type = 0x5152,
        .op = 0x6162,
        .flags = 0x71727374,
        .buf_alloc = 0x81828384,
        .fwd_cnt = 0x91929394,
    };
    uint8_t raw[VSOCK_HDR_SIZE];
    vsock_hdr_encode(&h, raw);
    /* Field offsets of struct virtio_vsock_hdr: 0, 8, 16, 20, 24, 28, 30, 32, 36, 40. */
    assert_int_equal(raw[0], 0x08);
    assert_int_equal(raw[7], 0x01);
    assert_int_equal(raw[8], 0x18);
    assert_int_equal(raw[16], 0x24);
    assert_int_equal(raw[20], 0x34);
    assert_int_equal(raw[24], 0x44);
    assert_int_equal(raw[28], 0x52);
    assert_int_equal(raw[30], 0x62);
    assert_int_equal(raw[32], 0x74);
    assert_int_equal(raw[36], 0x84);
    assert_int_equal(raw[40], 0x94);
    assert_int_equal(raw[43], 0x91);
    struct vsock_hdr back;
    vsock_hdr_decode(raw, &back);
    assert_true(back.src_cid == h.src_cid && back.dst_cid == h.dst_cid);
    assert_true(back.src_port == h.src_port && back.dst_port == h.dst_port);
    assert_true(back.len == h.len && back.type == h.type && back.op == h.op);
    assert_true(back.flags == h.flags && back.buf_alloc == h.buf_alloc);
    assert_true(back.fwd_cnt == h.fwd_cnt);
}

static void check_accepts_good_packets(void **state)
{
    const char *why;
    for (uint16_t op = VSOCK_OP_REQUEST; op <= VSOCK_OP_CREDIT_REQUEST; op++) {
        struct vsock_hdr h = good_hdr(op);
        assert_int_equal(vsock_hdr_check(&h, GUEST_CID, 0, &why), VSOCK_ACCEPT);
        assert_null(why);
    }
    struct vsock_hdr rw = good_hdr(VSOCK_OP_RW);
    rw.len = 4096;
    assert_int_equal(vsock_hdr_check(&rw, GUEST_CID, 4096, &why), VSOCK_ACCEPT);
}

static void check_drops_forged_source(void **state)
{
    const char *why;
    struct vsock_hdr h = good_hdr(VSOCK_OP_REQUEST);
    h.src_cid = GUEST_CID + 1;
    assert_int_equal(vsock_hdr_check(&h, GUEST_CID, 0, &why), VSOCK_DROP);
    assert_non_null(why);
    /* The upper half of the 64-bit CID counts too. */
    h.src_cid = GUEST_CID | 1ULL << 32;
    assert_int_equal(vsock_hdr_check(&h, GUEST_CID, 0, &why), VSOCK_DROP);
    h.src_cid = VSOCK_HOST_CID; /* the guest pretending to be the host */
    assert_int_equal(vsock_hdr_check(&h, GUEST_CID, 0, &why), VSOCK_DROP);
}

static void check_resets_bad_packets(void **state)
{
    const char *why;
    struct vsock_hdr h = good_hdr(VSOCK_OP_REQUEST);
    h.dst_cid = 7; /* another VM: nobody to route it to */
    assert_int_equal(vsock_hdr_check(&h, GUEST_CID, 0, &why), VSOCK_RESET);
    h = good_hdr(VSOCK_OP_REQUEST);
    h.type = 2; /* SEQPACKET, not offered */
    assert_int_equal(vsock_hdr_check(&h, GUEST_CID, 0, &why), VSOCK_RESET);
    h = good_hdr(VSOCK_OP_INVALID);
    assert_int_equal(vsock_hdr_check(&h, GUEST_CID, 0, &why), VSOCK_RESET);
    h = good_hdr(8);
    assert_int_equal(vsock_hdr_check(&h, GUEST_CID, 0, &why), VSOCK_RESET);
    h = good_hdr(0xffff);
    assert_int_equal(vsock_hdr_check(&h, GUEST_CID, 0, &why), VSOCK_RESET);
    /* The header claims more payload than the descriptors hold. */
    h = good_hdr(VSOCK_OP_RW);
    h.len = 4097;
    assert_int_equal(vsock_hdr_check(&h, GUEST_CID, 4096, &why), VSOCK_RESET);
    h.len = UINT32_MAX;
    assert_int_equal(vsock_hdr_check(&h, GUEST_CID, 0, &why), VSOCK_RESET);
    assert_non_null(why);
}

static void check_never_answers_rst_with_rst(void **state)
{
    const char *why;
    struct vsock_hdr h = good_hdr(VSOCK_OP_RST);
    h.type = 9;
    h.len = 100; /* an RST carries nothing we use: accepted whatever else it says */
    assert_int_equal(vsock_hdr_check(&h, GUEST_CID, 0, &why), VSOCK_ACCEPT);
    h.dst_cid = 9;
    assert_int_equal(vsock_hdr_check(&h, GUEST_CID, 0, &why), VSOCK_DROP);
}

static void credit_math(void **state)
{
    assert_int_equal(vsock_peer_credit(1000, 0, 0), 1000);
    assert_int_equal(vsock_peer_credit(1000, 0, 400), 600);
    assert_int_equal(vsock_peer_credit(1000, 300, 400), 900);
    assert_int_equal(vsock_peer_credit(1000, 0, 1000), 0);
    assert_int_equal(vsock_peer_credit(0, 0, 0), 0);
    /* Counters wrap modulo 2^32. */
    assert_int_equal(vsock_peer_credit(1000, UINT32_MAX - 99, 100), 800);
    /* A peer that claims to have consumed more than we sent gets nothing, not 4 GiB. */
    assert_int_equal(vsock_peer_credit(1000, 500, 400), 0);
    /* A peer that shrank its buffer below what is in flight. */
    assert_int_equal(vsock_peer_credit(100, 0, 400), 0);
}

static void ring_wraps_and_refuses_overflow(void **state)
{
    struct vsock_ring ring;
    vsock_ring_init(&ring, 8);
    assert_null(ring.buf); /* allocated on first use */
    uint8_t data[16];
    for (unsigned i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)i;
    /* Two source segments, skipping the first 2 bytes of the first. */
    struct iovec src[2] = {{data, 4}, {data + 4, 12}};
    assert_int_equal(vsock_ring_append(&ring, src, 2, 2, 6), 0);
    assert_int_equal(ring.len, 6);
    assert_int_equal(vsock_ring_room(&ring), 2);
    assert_int_equal(vsock_ring_append(&ring, src, 2, 0, 3), -ENOSPC);
    assert_int_equal(ring.len, 6);
    vsock_ring_consume(&ring, 5);
    assert_int_equal(vsock_ring_append(&ring, src, 2, 10, 6), 0); /* wraps */
    struct iovec out[2];
    assert_int_equal(vsock_ring_peek(&ring, out), 2);
    assert_int_equal(out[0].iov_len + out[1].iov_len, 7);
    uint8_t flat[7];
    memcpy(flat, out[0].iov_base, out[0].iov_len);
    memcpy(flat + out[0].iov_len, out[1].iov_base, out[1].iov_len);
    const uint8_t want[7] = {7, 10, 11, 12, 13, 14, 15};
    assert_memory_equal(flat, want, sizeof(want));
    vsock_ring_consume(&ring, 100); /* more than held: empties it */
    assert_int_equal(ring.len, 0);
    assert_int_equal(vsock_ring_peek(&ring, out), 0);
    assert_int_equal(vsock_ring_append(&ring, src, 2, 0, 0), 0);
    vsock_ring_free(&ring);
    assert_null(ring.buf);
}

static void iov_slice_skips_and_limits(void **state)
{
    uint8_t a[10], b[10], c[10];
    struct iovec iov[3] = {{a, 10}, {b, 10}, {c, 10}};
    struct iovec out[4];
    size_t got;
    assert_int_equal(vsock_iov_slice(iov, 3, 12, 15, out, 4, &got), 2);
    assert_int_equal(got, 15);
    assert_ptr_equal(out[0].iov_base, b + 2);
    assert_int_equal(out[0].iov_len, 8);
    assert_ptr_equal(out[1].iov_base, c);
    assert_int_equal(out[1].iov_len, 7);
    /* Asking past the end gives what is there. */
    assert_int_equal(vsock_iov_slice(iov, 3, 25, 100, out, 4, &got), 1);
    assert_int_equal(got, 5);
    /* Room for fewer output entries than needed. */
    assert_int_equal(vsock_iov_slice(iov, 3, 0, 30, out, 2, &got), 2);
    assert_int_equal(got, 20);
    assert_int_equal(vsock_iov_slice(iov, 3, 30, 10, out, 4, &got), 0);
    assert_int_equal(got, 0);
}

static void connect_line_parsing(void **state)
{
    uint32_t port = 0;
    assert_int_equal(vsock_parse_connect("CONNECT 52", 10, &port), 0);
    assert_int_equal(port, 52);
    assert_int_equal(vsock_parse_connect("CONNECT 4294967294\r", 19, &port), 0);
    assert_int_equal(port, 4294967294u);
    const char *bad[] = {
        "CONNECT ",           /* no port */
        "CONNECT 4294967295", /* VMADDR_PORT_ANY */
        "CONNECT 99999999999",
        "CONNECT -1",
        "CONNECT 1 2",
        "CONNECT 0x10",
        "connect 52",
        "CONNECT\t52",
        "OK 52",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(vsock_parse_connect(bad[i], strlen(bad[i]), &port), -EINVAL);
    /* The length given is what counts, not a terminating NUL. */
    assert_int_equal(vsock_parse_connect("CONNECT 5212", 9, &port), 0);
    assert_int_equal(port, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hdr_layout_is_little_endian_packed),
        cmocka_unit_test(check_accepts_good_packets),
        cmocka_unit_test(check_drops_forged_source),
        cmocka_unit_test(check_resets_bad_packets),
        cmocka_unit_test(check_never_answers_rst_with_rst),
        cmocka_unit_test(credit_math),
        cmocka_unit_test(ring_wraps_and_refuses_overflow),
        cmocka_unit_test(iov_slice_skips_and_limits),
        cmocka_unit_test(connect_line_parsing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
