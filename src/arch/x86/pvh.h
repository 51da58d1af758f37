/*
 * PVH boot (xen/include/public/arch-x86/hvm/start_info.h): an ELF kernel with a
 * XEN_ELFNOTE_PHYS32_ENTRY note is entered in 32-bit protected mode with paging off and
 * EBX pointing at an hvm_start_info structure. Linux carries this note (CONFIG_PVH), so
 * its uncompressed vmlinux boots without a decompressor.
 */
#ifndef KILN_PVH_H
#define KILN_PVH_H

#include <stddef.h>
#include <stdint.h>

struct boot_error;

#define PVH_START_INFO_MAGIC 0x336ec578
#define PVH_XEN_ELFNOTE_PHYS32_ENTRY 18
#define PVH_START_INFO_SIZE 56
#define PVH_MODLIST_ENTRY_SIZE 32
#define PVH_MEMMAP_ENTRY_SIZE 24

struct elf_kernel_info {
    uint32_t entry;        /* from the PVH note */
    uint64_t lowest_addr;  /* lowest physical address of a PT_LOAD segment */
    uint64_t highest_addr; /* one past the highest */
};

/* Validates an ELF64 x86-64 image and finds its PVH entry. */
int elf_kernel_parse(const uint8_t *img, size_t size, struct elf_kernel_info *info,
                     struct boot_error *err);

#endif
