#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "arch/x86/layout.h"
#include "mem/dirty.h"
#include "mem/guest_mem.h"

static uint8_t low[64 * 1024];
static uint8_t high[16 * 1024];

static void setup_two_regions(struct guest_mem *mem)
{
    memset(mem, 0, sizeof(*mem));
    assert_int_equal(guest_mem_add_region(mem, 0, sizeof(low), low), 0);
    assert_int_equal(guest_mem_add_region(mem, 0x100000, sizeof(high), high), 0);
}

static void ptr_inside_regions(void **state)
{
    struct guest_mem mem;
    setup_two_regions(&mem);
    assert_ptr_equal(guest_mem_ptr(&mem, 0, 1), low);
    assert_ptr_equal(guest_mem_ptr(&mem, 100, 10), low + 100);
    assert_ptr_equal(guest_mem_ptr(&mem, sizeof(low) - 1, 1), low + sizeof(low) - 1);
    assert_ptr_equal(guest_mem_ptr(&mem, 0x100000, sizeof(high)), high);
    assert_int_equal(mem.ram_size, sizeof(low) + sizeof(high));
    assert_int_equal(guest_mem_end(&mem), 0x100000 + sizeof(high));
}

static void ptr_rejects_outside_and_overflow(void **state)
{
    struct guest_mem mem;
    setup_two_regions(&mem);
    assert_null(guest_mem_ptr(&mem, sizeof(low), 1));            /* just past the end */
    assert_null(guest_mem_ptr(&mem, sizeof(low) - 1, 2));        /* straddles the end */
    assert_null(guest_mem_ptr(&mem, 0x80000, 1));                /* in the gap */
    assert_null(guest_mem_ptr(&mem, sizeof(low) - 8, 0x100000)); /* spans the gap */
    assert_null(guest_mem_ptr(&mem, UINT64_MAX, 2));             /* address wraps */
    assert_null(guest_mem_ptr(&mem, 16, UINT64_MAX));            /* length wraps */
    assert_null(guest_mem_ptr(&mem, 0x100000 + 8, UINT64_MAX - 4));
    assert_false(guest_mem_is_ram(&mem, 0xfee00000, 4));
}

static void read_write_checked(void **state)
{
    struct guest_mem mem;
    setup_two_regions(&mem);
    uint32_t v = 0xdeadbeef, r = 0;
    assert_int_equal(guest_mem_write(&mem, 0x100010, &v, 4), 0);
    assert_int_equal(guest_mem_read(&mem, 0x100010, &r, 4), 0);
    assert_int_equal(r, 0xdeadbeef);
    assert_int_equal(guest_mem_write(&mem, 0x100000 + sizeof(high) - 2, &v, 4), -EFAULT);
    assert_int_equal(guest_mem_read(&mem, 0x90000, &r, 4), -EFAULT);
}

static void regions_must_not_overlap(void **state)
{
    struct guest_mem mem;
    setup_two_regions(&mem);
    uint8_t other[4096];
    assert_int_equal(guest_mem_add_region(&mem, 0x1000, sizeof(other), other), -EEXIST);
    assert_int_equal(guest_mem_add_region(&mem, 0x100000 + 4096, 4096, other), -EEXIST);
    assert_int_equal(guest_mem_add_region(&mem, UINT64_MAX - 10, 4096, other), -EINVAL);
    assert_int_equal(guest_mem_add_region(&mem, 0x200000, 0, other), -EINVAL);
}

static void alloc_splits_around_pci_hole(void **state)
{
    struct guest_mem mem;
    assert_int_equal(guest_mem_alloc(&mem, 4ULL << 30, X86_PCI_HOLE_START, X86_HIGH_RAM_START), 0);
    assert_int_equal(mem.nregions, 2);
    assert_int_equal(mem.regions[0].gpa, 0);
    assert_int_equal(mem.regions[0].size, X86_PCI_HOLE_START);
    assert_int_equal(mem.regions[1].gpa, X86_HIGH_RAM_START);
    assert_int_equal(mem.regions[1].size, (4ULL << 30) - X86_PCI_HOLE_START);
    assert_false(guest_mem_is_ram(&mem, X86_IOAPIC_ADDR, 4));
    assert_true(guest_mem_is_ram(&mem, X86_HIGH_RAM_START + (1ULL << 30) - 4, 4));
    guest_mem_free(&mem);

    assert_int_equal(guest_mem_alloc(&mem, 128ULL << 20, X86_PCI_HOLE_START, X86_HIGH_RAM_START),
                     0);
    assert_int_equal(mem.nregions, 1);
    assert_int_equal(mem.regions[0].size, 128ULL << 20);
    guest_mem_free(&mem);
}

