/* Linux x86 boot protocol (Documentation/arch/x86/boot.rst): the bzImage setup header. */
#ifndef KILN_BZIMAGE_H
#define KILN_BZIMAGE_H

#include <stddef.h>
#include <stdint.h>

struct boot_error;

/* Offsets in the image file and in boot_params (the "zero page"): they are the same. */
#define BP_ACPI_RSDP_ADDR 0x070
#define BP_E820_ENTRIES 0x1e8
#define BP_SETUP_SECTS 0x1f1
#define BP_SYSSIZE 0x1f4
#define BP_VID_MODE 0x1fa
#define BP_BOOT_FLAG 0x1fe
#define BP_JUMP 0x200
#define BP_HEADER 0x202
#define BP_VERSION 0x206
#define BP_TYPE_OF_LOADER 0x210
#define BP_LOADFLAGS 0x211
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_CMD_LINE_PTR 0x228
#define BP_INITRD_ADDR_MAX 0x22c
#define BP_KERNEL_ALIGNMENT 0x230
#define BP_RELOCATABLE 0x234
#define BP_XLOADFLAGS 0x236
#define BP_CMDLINE_SIZE 0x238
#define BP_PREF_ADDRESS 0x258
#define BP_INIT_SIZE 0x260
#define BP_E820_TABLE 0x2d0
#define BP_SIZE 0x1000
#define BP_E820_MAX 128

#define BZ_HDRS_MAGIC 0x53726448 /* "HdrS" */
#define BZ_BOOT_FLAG 0xaa55
#define BZ_MIN_VERSION 0x020c /* 2.12: xloadflags, so the 64-bit entry can be checked */
#define BZ_LOADED_HIGH 0x01
#define BZ_XLF_KERNEL_64 0x01

struct bzimage_info {
    uint16_t version;
    size_t setup_size;  /* real-mode part, including the boot sector */
    size_t kernel_size; /* protected-mode part that follows it */
    size_t header_end;  /* end of the setup header in the file */
    uint32_t init_size; /* memory the kernel needs from its load address while booting */
    uint64_t pref_address;
    uint32_t initrd_addr_max;
    uint32_t cmdline_size;
};

/* Validates the header of a bzImage of `size` bytes. Fills `err` and returns -errno if bad. */
int bzimage_parse(const uint8_t *img, size_t size, struct bzimage_info *info,
                  struct boot_error *err);

struct guest_mem;
struct boot_images;
/* A zero page with only the memory map, command line pointer and RSDP: for raw images. */
int bzimage_write_minimal_zero_page(const struct guest_mem *mem, const struct boot_images *img);

#endif
