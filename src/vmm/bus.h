/*
 * An I/O bus: a sorted table of non-overlapping address ranges, each owned by a device
 * handler. The VM has two, one for port I/O and one for MMIO. Ranges are registered while
 * the VM is being built and the table is read-only once vCPUs run, so lookups take no lock.
 */
#ifndef KILN_BUS_H
#define KILN_BUS_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Handles one access of `len` (1, 2, 4 or 8) bytes at `offset` from the range's base.
 * For reads the handler fills `data`; it is pre-filled with 0xff (floating bus).
 */
typedef void (*bus_io_fn)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
                          bool is_write);

struct bus_range {
    uint64_t base;
    uint64_t len;
    bus_io_fn fn;
    void *opaque;
    const char *name;
};

struct bus {
    const char *name; /* "pio" or "mmio", for messages */
    struct bus_range *ranges;
    unsigned count;
    unsigned capacity;
};

void bus_init(struct bus *bus, const char *name);
void bus_destroy(struct bus *bus);

/* Adds [base, base + len). Returns 0, -EEXIST on overlap, -EINVAL on an empty or wrapping range. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const char *name, bus_io_fn fn,
                 void *opaque);

/* The range containing `addr`, or NULL. */
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr);

/*
 * Routes an access to its handler. Returns false when no device claims `addr`, in which
 * case reads see all ones and writes are dropped.
 */
bool bus_dispatch(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
