#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "arch/x86/boot.h"
#include "arch/x86/bzimage.h"
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "arch/x86/regs.h"
#include "mem/guest_mem.h"

static void detect_formats(void **state)
{
    uint8_t buf[0x300] = {0};
    assert_int_equal(x86_detect_kernel_format(buf, sizeof(buf)), KERNEL_FORMAT_AUTO);
    memcpy(buf, "\177ELF", 4);
    assert_int_equal(x86_detect_kernel_format(buf, sizeof(buf)), KERNEL_FORMAT_ELF);
    memset(buf, 0, 4);
    memcpy(buf + BP_HEADER, "HdrS", 4);
    assert_int_equal(x86_detect_kernel_format(buf, sizeof(buf)), KERNEL_FORMAT_BZIMAGE);
    assert_int_equal(x86_detect_kernel_format(buf, BP_HEADER + 3), KERNEL_FORMAT_AUTO);
    assert_int_equal(x86_detect_kernel_format(buf, 0), KERNEL_FORMAT_AUTO);
}

static void e820_small_and_large(void **state)
{
    struct guest_mem mem;
    struct e820_entry map[E820_MAX_ENTRIES];
    assert_int_equal(guest_mem_alloc(&mem, 128 << 20, X86_PCI_HOLE_START, X86_HIGH_RAM_START), 0);
    assert_int_equal(e820_build(&mem, map, E820_MAX_ENTRIES), 3);
    assert_int_equal(map[2].addr + map[2].size, 128 << 20);
    guest_mem_free(&mem);

    assert_int_equal(guest_mem_alloc(&mem, 4ULL << 30, X86_PCI_HOLE_START, X86_HIGH_RAM_START), 0);
    assert_int_equal(e820_build(&mem, map, E820_MAX_ENTRIES), 4);
    assert_int_equal(map[2].addr + map[2].size, X86_PCI_HOLE_START);
    assert_int_equal(map[3].addr, X86_HIGH_RAM_START);
    assert_int_equal(map[3].size, (4ULL << 30) - X86_PCI_HOLE_START);
    assert_int_equal(map[3].type, E820_RAM);
    uint64_t ram = 0;
    for (int i = 0; i < 4; i++)
        ram += map[i].type == E820_RAM ? map[i].size : 0;
    assert_int_equal(ram, (4ULL << 30) - (X86_KERNEL_ADDR - X86_EBDA_START));
    /* A short table is cut, never overrun. */
    assert_int_equal(e820_build(&mem, map, 2), 2);
    guest_mem_free(&mem);
}

static void raw_image_entry_and_zero_page(void **state)
{
    struct guest_mem mem;
    assert_int_equal(guest_mem_alloc(&mem, 32 << 20, X86_PCI_HOLE_START, X86_HIGH_RAM_START), 0);
    uint8_t code[] = {0xf4, 0xeb, 0xfd};
    struct boot_images bi = {
        .kernel = code,
        .kernel_size = sizeof(code),
        .format = KERNEL_FORMAT_RAW,
        .cmdline = "cpus=2",
        .rsdp_addr = X86_ACPI_ADDR,
    };
    struct x86_entry entry;
    struct boot_error err = {{0}};
    assert_int_equal(x86_boot_load(&mem, &bi, &entry, &err), 0);
    assert_int_equal(entry.mode, X86_ENTRY_LONG64);
    assert_int_equal(entry.rip, X86_RAW_LOAD_ADDR);
    assert_int_equal(entry.rsp, X86_RAW_STACK_TOP);
    assert_int_equal(entry.rsi, X86_ZERO_PAGE_ADDR);
    assert_memory_equal(guest_mem_ptr(&mem, X86_RAW_LOAD_ADDR, sizeof(code)), code, sizeof(code));
    const uint8_t *zp = guest_mem_ptr(&mem, X86_ZERO_PAGE_ADDR, BP_SIZE);
    assert_int_equal(zp[BP_E820_ENTRIES], 3);
    uint32_t ptr;
    memcpy(&ptr, zp + BP_CMD_LINE_PTR, 4);
    assert_string_equal((const char *)guest_mem_ptr(&mem, ptr, 1), "cpus=2");
    guest_mem_free(&mem);
}

