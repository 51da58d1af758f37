/*
 * Loading a guest kernel into memory and describing where and how the boot vCPU enters it.
 * Three formats: Linux bzImage (boot protocol 2.12+, 64-bit entry), an uncompressed ELF
 * vmlinux through its PVH entry note, and a raw binary for kiln's micro-guests.
 */
#ifndef KILN_BOOT_H
#define KILN_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/vm_config.h"

struct guest_mem;

struct boot_error {
    char msg[256];
};

enum x86_entry_mode {
    X86_ENTRY_LONG64, /* 64-bit mode, paging on, RSI = zero page (bzImage and raw) */
    X86_ENTRY_PVH32,  /* 32-bit protected mode, paging off, EBX = hvm_start_info */
};

struct x86_entry {
    enum x86_entry_mode mode;
    uint64_t rip;
    uint64_t rsi;
    uint64_t rbx;
    uint64_t rsp;
};

struct boot_images {
    const uint8_t *kernel;
    size_t kernel_size;
    enum kernel_format format; /* KERNEL_FORMAT_AUTO is resolved by magic number */
    const uint8_t *initrd;     /* NULL if none */
    size_t initrd_size;
    const char *cmdline;
    uint64_t rsdp_addr; /* where the ACPI RSDP is, for boot_params / start_info */
};

/* Loads everything into guest memory. On failure fills `err` and returns a negative errno. */
int x86_boot_load(const struct guest_mem *mem, const struct boot_images *img,
                  struct x86_entry *entry, struct boot_error *err);

/* Picks bzImage or ELF from the first bytes. Returns KERNEL_FORMAT_AUTO if neither. */
enum kernel_format x86_detect_kernel_format(const uint8_t *img, size_t size);

/* Shared by the loaders. */
void boot_error_set(struct boot_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int boot_place_initrd(const struct guest_mem *mem, const struct boot_images *img, uint64_t lowest,
                      uint64_t highest, uint64_t *addr, struct boot_error *err);
int boot_write_cmdline(const struct guest_mem *mem, const char *cmdline, uint64_t max_len,
                       struct boot_error *err);

int bzimage_load(const struct guest_mem *mem, const struct boot_images *img,
                 struct x86_entry *entry, struct boot_error *err);
int pvh_load(const struct guest_mem *mem, const struct boot_images *img, struct x86_entry *entry,
             struct boot_error *err);

#endif
