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
#include "mem/guest_mem.h"

#define SETUP_SECTS 4
#define SETUP_SIZE ((SETUP_SECTS + 1) * 512)
#define KERNEL_SIZE (64 * 1024)
#define IMAGE_SIZE (SETUP_SIZE + KERNEL_SIZE)

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* A synthetic bzImage with a valid 2.15 header and a recognisable kernel body. */
static uint8_t *make_image(void)
{
    uint8_t *img = calloc(1, IMAGE_SIZE);
    img[BP_SETUP_SECTS] = SETUP_SECTS;
    put32(img + BP_SYSSIZE, KERNEL_SIZE / 16);
    put16(img + BP_BOOT_FLAG, BZ_BOOT_FLAG);
    img[BP_JUMP] = 0xeb;
    img[BP_JUMP + 1] = 0x6a; /* header ends at 0x26c */
    put32(img + BP_HEADER, BZ_HDRS_MAGIC);
    put16(img + BP_VERSION, 0x020f);
    img[BP_LOADFLAGS] = BZ_LOADED_HIGH;
    put32(img + BP_INITRD_ADDR_MAX, 0x7fffffff);
    put32(img + BP_KERNEL_ALIGNMENT, 0x200000);
    img[BP_RELOCATABLE] = 1;
    put16(img + BP_XLOADFLAGS, BZ_XLF_KERNEL_64);
    put32(img + BP_CMDLINE_SIZE, 2048);
    put32(img + BP_PREF_ADDRESS, 0x1000000);
    put32(img + BP_INIT_SIZE, 4 * 1024 * 1024);
    for (int i = 0; i < KERNEL_SIZE; i++)
        img[SETUP_SIZE + i] = (uint8_t)(i * 7);
    return img;
}

static void parse_valid_header(void **state)
{
    uint8_t *img = make_image();
    struct bzimage_info info;
    struct boot_error err = {{0}};
    assert_int_equal(bzimage_parse(img, IMAGE_SIZE, &info, &err), 0);
    assert_int_equal(info.version, 0x020f);
    assert_int_equal(info.setup_size, SETUP_SIZE);
    assert_int_equal(info.kernel_size, KERNEL_SIZE);
    assert_int_equal(info.header_end, 0x26c);
    assert_int_equal(info.pref_address, 0x1000000);
    assert_int_equal(info.cmdline_size, 2048);
    free(img);
}

