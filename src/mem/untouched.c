/*
 * Guest pages that were never touched, from /proc/self/pagemap: one 64-bit entry per
 * virtual page, bit 63 "present", bit 62 "swapped" (Documentation/admin-guide/mm/pagemap.rst).
 * A snapshot or a migration's first pass would otherwise read every page of a mostly empty
 * guest, each read of an untouched page costing a page fault.
 */
#include "mem/guest_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "mem/dirty.h"

#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_SWAPPED (1ull << 62)
#define PAGEMAP_BATCH 4096 /* entries per read: 32 KiB */

static int read_entries(int fd, uint64_t first_vpage, uint64_t *buf, size_t n)
{
    size_t want = n * sizeof(*buf), got = 0;
    while (got < want) {
        ssize_t r = pread(fd, (uint8_t *)buf + got, want - got,
                          (off_t)(first_vpage * sizeof(*buf) + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EIO;
        got += (size_t)r;
    }
    return 0;
}

int guest_mem_untouched(const struct guest_mem *mem, const struct guest_region *r, uint64_t *out)
{
    long page_size = sysconf(_SC_PAGESIZE);
    if (!mem->anonymous || page_size <= 0 || (uint64_t)page_size != GUEST_PAGE_SIZE)
        return -ENOTSUP; /* a file's pages are its data, present or not */
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    memset(out, 0, guest_dirty_words(r->size) * sizeof(*out));
    uint64_t pages = r->size / GUEST_PAGE_SIZE, vpage = (uintptr_t)r->hva / GUEST_PAGE_SIZE;
    uint64_t buf[PAGEMAP_BATCH];
    int ret = 0;
    for (uint64_t p = 0; p < pages && ret == 0; p += PAGEMAP_BATCH) {
        size_t n = pages - p < PAGEMAP_BATCH ? (size_t)(pages - p) : PAGEMAP_BATCH;
        ret = read_entries(fd, vpage + p, buf, n);
        for (size_t i = 0; i < n && ret == 0; i++)
            if (!(buf[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED)))
                page_bit_set(out, p + i);
    }
    close(fd);
    return ret;
}
