#include "migrate/pages.h"

#include <errno.h>
#include <stdlib.h>

#include "le.h"
#include "mem/dirty.h"
#include "migrate/channel.h"

#define ZERO_RUN_MAX (1u << 20) /* pages in one ZERO record: 4 GiB */

/* One record for pages [first, first + count) of region `region`, all zero or all data. */
static int send_run(struct page_sender *s, unsigned region, uint64_t first, uint32_t count,
                    bool zero)
{
    uint8_t run[MIGRATE_RUN_HEADER];
    put_le32(run, region);
    put_le64(run + 4, first);
    put_le32(run + 12, count);
    const struct guest_region *r = &s->mem->regions[region];
    struct iovec iov[2] = {{run, sizeof(run)},
                           {r->hva + first * MIGRATE_PAGE_SIZE,
                            (size_t)count * MIGRATE_PAGE_SIZE}};
    /* Data goes straight from guest RAM: a page the guest changes meanwhile is dirty again
     * and goes again in the next pass. */
    int ret = migrate_send_record(s->fd, zero ? MIGRATE_ZERO : MIGRATE_PAGES, iov, zero ? 1 : 2);
    if (ret < 0)
        return ret;
    s->pages += count;
    s->zero_pages += zero ? count : 0;
    s->bytes += MIGRATE_RECORD_HEADER + sizeof(run) + (zero ? 0 : iov[1].iov_len);
    if (s->progress)
        s->progress(s, s->opaque);
    return atomic_load(s->cancel) ? -ECANCELED : 0;
}

/* `untouched` (may be NULL): pages the guest never touched, zero without being read. */
static bool page_zero(const struct guest_region *r, const uint64_t *untouched, uint64_t p)
{
    if (untouched && page_bit(untouched, p))
        return true;
    return migrate_page_is_zero(r->hva + p * MIGRATE_PAGE_SIZE, MIGRATE_PAGE_SIZE);
}

/* Runs of set pages, split where a page changes between zero and data, or a run is full. */
static int send_region(struct page_sender *s, unsigned i, const uint64_t *map)
{
    const struct guest_region *r = &s->mem->regions[i];
    uint64_t pages = r->size / MIGRATE_PAGE_SIZE;
    /* Read now, while the guest runs: a page it touches after this is in the dirty log and
     * goes again in the next pass. */
    uint64_t *untouched = calloc(guest_dirty_words(r->size), sizeof(uint64_t));
    if (untouched && guest_mem_untouched(s->mem, r, untouched) < 0) {
        free(untouched);
        untouched = NULL;
    }
    int ret = 0;
    uint64_t p = 0;
    while (p < pages && ret == 0) {
        if (!map[p / 64]) {
            p = (p / 64 + 1) * 64;
            continue;
        }
        if (!page_bit(map, p)) {
            p++;
            continue;
        }
        bool zero = page_zero(r, untouched, p);
        uint32_t max = zero ? ZERO_RUN_MAX : MIGRATE_MAX_RUN;
        uint32_t n = 1;
        while (n < max && p + n < pages && page_bit(map, p + n) &&
               page_zero(r, untouched, p + n) == zero)
            n++;
        ret = send_run(s, i, p, n, zero);
        p += n;
    }
    free(untouched);
    return ret;
}

int pages_send(struct page_sender *s, uint64_t *const *bitmaps)
{
    for (unsigned i = 0; i < s->mem->nregions; i++) {
        int ret = send_region(s, i, bitmaps[i]);
        if (ret < 0)
            return ret;
    }
    return 0;
}

uint64_t pages_count(const struct guest_mem *mem, uint64_t *const *bitmaps)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < mem->nregions; i++) {
        size_t words = guest_dirty_words(mem->regions[i].size);
        for (size_t w = 0; w < words; w++)
            n += (uint64_t)__builtin_popcountll(bitmaps[i][w]);
    }
    return n;
}
