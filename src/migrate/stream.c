#include "migrate/stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "le.h"
#include "mem/dirty.h"

void migrate_header_put(uint8_t out[MIGRATE_HEADER_SIZE])
{
    memcpy(out, MIGRATE_MAGIC, MIGRATE_MAGIC_LEN);
    put_le32(out + 8, MIGRATE_VERSION);
    put_le32(out + 12, 0);
}

int migrate_header_check(const uint8_t *hdr, char *err, size_t errlen)
{
    if (memcmp(hdr, MIGRATE_MAGIC, MIGRATE_MAGIC_LEN) != 0) {
        snprintf(err, errlen, "not a kiln migration stream (bad magic)");
        return -EBADMSG;
    }
    uint32_t version = get_le32(hdr + 8);
    if (version != MIGRATE_VERSION || get_le32(hdr + 12) != 0) {
        snprintf(err, errlen, "migration stream version %u (flags %#x); this kiln speaks %u",
                 version, get_le32(hdr + 12), MIGRATE_VERSION);
        return -EBADMSG;
    }
    return 0;
}

void migrate_record_header_put(uint8_t out[MIGRATE_RECORD_HEADER], uint16_t type, uint32_t len)
{
    put_le16(out, type);
    put_le16(out + 2, 0);
    put_le32(out + 4, len);
}

/* Payload bounds per type: [min, max]; false for a type this version does not know. */
static bool record_bounds(uint16_t type, uint32_t *min, uint32_t *max)
{
    switch (type) {
    case MIGRATE_SETUP:
        *min = 12 + 16;
        *max = 12 + 16 * GUEST_MEM_MAX_REGIONS;
        return true;
    case MIGRATE_PAGES:
        *min = MIGRATE_RUN_HEADER + MIGRATE_PAGE_SIZE;
        *max = MIGRATE_RUN_HEADER + MIGRATE_MAX_RUN * MIGRATE_PAGE_SIZE;
        return true;
    case MIGRATE_ZERO:
        *min = *max = MIGRATE_RUN_HEADER;
        return true;
    case MIGRATE_PASS:
        *min = *max = 12;
        return true;
    case MIGRATE_STATE:
        *min = 1;
        *max = MIGRATE_MAX_STATE;
        return true;
    case MIGRATE_END:
    case MIGRATE_GO:
    case MIGRATE_LOADED:
    case MIGRATE_RESUMED:
        *min = *max = 0;
        return true;
    case MIGRATE_ERROR:
        *min = 0;
        *max = MIGRATE_MAX_ERROR;
        return true;
    default:
        return false;
    }
}

int migrate_record_header_parse(const uint8_t *in, struct migrate_record_header *h, char *err,
                                size_t errlen)
{
    h->type = get_le16(in);
    h->len = get_le32(in + 4);
    uint32_t min, max;
    if (!record_bounds(h->type, &min, &max)) {
        snprintf(err, errlen, "unknown record type %u", h->type);
        return -EBADMSG;
    }
    if (get_le16(in + 2) != 0) {
        snprintf(err, errlen, "record type %u: unknown flags %#x", h->type, get_le16(in + 2));
        return -EBADMSG;
    }
    if (h->len < min || h->len > max) {
        snprintf(err, errlen, "record type %u: length %u outside %u-%u", h->type, h->len, min,
                 max);
        return -EBADMSG;
    }
    return 0;
}

bool migrate_page_is_zero(const uint8_t *p, size_t len)
{
    uint64_t acc = 0;
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        acc |= w;
        if ((i & 511) == 504 && acc)
            return false; /* stop early on data, without a branch per word */
    }
    for (size_t i = len & ~(size_t)7; i < len; i++)
        acc |= p[i];
    return acc == 0;
}

void migrate_rx_init(struct migrate_rx *rx, uint64_t max_ram)
{
    memset(rx, 0, sizeof(*rx));
    rx->max_ram = max_ram;
}

void migrate_rx_free(struct migrate_rx *rx)
{
    for (unsigned i = 0; i < GUEST_MEM_MAX_REGIONS; i++)
        free(rx->written[i]);
    guest_mem_free(&rx->mem);
    free(rx->state);
    memset(rx, 0, sizeof(*rx));
}

