#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "util.h"

static void parse_size_suffixes(void **state)
{
    uint64_t v;
    assert_int_equal(parse_size("256M", &v), 0);
    assert_int_equal(v, 256ULL << 20);
    assert_int_equal(parse_size("4G", &v), 0);
    assert_int_equal(v, 4ULL << 30);
    assert_int_equal(parse_size("512k", &v), 0);
    assert_int_equal(v, 512ULL << 10);
    assert_int_equal(parse_size("1GiB", &v), 0);
    assert_int_equal(v, 1ULL << 30);
    assert_int_equal(parse_size("100MB", &v), 0);
    assert_int_equal(v, 100ULL << 20);
    assert_int_equal(parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
}

static void parse_size_rejects_garbage(void **state)
{
    uint64_t v = 7;
    assert_int_equal(parse_size("", &v), -EINVAL);
    assert_int_equal(parse_size("M", &v), -EINVAL);
    assert_int_equal(parse_size("-1G", &v), -EINVAL);
    assert_int_equal(parse_size("12Q", &v), -EINVAL);
    assert_int_equal(parse_size("1GG", &v), -EINVAL);
    assert_int_equal(parse_size(" 1G", &v), -EINVAL);
    assert_int_equal(parse_size(NULL, &v), -EINVAL);
    assert_int_equal(parse_size("99999999999999999999", &v), -ERANGE);
    assert_int_equal(parse_size("17179869184G", &v), -ERANGE); /* 2^34 GiB overflows */
    assert_int_equal(v, 7);
}

static void parse_uint_bounds(void **state)
{
    uint64_t v;
    assert_int_equal(parse_uint("1", 1, 8, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(parse_uint("8", 1, 8, &v), 0);
    assert_int_equal(parse_uint("0", 1, 8, &v), -ERANGE);
    assert_int_equal(parse_uint("9", 1, 8, &v), -ERANGE);
    assert_int_equal(parse_uint("2x", 1, 8, &v), -EINVAL);
    assert_int_equal(parse_uint("-2", 1, 8, &v), -EINVAL);
    assert_int_equal(parse_uint("", 1, 8, &v), -EINVAL);
}

static void ratelimit_caps_burst(void **state)
{
    struct ratelimit rl = RATELIMIT_INIT(3600, 3);
    int allowed = 0;
    for (int i = 0; i < 100; i++)
        allowed += ratelimit_allow(&rl);
    assert_int_equal(allowed, 3);
    assert_int_equal(rl.suppressed, 97);
}

static void read_file_limits(void **state)
{
    char path[] = "/tmp/kiln-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hello", 5), 5);
    close(fd);
    uint8_t *data;
    size_t size;
    assert_int_equal(read_file(path, &data, &size, 100), 0);
    assert_int_equal(size, 5);
    assert_memory_equal(data, "hello", 5);
    free(data);
    assert_int_equal(read_file(path, &data, &size, 4), -EFBIG);
    assert_int_equal(read_file("/tmp", &data, &size, 100), -EISDIR);
    assert_int_equal(read_file("/nonexistent/kiln", &data, &size, 100), -ENOENT);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_size_suffixes), cmocka_unit_test(parse_size_rejects_garbage),
        cmocka_unit_test(parse_uint_bounds),   cmocka_unit_test(ratelimit_caps_burst),
        cmocka_unit_test(read_file_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
