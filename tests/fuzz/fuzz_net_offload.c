/*
 * The software offloads behind user-mode networking (net/offload.c): a guest's transmit
 * frame, virtio-net header first, goes through checksum completion or TCP segmentation as
 * net/slirp.c does it. Segments must stay within NET_GSO_SEG_MAX and the frame.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/backend.h"
#include "net/offload.h"

struct emitted {
    unsigned count;
    size_t bytes;
};

static void count_segment(void *opaque, const uint8_t *frame, size_t len)
{
    struct emitted *e = opaque;
    if (len > NET_GSO_SEG_MAX) {
        fprintf(stderr, "segment of %zu bytes\n", len);
        abort();
    }
    /* Touch every byte so that ASan sees a segment that is not all inside `seg`. */
    e->bytes += net_csum_add(0, frame, len) & 1;
    e->count++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t seg[NET_GSO_SEG_MAX];
    if (size < NET_HDR_LEN || size > NET_MAX_FRAME)
        return 0;
    struct net_hdr hdr;
    net_hdr_decode(data, &hdr);
    size_t flen = size - NET_HDR_LEN;
    /* A copy of exactly the frame's size, so that any read past it is caught. */
    uint8_t *frame = malloc(flen ? flen : 1);
    memcpy(frame, data + NET_HDR_LEN, flen);
    struct emitted e = {0};
    if (hdr.gso_type != NET_HDR_GSO_NONE) {
        int n = net_gso_segment(frame, flen, &hdr, seg, count_segment, &e);
        if (n >= 0 && (unsigned)n != e.count)
            abort();
    } else if (hdr.flags & NET_HDR_F_NEEDS_CSUM) {
        (void)net_csum_complete(frame, flen, hdr.csum_start, hdr.csum_offset);
    }
    uint8_t again[NET_HDR_LEN];
    net_hdr_encode(&hdr, again);
    if (memcmp(again, data, NET_HDR_LEN) != 0)
        abort(); /* decode and encode must be inverses */
    free(frame);
    return 0;
}
