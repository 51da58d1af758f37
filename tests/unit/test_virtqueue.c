/* Hostile-driver tests for the split virtqueue: every malformed ring must fail safely. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mem/dirty.h"
#include "mem/guest_mem.h"
#include "virtio/virtqueue.h"

#define RAM_SIZE (1 << 20)
#define QSIZE 16
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000
#define DATA_GPA 0x10000
#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4

struct fixture {
    struct guest_mem mem;
    uint8_t *ram;
    struct virtq vq;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->ram = calloc(1, RAM_SIZE);
    guest_mem_add_region(&f->mem, 0, RAM_SIZE, f->ram);
    f->vq.state.size = QSIZE;
    f->vq.state.desc_addr = DESC_GPA;
    f->vq.state.avail_addr = AVAIL_GPA;
    f->vq.state.used_addr = USED_GPA;
    assert_int_equal(virtq_enable(&f->vq, &f->mem, true), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    free(f->mem.regions[0].dirty);
    free(f->ram);
    free(f);
    return 0;
}

static void set_desc(struct fixture *f, uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    uint8_t *d = f->ram + table + 16u * i;
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

/* Makes `head` available in the next avail slot and bumps avail->idx. */
static void publish(struct fixture *f, uint16_t head)
{
    uint16_t idx;
    memcpy(&idx, f->ram + AVAIL_GPA + 2, 2);
    memcpy(f->ram + AVAIL_GPA + 4 + 2 * (idx % QSIZE), &head, 2);
    idx++;
    memcpy(f->ram + AVAIL_GPA + 2, &idx, 2);
}

static uint16_t used_idx(struct fixture *f)
{
    uint16_t idx;
    memcpy(&idx, f->ram + USED_GPA + 2, 2);
    return idx;
}

static void good_chain_round_trip(void **state)
{
    struct fixture *f = *state;
    struct virtq_elem elem;
    assert_int_equal(virtq_pop(&f->vq, &f->mem, &elem), 0); /* empty */
    set_desc(f, DESC_GPA, 0, DATA_GPA, 16, F_NEXT, 1);
    set_desc(f, DESC_GPA, 1, DATA_GPA + 0x100, 512, F_NEXT | F_WRITE, 2);
    set_desc(f, DESC_GPA, 2, DATA_GPA + 0x400, 1, F_WRITE, 0);
    publish(f, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->mem, &elem), 1);
    assert_int_equal(elem.head, 0);
    assert_int_equal(elem.out_num, 1);
    assert_int_equal(elem.in_num, 2);
    assert_int_equal(elem.out_len, 16);
    assert_int_equal(elem.in_len, 513);
    assert_ptr_equal(elem.iov[0].iov_base, f->ram + DATA_GPA);
    virtq_push(&f->vq, elem.head, 513);
    assert_int_equal(used_idx(f), 1);
    uint32_t id, len;
    memcpy(&id, f->ram + USED_GPA + 4, 4);
    memcpy(&len, f->ram + USED_GPA + 8, 4);
    assert_int_equal(id, 0);
    assert_int_equal(len, 513);
    assert_false(f->vq.broken);
}

static void expect_broken(struct fixture *f)
{
    struct virtq_elem elem;
    assert_int_equal(virtq_pop(&f->vq, &f->mem, &elem), -EIO);
    assert_true(f->vq.broken);
    /* A broken queue stays quiet: no more elements, no crash. */
    assert_int_equal(virtq_pop(&f->vq, &f->mem, &elem), 0);
    assert_false(virtq_has_work(&f->vq));
}

static void loop_in_chain(void **state)
{
    struct fixture *f = *state;
    set_desc(f, DESC_GPA, 0, DATA_GPA, 8, F_NEXT, 1);
    set_desc(f, DESC_GPA, 1, DATA_GPA, 8, F_NEXT, 0); /* back to 0 */
    publish(f, 0);
    expect_broken(f);
}

static void self_loop(void **state)
{
    struct fixture *f = *state;
    set_desc(f, DESC_GPA, 3, DATA_GPA, 8, F_NEXT, 3);
    publish(f, 3);
    expect_broken(f);
}

static void head_out_of_range(void **state)
{
    struct fixture *f = *state;
    publish(f, QSIZE + 5);
    expect_broken(f);
}

static void next_out_of_range(void **state)
{
    struct fixture *f = *state;
    set_desc(f, DESC_GPA, 0, DATA_GPA, 8, F_NEXT, 999);
    publish(f, 0);
    expect_broken(f);
}

static void buffer_outside_ram(void **state)
{
    struct fixture *f = *state;
    set_desc(f, DESC_GPA, 0, RAM_SIZE - 4, 8, 0, 0); /* straddles the end of RAM */
    publish(f, 0);
    expect_broken(f);
}

