/* The disk I/O engines (block/aio.h) on their own: both must behave the same. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/aio.h"

#define FILE_SIZE (256u * 1024)
#define NREQ 64
#define BS 4096

struct fx {
    enum aio_kind kind;
    char path[64];
    int fd;
    struct aio_engine *e;
    unsigned done;
    int last_result;
};

static void on_done(void *opaque, struct aio_req *req)
{
    struct fx *f = opaque;
    f->done++;
    f->last_result = req->result;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->kind = (enum aio_kind)(uintptr_t)*state;
    snprintf(f->path, sizeof(f->path), "/tmp/kiln-test-aio-XXXXXX");
    f->fd = mkstemp(f->path);
    assert_true(f->fd >= 0);
    uint8_t *buf = malloc(FILE_SIZE);
    for (unsigned i = 0; i < FILE_SIZE; i++)
        buf[i] = (uint8_t)(i ^ (i >> 12));
    assert_int_equal(pwrite(f->fd, buf, FILE_SIZE, 0), FILE_SIZE);
    free(buf);
    assert_int_equal(aio_engine_create(&f->e, f->kind, f->fd, NREQ, on_done, f), 0);
    assert_string_equal(f->e->ops->name, f->kind == AIO_KIND_THREADS ? "threads" : "io_uring");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    aio_drain(f->e);
    aio_engine_destroy(f->e);
    close(f->fd);
    unlink(f->path);
    free(f);
    return 0;
}

static void test_advance(void **state)
{
    uint8_t a[10], b[20], c[30];
    struct iovec iov[3] = {{a, 10}, {b, 20}, {c, 30}};
    struct aio_req r = {.op = AIO_READ, .iov = iov, .iovcnt = 3, .offset = 100, .len = 60};
    assert_true(aio_advance(&r, 15)); /* into the second segment */
    assert_int_equal(r.iovcnt, 2);
    assert_ptr_equal(r.iov->iov_base, b + 5);
    assert_int_equal(r.iov->iov_len, 15);
    assert_int_equal(r.offset, 115);
    assert_int_equal(r.len, 45);
    assert_true(aio_advance(&r, 15)); /* exactly the end of the second */
    assert_int_equal(r.iovcnt, 1);
    assert_ptr_equal(r.iov->iov_base, c);
    assert_false(aio_advance(&r, 30));
    assert_int_equal(r.len, 0);
    (void)state;
}

static void test_kind_from_env(void **state)
{
    enum aio_kind k;
    unsetenv("KILN_BLK_ENGINE");
    assert_int_equal(aio_kind_from_env(&k), 0);
    assert_int_equal(k, AIO_KIND_AUTO);
    setenv("KILN_BLK_ENGINE", "threads", 1);
    assert_int_equal(aio_kind_from_env(&k), 0);
    assert_int_equal(k, AIO_KIND_THREADS);
    setenv("KILN_BLK_ENGINE", "io_uring", 1);
    assert_int_equal(aio_kind_from_env(&k), 0);
    assert_int_equal(k, AIO_KIND_IO_URING);
    setenv("KILN_BLK_ENGINE", "fast", 1);
    assert_int_equal(aio_kind_from_env(&k), -EINVAL);
    unsetenv("KILN_BLK_ENGINE");
    (void)state;
}

/* Many reads in flight, completed through the eventfd and reap(). */
static void test_reads(void **state)
{
    struct fx *f = *state;
    static uint8_t bufs[NREQ][BS];
    struct iovec iov[NREQ];
    struct aio_req reqs[NREQ];
    for (unsigned i = 0; i < NREQ; i++) {
        iov[i] = (struct iovec){bufs[i], BS};
        reqs[i] = (struct aio_req){
            .op = AIO_READ, .iov = &iov[i], .iovcnt = 1, .offset = (uint64_t)i * BS, .len = BS};
        assert_int_equal(aio_submit(f->e, &reqs[i]), 0);
    }
    aio_kick(f->e);
    for (int spins = 0; f->done < NREQ && spins < 2000; spins++) {
        uint64_t n;
        if (read(f->e->event_fd, &n, sizeof(n)) < 0)
            usleep(1000);
        aio_reap(f->e);
    }
    assert_int_equal(f->done, NREQ);
    assert_int_equal(f->e->inflight, 0);
    for (unsigned i = 0; i < NREQ; i++) {
        assert_int_equal(reqs[i].result, 0);
        for (unsigned k = 0; k < BS; k += 511) {
            unsigned off = i * BS + k;
            assert_int_equal(bufs[i][k], (uint8_t)(off ^ (off >> 12)));
        }
    }
}

/* Writes, sync, fallocate, then drain() waits for all of them. */
static void test_write_sync_drain(void **state)
{
    struct fx *f = *state;
    static uint8_t data[BS];
    memset(data, 0xab, sizeof(data));
    struct iovec iov = {data, BS};
    struct aio_req w = {.op = AIO_WRITE, .iov = &iov, .iovcnt = 1, .offset = 8 * BS, .len = BS};
    struct aio_req s = {.op = AIO_FDATASYNC};
    struct aio_req p = {.op = AIO_PUNCH_HOLE, .offset = 16 * BS, .len = 2 * BS};
    assert_int_equal(aio_submit(f->e, &w), 0);
    assert_int_equal(aio_submit(f->e, &s), 0);
    assert_int_equal(aio_submit(f->e, &p), 0);
    aio_kick(f->e);
    aio_drain(f->e);
    assert_int_equal(f->done, 3);
    assert_int_equal(f->e->inflight, 0);
    assert_int_equal(w.result, 0);
    assert_int_equal(s.result, 0);
    assert_int_equal(p.result, 0);
    uint8_t got[BS];
    assert_int_equal(pread(f->fd, got, BS, 8 * BS), BS);
    assert_memory_equal(got, data, BS);
    assert_int_equal(pread(f->fd, got, BS, 16 * BS), BS);
    for (unsigned i = 0; i < BS; i++)
        assert_int_equal(got[i], 0);
}

/* A read running past the end of the file: short, then nothing: an error, not a hang. */
static void test_read_past_end(void **state)
{
    struct fx *f = *state;
    static uint8_t buf[2 * BS];
    struct iovec iov = {buf, sizeof(buf)};
    struct aio_req r = {
        .op = AIO_READ, .iov = &iov, .iovcnt = 1, .offset = FILE_SIZE - BS, .len = 2 * BS};
    assert_int_equal(aio_submit(f->e, &r), 0);
    aio_kick(f->e);
    aio_drain(f->e);
    assert_int_equal(f->done, 1);
    assert_int_equal(r.result, -EIO);
}

#define BOTH(fn)                                                                                   \
    cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown,                                  \
                                             (void *)(uintptr_t)AIO_KIND_IO_URING),                \
        cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown,                              \
                                                 (void *)(uintptr_t)AIO_KIND_THREADS)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_advance),
        cmocka_unit_test(test_kind_from_env),
        BOTH(test_reads),
        BOTH(test_write_sync_drain),
        BOTH(test_read_past_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
