/*
 * The destination side of a live migration: reading the source's records into a
 * migrate_rx, and the destination's half of the hand-over (LOADED, GO, RESUMED).
 */
#ifndef KILN_MIGRATE_DESTINATION_H
#define KILN_MIGRATE_DESTINATION_H

#include <stddef.h>

#include "migrate/stream.h"

/*
 * Reads the stream header and every record up to END into `rx`, checking each. Returns 0,
 * -EBADMSG (a malformed or out-of-order stream), -ENOMEM, -EPIPE (the source went away)
 * or -EAGAIN (it stopped sending), with a one-line reason in `err`.
 */
int migrate_receive(int fd, struct migrate_rx *rx, char *err, size_t errlen);

/* Tells the source why the destination refuses (best effort: it may be gone). */
void migrate_send_error(int fd, const char *reason);

/*
 * LOADED, then waits for the source's GO: 0 when the VM may run here, -errno when it
 * must not (the source cancelled, went away or said something else).
 */
int migrate_await_go(int fd);
/* RESUMED: the VM runs here. */
int migrate_send_resumed(int fd);

#endif
