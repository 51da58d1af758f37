#include "vmm/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *bus, const char *name)
{
    memset(bus, 0, sizeof(*bus));
    bus->name = name;
}

void bus_destroy(struct bus *bus)
{
    free(bus->ranges);
    bus->ranges = NULL;
    bus->count = bus->capacity = 0;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const char *name, bus_io_fn fn,
                 void *opaque)
{
    if (len == 0 || base + len < base || !fn)
        return -EINVAL;
    unsigned pos = 0;
    while (pos < bus->count && bus->ranges[pos].base < base)
        pos++;
    /* Overlap with the neighbour below or above? The table stays sorted and disjoint. */
    if (pos > 0 && bus->ranges[pos - 1].base + bus->ranges[pos - 1].len > base)
        return -EEXIST;
    if (pos < bus->count && base + len > bus->ranges[pos].base)
        return -EEXIST;
    if (bus->count == bus->capacity) {
        unsigned cap = bus->capacity ? bus->capacity * 2 : 16;
        struct bus_range *r = realloc(bus->ranges, cap * sizeof(*r));
        if (!r)
            return -ENOMEM;
        bus->ranges = r;
        bus->capacity = cap;
    }
    memmove(&bus->ranges[pos + 1], &bus->ranges[pos], (bus->count - pos) * sizeof(*bus->ranges));
    bus->ranges[pos] = (struct bus_range){base, len, fn, opaque, name};
    bus->count++;
    return 0;
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr)
{
    unsigned lo = 0, hi = bus->count;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        const struct bus_range *r = &bus->ranges[mid];
        if (addr < r->base)
            hi = mid;
        else if (addr - r->base >= r->len)
            lo = mid + 1;
        else
            return r;
    }
    return NULL;
}

bool bus_dispatch(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
    if (!is_write)
        memset(data, 0xff, len);
    const struct bus_range *r = bus_find(bus, addr);
    if (!r)
        return false;
    r->fn(r->opaque, addr - r->base, data, len, is_write);
    return true;
}
