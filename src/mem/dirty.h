/*
 * kiln's own log of the guest pages it writes (virtio rings and buffers, boot data).
 * KVM's dirty log only sees what the guest writes through its page tables; everything the
 * VMM stores into guest RAM is recorded here, through the guest-memory layer, so that a
 * migration or a diff snapshot that merges both logs misses nothing. One bit per 4 KiB
 * page per region, set with atomic ORs from any thread.
 */
#ifndef KILN_MEM_DIRTY_H
#define KILN_MEM_DIRTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_mem;

#define GUEST_PAGE_SIZE 4096ULL

/* 64-bit words in a page bitmap of a region of `size` bytes. */
size_t guest_dirty_words(uint64_t size);

/* Page `p`'s bit in such a bitmap (dirty logs, untouched pages, pages received). */
static inline bool page_bit(const uint64_t *map, uint64_t p)
{
    return map[p / 64] >> (p % 64) & 1;
}

static inline void page_bit_set(uint64_t *map, uint64_t p)
{
    map[p / 64] |= 1ULL << (p % 64);
}

static inline void page_bit_clear(uint64_t *map, uint64_t p)
{
    map[p / 64] &= ~(1ULL << (p % 64));
}

/*
 * Starts recording (or, when on already, forgets what was recorded). The bitmaps live
 * until guest_mem_free, so a device thread never writes into freed memory. 0 or -ENOMEM.
 */
int guest_mem_dirty_start(struct guest_mem *mem);

/* Records a write of [gpa, gpa + len) / of `len` bytes at host address `hva`; no-ops when
 * recording is off or the range is not guest RAM. */
void guest_mem_mark_dirty(const struct guest_mem *mem, uint64_t gpa, uint64_t len);
void guest_mem_mark_dirty_hva(const struct guest_mem *mem, const void *hva, size_t len);

/* ORs region `i`'s recorded pages into `bitmap` (guest_dirty_words words) and clears them. */
void guest_mem_dirty_take(const struct guest_mem *mem, unsigned i, uint64_t *bitmap);

#endif
