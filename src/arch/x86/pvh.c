#include "arch/x86/pvh.h"

#include <elf.h>
#include <errno.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "mem/guest_mem.h"
#include "util.h"

#define PVH_START_INFO_ADDR X86_ZERO_PAGE_ADDR
#define PVH_MODLIST_ADDR (X86_ZERO_PAGE_ADDR + 0x800)

/* The ELF header and program headers, checked to lie inside the file. */
static const Elf64_Phdr *elf_phdrs(const uint8_t *img, size_t size, unsigned *count,
                                   struct boot_error *err)
{
    if (size < sizeof(Elf64_Ehdr) || memcmp(img, ELFMAG, SELFMAG) != 0) {
        boot_error_set(err, "not an ELF file");
        return NULL;
    }
    Elf64_Ehdr eh;
    memcpy(&eh, img, sizeof(eh));
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
        eh.e_machine != EM_X86_64) {
        boot_error_set(err, "ELF file is not a 64-bit x86 image");
        return NULL;
    }
    if (eh.e_type != ET_EXEC) {
        boot_error_set(err, "ELF file is not an executable (type %u)", eh.e_type);
        return NULL;
    }
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phoff >= size ||
        (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff ||
        eh.e_phoff % _Alignof(Elf64_Phdr) != 0) {
        boot_error_set(err, "ELF program headers are missing or lie outside the file");
        return NULL;
    }
    *count = eh.e_phnum;
    return (const Elf64_Phdr *)(img + eh.e_phoff);
}

static bool segment_in_file(const Elf64_Phdr *ph, size_t size)
{
    return ph->p_offset <= size && ph->p_filesz <= size - ph->p_offset;
}

/* Looks through one PT_NOTE segment for Xen's PHYS32_ENTRY note. */
static bool pvh_find_entry(const uint8_t *notes, uint64_t len, uint32_t *entry)
{
    uint64_t off = 0;
    while (len - off >= 12) {
        uint32_t namesz, descsz, type;
        memcpy(&namesz, notes + off, 4);
        memcpy(&descsz, notes + off + 4, 4);
        memcpy(&type, notes + off + 8, 4);
        uint64_t name_off = off + 12;
        uint64_t desc_off = name_off + ALIGN_UP((uint64_t)namesz, 4);
        uint64_t next = desc_off + ALIGN_UP((uint64_t)descsz, 4);
        if (desc_off > len || next > len)
            return false;
        if (type == PVH_XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 &&
            memcmp(notes + name_off, "Xen", 4) == 0 && (descsz == 4 || descsz == 8)) {
            memcpy(entry, notes + desc_off, 4); /* low half: the entry is below 4 GiB */
            return true;
        }
        off = next;
    }
    return false;
}

int elf_kernel_parse(const uint8_t *img, size_t size, struct elf_kernel_info *info,
                     struct boot_error *err)
{
    memset(info, 0, sizeof(*info));
    unsigned count;
    const Elf64_Phdr *ph = elf_phdrs(img, size, &count, err);
    if (!ph)
        return -ENOEXEC;
    bool have_entry = false, have_load = false;
    info->lowest_addr = UINT64_MAX;
    for (unsigned i = 0; i < count; i++) {
        if (!segment_in_file(&ph[i], size)) {
            boot_error_set(err, "ELF segment %u lies outside the file (truncated?)", i);
            return -ENOEXEC;
        }
        if (ph[i].p_type == PT_NOTE && !have_entry)
            have_entry = pvh_find_entry(img + ph[i].p_offset, ph[i].p_filesz, &info->entry);
        if (ph[i].p_type != PT_LOAD || ph[i].p_memsz == 0)
            continue;
        if (ph[i].p_filesz > ph[i].p_memsz || ph[i].p_paddr + ph[i].p_memsz < ph[i].p_paddr) {
            boot_error_set(err, "ELF segment %u has bad sizes", i);
            return -ENOEXEC;
        }
        have_load = true;
        if (ph[i].p_paddr < info->lowest_addr)
            info->lowest_addr = ph[i].p_paddr;
        if (ph[i].p_paddr + ph[i].p_memsz > info->highest_addr)
            info->highest_addr = ph[i].p_paddr + ph[i].p_memsz;
    }
    if (!have_load) {
        boot_error_set(err, "ELF file has nothing to load");
        return -ENOEXEC;
    }
    if (!have_entry) {
        boot_error_set(err, "ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); "
                            "build it with CONFIG_PVH=y or boot its bzImage");
        return -ENOEXEC;
    }
    return 0;
}

