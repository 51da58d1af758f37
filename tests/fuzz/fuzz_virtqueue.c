/*
 * The split-virtqueue walker (virtio/virtqueue.c) on rings the fuzzer writes: descriptor
 * tables, indirect tables, avail indices and flags. Every segment handed out must lie in
 * guest RAM, readable segments must precede writable ones, and counts must add up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_guest.h"
#include "virtio/virtqueue.h"

static struct fuzz_guest guest;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_guest_init(&guest);
    return 0;
}

static void check_elem(const struct virtq_elem *e)
{
    uint64_t out = 0, in = 0;
    if (e->out_num + e->in_num > VIRTQ_MAX_SEGS)
        abort();
    for (unsigned i = 0; i < e->out_num + e->in_num; i++) {
        const uint8_t *p = e->iov[i].iov_base;
        size_t len = e->iov[i].iov_len;
        if (p < guest.ram || len > FUZZ_RAM_SIZE || p + len > guest.ram + FUZZ_RAM_SIZE) {
            fprintf(stderr, "segment %u outside guest RAM\n", i);
            abort();
        }
        *(i < e->out_num ? &out : &in) += len;
    }
    if (out != e->out_len || in != e->in_len)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_VIO_HEADER)
        return 0;
    fuzz_guest_load(&guest, data + FUZZ_VIO_HEADER, size - FUZZ_VIO_HEADER);
    struct virtq vq;
    memset(&vq, 0, sizeof(vq));
    unsigned log2 = data[0] & 15; /* up to 2^15: sizes past VIRTQ_MAX_SIZE must be refused */
    vq.state.size = (uint16_t)(1u << log2);
    if (data[0] & 0x80)
        vq.state.size--; /* not a power of two */
    vq.state.desc_addr = FUZZ_RING(0);
    if (data[3] & 1)
        memcpy(&vq.state.desc_addr, data + 4, 8);
    vq.state.avail_addr = FUZZ_RING(0) + FUZZ_AVAIL_OFF + (data[3] >> 1 & 1);
    vq.state.used_addr = FUZZ_RING(0) + FUZZ_USED_OFF + (data[3] >> 2 & 3);
    if (virtq_enable(&vq, &guest.mem, data[1] & 1) < 0)
        return 0;
    static struct virtq_elem elem;
    for (unsigned round = 0; round < 2u * VIRTQ_MAX_SIZE; round++) {
        int ret = virtq_pop(&vq, &guest.mem, &elem);
        if (ret <= 0) {
            if (ret == 0 && (data[2] & 1) && virtq_enable_notify(&vq))
                continue;
            break;
        }
        check_elem(&elem);
        uint32_t written = (uint32_t)(elem.in_len > data[1] ? data[1] : elem.in_len);
        iov_from_buf(elem.iov + elem.out_num, elem.in_num, 0, data, written);
        virtq_push(&vq, elem.head, written);
        if (data[2] & 2)
            virtq_disable_notify(&vq);
        (void)virtq_should_interrupt(&vq);
    }
    virtq_disable(&vq);
    return 0;
}
