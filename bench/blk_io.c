/*
 * A tiny disk benchmark for the guest (its busybox has no fio), built static on the host:
 *   gcc -static -O2 -o blk_io bench/blk_io.c
 *
 *   blk_io DEV seqwrite MIB     1 MiB O_DIRECT writes, then fdatasync; MiB/s
 *   blk_io DEV seqread MIB      1 MiB O_DIRECT reads; MiB/s
 *   blk_io DEV randread SECONDS [SPAN_MIB]
 *                               4 KiB O_DIRECT reads at random 4 KiB-aligned offsets in the
 *                               first SPAN_MIB (default: the whole device), one at a time
 *                               (queue depth 1); IOPS
 *
 * Prints one line: "RESULT <mode> <figure> <unit> ...".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SEQ_BS (1u << 20)
#define RAND_BS 4096u

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what)
{
    perror(what);
    return 1;
}

static int seq(int fd, int write, long mib, void *buf)
{
    double t = now();
    for (long i = 0; i < mib; i++) {
        ssize_t n = write ? pwrite(fd, buf, SEQ_BS, (off_t)i * SEQ_BS)
                          : pread(fd, buf, SEQ_BS, (off_t)i * SEQ_BS);
        if (n != (ssize_t)SEQ_BS)
            return die(write ? "pwrite" : "pread");
    }
    if (write && fdatasync(fd) < 0)
        return die("fdatasync");
    double secs = now() - t;
    printf("RESULT %s %.1f MiB/s (%ld MiB in %.3f s)\n", write ? "seqwrite" : "seqread",
           (double)mib / secs, mib, secs);
    return 0;
}

static uint64_t next_random(uint64_t *s)
{
    /* xorshift64 */
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int randread(int fd, double seconds, uint64_t span, void *buf)
{
    uint64_t blocks = span / RAND_BS, seed = 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid(), ops = 0;
    if (blocks == 0)
        return die("span");
    double t = now(), end = t + seconds, elapsed;
    do {
        for (int k = 0; k < 64; k++, ops++) {
            off_t off = (off_t)(next_random(&seed) % blocks) * RAND_BS;
            if (pread(fd, buf, RAND_BS, off) != (ssize_t)RAND_BS)
                return die("pread");
        }
    } while (now() < end);
    elapsed = now() - t;
    printf("RESULT randread %.0f IOPS (%llu reads of 4 KiB in %.3f s, %.1f us each)\n",
           (double)ops / elapsed, (unsigned long long)ops, elapsed, elapsed / (double)ops * 1e6);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: blk_io DEV seqwrite|seqread MIB | randread SECONDS [SPAN_MIB]\n");
        return 2;
    }
    const char *mode = argv[2];
    int write = !strcmp(mode, "seqwrite");
    int fd = open(argv[1], (write ? O_RDWR : O_RDONLY) | O_DIRECT);
    if (fd < 0)
        return die(argv[1]);
    void *buf;
    if (posix_memalign(&buf, 4096, SEQ_BS) != 0)
        return die("posix_memalign");
    memset(buf, 0x5a, SEQ_BS);
    if (write || !strcmp(mode, "seqread"))
        return seq(fd, write, atol(argv[3]), buf);
    if (!strcmp(mode, "randread")) {
        uint64_t span = argc > 4 ? (uint64_t)atol(argv[4]) << 20 : (uint64_t)lseek(fd, 0, SEEK_END);
        return randread(fd, atof(argv[3]), span, buf);
    }
    fprintf(stderr, "blk_io: unknown mode %s\n", mode);
    return 2;
}