/* Untouched anonymous pages are known without reading them; a file's pages are not. */
static void untouched_pages_known(void **state)
{
    struct guest_mem mem;
    assert_int_equal(guest_mem_alloc(&mem, 64 * GUEST_PAGE_SIZE, X86_PCI_HOLE_START,
                                     X86_HIGH_RAM_START), 0);
    struct guest_region *r = &mem.regions[0];
    r->hva[3 * GUEST_PAGE_SIZE] = 1;               /* written */
    r->hva[40 * GUEST_PAGE_SIZE + 100] = 7;        /* written */
    volatile uint8_t seen = r->hva[10 * GUEST_PAGE_SIZE]; /* read: the zero page, present */
    (void)seen;
    uint64_t bits = 0;
    assert_int_equal(guest_mem_untouched(&mem, r, &bits), 0);
    uint64_t want = ~0ull & ~(1ull << 3) & ~(1ull << 10) & ~(1ull << 40);
    assert_int_equal(bits, want);
    guest_mem_free(&mem);

    char path[] = "/tmp/kiln-test-untouched-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(ftruncate(fd, 64 * GUEST_PAGE_SIZE), 0);
    assert_int_equal(guest_mem_map_file(&mem, fd, 64 * GUEST_PAGE_SIZE, X86_PCI_HOLE_START,
                                        X86_HIGH_RAM_START), 0);
    assert_int_equal(guest_mem_untouched(&mem, &mem.regions[0], &bits), -ENOTSUP);
    guest_mem_free(&mem);
    close(fd);
    (void)state;
}

/* Writes through the layer are recorded, per page and region, once recording started. */
static void dirty_pages_recorded(void **state)
{
    (void)state;
    struct guest_mem mem;
    setup_two_regions(&mem);
    uint8_t byte = 1;
    assert_int_equal(guest_mem_write(&mem, 0x1000, &byte, 1), 0); /* before: not recorded */
    assert_int_equal(guest_mem_dirty_start(&mem), 0);
    assert_int_equal(guest_mem_write(&mem, 0x2fff, &byte, 1), 0);            /* page 2 */
    assert_int_equal(guest_mem_write(&mem, 0x4ffe, "ab", 2), 0);             /* page 4 */
    guest_mem_mark_dirty(&mem, 0x5fff, 2);                                    /* pages 5, 6 */
    guest_mem_mark_dirty_hva(&mem, high + 4096, 1);                           /* high page 1 */
    guest_mem_mark_dirty(&mem, 0x900000, 1);                                  /* not RAM */
    guest_mem_mark_dirty_hva(&mem, &byte, 1);                                /* not RAM */
    uint64_t low_map[1] = {0}, high_map[1] = {0};
    assert_int_equal(guest_dirty_words(sizeof(low)), 1);
    guest_mem_dirty_take(&mem, 0, low_map);
    guest_mem_dirty_take(&mem, 1, high_map);
    assert_int_equal(low_map[0], (1u << 2) | (1u << 4) | (1u << 5) | (1u << 6));
    assert_int_equal(high_map[0], 1u << 1);
    /* Taking clears; a restart forgets. */
    low_map[0] = 0;
    guest_mem_dirty_take(&mem, 0, low_map);
    assert_int_equal(low_map[0], 0);
    guest_mem_mark_dirty(&mem, 0, 1);
    assert_int_equal(guest_mem_dirty_start(&mem), 0);
    guest_mem_dirty_take(&mem, 0, low_map);
    assert_int_equal(low_map[0], 0);
    for (unsigned i = 0; i < mem.nregions; i++)
        free(mem.regions[i].dirty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ptr_inside_regions),
        cmocka_unit_test(ptr_rejects_outside_and_overflow),
        cmocka_unit_test(read_write_checked),
        cmocka_unit_test(regions_must_not_overlap),
        cmocka_unit_test(alloc_splits_around_pci_hole),
        cmocka_unit_test(dirty_pages_recorded),
        cmocka_unit_test(untouched_pages_known),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