static void expect_rejected(uint8_t *img, size_t size, const char *needle)
{
    struct bzimage_info info;
    struct boot_error err = {{0}};
    assert_int_equal(bzimage_parse(img, size, &info, &err), -ENOEXEC);
    if (!strstr(err.msg, needle))
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

static void reject_bad_images(void **state)
{
    uint8_t *img = make_image();
    expect_rejected(img, 100, "not a Linux bzImage");
    expect_rejected(img, SETUP_SIZE + 100, "truncated");
    expect_rejected(img, SETUP_SIZE, "truncated");

    put32(img + BP_HEADER, 0x12345678);
    expect_rejected(img, IMAGE_SIZE, "not a Linux bzImage");
    free(img);

    img = make_image();
    put16(img + BP_VERSION, 0x0206);
    expect_rejected(img, IMAGE_SIZE, "too old");
    free(img);

    img = make_image();
    put16(img + BP_XLOADFLAGS, 0);
    expect_rejected(img, IMAGE_SIZE, "64-bit");
    free(img);

    img = make_image();
    put16(img + BP_BOOT_FLAG, 0);
    expect_rejected(img, IMAGE_SIZE, "boot flag");
    free(img);

    img = make_image();
    img[BP_SETUP_SECTS] = 200; /* setup larger than the file */
    expect_rejected(img, IMAGE_SIZE, "truncated");
    free(img);

    img = make_image();
    put32(img + BP_SYSSIZE, 0xffffffff); /* huge syssize must not overflow */
    expect_rejected(img, IMAGE_SIZE, "truncated");
    free(img);
}

struct vm_mem {
    struct guest_mem mem;
};

static void load_writes_kernel_zero_page_initrd(void **state)
{
    struct guest_mem mem;
    assert_int_equal(guest_mem_alloc(&mem, 64 << 20, X86_PCI_HOLE_START, X86_HIGH_RAM_START), 0);
    uint8_t *img = make_image();
    uint8_t initrd[8192];
    memset(initrd, 0xab, sizeof(initrd));
    struct boot_images bi = {
        .kernel = img,
        .kernel_size = IMAGE_SIZE,
        .format = KERNEL_FORMAT_AUTO,
        .initrd = initrd,
        .initrd_size = sizeof(initrd),
        .cmdline = "console=ttyS0 quiet",
        .rsdp_addr = X86_ACPI_ADDR,
    };
    struct x86_entry entry;
    struct boot_error err = {{0}};
    assert_int_equal(x86_boot_load(&mem, &bi, &entry, &err), 0);
    assert_int_equal(entry.mode, X86_ENTRY_LONG64);
    assert_int_equal(entry.rip, X86_KERNEL_ADDR + 0x200);
    assert_int_equal(entry.rsi, X86_ZERO_PAGE_ADDR);
    assert_memory_equal(guest_mem_ptr(&mem, X86_KERNEL_ADDR, KERNEL_SIZE), img + SETUP_SIZE,
                        KERNEL_SIZE);

    const uint8_t *zp = guest_mem_ptr(&mem, X86_ZERO_PAGE_ADDR, BP_SIZE);
    assert_int_equal(get32(zp + BP_HEADER), BZ_HDRS_MAGIC);
    assert_int_equal(zp[BP_TYPE_OF_LOADER], 0xff);
    assert_int_equal(get64(zp + BP_ACPI_RSDP_ADDR), X86_ACPI_ADDR);
    assert_string_equal((const char *)guest_mem_ptr(&mem, get32(zp + BP_CMD_LINE_PTR), 1),
                        "console=ttyS0 quiet");

    uint32_t rd = get32(zp + BP_RAMDISK_IMAGE);
    assert_int_equal(get32(zp + BP_RAMDISK_SIZE), sizeof(initrd));
    assert_int_equal(rd % 4096, 0);
    assert_true(rd >= 0x1000000 + 4 * 1024 * 1024); /* above pref_address + init_size */
    assert_true(rd + sizeof(initrd) <= 64 << 20);
    assert_memory_equal(guest_mem_ptr(&mem, rd, sizeof(initrd)), initrd, sizeof(initrd));

    /* e820: RAM below the EBDA, reserved BIOS area, RAM from 1 MiB to the end. */
    assert_int_equal(zp[BP_E820_ENTRIES], 3);
    const uint8_t *e = zp + BP_E820_TABLE;
    assert_int_equal(get64(e), 0);
    assert_int_equal(get64(e + 8), X86_EBDA_START);
    assert_int_equal(get32(e + 16), E820_RAM);
    assert_int_equal(get32(e + 20 + 16), E820_RESERVED);
    assert_int_equal(get64(e + 40), X86_KERNEL_ADDR);
    assert_int_equal(get64(e + 40 + 8), (64 << 20) - X86_KERNEL_ADDR);
    free(img);
    guest_mem_free(&mem);
}

static void load_refuses_too_little_memory(void **state)
{
    struct guest_mem mem;
    assert_int_equal(guest_mem_alloc(&mem, 16 << 20, X86_PCI_HOLE_START, X86_HIGH_RAM_START), 0);
    uint8_t *img = make_image();
    struct boot_images bi = {.kernel = img, .kernel_size = IMAGE_SIZE, .cmdline = ""};
    struct x86_entry entry;
    struct boot_error err = {{0}};
    /* pref_address 16 MiB + init_size 4 MiB does not fit in 16 MiB. */
    assert_int_equal(x86_boot_load(&mem, &bi, &entry, &err), -ENOMEM);
    assert_non_null(strstr(err.msg, "MiB of memory"));
    free(img);
    guest_mem_free(&mem);
}

static void load_refuses_long_cmdline(void **state)
{
    struct guest_mem mem;
    assert_int_equal(guest_mem_alloc(&mem, 64 << 20, X86_PCI_HOLE_START, X86_HIGH_RAM_START), 0);
    uint8_t *img = make_image();
    char *cmdline = malloc(3000);
    memset(cmdline, 'a', 2999);
    cmdline[2999] = '\0';
    struct boot_images bi = {.kernel = img, .kernel_size = IMAGE_SIZE, .cmdline = cmdline};
    struct x86_entry entry;
    struct boot_error err = {{0}};
    assert_int_equal(x86_boot_load(&mem, &bi, &entry, &err), -E2BIG);
    assert_non_null(strstr(err.msg, "at most 2048"));
    free(cmdline);
    free(img);
    guest_mem_free(&mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_valid_header),
        cmocka_unit_test(reject_bad_images),
        cmocka_unit_test(load_writes_kernel_zero_page_initrd),
        cmocka_unit_test(load_refuses_too_little_memory),
        cmocka_unit_test(load_refuses_long_cmdline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
