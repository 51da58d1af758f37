/* Unit tests for the MC146818 RTC and CMOS RAM, against a fake host clock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "hw/mc146818.h"

enum { SEC = 0x00, MIN = 0x02, HOUR = 0x04, WDAY = 0x06, MDAY = 0x07, MON = 0x08, YEAR = 0x09 };
enum { REG_A = 0x0a, REG_B = 0x0b, REG_C = 0x0c, REG_D = 0x0d, CENTURY = 0x32 };

/* The RTC's clock hook takes no context, so the fake host time lives here. */
static time_t fake_time;

static time_t fake_now(void)
{
    return fake_time;
}

static time_t utc(int year, int mon, int mday, int hour, int min, int sec)
{
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = mday,
                    .tm_hour = hour,
                    .tm_min = min,
                    .tm_sec = sec};
    return timegm(&tm);
}

static int setup(void **state)
{
    struct mc146818 *rtc = calloc(1, sizeof(*rtc));
    if (!rtc)
        return -1;
    /* Thursday 29 February 2024, 13:45:07 UTC */
    fake_time = utc(2024, 2, 29, 13, 45, 7);
    mc146818_init(rtc, fake_now);
    *state = rtc;
    return 0;
}

static int teardown(void **state)
{
    struct mc146818 *rtc = *state;
    mc146818_destroy(rtc);
    free(rtc);
    return 0;
}

static uint8_t cmos_read(struct mc146818 *rtc, uint8_t index)
{
    uint8_t val = 0xff;
    mc146818_io(rtc, 0, &index, 1, true);
    mc146818_io(rtc, 1, &val, 1, false);
    return val;
}

static void cmos_write(struct mc146818 *rtc, uint8_t index, uint8_t val)
{
    mc146818_io(rtc, 0, &index, 1, true);
    mc146818_io(rtc, 1, &val, 1, true);
}

static void test_status_registers(void **state)
{
    struct mc146818 *rtc = *state;

    assert_int_equal(cmos_read(rtc, REG_A), 0x26);
    assert_int_equal(cmos_read(rtc, REG_B), 0x02); /* 24-hour, BCD */
    assert_int_equal(cmos_read(rtc, REG_C), 0x00);
    assert_int_equal(cmos_read(rtc, REG_D), 0x80); /* VRT */

    /* UIP reads 0 whatever is written; the rate bits are kept. */
    cmos_write(rtc, REG_A, 0xaf);
    assert_int_equal(cmos_read(rtc, REG_A), 0x2f);
    rtc->state.cmos[REG_A] = 0xa6; /* even from a restored state */
    assert_int_equal(cmos_read(rtc, REG_A), 0x26);
    /* C and D are read-only. */
    cmos_write(rtc, REG_C, 0xf0);
    cmos_write(rtc, REG_D, 0x00);
    assert_int_equal(cmos_read(rtc, REG_C), 0x00);
    assert_int_equal(cmos_read(rtc, REG_D), 0x80);
}

static void test_bcd_time(void **state)
{
    struct mc146818 *rtc = *state;

    assert_int_equal(cmos_read(rtc, SEC), 0x07);
    assert_int_equal(cmos_read(rtc, MIN), 0x45);
    assert_int_equal(cmos_read(rtc, HOUR), 0x13);
    assert_int_equal(cmos_read(rtc, WDAY), 5); /* Sunday = 1 */
    assert_int_equal(cmos_read(rtc, MDAY), 0x29);
    assert_int_equal(cmos_read(rtc, MON), 0x02);
    assert_int_equal(cmos_read(rtc, YEAR), 0x24);
    assert_int_equal(cmos_read(rtc, CENTURY), 0x20);

    /* The clock follows the host. */
    fake_time += 60 * 60 * 24 + 3; /* 1 March 2024, 13:45:10 */
    assert_int_equal(cmos_read(rtc, SEC), 0x10);
    assert_int_equal(cmos_read(rtc, MDAY), 0x01);
    assert_int_equal(cmos_read(rtc, MON), 0x03);
    assert_int_equal(cmos_read(rtc, WDAY), 6);
}

