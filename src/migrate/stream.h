/*
 * The live-migration wire format (docs/migration.md): a stream header, then typed records,
 * each with its length up front, all integers little-endian. The sender is not trusted:
 * the receiver checks every header, length, order and page number before it touches guest
 * memory (migrate_rx), and refuses the stream with a one-line reason at the first fault.
 */
#ifndef KILN_MIGRATE_STREAM_H
#define KILN_MIGRATE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem/guest_mem.h"

#define MIGRATE_MAGIC "KILNMIGR"
#define MIGRATE_MAGIC_LEN 8
#define MIGRATE_VERSION 1
#define MIGRATE_HEADER_SIZE 16     /* magic, version u32, flags u32 (0) */
#define MIGRATE_RECORD_HEADER 8    /* type u16, flags u16 (0), payload length u32 */
#define MIGRATE_PAGE_SIZE 4096
#define MIGRATE_MAX_RUN 256        /* pages in one PAGES record: 1 MiB of payload */
#define MIGRATE_RUN_HEADER 16      /* region u32, first page u64, page count u32 */
#define MIGRATE_MAX_STATE (64u << 20) /* = STATE_FILE_MAX_SIZE */
#define MIGRATE_MAX_ERROR 512
#define MIGRATE_MIN_RAM (8ULL << 20)
#define MIGRATE_MAX_RAM (1ULL << 40)

enum migrate_record_type {
    /* source -> destination */
    MIGRATE_SETUP = 1,  /* RAM size, then per region its guest address and size */
    MIGRATE_PAGES = 2,  /* a run of pages with their bytes */
    MIGRATE_ZERO = 3,   /* a run of pages that are all zero (no bytes follow) */
    MIGRATE_PASS = 4,   /* a new pass begins: pass number, pages it will send */
    MIGRATE_STATE = 5,  /* vCPUs and devices: a snapshot state file (docs/snapshot.md) */
    MIGRATE_END = 6,    /* nothing follows; the VM is paused on the source */
    MIGRATE_GO = 7,     /* answer to LOADED: the source will not run the VM again */
    /* destination -> source */
    MIGRATE_LOADED = 16,  /* everything received and checked, VM built, not running */
    MIGRATE_RESUMED = 17, /* the VM runs here */
    MIGRATE_ERROR = 18,   /* the destination refuses; payload: a reason, UTF-8 */
};

struct migrate_record_header {
    uint16_t type;
    uint32_t len;
};

void migrate_header_put(uint8_t out[MIGRATE_HEADER_SIZE]);
int migrate_header_check(const uint8_t *hdr, char *err, size_t errlen);

void migrate_record_header_put(uint8_t out[MIGRATE_RECORD_HEADER], uint16_t type, uint32_t len);
/* Known type, flags 0, length within the type's bounds. 0 or -EBADMSG with `err`. */
int migrate_record_header_parse(const uint8_t *in, struct migrate_record_header *h, char *err,
                                size_t errlen);

/* What a destination has received so far; guest RAM is allocated on SETUP. */
struct migrate_rx {
    uint64_t max_ram;      /* refuse larger guests (the host's memory, or a fuzzer's cap) */
    bool setup;
    bool ended;
    struct guest_mem mem;  /* laid out as kiln lays out that much RAM */
    /* Per region, a bit per page that a PAGES record wrote: the others are still the fresh
     * mapping's zeroes, so a ZERO run need not touch them. */
    uint64_t *written[GUEST_MEM_MAX_REGIONS];
    uint8_t *state;        /* the STATE record's bytes (malloc'd), once received */
    size_t state_len;
    uint32_t pass;
    uint64_t pages;        /* page records applied, zero runs included */
    uint64_t bytes;        /* record bytes received */
};

void migrate_rx_init(struct migrate_rx *rx, uint64_t max_ram);
void migrate_rx_free(struct migrate_rx *rx);
/*
 * Checks one record from the source and applies it (RAM allocated, pages written, state
 * kept). Returns 0, 1 after END, or -EBADMSG / -ENOMEM with a one-line reason in `err`.
 */
int migrate_rx_record(struct migrate_rx *rx, uint16_t type, const uint8_t *payload, uint32_t len,
                      char *err, size_t errlen);

/*
 * A whole stream in memory (header, then records), as migrate_receive reads it from a
 * socket: for tests and fuzzing. Returns 0 after END, -EPIPE if the bytes end first, or
 * what migrate_header_check / migrate_rx_record return.
 */
int migrate_rx_feed(struct migrate_rx *rx, const uint8_t *data, size_t len, char *err,
                    size_t errlen);

/* Whether `len` bytes at `p` are all zero (the sender's ZERO runs). */
bool migrate_page_is_zero(const uint8_t *p, size_t len);

#endif
