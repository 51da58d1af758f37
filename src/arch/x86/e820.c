#include "arch/x86/e820.h"

#include "arch/x86/layout.h"
#include "mem/guest_mem.h"

static unsigned e820_add(struct e820_entry *out, unsigned n, unsigned max, uint64_t addr,
                         uint64_t end, uint32_t type)
{
    if (n < max && end > addr)
        out[n++] = (struct e820_entry){.addr = addr, .size = end - addr, .type = type};
    return n;
}

/*
 * Low memory is RAM except the EBDA/VGA/BIOS area (0x9fc00-0x100000), which real machines
 * reserve and where the ACPI tables live. Every other region is plain RAM.
 */
unsigned e820_build(const struct guest_mem *mem, struct e820_entry *out, unsigned max)
{
    unsigned n = 0;
    for (unsigned i = 0; i < mem->nregions; i++) {
        const struct guest_region *r = &mem->regions[i];
        uint64_t end = r->gpa + r->size;
        if (r->gpa == 0 && end > X86_KERNEL_ADDR) {
            n = e820_add(out, n, max, 0, X86_EBDA_START, E820_RAM);
            n = e820_add(out, n, max, X86_EBDA_START, X86_KERNEL_ADDR, E820_RESERVED);
            n = e820_add(out, n, max, X86_KERNEL_ADDR, end, E820_RAM);
        } else {
            n = e820_add(out, n, max, r->gpa, end, E820_RAM);
        }
    }
    return n;
}