/* RAM size, region count, then the regions: exactly the layout kiln gives that much RAM. */
static int rx_setup(struct migrate_rx *rx, const uint8_t *p, uint32_t len, char *err,
                    size_t errlen)
{
    uint64_t ram = get_le64(p);
    uint32_t n = get_le32(p + 8);
    if (ram < MIGRATE_MIN_RAM || ram > MIGRATE_MAX_RAM || ram % MIGRATE_PAGE_SIZE) {
        snprintf(err, errlen, "setup: guest RAM of %llu bytes is not 8 MiB-1 TiB in whole pages",
                 (unsigned long long)ram);
        return -EBADMSG;
    }
    if (ram > rx->max_ram) {
        snprintf(err, errlen, "setup: %llu MiB of guest RAM is more than this host can take "
                              "(%llu MiB)", (unsigned long long)(ram >> 20),
                 (unsigned long long)(rx->max_ram >> 20));
        return -ENOMEM;
    }
    if (n == 0 || n > GUEST_MEM_MAX_REGIONS || len != 12 + 16 * n) {
        snprintf(err, errlen, "setup: %u regions in %u bytes", n, len);
        return -EBADMSG;
    }
    int ret = guest_mem_alloc(&rx->mem, ram, X86_PCI_HOLE_START, X86_HIGH_RAM_START);
    if (ret < 0) {
        snprintf(err, errlen, "setup: cannot allocate %llu MiB of guest RAM",
                 (unsigned long long)(ram >> 20));
        return ret;
    }
    bool same = rx->mem.nregions == n;
    for (uint32_t i = 0; same && i < n; i++)
        same = get_le64(p + 12 + 16 * i) == rx->mem.regions[i].gpa &&
               get_le64(p + 20 + 16 * i) == rx->mem.regions[i].size;
    if (!same) {
        guest_mem_free(&rx->mem);
        snprintf(err, errlen, "setup: the memory layout is not the one kiln gives %llu MiB",
                 (unsigned long long)(ram >> 20));
        return -EBADMSG;
    }
    for (unsigned i = 0; i < rx->mem.nregions; i++) {
        rx->written[i] = calloc(guest_dirty_words(rx->mem.regions[i].size), sizeof(uint64_t));
        if (!rx->written[i]) {
            snprintf(err, errlen, "setup: out of memory");
            return -ENOMEM;
        }
    }
    rx->setup = true;
    return 0;
}

static void mark_written(uint64_t *map, uint64_t first, uint32_t count)
{
    for (uint64_t p = first; p < first + count; p++)
        page_bit_set(map, p);
}

/* Zeroes the pages of [first, first + count) that data was written to; the rest are zero. */
static void zero_written(uint8_t *hva, uint64_t *map, uint64_t first, uint32_t count)
{
    for (uint64_t p = first; p < first + count;) {
        if (p % 64 == 0 && map[p / 64] == 0 && p + 64 <= first + count) {
            p += 64; /* a whole word of untouched pages */
            continue;
        }
        if (page_bit(map, p)) {
            memset(hva + p * MIGRATE_PAGE_SIZE, 0, MIGRATE_PAGE_SIZE);
            page_bit_clear(map, p);
        }
        p++;
    }
}