static void huge_length_wraps(void **state)
{
    struct fixture *f = *state;
    set_desc(f, DESC_GPA, 0, UINT64_MAX - 16, 0xffffffff, 0, 0);
    publish(f, 0);
    expect_broken(f);
}

static void readable_after_writable(void **state)
{
    struct fixture *f = *state;
    set_desc(f, DESC_GPA, 0, DATA_GPA, 8, F_NEXT | F_WRITE, 1);
    set_desc(f, DESC_GPA, 1, DATA_GPA + 8, 8, 0, 0);
    publish(f, 0);
    expect_broken(f);
}

static void indirect_table(void **state)
{
    struct fixture *f = *state;
    const uint64_t table = 0x8000;
    set_desc(f, table, 0, DATA_GPA, 16, F_NEXT, 1);
    set_desc(f, table, 1, DATA_GPA + 16, 64, F_WRITE, 0);
    set_desc(f, DESC_GPA, 0, table, 2 * 16, F_INDIRECT, 0);
    publish(f, 0);
    struct virtq_elem elem;
    assert_int_equal(virtq_pop(&f->vq, &f->mem, &elem), 1);
    assert_int_equal(elem.out_num, 1);
    assert_int_equal(elem.in_num, 1);
    assert_int_equal(elem.in_len, 64);
}

static void nested_indirect(void **state)
{
    struct fixture *f = *state;
    const uint64_t table = 0x8000, inner = 0x9000;
    set_desc(f, inner, 0, DATA_GPA, 16, 0, 0);
    set_desc(f, table, 0, inner, 16, F_INDIRECT, 0);
    set_desc(f, DESC_GPA, 0, table, 16, F_INDIRECT, 0);
    publish(f, 0);
    expect_broken(f);
}

static void indirect_bad_sizes(void **state)
{
    struct fixture *f = *state;
    set_desc(f, DESC_GPA, 0, 0x8000, 17, F_INDIRECT, 0); /* not whole descriptors */
    publish(f, 0);
    expect_broken(f);
}

static void indirect_too_large(void **state)
{
    struct fixture *f = *state;
    set_desc(f, DESC_GPA, 0, 0x8000, 16 * (VIRTQ_MAX_INDIRECT + 1), F_INDIRECT, 0);
    publish(f, 0);
    expect_broken(f);
}

static void indirect_loop(void **state)
{
    struct fixture *f = *state;
    const uint64_t table = 0x8000;
    set_desc(f, table, 0, DATA_GPA, 8, F_NEXT, 1);
    set_desc(f, table, 1, DATA_GPA, 8, F_NEXT, 0);
    set_desc(f, DESC_GPA, 0, table, 32, F_INDIRECT, 0);
    publish(f, 0);
    expect_broken(f);
}

static void indirect_with_next(void **state)
{
    struct fixture *f = *state;
    set_desc(f, 0x8000, 0, DATA_GPA, 8, 0, 0);
    set_desc(f, DESC_GPA, 0, 0x8000, 16, F_INDIRECT | F_NEXT, 1);
    publish(f, 0);
    expect_broken(f);
}

static void too_many_segments(void **state)
{
    struct fixture *f = *state;
    const uint64_t table = 0x20000;
    unsigned n = VIRTQ_MAX_SEGS + 1;
    for (unsigned i = 0; i < n; i++)
        set_desc(f, table, (uint16_t)i, DATA_GPA, 8, i + 1 < n ? F_NEXT : 0, (uint16_t)(i + 1));
    set_desc(f, DESC_GPA, 0, table, 16 * n, F_INDIRECT, 0);
    publish(f, 0);
    expect_broken(f);
}

static void avail_index_runs_ahead(void **state)
{
    struct fixture *f = *state;
    uint16_t idx = QSIZE + 1; /* more buffers than the ring holds */
    memcpy(f->ram + AVAIL_GPA + 2, &idx, 2);
    expect_broken(f);
}

static void wrapping_indices(void **state)
{
    struct fixture *f = *state;
    /* Start both sides just below the 16-bit wrap and cross it. */
    f->vq.state.last_avail = 0xfffe;
    f->vq.state.used_idx = 0xfffe;
    uint16_t idx = 0xfffe;
    memcpy(f->ram + AVAIL_GPA + 2, &idx, 2);
    set_desc(f, DESC_GPA, 0, DATA_GPA, 8, 0, 0);
    struct virtq_elem elem;
    for (int i = 0; i < 4; i++) {
        publish(f, 0);
        assert_int_equal(virtq_pop(&f->vq, &f->mem, &elem), 1);
        virtq_push(&f->vq, elem.head, 0);
    }
    assert_int_equal(used_idx(f), 2); /* 0xfffe + 4 */
    assert_false(f->vq.broken);
}

