#include "migrate/destination.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migrate/channel.h"
#include "util.h"

/* Grows `buf` to `len` bytes; record lengths were bounded by their header's check. */
static int reserve(uint8_t **buf, size_t *cap, size_t len)
{
    if (len <= *cap)
        return 0;
    uint8_t *p = realloc(*buf, len);
    if (!p)
        return -ENOMEM;
    *buf = p;
    *cap = len;
    return 0;
}

static void describe_io(int ret, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s",
             ret == -EPIPE    ? "the source closed the connection before the end"
             : ret == -EAGAIN ? "the source stopped sending"
                              : strerror(-ret));
}

static void report_pass(const struct migrate_rx *rx, uint32_t *shown)
{
    if (rx->pass == *shown)
        return;
    *shown = rx->pass;
    log_verbose("migration: pass %u, %llu MiB received", rx->pass,
                (unsigned long long)(rx->bytes >> 20));
}

int migrate_receive(int fd, struct migrate_rx *rx, char *err, size_t errlen)
{
    uint8_t hdr[MIGRATE_HEADER_SIZE];
    err[0] = '\0';
    int ret = migrate_recv_all(fd, hdr, sizeof(hdr));
    if (ret < 0) {
        describe_io(ret, err, errlen);
        return ret;
    }
    if ((ret = migrate_header_check(hdr, err, errlen)) < 0)
        return ret;
    uint8_t *buf = NULL;
    size_t cap = 0;
    uint32_t shown = 0;
    for (ret = 0; ret == 0;) {
        struct migrate_record_header h;
        uint8_t rh[MIGRATE_RECORD_HEADER];
        if ((ret = migrate_recv_all(fd, rh, sizeof(rh))) < 0 ||
            (ret = migrate_record_header_parse(rh, &h, err, errlen)) < 0 ||
            (ret = reserve(&buf, &cap, h.len)) < 0 || (ret = migrate_recv_all(fd, buf, h.len)) < 0)
            break;
        ret = migrate_rx_record(rx, h.type, buf, h.len, err, errlen);
        report_pass(rx, &shown);
    }
    free(buf);
    if (ret == -ENOMEM && !err[0])
        snprintf(err, errlen, "out of memory");
    else if (ret == -EPIPE || ret == -EAGAIN || ret == -ECONNRESET || ret == -ETIMEDOUT)
        describe_io(ret, err, errlen);
    return ret == 1 ? 0 : ret;
}

/*
 * Closing a TCP socket with unread bytes sends a reset, which can overtake the error record
 * and discard it at the source. So say we are done, then read until the source closes (or
 * for at most a second) before the caller closes.
 */
static void linger_for_peer(int fd)
{
    shutdown(fd, SHUT_WR);
    uint64_t end = monotonic_ns() + 1000000000ull;
    char scratch[4096];
    for (uint64_t now = monotonic_ns(); now < end; now = monotonic_ns()) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)((end - now) / 1000000) + 1) <= 0)
            return;
        if (read(fd, scratch, sizeof(scratch)) <= 0)
            return;
    }
}

void migrate_send_error(int fd, const char *reason)
{
    size_t len = strlen(reason);
    struct iovec iov = {(void *)reason, len < MIGRATE_MAX_ERROR ? len : MIGRATE_MAX_ERROR};
    if (migrate_send_record(fd, MIGRATE_ERROR, &iov, 1) == 0)
        linger_for_peer(fd);
}

int migrate_await_go(int fd)
{
    int ret = migrate_send_record(fd, MIGRATE_LOADED, NULL, 0);
    uint8_t rh[MIGRATE_RECORD_HEADER];
    struct migrate_record_header h;
    char err[128];
    if (ret == 0)
        ret = migrate_recv_all(fd, rh, sizeof(rh));
    if (ret == 0)
        ret = migrate_record_header_parse(rh, &h, err, sizeof(err));
    if (ret == 0 && h.type != MIGRATE_GO)
        ret = -EPROTO;
    return ret;
}

int migrate_send_resumed(int fd)
{
    return migrate_send_record(fd, MIGRATE_RESUMED, NULL, 0);
}
