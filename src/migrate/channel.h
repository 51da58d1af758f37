/* The migration's TCP connection: addresses, connect/listen, whole records in and out. */
#ifndef KILN_MIGRATE_CHANNEL_H
#define KILN_MIGRATE_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "migrate/stream.h"

struct migrate_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/*
 * "tcp:HOST:PORT" with HOST a numeric IPv4 address, an IPv6 address in brackets, or
 * "localhost" (no name lookups: they would need files and sockets the VMM is not allowed).
 * 0 or -EINVAL with a reason in `err`.
 */
int migrate_addr_parse(const char *text, struct migrate_addr *a, char *err, size_t errlen);

/* A connected socket (blocking, with send and receive timeouts), or -errno. */
int migrate_connect(const struct migrate_addr *a, unsigned timeout_ms);
/* A listening socket (SO_REUSEADDR), or -errno. */
int migrate_listen(const struct migrate_addr *a);
/* Sets the socket's send and receive timeouts. */
int migrate_set_timeout(int fd, unsigned timeout_ms);

/* A record: header, then the payload gathered from `iov`. 0 or -errno (-EPIPE: peer gone). */
int migrate_send_record(int fd, uint16_t type, const struct iovec *iov, unsigned n);
/* Exactly `len` bytes. 0, -EPIPE at end of stream, or -errno (-EAGAIN: timed out). */
int migrate_recv_all(int fd, void *buf, size_t len);

#endif