static void raw_image_too_big(void **state)
{
    struct guest_mem mem;
    assert_int_equal(guest_mem_alloc(&mem, 8 << 20, X86_PCI_HOLE_START, X86_HIGH_RAM_START), 0);
    size_t size = 8 << 20; /* 1 MiB + 8 MiB cannot fit in 8 MiB */
    uint8_t *big = calloc(1, size);
    struct boot_images bi = {
        .kernel = big, .kernel_size = size, .format = KERNEL_FORMAT_RAW, .cmdline = ""};
    struct x86_entry entry;
    struct boot_error err = {{0}};
    assert_int_equal(x86_boot_load(&mem, &bi, &entry, &err), -ENOMEM);
    assert_non_null(strstr(err.msg, "does not fit"));
    free(big);
    guest_mem_free(&mem);
}

static void unknown_format_refused(void **state)
{
    struct guest_mem mem;
    assert_int_equal(guest_mem_alloc(&mem, 8 << 20, X86_PCI_HOLE_START, X86_HIGH_RAM_START), 0);
    uint8_t junk[4096] = {1, 2, 3};
    struct boot_images bi = {.kernel = junk, .kernel_size = sizeof(junk), .cmdline = ""};
    struct x86_entry entry;
    struct boot_error err = {{0}};
    assert_int_equal(x86_boot_load(&mem, &bi, &entry, &err), -ENOEXEC);
    assert_non_null(strstr(err.msg, "not a kernel"));
    guest_mem_free(&mem);
}

static void boot_tables_identity_map(void **state)
{
    struct guest_mem mem;
    assert_int_equal(guest_mem_alloc(&mem, 8 << 20, X86_PCI_HOLE_START, X86_HIGH_RAM_START), 0);
    assert_int_equal(x86_write_boot_tables(&mem), 0);
    const uint64_t *pml4 = guest_mem_ptr(&mem, X86_PML4_ADDR, 4096);
    const uint64_t *pdpt = guest_mem_ptr(&mem, X86_PDPT_ADDR, 4096);
    const uint64_t *pd = guest_mem_ptr(&mem, X86_PD_ADDR, 4 * 4096);
    assert_int_equal(pml4[0] & ~0xfffULL, X86_PDPT_ADDR);
    assert_int_equal(pml4[1], 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pdpt[i] & ~0xfffULL, X86_PD_ADDR + i * 4096);
    /* Entry n maps 2 MiB page n onto itself, present, writable, large. */
    for (uint64_t n = 0; n < 2048; n += 511)
        assert_int_equal(pd[n], (n << 21) | 0x83);
    const uint64_t *gdt = guest_mem_ptr(&mem, X86_GDT_ADDR, 32);
    assert_int_equal(gdt[X86_SEL_CODE64 / 8] & (1ULL << 53), 1ULL << 53); /* L bit */
    assert_int_equal(gdt[X86_SEL_CODE32 / 8] & (1ULL << 54), 1ULL << 54); /* D bit */
    /* The reset vector writes the reset value to the ACPI reset register (port 0x604). */
    const uint8_t *rv = guest_mem_ptr(&mem, X86_RESET_VECTOR, 16);
    const uint8_t expect[] = {0xb0, 0x01, 0xba, 0x04, 0x06, 0xee, 0xf4};
    assert_memory_equal(rv, expect, sizeof(expect));
    guest_mem_free(&mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(detect_formats),
        cmocka_unit_test(e820_small_and_large),
        cmocka_unit_test(raw_image_entry_and_zero_page),
        cmocka_unit_test(raw_image_too_big),
        cmocka_unit_test(unknown_format_refused),
        cmocka_unit_test(boot_tables_identity_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
