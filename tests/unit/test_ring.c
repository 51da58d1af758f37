/* The output ring behind --console-sock: wrap-around, overwrite, positions, peeking. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "console/ring.h"

/* Copies everything held from `pos` on into `out` (as a reader would) and returns its size. */
static size_t drain(const struct ring *r, uint64_t pos, uint8_t *out, size_t cap)
{
    size_t got = 0;
    const uint8_t *data;
    size_t n;
    while ((n = ring_peek(r, pos, &data)) > 0) {
        assert_true(got + n <= cap);
        memcpy(out + got, data, n);
        got += n;
        pos += n;
    }
    return got;
}

static void test_sizes(void **state)
{
    (void)state;
    struct ring r;
    assert_int_equal(ring_init(&r, 0), -EINVAL);
    assert_int_equal(ring_init(&r, 24), -EINVAL);
    assert_int_equal(ring_init(&r, 16), 0);
    assert_int_equal(r.head, 0);
    assert_int_equal(ring_tail(&r), 0);
    const uint8_t *data;
    assert_int_equal(ring_peek(&r, 0, &data), 0); /* empty */
    assert_null(data);
    ring_destroy(&r);
}

static void test_write_and_peek(void **state)
{
    (void)state;
    struct ring r;
    assert_int_equal(ring_init(&r, 16), 0);
    ring_write(&r, (const uint8_t *)"hello", 5);
    assert_int_equal(r.head, 5);
    assert_int_equal(ring_tail(&r), 0);
    const uint8_t *data;
    assert_int_equal(ring_peek(&r, 0, &data), 5);
    assert_memory_equal(data, "hello", 5);
    assert_int_equal(ring_peek(&r, 3, &data), 2);
    assert_memory_equal(data, "lo", 2);
    assert_int_equal(ring_peek(&r, 5, &data), 0); /* caught up */
    assert_int_equal(ring_peek(&r, 6, &data), 0); /* from the future */
    ring_destroy(&r);
}

/* Writes that cross the end of the buffer come back in two pieces, in order. */
static void test_wrap(void **state)
{
    (void)state;
    struct ring r;
    assert_int_equal(ring_init(&r, 16), 0);
    ring_write(&r, (const uint8_t *)"0123456789", 10);
    ring_write(&r, (const uint8_t *)"abcdefghij", 10); /* 20 bytes: the first 4 are gone */
    assert_int_equal(r.head, 20);
    assert_int_equal(ring_tail(&r), 4);
    const uint8_t *data;
    assert_int_equal(ring_peek(&r, 3, &data), 0);  /* overwritten */
    assert_int_equal(ring_peek(&r, 4, &data), 12); /* up to the end of the buffer */
    uint8_t out[32];
    size_t n = drain(&r, 4, out, sizeof(out));
    assert_int_equal(n, 16);
    assert_memory_equal(out, "456789abcdefghij", 16);
    ring_destroy(&r);
}

/* One write larger than the ring keeps only its last `size` bytes. */
static void test_oversized_write(void **state)
{
    (void)state;
    struct ring r;
    assert_int_equal(ring_init(&r, 8), 0);
    ring_write(&r, (const uint8_t *)"xy", 2);
    ring_write(&r, (const uint8_t *)"ABCDEFGHIJKLMNOPQRST", 20);
    assert_int_equal(r.head, 22);
    assert_int_equal(ring_tail(&r), 14);
    uint8_t out[16];
    size_t n = drain(&r, ring_tail(&r), out, sizeof(out));
    assert_int_equal(n, 8);
    assert_memory_equal(out, "MNOPQRST", 8);
    ring_destroy(&r);
}

/* Many small writes: the ring always holds exactly the last `size` bytes written. */
static void test_stream(void **state)
{
    (void)state;
    struct ring r;
    assert_int_equal(ring_init(&r, 64), 0);
    uint8_t all[5000];
    for (size_t i = 0; i < sizeof(all); i++)
        all[i] = (uint8_t)(i * 7 + i / 251);
    size_t written = 0;
    for (size_t step = 1; written < sizeof(all); step = step % 97 + 3) {
        size_t n = written + step > sizeof(all) ? sizeof(all) - written : step;
        ring_write(&r, all + written, n);
        written += n;
        uint8_t out[64];
        size_t got = drain(&r, ring_tail(&r), out, sizeof(out));
        size_t want = written < 64 ? written : 64;
        assert_int_equal(got, want);
        assert_memory_equal(out, all + written - want, want);
    }
    ring_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),  cmocka_unit_test(test_write_and_peek),
        cmocka_unit_test(test_wrap),   cmocka_unit_test(test_oversized_write),
        cmocka_unit_test(test_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
