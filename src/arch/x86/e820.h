/* The guest's physical memory map as firmware reports it (e820 / PVH memmap). */
#ifndef KILN_E820_H
#define KILN_E820_H

#include <stdint.h>

struct guest_mem;

#define E820_RAM 1
#define E820_RESERVED 2
#define E820_MAX_ENTRIES 8

struct e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

/* Fills `out` (room for `max`) from the RAM regions. Returns the number of entries. */
unsigned e820_build(const struct guest_mem *mem, struct e820_entry *out, unsigned max);

#endif
