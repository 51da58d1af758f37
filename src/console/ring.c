#include "console/ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int ring_init(struct ring *r, size_t size)
{
    memset(r, 0, sizeof(*r));
    if (size == 0 || (size & (size - 1)) != 0)
        return -EINVAL;
    r->buf = malloc(size);
    if (!r->buf)
        return -ENOMEM;
    r->size = size;
    return 0;
}

void ring_destroy(struct ring *r)
{
    free(r->buf);
    r->buf = NULL;
    r->size = 0;
}

void ring_write(struct ring *r, const uint8_t *data, size_t len)
{
    /* Only the last `size` bytes can survive: skip the rest without copying it. */
    if (len > r->size) {
        r->head += len - r->size;
        data += len - r->size;
        len = r->size;
    }
    while (len > 0) {
        size_t off = (size_t)(r->head & (r->size - 1));
        size_t n = r->size - off;
        if (n > len)
            n = len;
        memcpy(r->buf + off, data, n);
        r->head += n;
        data += n;
        len -= n;
    }
}

uint64_t ring_tail(const struct ring *r)
{
    return r->head > r->size ? r->head - r->size : 0;
}

size_t ring_peek(const struct ring *r, uint64_t pos, const uint8_t **data)
{
    *data = NULL;
    if (pos < ring_tail(r) || pos >= r->head)
        return 0;
    size_t off = (size_t)(pos & (r->size - 1));
    uint64_t avail = r->head - pos;
    size_t n = r->size - off;
    if (avail < n)
        n = (size_t)avail;
    *data = r->buf + off;
    return n;
}