static void test_binary_time(void **state)
{
    struct mc146818 *rtc = *state;

    cmos_write(rtc, REG_B, 0x06); /* 24-hour, binary */
    assert_int_equal(cmos_read(rtc, SEC), 7);
    assert_int_equal(cmos_read(rtc, MIN), 45);
    assert_int_equal(cmos_read(rtc, HOUR), 13);
    assert_int_equal(cmos_read(rtc, MDAY), 29);
    assert_int_equal(cmos_read(rtc, MON), 2);
    assert_int_equal(cmos_read(rtc, YEAR), 24);
    assert_int_equal(cmos_read(rtc, CENTURY), 20);
}

static void test_twelve_hour_mode(void **state)
{
    struct mc146818 *rtc = *state;
    static const struct {
        int hour;
        uint8_t bcd, bin;
    } cases[] = {
        {0, 0x12, 12},
        {1, 0x01, 1},
        {11, 0x11, 11},
        {12, 0x80 | 0x12, 0x80 | 12},
        {13, 0x80 | 0x01, 0x80 | 1},
        {23, 0x80 | 0x11, 0x80 | 11},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake_time = utc(2024, 7, 1, cases[i].hour, 0, 0);
        cmos_write(rtc, REG_B, 0x00); /* 12-hour, BCD */
        assert_int_equal(cmos_read(rtc, HOUR), cases[i].bcd);
        cmos_write(rtc, REG_B, 0x04); /* 12-hour, binary */
        assert_int_equal(cmos_read(rtc, HOUR), cases[i].bin);
    }
}

static void test_last_century(void **state)
{
    struct mc146818 *rtc = *state;

    fake_time = utc(1999, 12, 31, 23, 59, 59);
    assert_int_equal(cmos_read(rtc, YEAR), 0x99);
    assert_int_equal(cmos_read(rtc, CENTURY), 0x19);
    fake_time++;
    assert_int_equal(cmos_read(rtc, YEAR), 0x00);
    assert_int_equal(cmos_read(rtc, CENTURY), 0x20);
    assert_int_equal(cmos_read(rtc, MON), 0x01);
}

/* What Linux's mc146818_set_time() and hwclock -w do: SET, write the fields, clear SET. */
static void test_set_time_with_set_bit(void **state)
{
    struct mc146818 *rtc = *state;
    time_t host = fake_time;

    cmos_write(rtc, REG_B, 0x82);
    cmos_write(rtc, SEC, 0x05);
    cmos_write(rtc, MIN, 0x04);
    cmos_write(rtc, HOUR, 0x03);
    cmos_write(rtc, MDAY, 0x02);
    cmos_write(rtc, MON, 0x01);
    cmos_write(rtc, YEAR, 0x30);
    cmos_write(rtc, CENTURY, 0x20);

    /* While SET holds, the registers keep what was written, whatever the host clock does. */
    fake_time += 10;
    assert_int_equal(cmos_read(rtc, SEC), 0x05);
    assert_int_equal(cmos_read(rtc, YEAR), 0x30);
    assert_int_equal(rtc->state.offset_s, 0);

    cmos_write(rtc, REG_B, 0x02);
    assert_int_equal(rtc->state.offset_s, (int64_t)(utc(2030, 1, 2, 3, 4, 5) - (host + 10)));
    assert_int_equal(cmos_read(rtc, SEC), 0x05);
    assert_int_equal(cmos_read(rtc, YEAR), 0x30);
    assert_int_equal(cmos_read(rtc, WDAY), 4); /* 2 January 2030 is a Wednesday */

    /* And from then on it runs with the host. */
    fake_time += 61;
    assert_int_equal(cmos_read(rtc, SEC), 0x06);
    assert_int_equal(cmos_read(rtc, MIN), 0x05);
}

static void test_set_time_binary_12h(void **state)
{
    struct mc146818 *rtc = *state;

    cmos_write(rtc, REG_B, 0x80 | 0x04); /* SET, 12-hour, binary */
    cmos_write(rtc, HOUR, 0x80 | 12);    /* 12 PM = noon */
    cmos_write(rtc, MIN, 30);
    cmos_write(rtc, SEC, 0);
    cmos_write(rtc, MDAY, 15);
    cmos_write(rtc, MON, 6);
    cmos_write(rtc, YEAR, 25);
    cmos_write(rtc, REG_B, 0x04);
    assert_int_equal(rtc->state.offset_s, (int64_t)(utc(2025, 6, 15, 12, 30, 0) - fake_time));

    cmos_write(rtc, REG_B, 0x80 | 0x04);
    cmos_write(rtc, HOUR, 12); /* 12 AM = midnight */
    cmos_write(rtc, REG_B, 0x06);
    assert_int_equal(cmos_read(rtc, HOUR), 0);
}

