#include "arch/x86/bzimage.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "mem/guest_mem.h"
#include "util.h"
#include "le.h"

int bzimage_parse(const uint8_t *img, size_t size, struct bzimage_info *info,
                  struct boot_error *err)
{
    memset(info, 0, sizeof(*info));
    if (size < BP_CMDLINE_SIZE + 4 || get_le32(img + BP_HEADER) != BZ_HDRS_MAGIC) {
        boot_error_set(err, "not a Linux bzImage (no 'HdrS' boot header)");
        return -ENOEXEC;
    }
    if (get_le16(img + BP_BOOT_FLAG) != BZ_BOOT_FLAG) {
        boot_error_set(err, "bad bzImage boot flag 0x%04x", get_le16(img + BP_BOOT_FLAG));
        return -ENOEXEC;
    }
    info->version = get_le16(img + BP_VERSION);
    if (info->version < BZ_MIN_VERSION) {
        boot_error_set(err, "boot protocol %u.%02u is too old (kiln needs 2.12 or later)",
                       info->version >> 8, info->version & 0xff);
        return -ENOEXEC;
    }
    if (!(img[BP_LOADFLAGS] & BZ_LOADED_HIGH) || !(get_le16(img + BP_XLOADFLAGS) & BZ_XLF_KERNEL_64)) {
        boot_error_set(err, "kernel has no 64-bit entry point (not an x86-64 bzImage)");
        return -ENOEXEC;
    }
    unsigned setup_sects = img[BP_SETUP_SECTS] ? img[BP_SETUP_SECTS] : 4;
    info->setup_size = (size_t)(setup_sects + 1) * 512;
    uint64_t sys_bytes = (uint64_t)get_le32(img + BP_SYSSIZE) * 16;
    if (info->setup_size >= size || sys_bytes == 0 || sys_bytes > size - info->setup_size) {
        boot_error_set(err, "truncated bzImage: the header describes %llu bytes, the file has %zu",
                       (unsigned long long)(info->setup_size + sys_bytes), size);
        return -ENOEXEC;
    }
    info->kernel_size = size - info->setup_size;
    info->header_end = BP_HEADER + img[BP_JUMP + 1];
    if (info->header_end > info->setup_size)
        info->header_end = info->setup_size;
    if (info->header_end > BP_E820_TABLE)
        info->header_end = BP_E820_TABLE;
    info->init_size = get_le32(img + BP_INIT_SIZE);
    info->pref_address = get_le64(img + BP_PREF_ADDRESS);
    info->initrd_addr_max = get_le32(img + BP_INITRD_ADDR_MAX);
    info->cmdline_size = get_le32(img + BP_CMDLINE_SIZE);
    if (info->init_size < info->kernel_size) {
        boot_error_set(err, "bad bzImage header: init_size %u is smaller than the kernel",
                       info->init_size);
        return -ENOEXEC;
    }
    return 0;
}

static void zero_page_set_e820(const struct guest_mem *mem, uint8_t *zp)
{
    struct e820_entry map[E820_MAX_ENTRIES];
    unsigned n = e820_build(mem, map, E820_MAX_ENTRIES);
    for (unsigned i = 0; i < n; i++) {
        uint8_t *e = zp + BP_E820_TABLE + i * 20;
        put_le64(e, map[i].addr);
        put_le64(e + 8, map[i].size);
        put_le32(e + 16, map[i].type);
    }
    zp[BP_E820_ENTRIES] = (uint8_t)n;
}

int bzimage_load(const struct guest_mem *mem, const struct boot_images *img,
                 struct x86_entry *entry, struct boot_error *err)
{
    struct bzimage_info info;
    int ret = bzimage_parse(img->kernel, img->kernel_size, &info, err);
    if (ret < 0)
        return ret;

    /*
     * The kernel decompresses itself to pref_address (or its load address, if higher) and
     * needs init_size bytes there: nothing else may live in that range.
     */
    uint64_t load = X86_KERNEL_ADDR;
    uint64_t run_base = info.pref_address > load ? info.pref_address : load;
    uint64_t kernel_end = run_base + info.init_size;
    void *dst = guest_mem_ptr(mem, load, info.kernel_size);
    if (!dst || !guest_mem_is_ram(mem, run_base, info.init_size)) {
        boot_error_set(err, "the kernel needs %llu MiB of memory; the VM has %llu MiB",
                       (unsigned long long)((kernel_end + MiB - 1) / MiB),
                       (unsigned long long)(mem->ram_size / MiB));
        return -ENOMEM;
    }
    memcpy(dst, img->kernel + info.setup_size, info.kernel_size);

    uint8_t *zp = guest_mem_ptr(mem, X86_ZERO_PAGE_ADDR, BP_SIZE);
    if (!zp)
        return -EFAULT;
    memset(zp, 0, BP_SIZE);
    memcpy(zp + BP_SETUP_SECTS, img->kernel + BP_SETUP_SECTS, info.header_end - BP_SETUP_SECTS);
    put_le16(zp + BP_VID_MODE, 0xffff); /* "normal" text mode: no video mode change */
    zp[BP_TYPE_OF_LOADER] = 0xff;    /* boot loader without an assigned ID */
    zp[BP_LOADFLAGS] |= BZ_LOADED_HIGH;
    put_le64(zp + BP_ACPI_RSDP_ADDR, img->rsdp_addr);
    zero_page_set_e820(mem, zp);

    uint64_t cmdline_max = info.cmdline_size ? info.cmdline_size : 255;
    ret = boot_write_cmdline(mem, img->cmdline, cmdline_max, err);
    if (ret < 0)
        return ret;
    put_le32(zp + BP_CMD_LINE_PTR, (uint32_t)X86_CMDLINE_ADDR);

    if (img->initrd) {
        uint64_t addr;
        uint64_t highest = info.initrd_addr_max ? (uint64_t)info.initrd_addr_max + 1 : 0x38000000;
        ret = boot_place_initrd(mem, img, kernel_end, highest, &addr, err);
        if (ret < 0)
            return ret;
        put_le32(zp + BP_RAMDISK_IMAGE, (uint32_t)addr);
        put_le32(zp + BP_RAMDISK_SIZE, (uint32_t)img->initrd_size);
    }

    /* 64-bit boot protocol: enter at load address + 0x200 with RSI = boot_params. */
    *entry = (struct x86_entry){
        .mode = X86_ENTRY_LONG64,
        .rip = load + 0x200,
        .rsi = X86_ZERO_PAGE_ADDR,
        .rsp = X86_RAW_STACK_TOP,
    };
    return 0;
}

int bzimage_write_minimal_zero_page(const struct guest_mem *mem, const struct boot_images *img)
{
    uint8_t *zp = guest_mem_ptr(mem, X86_ZERO_PAGE_ADDR, BP_SIZE);
    if (!zp)
        return -EFAULT;
    memset(zp, 0, BP_SIZE);
    put_le32(zp + BP_HEADER, BZ_HDRS_MAGIC);
    put_le16(zp + BP_VERSION, BZ_MIN_VERSION);
    put_le32(zp + BP_CMD_LINE_PTR, (uint32_t)X86_CMDLINE_ADDR);
    put_le64(zp + BP_ACPI_RSDP_ADDR, img->rsdp_addr);
    zero_page_set_e820(mem, zp);
    return 0;
}
