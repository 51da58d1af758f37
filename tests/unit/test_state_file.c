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
#include <zlib.h>

#include "snapshot/state_file.h"
#include "util.h"

static char err[256];

/* A file with two sections: "alpha" (u8, u16, u32, u64, bytes) and an empty "beta". */
static size_t build(uint8_t *out, size_t cap, uint16_t beta_flags)
{
    struct state_writer w;
    state_writer_init(&w);
    state_section_begin(&w, "alpha", 3, STATE_SECTION_MANDATORY);
    state_put_u8(&w, 0x12);
    state_put_u16(&w, 0x3456);
    state_put_u32(&w, 0x789abcde);
    state_put_u64(&w, 0x0102030405060708ULL);
    state_put_bytes(&w, "xyz", 3);
    state_put_bool(&w, true);
    state_section_end(&w);
    state_section_begin(&w, "beta", 1, beta_flags);
    state_section_end(&w);
    const uint8_t *data;
    size_t len;
    assert_int_equal(state_writer_finish(&w, &data, &len), 0);
    assert_true(len <= cap);
    memcpy(out, data, len);
    state_writer_free(&w);
    return len;
}

static void fix_crc(uint8_t *p, size_t len)
{
    uint32_t crc = (uint32_t)crc32(0L, p, (uInt)(len - 4));
    for (int i = 0; i < 4; i++)
        p[len - 4 + i] = (uint8_t)(crc >> (8 * i));
}

static void round_trip(void **state)
{
    uint8_t buf[256];
    size_t len = build(buf, sizeof(buf), 0);
    /* little-endian on disk, whatever the host */
    assert_memory_equal(buf, "KILNSNAP\x01\0\0\0\x02\0\0\0", 16);
    struct state_file f;
    assert_int_equal(state_file_parse(&f, buf, len, err, sizeof(err)), 0);
    assert_int_equal(f.nsections, 2);
    const struct state_section *a = state_file_find(&f, "alpha");
    assert_non_null(a);
    assert_int_equal(a->version, 3);
    assert_int_equal(a->flags, STATE_SECTION_MANDATORY);
    struct state_reader r;
    state_reader_init(&r, a->payload, a->len);
    assert_int_equal(state_get_u8(&r), 0x12);
    assert_int_equal(state_get_u16(&r), 0x3456);
    assert_int_equal(state_get_u32(&r), 0x789abcde);
    assert_true(state_get_u64(&r) == 0x0102030405060708ULL);
    char xyz[3];
    state_get_bytes(&r, xyz, 3);
    assert_memory_equal(xyz, "xyz", 3);
    assert_true(state_get_bool(&r));
    assert_int_equal(state_reader_done(&r), 0);
    const struct state_section *b = state_file_find(&f, "beta");
    assert_non_null(b);
    assert_int_equal(b->len, 0);
    assert_null(state_file_find(&f, "gamma"));
    state_file_free(&f);
}

static void reader_bounds(void **state)
{
    const uint8_t two[] = {1, 2};
    struct state_reader r;
    state_reader_init(&r, two, sizeof(two));
    assert_int_equal(state_get_u32(&r), 0); /* past the end: 0 and an error */
    assert_int_equal(r.error, -EBADMSG);
    assert_int_equal(state_get_u8(&r), 0); /* errors stick */
    assert_int_equal(state_reader_done(&r), -EBADMSG);
    /* not everything consumed */
    state_reader_init(&r, two, sizeof(two));
    state_get_u8(&r);
    assert_int_equal(state_reader_done(&r), -EBADMSG);
    /* a bool must be 0 or 1 */
    const uint8_t notbool[] = {2};
    state_reader_init(&r, notbool, 1);
    state_get_bool(&r);
    assert_int_equal(state_reader_done(&r), -EBADMSG);
    /* a length larger than what is left fails without reading */
    uint8_t out[4] = {9, 9, 9, 9};
    state_reader_init(&r, two, sizeof(two));
    state_get_u8(&r);
    state_get_bytes(&r, out, sizeof(out));
    assert_int_equal(r.error, -EBADMSG);
    assert_int_equal(out[0], 0);
}

