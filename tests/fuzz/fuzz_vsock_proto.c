/*
 * vsock protocol pieces (virtio/vsock_proto.c) that take hostile input directly: packet
 * headers and their checks, the credit arithmetic, the byte ring, iovec slicing, and the
 * "CONNECT <port>" line a host program sends.
 * Input: a 44-byte header, then an operation script (see below), then connect-line bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "virtio/vsock_proto.h"

#define RING_CAP 4096

static void ring_script(const uint8_t *p, size_t n)
{
    struct vsock_ring ring;
    vsock_ring_init(&ring, RING_CAP);
    uint8_t buf[512];
    memset(buf, 0x5a, sizeof(buf));
    struct iovec iov[3] = {{buf, 100}, {buf + 100, 0}, {buf + 100, 412}};
    for (size_t i = 0; i + 2 <= n; i += 2) {
        size_t len = (size_t)(p[i + 1] << 1);
        if (p[i] & 1) {
            size_t off = p[i] >> 1;
            int ret = vsock_ring_append(&ring, iov, 3, off, len);
            if (ret == 0 && ring.len > ring.cap)
                abort();
        } else {
            struct iovec out[2];
            unsigned k = vsock_ring_peek(&ring, out);
            size_t total = 0;
            for (unsigned j = 0; j < k; j++)
                total += out[j].iov_len;
            if (total != ring.len)
                abort();
            vsock_ring_consume(&ring, (uint32_t)(len < ring.len ? len : ring.len));
        }
        struct iovec slice[4];
        size_t got = 0;
        unsigned m = vsock_iov_slice(iov, 3, p[i], len, slice, 4, &got);
        if (m > 4 || got > len)
            abort();
    }
    vsock_ring_free(&ring);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < VSOCK_HDR_SIZE + 1)
        return 0;
    struct vsock_hdr h;
    vsock_hdr_decode(data, &h);
    uint8_t again[VSOCK_HDR_SIZE];
    vsock_hdr_encode(&h, again);
    if (memcmp(again, data, VSOCK_HDR_SIZE) != 0)
        abort();
    const char *why = NULL;
    enum vsock_verdict v = vsock_hdr_check(&h, 3, size - VSOCK_HDR_SIZE, &why);
    if (v != VSOCK_ACCEPT && !why)
        abort();
    (void)vsock_peer_credit(h.buf_alloc, h.fwd_cnt, h.len);
    /* Byte VSOCK_HDR_SIZE splits the rest: that many bytes of ring script, then a line. */
    const uint8_t *rest = data + VSOCK_HDR_SIZE + 1;
    size_t left = size - VSOCK_HDR_SIZE - 1;
    size_t script = data[VSOCK_HDR_SIZE] < left ? data[VSOCK_HDR_SIZE] : left;
    ring_script(rest, script);
    size_t line_len = left - script;
    char *line = malloc(line_len ? line_len : 1); /* exactly sized: no terminator to lean on */
    memcpy(line, rest + script, line_len);
    uint32_t port;
    (void)vsock_parse_connect(line, line_len, &port);
    free(line);
    return 0;
}