static int elf_load_segments(const struct guest_mem *mem, const uint8_t *img, size_t size,
                             struct boot_error *err)
{
    unsigned count;
    const Elf64_Phdr *ph = elf_phdrs(img, size, &count, err);
    for (unsigned i = 0; ph && i < count; i++) {
        if (ph[i].p_type != PT_LOAD || ph[i].p_memsz == 0)
            continue;
        uint8_t *dst = guest_mem_ptr(mem, ph[i].p_paddr, ph[i].p_memsz);
        if (!dst) {
            boot_error_set(err, "ELF segment at 0x%llx (%llu bytes) does not fit in guest RAM",
                           (unsigned long long)ph[i].p_paddr, (unsigned long long)ph[i].p_memsz);
            return -ENOMEM;
        }
        memcpy(dst, img + ph[i].p_offset, ph[i].p_filesz);
        memset(dst + ph[i].p_filesz, 0, ph[i].p_memsz - ph[i].p_filesz);
    }
    return ph ? 0 : -ENOEXEC;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4); /* x86 is little-endian, as the structures are */
}

static void put_u64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static int pvh_write_memmap(const struct guest_mem *mem, unsigned *entries)
{
    struct e820_entry map[E820_MAX_ENTRIES];
    unsigned n = e820_build(mem, map, E820_MAX_ENTRIES);
    uint8_t *out = guest_mem_ptr(mem, X86_PVH_MEMMAP_ADDR, (uint64_t)n * PVH_MEMMAP_ENTRY_SIZE);
    if (!out)
        return -EFAULT;
    for (unsigned i = 0; i < n; i++) {
        uint8_t *e = out + i * PVH_MEMMAP_ENTRY_SIZE;
        put_u64(e, map[i].addr);
        put_u64(e + 8, map[i].size);
        put_u32(e + 16, map[i].type);
        put_u32(e + 20, 0);
    }
    *entries = n;
    return 0;
}

int pvh_load(const struct guest_mem *mem, const struct boot_images *img, struct x86_entry *entry,
             struct boot_error *err)
{
    struct elf_kernel_info info;
    int ret = elf_kernel_parse(img->kernel, img->kernel_size, &info, err);
    if (ret == 0)
        ret = elf_load_segments(mem, img->kernel, img->kernel_size, err);
    if (ret == 0)
        ret = boot_write_cmdline(mem, img->cmdline, X86_CMDLINE_MAX, err);
    if (ret < 0)
        return ret;

    uint8_t *si = guest_mem_ptr(mem, PVH_START_INFO_ADDR, PVH_START_INFO_SIZE);
    uint8_t *mod = guest_mem_ptr(mem, PVH_MODLIST_ADDR, PVH_MODLIST_ENTRY_SIZE);
    if (!si || !mod)
        return -EFAULT;
    memset(si, 0, PVH_START_INFO_SIZE);
    unsigned memmap_entries;
    ret = pvh_write_memmap(mem, &memmap_entries);
    if (ret < 0)
        return ret;
    put_u32(si + 0, PVH_START_INFO_MAGIC);
    put_u32(si + 4, 1); /* version 1: has the memory map fields */
    put_u64(si + 24, X86_CMDLINE_ADDR);
    put_u64(si + 32, img->rsdp_addr);
    put_u64(si + 40, X86_PVH_MEMMAP_ADDR);
    put_u32(si + 48, memmap_entries);

    if (img->initrd) {
        uint64_t addr;
        ret = boot_place_initrd(mem, img, info.highest_addr, X86_PCI_HOLE_START, &addr, err);
        if (ret < 0)
            return ret;
        memset(mod, 0, PVH_MODLIST_ENTRY_SIZE);
        put_u64(mod, addr);
        put_u64(mod + 8, img->initrd_size);
        put_u32(si + 12, 1); /* nr_modules */
        put_u64(si + 16, PVH_MODLIST_ADDR);
    }
    *entry = (struct x86_entry){
        .mode = X86_ENTRY_PVH32,
        .rip = info.entry,
        .rbx = PVH_START_INFO_ADDR,
    };
    return 0;
}