static void writer_misuse(void **state)
{
    struct state_writer w;
    const uint8_t *data;
    size_t len;
    state_writer_init(&w);
    state_section_begin(&w, "a", 1, 0); /* left open */
    assert_int_equal(state_writer_finish(&w, &data, &len), -EINVAL);
    state_writer_free(&w);
    state_writer_init(&w);
    state_section_begin(&w, "", 1, 0); /* empty id */
    assert_int_equal(state_writer_finish(&w, &data, &len), -EINVAL);
    state_writer_free(&w);
    state_writer_init(&w);
    state_section_begin(&w, "0123456789012345678901234567890123", 1, 0); /* > 32 bytes */
    assert_int_equal(state_writer_finish(&w, &data, &len), -EINVAL);
    state_writer_free(&w);
    state_writer_init(&w);
    state_section_end(&w); /* nothing open */
    assert_int_equal(state_writer_finish(&w, &data, &len), -EINVAL);
    state_writer_free(&w);
    /* a section larger than a state file may be */
    state_writer_init(&w);
    state_section_begin(&w, "big", 1, 0);
    uint8_t *chunk = calloc(1, 1 << 20);
    assert_non_null(chunk);
    for (int i = 0; i < 70; i++)
        state_put_bytes(&w, chunk, 1 << 20);
    free(chunk);
    state_section_end(&w);
    assert_int_equal(state_writer_finish(&w, &data, &len), -EFBIG);
    state_writer_free(&w);
}

static void expect_refused(uint8_t *buf, size_t len, const char *why)
{
    struct state_file f;
    err[0] = '\0';
    assert_int_equal(state_file_parse(&f, buf, len, err, sizeof(err)), -EBADMSG);
    if (!strstr(err, why))
        fail_msg("expected '%s' in '%s'", why, err);
    assert_null(f.sections);
}

static void hostile_files(void **state)
{
    uint8_t good[256], buf[256];
    size_t len = build(good, sizeof(good), 0);

    expect_refused(good, 0, "bad magic");
    expect_refused(good, 10, "bad magic");
    for (size_t cut = 1; cut < len; cut++) { /* every truncation */
        memcpy(buf, good, len);
        struct state_file f;
        assert_int_not_equal(state_file_parse(&f, buf, len - cut, err, sizeof(err)), 0);
    }
    for (size_t i = 0; i < len * 8; i++) { /* every single-bit flip */
        memcpy(buf, good, len);
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
        struct state_file f;
        assert_int_not_equal(state_file_parse(&f, buf, len, err, sizeof(err)), 0);
    }
    memcpy(buf, good, len);
    buf[0] = 'X';
    expect_refused(buf, len, "bad magic");

    memcpy(buf, good, len);
    buf[8] = 2; /* format version 2, checksum fixed: refused for the version itself */
    fix_crc(buf, len);
    expect_refused(buf, len, "format version 2");

    memcpy(buf, good, len);
    buf[12] = 3; /* claims 3 sections */
    fix_crc(buf, len);
    expect_refused(buf, len, "section 2");

    memcpy(buf, good, len);
    buf[12] = 1; /* claims 1: the other is left over */
    fix_crc(buf, len);
    expect_refused(buf, len, "stray bytes");

    memcpy(buf, good, len);
    buf[14] = 0xff; /* 16 million sections */
    fix_crc(buf, len);
    expect_refused(buf, len, "sections");

    /* alpha's length (after id and version/flags) made to run past the end */
    size_t alpha_len = 16 + 1 + 5 + 4;
    memcpy(buf, good, len);
    buf[alpha_len + 3] = 0x7f;
    fix_crc(buf, len);
    expect_refused(buf, len, "runs past the end");

    memcpy(buf, good, len);
    buf[16] = 0; /* id length 0 */
    fix_crc(buf, len);
    expect_refused(buf, len, "bad id length");

    memcpy(buf, good, len);
    buf[17] = '/'; /* an id that is not a plain name */
    fix_crc(buf, len);
    expect_refused(buf, len, "plain name");

}

static void duplicate_sections(void **state)
{
    struct state_writer w;
    state_writer_init(&w);
    for (int i = 0; i < 2; i++) {
        state_section_begin(&w, "same", 1, 0);
        state_put_u8(&w, 1);
        state_section_end(&w);
    }
    const uint8_t *data;
    size_t len;
    assert_int_equal(state_writer_finish(&w, &data, &len), 0);
    struct state_file f;
    assert_int_equal(state_file_parse(&f, data, len, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "twice"));
    state_writer_free(&w);
}

static void atomic_write(void **state)
{
    char dir[] = "/tmp/kiln-state-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/state", dir);
    assert_int_equal(write_file_atomic(path, "one", 3), 0);
    assert_int_equal(write_file_atomic(path, "second", 6), 0);
    char got[16] = {0};
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, got, sizeof(got)), 6);
    close(fd);
    assert_string_equal(got, "second");
    char bad[160];
    snprintf(bad, sizeof(bad), "%s/missing/state", dir);
    assert_int_equal(write_file_atomic(bad, "x", 1), -ENOENT);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),       cmocka_unit_test(reader_bounds),
        cmocka_unit_test(writer_misuse),    cmocka_unit_test(hostile_files),
        cmocka_unit_test(duplicate_sections), cmocka_unit_test(atomic_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
