/*
 * netbench: a minimal TCP throughput and latency tool for the virtio-net tests, built static
 * so the same binary runs in the stock-KVM host and inside the guest's initramfs.
 *
 *   netbench recv PORT            accept one connection, read to EOF, report
 *   netbench send HOST PORT SECS  connect (retrying for 30 s), send for SECS seconds
 *   netbench echo PORT            accept one connection, echo every byte back until EOF
 *   netbench rr HOST PORT COUNT   connect (retrying), COUNT request/reply round trips
 *
 * The receiver's figure is the one to quote: bytes from the first to the last byte read.
 * Output: "netbench: recv BYTES bytes in SECONDS s = MBPS MB/s" (MB = 10^6 bytes), and
 * "netbench: rr COUNT round trips: median X us p99 Y us min Z us" (RR_SIZE bytes each way,
 * TCP_NODELAY on both ends, the first RR_WARMUP round trips not counted).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (128 * 1024)
#define RR_SIZE 64
#define RR_WARMUP 20

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Listens on port, says so (the drivers wait for that line), accepts one connection. */
static int accept_one(int port)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 1) < 0) {
        perror("netbench: listen");
        return -1;
    }
    printf("netbench: listening on %d\n", port);
    fflush(stdout);
    int s = accept(ls, NULL, NULL);
    if (s < 0)
        perror("netbench: accept");
    close(ls);
    return s;
}

/* Connects to host:port, retrying for 30 s: the peer may still be starting. */
static int connect_retry(const char *host, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "netbench: bad address %s\n", host);
        return -1;
    }
    for (double until = now() + 30; now() < until;) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0)
            return s;
        close(s);
        usleep(200000);
    }
    perror("netbench: connect");
    return -1;
}

/* A small write goes out at once instead of waiting (Nagle) for earlier data's ACK, which
 * the peer may delay by up to 40 ms: the round trip then times the path, not TCP's timers. */
static void nodelay(int s)
{
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Writes all of buf, or reads exactly len bytes into it: 0, or -1 on an error or early EOF. */
static int transfer_all(int s, char *buf, size_t len, bool writing)
{
    while (len > 0) {
        ssize_t n = writing ? write(s, buf, len) : read(s, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads to EOF and reports the rate; `echo` also writes every byte back at once. */
static int do_recv(int port, bool echo)
{
    int s = accept_one(port);
    if (s < 0)
        return 1;
    if (echo)
        nodelay(s);
    static char buf[BUF_SIZE];
    unsigned long long total = 0;
    double first = 0, last = 0;
    for (;;) {
        ssize_t n = read(s, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (echo && transfer_all(s, buf, (size_t)n, true) < 0) {
            perror("netbench: echo write");
            return 1;
        }
        last = now();
        if (total == 0)
            first = last;
        total += (unsigned long long)n;
    }
    double secs = last > first ? last - first : 0;
    if (echo)
        printf("netbench: echoed %llu bytes\n", total);
    else
        printf("netbench: recv %llu bytes in %.3f s = %.2f MB/s\n", total, secs,
               secs > 0 ? (double)total / secs / 1e6 : 0.0);
    return 0;
}

static int do_send(const char *host, int port, double secs)
{
    int s = connect_retry(host, port);
    if (s < 0)
        return 1;
    static char buf[BUF_SIZE];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (char)(i * 31 + 7);
    unsigned long long total = 0;
    double start = now(), end = start + secs;
    while (now() < end) {
        ssize_t n = write(s, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("netbench: write");
            return 1;
        }
        total += (unsigned long long)n;
    }
    shutdown(s, SHUT_WR);
    while (read(s, buf, sizeof(buf)) > 0) {
    }
    double t = now() - start;
    printf("netbench: sent %llu bytes in %.3f s = %.2f MB/s\n", total, t, (double)total / t / 1e6);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int do_rr(const char *host, int port, int count)
{
    if (count < 1) {
        fprintf(stderr, "netbench: rr needs COUNT >= 1\n");
        return 2;
    }
    int s = connect_retry(host, port);
    if (s < 0)
        return 1;
    nodelay(s);
    double *us = malloc((size_t)count * sizeof(*us));
    char req[RR_SIZE], rep[RR_SIZE];
    if (!us)
        return 1;
    memset(req, 'q', sizeof(req));
    for (int i = -RR_WARMUP; i < count; i++) {
        double t = now();
        errno = 0;
        if (transfer_all(s, req, sizeof(req), true) < 0 ||
            transfer_all(s, rep, sizeof(rep), false) < 0) {
            fprintf(stderr, "netbench: rr: round trip %d failed: %s\n", i,
                    errno ? strerror(errno) : "connection closed");
            return 1;
        }
        if (i >= 0)
            us[i] = (now() - t) * 1e6;
    }
    shutdown(s, SHUT_WR);
    qsort(us, (size_t)count, sizeof(*us), cmp_double);
    printf("netbench: rr %d round trips: median %.1f us p99 %.1f us min %.1f us\n", count,
           us[count / 2], us[(size_t)((count - 1) * 0.99)], us[0]);
    free(us);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "recv") == 0)
        return do_recv(atoi(argv[2]), false);
    if (argc == 5 && strcmp(argv[1], "send") == 0)
        return do_send(argv[2], atoi(argv[3]), atof(argv[4]));
    if (argc == 3 && strcmp(argv[1], "echo") == 0)
        return do_recv(atoi(argv[2]), true);
    if (argc == 5 && strcmp(argv[1], "rr") == 0)
        return do_rr(argv[2], atoi(argv[3]), atoi(argv[4]));
    fprintf(stderr, "usage: netbench recv PORT | netbench send HOST PORT SECONDS |\n"
                    "       netbench echo PORT | netbench rr HOST PORT COUNT\n");
    return 2;
}