/* Without SET a write takes effect at once and only changes that field. */
static void test_write_without_set_bit(void **state)
{
    struct mc146818 *rtc = *state;

    cmos_write(rtc, MIN, 0x50);
    assert_int_equal(rtc->state.offset_s, 5 * 60);
    assert_int_equal(cmos_read(rtc, MIN), 0x50);
    assert_int_equal(cmos_read(rtc, HOUR), 0x13);
    cmos_write(rtc, YEAR, 0x23); /* 2023 has no 29 February: normalised to 1 March */
    assert_int_equal(cmos_read(rtc, YEAR), 0x23);
    assert_int_equal(cmos_read(rtc, MON), 0x03);
}

static void test_invalid_time_is_ignored(void **state)
{
    struct mc146818 *rtc = *state;

    cmos_write(rtc, REG_B, 0x82);
    cmos_write(rtc, MON, 0x13); /* month 13 */
    cmos_write(rtc, REG_B, 0x02);
    assert_int_equal(rtc->state.offset_s, 0);
    assert_int_equal(cmos_read(rtc, MON), 0x02);

    cmos_write(rtc, HOUR, 0x24); /* hour 24 */
    cmos_write(rtc, SEC, 0x5a);  /* not BCD: 5*10+10 = 60 */
    cmos_write(rtc, REG_B, 0x00);
    cmos_write(rtc, HOUR, 0x00); /* 12-hour mode has no hour 0 */
    assert_int_equal(rtc->state.offset_s, 0);
    assert_int_equal(cmos_read(rtc, HOUR), 0x80 | 0x01);

    cmos_write(rtc, REG_B, 0x86); /* binary: year 100 does not exist in a two-digit year */
    cmos_write(rtc, YEAR, 100);
    cmos_write(rtc, REG_B, 0x06);
    assert_int_equal(rtc->state.offset_s, 0);
    assert_int_equal(cmos_read(rtc, YEAR), 24);
}

static void test_set_bit_clears_uie(void **state)
{
    struct mc146818 *rtc = *state;

    cmos_write(rtc, REG_B, 0x12);
    assert_int_equal(cmos_read(rtc, REG_B), 0x12);
    cmos_write(rtc, REG_B, 0x92);
    assert_int_equal(cmos_read(rtc, REG_B), 0x82);
}

static void test_nvram_persists(void **state)
{
    struct mc146818 *rtc = *state;

    for (unsigned i = 0x0e; i < MC146818_CMOS_SIZE; i++)
        if (i != CENTURY)
            cmos_write(rtc, (uint8_t)i, (uint8_t)(i * 7 + 1));
    /* Alarm bytes are plain storage. */
    cmos_write(rtc, 0x01, 0x59);
    cmos_write(rtc, 0x03, 0x58);
    cmos_write(rtc, 0x05, 0x23);

    /* Time passes and the guest sets the clock: NVRAM is untouched. */
    fake_time += 1000;
    cmos_write(rtc, REG_B, 0x82);
    cmos_write(rtc, YEAR, 0x40);
    cmos_write(rtc, REG_B, 0x02);
    cmos_write(rtc, REG_B, 0x06);

    for (unsigned i = 0x0e; i < MC146818_CMOS_SIZE; i++)
        if (i != CENTURY)
            assert_int_equal(cmos_read(rtc, (uint8_t)i), (uint8_t)(i * 7 + 1));
    assert_int_equal(cmos_read(rtc, 0x01), 0x59);
    assert_int_equal(cmos_read(rtc, 0x03), 0x58);
    assert_int_equal(cmos_read(rtc, 0x05), 0x23);
}

static void test_index_masking_and_nmi_bit(void **state)
{
    struct mc146818 *rtc = *state;

    cmos_write(rtc, 0x40, 0xab);
    uint8_t sel = 0x80 | 0x40;
    mc146818_io(rtc, 0, &sel, 1, true);
    assert_int_equal(rtc->state.index, 0x40);
    assert_int_equal(rtc->state.nmi_disabled, 1);
    uint8_t val = 0;
    mc146818_io(rtc, 1, &val, 1, false);
    assert_int_equal(val, 0xab);
    val = 0xcd;
    mc146818_io(rtc, 1, &val, 1, true);
    assert_int_equal(rtc->state.cmos[0x40], 0xcd);

    sel = 0x40;
    mc146818_io(rtc, 0, &sel, 1, true);
    assert_int_equal(rtc->state.nmi_disabled, 0);

    /* A corrupt restored index still lands inside CMOS. */
    rtc->state.index = 0xff;
    mc146818_io(rtc, 1, &val, 1, false);
    mc146818_io(rtc, 1, &val, 1, true);
    assert_int_equal(rtc->state.cmos[0x7f], val);
}

