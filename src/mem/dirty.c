#include "mem/dirty.h"

#include <errno.h>
#include <stdlib.h>

#include "mem/guest_mem.h"

size_t guest_dirty_words(uint64_t size)
{
    uint64_t pages = (size + GUEST_PAGE_SIZE - 1) / GUEST_PAGE_SIZE;
    return (size_t)((pages + 63) / 64);
}

int guest_mem_dirty_start(struct guest_mem *mem)
{
    for (unsigned i = 0; i < mem->nregions; i++) {
        struct guest_region *r = &mem->regions[i];
        size_t words = guest_dirty_words(r->size);
        uint64_t *map = __atomic_load_n(&r->dirty, __ATOMIC_ACQUIRE);
        if (map) {
            for (size_t w = 0; w < words; w++)
                __atomic_store_n(&map[w], 0, __ATOMIC_RELAXED);
            continue;
        }
        map = calloc(words, sizeof(uint64_t));
        if (!map)
            return -ENOMEM;
        __atomic_store_n(&r->dirty, map, __ATOMIC_RELEASE);
    }
    return 0;
}

/* Sets the bits of pages [first, last] in `map`, skipping words that have them already. */
static void mark_pages(uint64_t *map, uint64_t first, uint64_t last)
{
    for (uint64_t p = first; p <= last; p++) {
        uint64_t bit = 1ULL << (p % 64);
        uint64_t *word = &map[p / 64];
        if (!(__atomic_load_n(word, __ATOMIC_RELAXED) & bit))
            __atomic_fetch_or(word, bit, __ATOMIC_RELAXED);
    }
}

static void mark_region(const struct guest_region *r, uint64_t off, uint64_t len)
{
    uint64_t *map = __atomic_load_n(&r->dirty, __ATOMIC_ACQUIRE);
    if (!map || len == 0)
        return;
    mark_pages(map, off / GUEST_PAGE_SIZE, (off + len - 1) / GUEST_PAGE_SIZE);
}

void guest_mem_mark_dirty(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
    if (!mem)
        return;
    for (unsigned i = 0; i < mem->nregions; i++) {
        const struct guest_region *r = &mem->regions[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa)) {
            mark_region(r, gpa - r->gpa, len);
            return;
        }
    }
}

void guest_mem_mark_dirty_hva(const struct guest_mem *mem, const void *hva, size_t len)
{
    if (!mem)
        return;
    uintptr_t p = (uintptr_t)hva;
    for (unsigned i = 0; i < mem->nregions; i++) {
        const struct guest_region *r = &mem->regions[i];
        uintptr_t base = (uintptr_t)r->hva;
        if (p >= base && p - base < r->size && len <= r->size - (p - base)) {
            mark_region(r, p - base, len);
            return;
        }
    }
}

void guest_mem_dirty_take(const struct guest_mem *mem, unsigned i, uint64_t *bitmap)
{
    const struct guest_region *r = &mem->regions[i];
    uint64_t *map = __atomic_load_n(&r->dirty, __ATOMIC_ACQUIRE);
    if (!map)
        return;
    size_t words = guest_dirty_words(r->size);
    for (size_t w = 0; w < words; w++)
        if (__atomic_load_n(&map[w], __ATOMIC_RELAXED))
            bitmap[w] |= __atomic_exchange_n(&map[w], 0, __ATOMIC_ACQ_REL);
}
