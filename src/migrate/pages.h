/* Sending guest pages: a page bitmap per region becomes PAGES and ZERO records. */
#ifndef KILN_MIGRATE_PAGES_H
#define KILN_MIGRATE_PAGES_H

#include <stdatomic.h>
#include <stdint.h>

#include "mem/guest_mem.h"

struct page_sender {
    int fd;
    const struct guest_mem *mem;
    atomic_bool *cancel;
    /* Counters, updated after each record (the caller copies them out under its lock). */
    uint64_t pages;
    uint64_t zero_pages;
    uint64_t bytes;
    void (*progress)(struct page_sender *s, void *opaque); /* after each record, may be NULL */
    void *opaque;
};

/* Pages set in `bitmaps[i]` (guest_dirty_words words per region i). 0, -ECANCELED or -errno. */
int pages_send(struct page_sender *s, uint64_t *const *bitmaps);
/* Bits set in the bitmaps. */
uint64_t pages_count(const struct guest_mem *mem, uint64_t *const *bitmaps);

#endif
