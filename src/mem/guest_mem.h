/*
 * Guest physical memory. This is the only path from a guest physical address to a host
 * pointer: every lookup checks that the whole range lies inside one RAM region, with
 * overflow-safe arithmetic, so guest-controlled addresses and lengths can be passed in as is.
 */
#ifndef KILN_GUEST_MEM_H
#define KILN_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 4

struct guest_region {
    uint64_t gpa;
    uint64_t size;
    uint8_t *hva;
    uint64_t *dirty; /* kiln's own writes, a bit per page, once recording started (dirty.h) */
};

struct guest_mem {
    struct guest_region regions[GUEST_MEM_MAX_REGIONS];
    unsigned nregions;
    uint64_t ram_size; /* bytes of RAM in all regions */
    void *mapping;     /* the mapping that backs all regions, if we own one */
    size_t mapping_size;
    bool anonymous;    /* that mapping is anonymous memory (not a snapshot's file) */
};

/*
 * Maps `ram_size` bytes of anonymous memory (MAP_NORESERVE: pages are taken only when the
 * guest touches them) and lays it out below `hole_start` and, for what does not fit, from
 * `high_start` upwards. Returns 0 or a negative errno.
 */
int guest_mem_alloc(struct guest_mem *mem, uint64_t ram_size, uint64_t hole_start,
                    uint64_t high_start);
/*
 * The same layout over `fd` (a snapshot's memory file, at least `ram_size` bytes) mapped
 * MAP_PRIVATE: pages are read from the file on first touch and copied on first write, so
 * restores are fast and clones of one snapshot share the pages they have not written.
 */
int guest_mem_map_file(struct guest_mem *mem, int fd, uint64_t ram_size, uint64_t hole_start,
                       uint64_t high_start);
void guest_mem_free(struct guest_mem *mem);

/*
 * Sets in `out` (guest_dirty_words(r->size) words, a bit per page, like the dirty bitmaps)
 * the pages of region `r` that were never touched: anonymous RAM that is neither present
 * nor swapped out (/proc/self/pagemap) reads as zeroes, and reading it to find that out
 * would fault in every page. Returns 0, or -errno when it cannot be known (RAM mapped from
 * a file, no /proc): callers then look at every page. (mem/untouched.c)
 */
int guest_mem_untouched(const struct guest_mem *mem, const struct guest_region *r, uint64_t *out);

/* Adds a region backed by caller-owned memory (used by unit tests and restore). */
int guest_mem_add_region(struct guest_mem *mem, uint64_t gpa, uint64_t size, void *hva);

/* Host pointer for [gpa, gpa + len), or NULL unless the whole range is RAM in one region. */
void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Copies to or from guest memory. Return 0, or -EFAULT if the range is not all RAM. */
int guest_mem_read(const struct guest_mem *mem, uint64_t gpa, void *buf, size_t len);
int guest_mem_write(const struct guest_mem *mem, uint64_t gpa, const void *buf, size_t len);

/* True if [gpa, gpa + len) is RAM. */
bool guest_mem_is_ram(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* One past the highest RAM address. */
uint64_t guest_mem_end(const struct guest_mem *mem);

#endif
