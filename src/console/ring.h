/*
 * A byte ring that keeps the most recent output: writers never block and never fail, the
 * oldest bytes are overwritten. Positions are absolute byte counts since creation (64 bits:
 * they do not wrap in practice), so a reader that remembers where it stopped can tell how
 * much it missed. Not thread-safe: the owner locks.
 */
#ifndef KILN_RING_H
#define KILN_RING_H

#include <stddef.h>
#include <stdint.h>

struct ring {
    uint8_t *buf;
    size_t size;   /* a power of two */
    uint64_t head; /* bytes ever written; the next byte goes to buf[head % size] */
};

/* `size` must be a power of two. Returns 0 or -ENOMEM / -EINVAL. */
int ring_init(struct ring *r, size_t size);
void ring_destroy(struct ring *r);

void ring_write(struct ring *r, const uint8_t *data, size_t len);

/* The oldest position still held. */
uint64_t ring_tail(const struct ring *r);

/*
 * The contiguous bytes held from position `pos` on (at most up to the end of the buffer):
 * returns their count and points `*data` at them. `pos` older than ring_tail() or newer
 * than head gives 0; a caller that fell behind moves to ring_tail() first.
 */
size_t ring_peek(const struct ring *r, uint64_t pos, const uint8_t **data);

#endif
