#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"
#include "mem/guest_mem.h"

#define LOAD_ADDR 0x1000000
#define TEXT_SIZE 4096
#define BSS_EXTRA 8192
#define ENTRY 0x1000040

/* An ELF64 with one PT_LOAD (with bss) and a PT_NOTE holding Xen's PHYS32_ENTRY. */
struct fake_elf {
    Elf64_Ehdr eh;
    Elf64_Phdr ph[2];
    uint8_t note[12 + 4 + 8];
    uint8_t text[TEXT_SIZE];
};

static struct fake_elf *make_elf(void)
{
    struct fake_elf *f = calloc(1, sizeof(*f));
    memcpy(f->eh.e_ident, ELFMAG, SELFMAG);
    f->eh.e_ident[EI_CLASS] = ELFCLASS64;
    f->eh.e_ident[EI_DATA] = ELFDATA2LSB;
    f->eh.e_type = ET_EXEC;
    f->eh.e_machine = EM_X86_64;
    f->eh.e_phoff = offsetof(struct fake_elf, ph);
    f->eh.e_phentsize = sizeof(Elf64_Phdr);
    f->eh.e_phnum = 2;
    f->ph[0] = (Elf64_Phdr){.p_type = PT_LOAD,
                            .p_offset = offsetof(struct fake_elf, text),
                            .p_paddr = LOAD_ADDR,
                            .p_filesz = TEXT_SIZE,
                            .p_memsz = TEXT_SIZE + BSS_EXTRA};
    f->ph[1] = (Elf64_Phdr){.p_type = PT_NOTE,
                            .p_offset = offsetof(struct fake_elf, note),
                            .p_filesz = sizeof(f->note)};
    uint32_t hdr[3] = {4, 8, PVH_XEN_ELFNOTE_PHYS32_ENTRY};
    memcpy(f->note, hdr, 12);
    memcpy(f->note + 12, "Xen", 4);
    uint64_t entry = ENTRY;
    memcpy(f->note + 16, &entry, 8);
    memset(f->text, 0x90, TEXT_SIZE);
    return f;
}

static void parse_finds_entry(void **state)
{
    struct fake_elf *f = make_elf();
    struct elf_kernel_info info;
    struct boot_error err = {{0}};
    assert_int_equal(elf_kernel_parse((uint8_t *)f, sizeof(*f), &info, &err), 0);
    assert_int_equal(info.entry, ENTRY);
    assert_int_equal(info.lowest_addr, LOAD_ADDR);
    assert_int_equal(info.highest_addr, LOAD_ADDR + TEXT_SIZE + BSS_EXTRA);
    free(f);
}

static void expect_parse_error(struct fake_elf *f, size_t size, const char *needle)
{
    struct elf_kernel_info info;
    struct boot_error err = {{0}};
    assert_int_equal(elf_kernel_parse((uint8_t *)f, size, &info, &err), -ENOEXEC);
    if (!strstr(err.msg, needle))
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
    free(f);
}

static void parse_rejects_bad_files(void **state)
{
    struct fake_elf *f = make_elf();
    f->ph[1].p_type = PT_NULL; /* no note */
    expect_parse_error(f, sizeof(*f), "no PVH entry note");

    f = make_elf();
    expect_parse_error(f, offsetof(struct fake_elf, text) + 10, "outside the file");

    f = make_elf();
    f->eh.e_machine = EM_AARCH64;
    expect_parse_error(f, sizeof(*f), "not a 64-bit x86");

    f = make_elf();
    f->eh.e_phnum = 5000; /* program headers past the end */
    expect_parse_error(f, sizeof(*f), "program headers");

    f = make_elf();
    f->ph[0].p_memsz = f->ph[0].p_filesz - 1;
    expect_parse_error(f, sizeof(*f), "bad sizes");

    f = make_elf();
    f->ph[0].p_paddr = UINT64_MAX - 10; /* segment wraps the address space */
    expect_parse_error(f, sizeof(*f), "bad sizes");

    f = make_elf();
    uint32_t huge_desc = 0xfffffff0; /* note claims more bytes than the segment holds */
    memcpy(f->note + 4, &huge_desc, 4);
    expect_parse_error(f, sizeof(*f), "no PVH entry note");

    f = make_elf();
    expect_parse_error(f, 10, "not an ELF");
}

