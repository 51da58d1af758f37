#include "arch/x86/boot.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86/bzimage.h"
#include "arch/x86/layout.h"
#include "mem/guest_mem.h"
#include "util.h"

void boot_error_set(struct boot_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

enum kernel_format x86_detect_kernel_format(const uint8_t *img, size_t size)
{
    if (size >= 4 && memcmp(img, "\177ELF", 4) == 0)
        return KERNEL_FORMAT_ELF;
    if (size >= BP_HEADER + 4 && memcmp(img + BP_HEADER, "HdrS", 4) == 0)
        return KERNEL_FORMAT_BZIMAGE;
    return KERNEL_FORMAT_AUTO;
}

int boot_write_cmdline(const struct guest_mem *mem, const char *cmdline, uint64_t max_len,
                       struct boot_error *err)
{
    size_t len = strlen(cmdline);
    if (max_len > X86_CMDLINE_MAX - 1)
        max_len = X86_CMDLINE_MAX - 1;
    if (len > max_len) {
        boot_error_set(err, "kernel command line is %zu bytes; this kernel takes at most %llu", len,
                       (unsigned long long)max_len);
        return -E2BIG;
    }
    return guest_mem_write(mem, X86_CMDLINE_ADDR, cmdline, len + 1);
}

/*
 * The initrd goes as high as allowed (below `highest` and the end of low RAM), page
 * aligned, as boot loaders do, keeping the memory above the kernel free for it to grow.
 */
int boot_place_initrd(const struct guest_mem *mem, const struct boot_images *img, uint64_t lowest,
                      uint64_t highest, uint64_t *addr, struct boot_error *err)
{
    uint64_t low_end = mem->nregions ? mem->regions[0].size : 0;
    uint64_t top = highest < low_end ? highest : low_end;
    if (img->initrd_size > top || ((top - img->initrd_size) & ~0xfffULL) < lowest) {
        boot_error_set(err,
                       "no room for the %zu KiB initrd between the kernel (ends at %llu MiB) "
                       "and the end of low memory (%llu MiB): give the VM more memory",
                       img->initrd_size / 1024, (unsigned long long)(lowest / MiB),
                       (unsigned long long)(top / MiB));
        return -ENOMEM;
    }
    *addr = (top - img->initrd_size) & ~0xfffULL;
    return guest_mem_write(mem, *addr, img->initrd, img->initrd_size);
}

/* Raw images: a flat binary at X86_RAW_LOAD_ADDR, entered there in 64-bit mode. */
static int raw_load(const struct guest_mem *mem, const struct boot_images *img,
                    struct x86_entry *entry, struct boot_error *err)
{
    if (guest_mem_write(mem, X86_RAW_LOAD_ADDR, img->kernel, img->kernel_size) < 0) {
        boot_error_set(err, "the %zu-byte image does not fit in guest RAM at 0x%llx",
                       img->kernel_size, (unsigned long long)X86_RAW_LOAD_ADDR);
        return -ENOMEM;
    }
    int ret = boot_write_cmdline(mem, img->cmdline, X86_CMDLINE_MAX - 1, err);
    if (ret == 0)
        ret = bzimage_write_minimal_zero_page(mem, img);
    *entry = (struct x86_entry){
        .mode = X86_ENTRY_LONG64,
        .rip = X86_RAW_LOAD_ADDR,
        .rsi = X86_ZERO_PAGE_ADDR,
        .rsp = X86_RAW_STACK_TOP,
    };
    return ret;
}

int x86_boot_load(const struct guest_mem *mem, const struct boot_images *img,
                  struct x86_entry *entry, struct boot_error *err)
{
    enum kernel_format format = img->format;
    if (format == KERNEL_FORMAT_AUTO)
        format = x86_detect_kernel_format(img->kernel, img->kernel_size);
    switch (format) {
    case KERNEL_FORMAT_BZIMAGE:
        return bzimage_load(mem, img, entry, err);
    case KERNEL_FORMAT_ELF:
        return pvh_load(mem, img, entry, err);
    case KERNEL_FORMAT_RAW:
        return raw_load(mem, img, entry, err);
    case KERNEL_FORMAT_AUTO:
        break;
    }
    boot_error_set(err, "not a kernel kiln can boot (neither a bzImage nor an ELF vmlinux; "
                        "use --kernel-format raw for a flat binary)");
    return -ENOEXEC;
}
