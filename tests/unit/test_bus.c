#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/bus.h"

struct probe {
    uint64_t offset;
    uint32_t len;
    bool is_write;
    int calls;
};

static void probe_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct probe *p = opaque;
    p->offset = offset;
    p->len = len;
    p->is_write = is_write;
    p->calls++;
    if (!is_write)
        memset(data, 0x5a, len);
}

static void dispatch_to_owner_with_offset(void **state)
{
    struct bus bus;
    struct probe a = {0}, b = {0};
    bus_init(&bus, "pio");
    assert_int_equal(bus_register(&bus, 0x3f8, 8, "com1", probe_io, &a), 0);
    assert_int_equal(bus_register(&bus, 0x70, 2, "rtc", probe_io, &b), 0);
    uint8_t data[4] = {1, 2, 3, 4};
    assert_true(bus_dispatch(&bus, 0x3fd, data, 1, false));
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.offset, 5);
    assert_int_equal(data[0], 0x5a);
    assert_true(bus_dispatch(&bus, 0x71, data, 1, true));
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.offset, 1);
    assert_true(b.is_write);
    bus_destroy(&bus);
}

static void unclaimed_reads_all_ones(void **state)
{
    struct bus bus;
    struct probe a = {0};
    bus_init(&bus, "mmio");
    assert_int_equal(bus_register(&bus, 0x1000, 0x100, "dev", probe_io, &a), 0);
    uint8_t data[8] = {0};
    assert_false(bus_dispatch(&bus, 0xfff, data, 8, false));
    for (int i = 0; i < 8; i++)
        assert_int_equal(data[i], 0xff);
    assert_false(bus_dispatch(&bus, 0x1100, data, 4, true));
    assert_false(bus_dispatch(&bus, UINT64_MAX, data, 1, false));
    assert_int_equal(a.calls, 0);
    bus_destroy(&bus);
}

static void overlaps_refused(void **state)
{
    struct bus bus;
    struct probe a = {0};
    bus_init(&bus, "pio");
    assert_int_equal(bus_register(&bus, 0x100, 0x10, "a", probe_io, &a), 0);
    assert_int_equal(bus_register(&bus, 0x108, 0x10, "overlap-high", probe_io, &a), -EEXIST);
    assert_int_equal(bus_register(&bus, 0xf8, 0x10, "overlap-low", probe_io, &a), -EEXIST);
    assert_int_equal(bus_register(&bus, 0x100, 1, "same-start", probe_io, &a), -EEXIST);
    assert_int_equal(bus_register(&bus, 0x0, 0x1000, "covers", probe_io, &a), -EEXIST);
    assert_int_equal(bus_register(&bus, 0x110, 0x10, "adjacent", probe_io, &a), 0);
    assert_int_equal(bus_register(&bus, 0xf0, 0x10, "adjacent-below", probe_io, &a), 0);
    assert_int_equal(bus_register(&bus, 0x200, 0, "empty", probe_io, &a), -EINVAL);
    assert_int_equal(bus_register(&bus, UINT64_MAX - 4, 0x10, "wraps", probe_io, &a), -EINVAL);
    assert_int_equal(bus.count, 3);
    bus_destroy(&bus);
}

static void many_ranges_stay_sorted(void **state)
{
    struct bus bus;
    struct probe p[64];
    memset(p, 0, sizeof(p));
    bus_init(&bus, "mmio");
    /* Register out of order; lookups must still find each one. */
    for (int i = 0; i < 64; i++) {
        uint64_t base = (uint64_t)((i * 37) % 64) * 0x1000;
        assert_int_equal(bus_register(&bus, base, 0x800, "r", probe_io, &p[i]), 0);
    }
    for (int i = 0; i < 64; i++) {
        uint64_t base = (uint64_t)((i * 37) % 64) * 0x1000;
        const struct bus_range *r = bus_find(&bus, base + 0x7ff);
        assert_non_null(r);
        assert_ptr_equal(r->opaque, &p[i]);
        assert_null(bus_find(&bus, base + 0x800));
    }
    bus_destroy(&bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dispatch_to_owner_with_offset),
        cmocka_unit_test(unclaimed_reads_all_ones),
        cmocka_unit_test(overlaps_refused),
        cmocka_unit_test(many_ranges_stay_sorted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