/* What the device writes (the chain's writable data, the used ring) is recorded dirty. */
static void device_writes_recorded(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(guest_mem_dirty_start(&f->mem), 0);
    set_desc(f, DESC_GPA, 0, DATA_GPA, 16, F_NEXT, 1);              /* page 0x10: read */
    set_desc(f, DESC_GPA, 1, DATA_GPA + 0x1ff0, 0x20, F_WRITE, 0); /* pages 0x11, 0x12 */
    publish(f, 0);
    struct virtq_elem elem;
    assert_int_equal(virtq_pop(&f->vq, &f->mem, &elem), 1);
    uint64_t map[4] = {0};
    guest_mem_dirty_take(&f->mem, 0, map);
    assert_int_equal(map[0], 0); /* popping writes nothing */
    virtq_written(&f->vq, &elem);
    guest_mem_dirty_take(&f->mem, 0, map);
    assert_int_equal(map[0], (1ULL << 0x11) | (1ULL << 0x12));
    memset(map, 0, sizeof(map));
    virtq_push(&f->vq, elem.head, 0x20);
    guest_mem_dirty_take(&f->mem, 0, map);
    assert_int_equal(map[0], 1ULL << (USED_GPA / 4096));
}

static void rings_outside_ram_refused(void **state)
{
    struct fixture *f = *state;
    struct virtq vq = {0};
    vq.state.size = QSIZE;
    vq.state.desc_addr = DESC_GPA;
    vq.state.avail_addr = AVAIL_GPA;
    /* A used ring in memory the device cannot write (not RAM, e.g. ROM or MMIO). */
    vq.state.used_addr = RAM_SIZE - 8;
    assert_int_equal(virtq_enable(&vq, &f->mem, false), -EINVAL);
    vq.state.used_addr = 0xfee00000;
    assert_int_equal(virtq_enable(&vq, &f->mem, false), -EINVAL);
    vq.state.used_addr = USED_GPA + 1; /* misaligned */
    assert_int_equal(virtq_enable(&vq, &f->mem, false), -EINVAL);
    vq.state.used_addr = USED_GPA;
    vq.state.size = 12; /* not a power of two */
    assert_int_equal(virtq_enable(&vq, &f->mem, false), -EINVAL);
    vq.state.size = 0;
    assert_int_equal(virtq_enable(&vq, &f->mem, false), -EINVAL);
    assert_false(vq.state.ready);
}

static void event_idx_suppression(void **state)
{
    struct fixture *f = *state;
    set_desc(f, DESC_GPA, 0, DATA_GPA, 8, 0, 0);
    struct virtq_elem elem;
    /* used_event = 5: the driver wants an interrupt when used idx passes 5. */
    uint16_t used_event = 5;
    memcpy(f->ram + AVAIL_GPA + 4 + 2 * QSIZE, &used_event, 2);
    int interrupts = 0;
    for (int i = 0; i < 8; i++) {
        publish(f, 0);
        assert_int_equal(virtq_pop(&f->vq, &f->mem, &elem), 1);
        virtq_push(&f->vq, elem.head, 0);
        interrupts += virtq_should_interrupt(&f->vq);
    }
    assert_int_equal(interrupts, 2); /* the first push, then crossing 5 */
    /* Enabling notifications publishes avail_event = last_avail. */
    assert_false(virtq_enable_notify(&f->vq));
    uint16_t avail_event;
    memcpy(&avail_event, f->ram + USED_GPA + 4 + 8 * QSIZE, 2);
    assert_int_equal(avail_event, 8);
}

static void iov_copies(void **state)
{
    uint8_t a[4] = {0}, b[8] = {0};
    struct iovec iov[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
    const uint8_t src[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    assert_int_equal(iov_from_buf(iov, 2, 2, src, sizeof(src)), 10);
    assert_int_equal(a[2], 1);
    assert_int_equal(b[0], 3);
    assert_int_equal(b[7], 10);
    uint8_t out[20];
    assert_int_equal(iov_to_buf(iov, 2, 3, out, sizeof(out)), 9);
    assert_int_equal(out[0], 2);
    assert_int_equal(iov_to_buf(iov, 2, 100, out, sizeof(out)), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(good_chain_round_trip),
        T(loop_in_chain),
        T(self_loop),
        T(head_out_of_range),
        T(next_out_of_range),
        T(buffer_outside_ram),
        T(huge_length_wraps),
        T(readable_after_writable),
        T(indirect_table),
        T(nested_indirect),
        T(indirect_bad_sizes),
        T(indirect_too_large),
        T(indirect_loop),
        T(indirect_with_next),
        T(too_many_segments),
        T(avail_index_runs_ahead),
        T(wrapping_indices),
        T(rings_outside_ram_refused),
        T(device_writes_recorded),
        T(event_idx_suppression),
        T(iov_copies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