/* A run of pages: region, first page and count must lie inside that region. */
static int rx_run(struct migrate_rx *rx, uint16_t type, const uint8_t *p, uint32_t len,
                  char *err, size_t errlen)
{
    uint32_t region = get_le32(p);
    uint64_t first = get_le64(p + 4);
    uint32_t count = get_le32(p + 12);
    /* A ZERO run may be long (its region bounds it below); PAGES carries its pages. */
    bool sized = count >= 1 && (type == MIGRATE_ZERO ||
                                (count <= MIGRATE_MAX_RUN &&
                                 len == MIGRATE_RUN_HEADER + (uint64_t)count * MIGRATE_PAGE_SIZE));
    if (!sized || region >= rx->mem.nregions) {
        snprintf(err, errlen, "page run: region %u, %u pages in %u bytes", region, count, len);
        return -EBADMSG;
    }
    const struct guest_region *r = &rx->mem.regions[region];
    uint64_t pages = r->size / MIGRATE_PAGE_SIZE;
    if (first >= pages || count > pages - first) {
        snprintf(err, errlen, "page run: pages %llu+%u outside region %u (%llu pages)",
                 (unsigned long long)first, count, region, (unsigned long long)pages);
        return -EBADMSG;
    }
    if (type == MIGRATE_PAGES) {
        memcpy(r->hva + first * MIGRATE_PAGE_SIZE, p + MIGRATE_RUN_HEADER,
               (size_t)count * MIGRATE_PAGE_SIZE);
        mark_written(rx->written[region], first, count);
    } else {
        /* Without reading RAM: untouched pages stay unallocated, and a gigabyte of zero
         * pages costs no page faults (which would hold the hand-over up). */
        zero_written(r->hva, rx->written[region], first, count);
    }
    rx->pages += count;
    return 0;
}

static int rx_state(struct migrate_rx *rx, const uint8_t *p, uint32_t len, char *err,
                    size_t errlen)
{
    if (rx->state) {
        snprintf(err, errlen, "a second state record");
        return -EBADMSG;
    }
    rx->state = malloc(len);
    if (!rx->state) {
        snprintf(err, errlen, "out of memory for the state record");
        return -ENOMEM;
    }
    memcpy(rx->state, p, len);
    rx->state_len = len;
    return 0;
}

int migrate_rx_record(struct migrate_rx *rx, uint16_t type, const uint8_t *payload, uint32_t len,
                      char *err, size_t errlen)
{
    uint32_t min, max;
    if (!record_bounds(type, &min, &max) || len < min || len > max) {
        snprintf(err, errlen, "record type %u with %u bytes", type, len);
        return -EBADMSG;
    }
    rx->bytes += MIGRATE_RECORD_HEADER + (uint64_t)len;
    if (rx->ended || (!rx->setup && type != MIGRATE_SETUP) || (rx->setup && type == MIGRATE_SETUP) ||
        (rx->state && type != MIGRATE_END)) {
        snprintf(err, errlen, "record type %u out of order", type);
        return -EBADMSG;
    }
    switch (type) {
    case MIGRATE_SETUP:
        return rx_setup(rx, payload, len, err, errlen);
    case MIGRATE_PAGES:
    case MIGRATE_ZERO:
        return rx_run(rx, type, payload, len, err, errlen);
    case MIGRATE_PASS:
        rx->pass = get_le32(payload);
        return 0;
    case MIGRATE_STATE:
        return rx_state(rx, payload, len, err, errlen);
    case MIGRATE_END:
        if (!rx->state) {
            snprintf(err, errlen, "the stream ended without the VM's state");
            return -EBADMSG;
        }
        rx->ended = true;
        return 1;
    default:
        snprintf(err, errlen, "record type %u is not for the destination", type);
        return -EBADMSG;
    }
}

int migrate_rx_feed(struct migrate_rx *rx, const uint8_t *data, size_t len, char *err,
                    size_t errlen)
{
    if (len < MIGRATE_HEADER_SIZE) {
        snprintf(err, errlen, "the stream ended in its header");
        return -EPIPE;
    }
    int ret = migrate_header_check(data, err, errlen);
    size_t pos = MIGRATE_HEADER_SIZE;
    while (ret == 0) {
        struct migrate_record_header h;
        if (len - pos < MIGRATE_RECORD_HEADER) {
            snprintf(err, errlen, "the stream ended before END");
            return -EPIPE;
        }
        if ((ret = migrate_record_header_parse(data + pos, &h, err, errlen)) < 0)
            break;
        pos += MIGRATE_RECORD_HEADER;
        if (len - pos < h.len) {
            snprintf(err, errlen, "the stream ended inside a record");
            return -EPIPE;
        }
        ret = migrate_rx_record(rx, h.type, data + pos, h.len, err, errlen);
        pos += h.len;
    }
    return ret == 1 ? 0 : ret;
}