static void test_word_access(void **state)
{
    struct mc146818 *rtc = *state;

    /* outw(0x70): index in the low byte, data in the high byte. */
    uint8_t word[2] = {0x50, 0x99};
    mc146818_io(rtc, 0, word, 2, true);
    assert_int_equal(cmos_read(rtc, 0x50), 0x99);
    uint8_t sel[2] = {0x50, 0x00};
    mc146818_io(rtc, 0, sel, 1, true);
    uint8_t rd[4] = {0xff, 0xff, 0xff, 0xff};
    mc146818_io(rtc, 1, rd, 4, false);
    assert_int_equal(rd[0], 0x99);
    assert_int_equal(rd[1], 0xff); /* beyond port 0x71: left alone */
    assert_int_equal(rd[3], 0xff);
}

/* Every offset and width the bus could pass, reads and writes: nothing breaks. */
static void test_every_offset_and_len(void **state)
{
    struct mc146818 *rtc = *state;
    static const uint32_t lens[] = {1, 2, 4, 8};

    cmos_write(rtc, 0x20, 0x42);
    for (uint64_t off = 0; off < MC146818_NR_PORTS + 2; off++) {
        for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
            uint8_t buf[16];
            memset(buf, 0xff, sizeof(buf));
            mc146818_io(rtc, off, buf, lens[l], false);
            for (uint32_t i = 0; i < sizeof(buf); i++)
                if (i >= lens[l] || off + i >= MC146818_NR_PORTS)
                    assert_int_equal(buf[i], 0xff);
            memset(buf, 0x70, sizeof(buf));
            mc146818_io(rtc, off, buf, lens[l], true);
        }
    }
    uint8_t far[4] = {1, 2, 3, 4};
    mc146818_io(rtc, UINT64_MAX, far, 4, true);
    mc146818_io(rtc, UINT64_MAX, far, 4, false);
    assert_int_equal(far[0], 1);
    assert_int_equal(rtc->state.index, 0x70);
    assert_int_equal(cmos_read(rtc, 0x20), 0x42); /* only index 0x70 was written */
    assert_int_equal(cmos_read(rtc, 0x70), 0x70);
    assert_int_equal(cmos_read(rtc, REG_D), 0x80);
}

static void test_default_clock(void **state)
{
    (void)state;
    struct mc146818 rtc;
    memset(&rtc, 0, sizeof(rtc));
    mc146818_init(&rtc, NULL);
    /* With the host clock, the century of today's date is 20. */
    assert_int_equal(cmos_read(&rtc, CENTURY), 0x20);
    mc146818_destroy(&rtc);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* Found by fuzz_mc146818: a host clock at the far end of time_t overflowed the new offset. */
static void test_extreme_host_clock(void **state)
{
    struct mc146818 *rtc = *state;
    fake_time = (time_t)INT64_MIN;
    cmos_write(rtc, REG_B, cmos_read(rtc, REG_B) | 0x80); /* SET */
    cmos_write(rtc, 0x09, 0x30);                         /* 2030: after the epoch, */
    cmos_write(rtc, 0x32, 0x20);                         /* so t - INT64_MIN overflows */
    cmos_write(rtc, REG_B, cmos_read(rtc, REG_B) & 0x7f); /* the clock starts: an offset */
    fake_time = (time_t)INT64_MAX;
    (void)cmos_read(rtc, 0x00); /* reading must not overflow either (UBSan checks) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_status_registers),
        T(test_bcd_time),
        T(test_binary_time),
        T(test_twelve_hour_mode),
        T(test_last_century),
        T(test_set_time_with_set_bit),
        T(test_set_time_binary_12h),
        T(test_write_without_set_bit),
        T(test_invalid_time_is_ignored),
        T(test_set_bit_clears_uie),
        T(test_nvram_persists),
        T(test_index_masking_and_nmi_bit),
        T(test_word_access),
        T(test_every_offset_and_len),
        T(test_extreme_host_clock),
        cmocka_unit_test(test_default_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
