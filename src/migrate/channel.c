#include "migrate/channel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static int parse_port(const char *s, uint16_t *port)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v == 0 || v > 65535 || s[0] == '-' || s[0] == '+')
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

int migrate_addr_parse(const char *text, struct migrate_addr *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    char host[64];
    const char *rest = strncmp(text, "tcp:", 4) == 0 ? text + 4 : NULL;
    const char *colon = rest ? strrchr(rest, ':') : NULL;
    uint16_t port;
    if (!colon || colon == rest || (size_t)(colon - rest) >= sizeof(host) ||
        parse_port(colon + 1, &port) < 0) {
        snprintf(err, errlen, "'%s': expected tcp:HOST:PORT", text);
        return -EINVAL;
    }
    memcpy(host, rest, (size_t)(colon - rest));
    host[colon - rest] = '\0';
    struct sockaddr_in *v4 = (struct sockaddr_in *)&a->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->ss;
    size_t hl = strlen(host);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons(port);
            a->len = sizeof(*v6);
            return 0;
        }
    } else if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        a->len = sizeof(*v4);
        return 0;
    }
    snprintf(err, errlen, "'%s': HOST must be an IPv4 address, [IPv6] or localhost", text);
    return -EINVAL;
}

int migrate_set_timeout(int fd, unsigned timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
        return -errno;
    return 0;
}

int migrate_connect(const struct migrate_addr *a, unsigned timeout_ms)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* small acks, no delay */
    /* SO_SNDTIMEO bounds connect() too (a blackholed address fails instead of hanging). */
    int ret = migrate_set_timeout(fd, timeout_ms);
    if (ret == 0 && connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
        ret = errno == EINPROGRESS ? -ETIMEDOUT : -errno;
    if (ret < 0) {
        close(fd);
        return ret;
    }
    return fd;
}

int migrate_listen(const struct migrate_addr *a)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, 1) < 0) {
        int ret = -errno;
        close(fd);
        return ret;
    }
    return fd;
}

/* sendmsg until every byte of `iov` is out (it may stop short on a socket). */
static int send_iov(int fd, struct iovec *iov, unsigned n)
{
    while (n > 0) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n};
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == ECONNRESET ? -EPIPE : -errno;
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

#define MIGRATE_MAX_IOV 8

int migrate_send_record(int fd, uint16_t type, const struct iovec *iov, unsigned n)
{
    if (n + 1 > MIGRATE_MAX_IOV)
        return -EINVAL;
    uint8_t hdr[MIGRATE_RECORD_HEADER];
    struct iovec all[MIGRATE_MAX_IOV];
    size_t len = 0;
    all[0] = (struct iovec){hdr, sizeof(hdr)};
    for (unsigned i = 0; i < n; i++) {
        all[i + 1] = iov[i];
        len += iov[i].iov_len;
    }
    if (len > UINT32_MAX)
        return -EINVAL;
    migrate_record_header_put(hdr, type, (uint32_t)len);
    return send_iov(fd, all, n + 1);
}

int migrate_recv_all(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = recv(fd, (uint8_t *)buf + got, len - got, 0);
        if (r == 0)
            return -EPIPE;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno == EWOULDBLOCK ? -EAGAIN : errno == ECONNRESET ? -EPIPE : -errno;
        }
        got += (size_t)r;
    }
    return 0;
}
