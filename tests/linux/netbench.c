/*
 * netbench: a minimal TCP throughput tool for the virtio-net tests, built static so the
 * same binary runs in the stock-KVM host and inside the guest's initramfs.
 *
 *   netbench recv PORT            accept one connection, read to EOF, report
 *   netbench send HOST PORT SECS  connect (retrying for 30 s), send for SECS seconds
 *
 * The receiver's figure is the one to quote: bytes from the first to the last byte read.
 * Output: "netbench: recv BYTES bytes in SECONDS s = MBPS MB/s" (MB = 10^6 bytes).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (128 * 1024)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int do_recv(int port)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 1) < 0) {
        perror("netbench: listen");
        return 1;
    }
    printf("netbench: listening on %d\n", port);
    fflush(stdout);
    int s = accept(ls, NULL, NULL);
    if (s < 0) {
        perror("netbench: accept");
        return 1;
    }
    static char buf[BUF_SIZE];
    unsigned long long total = 0;
    double first = 0, last = 0;
    for (;;) {
        ssize_t n = read(s, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        last = now();
        if (total == 0)
            first = last;
        total += (unsigned long long)n;
    }
    double secs = last > first ? last - first : 0;
    printf("netbench: recv %llu bytes in %.3f s = %.2f MB/s\n", total, secs,
           secs > 0 ? (double)total / secs / 1e6 : 0.0);
    return 0;
}

static int do_send(const char *host, int port, double secs)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "netbench: bad address %s\n", host);
        return 2;
    }
    int s = -1;
    for (double until = now() + 30; now() < until;) {
        s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0)
            break;
        close(s);
        s = -1;
        usleep(200000);
    }
    if (s < 0) {
        perror("netbench: connect");
        return 1;
    }
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

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "recv") == 0)
        return do_recv(atoi(argv[2]));
    if (argc == 5 && strcmp(argv[1], "send") == 0)
        return do_send(argv[2], atoi(argv[3]), atof(argv[4]));
    fprintf(stderr, "usage: netbench recv PORT | netbench send HOST PORT SECONDS\n");
    return 2;
}