static void load_builds_start_info(void **state)
{
    struct guest_mem mem;
    assert_int_equal(guest_mem_alloc(&mem, 64 << 20, X86_PCI_HOLE_START, X86_HIGH_RAM_START), 0);
    /* Dirty the bss area: the loader must zero it. */
    memset(guest_mem_ptr(&mem, LOAD_ADDR, TEXT_SIZE + BSS_EXTRA), 0xee, TEXT_SIZE + BSS_EXTRA);
    struct fake_elf *f = make_elf();
    uint8_t initrd[5000];
    memset(initrd, 0x42, sizeof(initrd));
    struct boot_images bi = {
        .kernel = (uint8_t *)f,
        .kernel_size = sizeof(*f),
        .initrd = initrd,
        .initrd_size = sizeof(initrd),
        .cmdline = "console=ttyS0",
        .rsdp_addr = X86_ACPI_ADDR,
    };
    struct x86_entry entry;
    struct boot_error err = {{0}};
    assert_int_equal(x86_boot_load(&mem, &bi, &entry, &err), 0);
    assert_int_equal(entry.mode, X86_ENTRY_PVH32);
    assert_int_equal(entry.rip, ENTRY);
    const uint8_t *bss = guest_mem_ptr(&mem, LOAD_ADDR + TEXT_SIZE, BSS_EXTRA);
    for (int i = 0; i < BSS_EXTRA; i++)
        assert_int_equal(bss[i], 0);

    struct {
        uint32_t magic, version, flags, nr_modules;
        uint64_t modlist, cmdline, rsdp, memmap;
        uint32_t memmap_entries, reserved;
    } si;
    _Static_assert(sizeof(si) == PVH_START_INFO_SIZE, "hvm_start_info layout");
    assert_int_equal(guest_mem_read(&mem, entry.rbx, &si, sizeof(si)), 0);
    assert_int_equal(si.magic, PVH_START_INFO_MAGIC);
    assert_int_equal(si.version, 1);
    assert_int_equal(si.nr_modules, 1);
    assert_int_equal(si.rsdp, X86_ACPI_ADDR);
    assert_string_equal((const char *)guest_mem_ptr(&mem, si.cmdline, 1), "console=ttyS0");
    assert_int_equal(si.memmap_entries, 3);

    uint64_t mod[4];
    assert_int_equal(guest_mem_read(&mem, si.modlist, mod, sizeof(mod)), 0);
    assert_int_equal(mod[1], sizeof(initrd));
    assert_true(mod[0] >= LOAD_ADDR + TEXT_SIZE + BSS_EXTRA);
    assert_memory_equal(guest_mem_ptr(&mem, mod[0], sizeof(initrd)), initrd, sizeof(initrd));

    uint8_t e[24];
    assert_int_equal(guest_mem_read(&mem, si.memmap + 2 * 24, e, sizeof(e)), 0);
    uint64_t addr, size;
    memcpy(&addr, e, 8);
    memcpy(&size, e + 8, 8);
    assert_int_equal(addr, X86_KERNEL_ADDR);
    assert_int_equal(addr + size, 64 << 20);
    free(f);
    guest_mem_free(&mem);
}

static void load_refuses_segment_outside_ram(void **state)
{
    struct guest_mem mem;
    assert_int_equal(guest_mem_alloc(&mem, 16 << 20, X86_PCI_HOLE_START, X86_HIGH_RAM_START), 0);
    struct fake_elf *f = make_elf(); /* loads at 16 MiB: just past the end of RAM */
    struct boot_images bi = {.kernel = (uint8_t *)f, .kernel_size = sizeof(*f), .cmdline = ""};
    struct x86_entry entry;
    struct boot_error err = {{0}};
    assert_int_equal(x86_boot_load(&mem, &bi, &entry, &err), -ENOMEM);
    assert_non_null(strstr(err.msg, "does not fit"));
    free(f);
    guest_mem_free(&mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_finds_entry),
        cmocka_unit_test(parse_rejects_bad_files),
        cmocka_unit_test(load_builds_start_info),
        cmocka_unit_test(load_refuses_segment_outside_ram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
