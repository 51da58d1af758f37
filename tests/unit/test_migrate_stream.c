/* The live-migration wire format: a hostile source must never get past the receiver. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "le.h"
#include "migrate/channel.h"
#include "migrate/stream.h"

#define RAM (8ULL << 20)
#define PAGES (RAM / MIGRATE_PAGE_SIZE)

/* A stream under construction. */
struct stream {
    uint8_t *buf;
    size_t len;
};

static void put(struct stream *s, const void *p, size_t n)
{
    s->buf = realloc(s->buf, s->len + n);
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

static void rec(struct stream *s, uint16_t type, const void *p, size_t n)
{
    uint8_t h[MIGRATE_RECORD_HEADER];
    migrate_record_header_put(h, type, (uint32_t)n);
    put(s, h, sizeof(h));
    if (n)
        put(s, p, n);
}

static void header(struct stream *s)
{
    uint8_t h[MIGRATE_HEADER_SIZE];
    migrate_header_put(h);
    put(s, h, sizeof(h));
}

static void setup_rec(struct stream *s, uint64_t ram, uint64_t gpa, uint64_t size)
{
    uint8_t p[28];
    put_le64(p, ram);
    put_le32(p + 8, 1);
    put_le64(p + 12, gpa);
    put_le64(p + 20, size);
    rec(s, MIGRATE_SETUP, p, sizeof(p));
}

/* A run record: region, first page, count, then `data` (count pages) for PAGES. */
static void run_rec(struct stream *s, uint16_t type, uint32_t region, uint64_t first,
                    uint32_t count, uint8_t fill)
{
    size_t data = type == MIGRATE_PAGES ? (size_t)count * MIGRATE_PAGE_SIZE : 0;
    uint8_t *p = malloc(MIGRATE_RUN_HEADER + data);
    put_le32(p, region);
    put_le64(p + 4, first);
    put_le32(p + 12, count);
    memset(p + MIGRATE_RUN_HEADER, fill, data);
    rec(s, type, p, MIGRATE_RUN_HEADER + data);
    free(p);
}

static struct stream valid_stream(void)
{
    struct stream s = {0};
    header(&s);
    setup_rec(&s, RAM, 0, RAM);
    uint8_t pass[12] = {1};
    rec(&s, MIGRATE_PASS, pass, sizeof(pass));
    run_rec(&s, MIGRATE_PAGES, 0, 10, 2, 0xab);
    run_rec(&s, MIGRATE_PAGES, 0, 11, 1, 0xcd); /* a later pass overwrites */
    run_rec(&s, MIGRATE_ZERO, 0, 0, 4, 0);
    run_rec(&s, MIGRATE_PAGES, 0, PAGES - 1, 1, 0x11);
    rec(&s, MIGRATE_STATE, "state!", 6);
    rec(&s, MIGRATE_END, NULL, 0);
    return s;
}

static int feed(const struct stream *s, struct migrate_rx *rx, char *err)
{
    migrate_rx_init(rx, 1ULL << 30);
    return migrate_rx_feed(rx, s->buf, s->len, err, 256);
}

static void valid_stream_applies(void **state)
{
    struct stream s = valid_stream();
    struct migrate_rx rx;
    char err[256];
    assert_int_equal(feed(&s, &rx, err), 0);
    assert_true(rx.ended);
    assert_int_equal(rx.mem.ram_size, RAM);
    const uint8_t *ram = rx.mem.regions[0].hva;
    assert_int_equal(ram[10 * 4096], 0xab);
    assert_int_equal(ram[11 * 4096 + 4095], 0xcd);
    assert_int_equal(ram[(PAGES - 1) * 4096], 0x11);
    assert_int_equal(ram[12 * 4096], 0);
    assert_int_equal(rx.state_len, 6);
    assert_memory_equal(rx.state, "state!", 6);
    assert_int_equal(rx.pages, 8);
    assert_int_equal(rx.bytes, s.len - MIGRATE_HEADER_SIZE);
    migrate_rx_free(&rx);
    free(s.buf);
}

static void zero_run_clears_pages(void **state)
{
    struct stream s = {0};
    header(&s);
    setup_rec(&s, RAM, 0, RAM);
    run_rec(&s, MIGRATE_PAGES, 0, 3, 1, 0xff);
    run_rec(&s, MIGRATE_ZERO, 0, 2, 3, 0);
    struct migrate_rx rx;
    char err[256];
    assert_int_equal(feed(&s, &rx, err), -EPIPE); /* no END: the stream stopped short */
    assert_true(migrate_page_is_zero(rx.mem.regions[0].hva + 3 * 4096, 4096));
    migrate_rx_free(&rx);
    free(s.buf);
}

/* Every prefix of a valid stream is refused as cut short, never applied as complete. */
static void every_truncation_refused(void **state)
{
    struct stream s = valid_stream();
    for (size_t n = 0; n < s.len; n += n < 200 ? 1 : 509) {
        struct migrate_rx rx;
        char err[256];
        migrate_rx_init(&rx, 1ULL << 30);
        assert_int_equal(migrate_rx_feed(&rx, s.buf, n, err, sizeof(err)), -EPIPE);
        assert_false(rx.ended);
        migrate_rx_free(&rx);
    }
    free(s.buf);
}

/* Builds header + setup, then `bad`, then the tail, and expects -EBADMSG naming `why`. */
static void expect_refused(void (*bad)(struct stream *), const char *why)
{
    struct stream s = {0};
    header(&s);
    bad(&s);
    rec(&s, MIGRATE_STATE, "x", 1);
    rec(&s, MIGRATE_END, NULL, 0);
    struct migrate_rx rx;
    char err[256] = "";
    int ret = feed(&s, &rx, err);
    if (ret != -EBADMSG || !strstr(err, why))
        fail_msg("expected a refusal naming '%s', got %d '%s'", why, ret, err);
    migrate_rx_free(&rx);
    free(s.buf);
}

static void pages_first(struct stream *s) { run_rec(s, MIGRATE_PAGES, 0, 0, 1, 1); }
static void two_setups(struct stream *s) { setup_rec(s, RAM, 0, RAM); setup_rec(s, RAM, 0, RAM); }
static void small_ram(struct stream *s) { setup_rec(s, 4ULL << 20, 0, 4ULL << 20); }
static void odd_ram(struct stream *s) { setup_rec(s, RAM + 1, 0, RAM + 1); }
static void other_layout(struct stream *s) { setup_rec(s, RAM, 0x1000, RAM); }
static void past_end(struct stream *s)
{
    setup_rec(s, RAM, 0, RAM);
    run_rec(s, MIGRATE_PAGES, 0, PAGES, 1, 1);
}
static void straddles_end(struct stream *s)
{
    setup_rec(s, RAM, 0, RAM);
    run_rec(s, MIGRATE_PAGES, 0, PAGES - 1, 2, 1);
}
static void wraps(struct stream *s)
{
    setup_rec(s, RAM, 0, RAM);
    run_rec(s, MIGRATE_ZERO, 0, UINT64_MAX, 2, 0);
}
static void no_region(struct stream *s)
{
    setup_rec(s, RAM, 0, RAM);
    run_rec(s, MIGRATE_ZERO, 1, 0, 1, 0);
}
static void empty_run(struct stream *s)
{
    setup_rec(s, RAM, 0, RAM);
    run_rec(s, MIGRATE_ZERO, 0, 0, 0, 0);
}
static void count_mismatch(struct stream *s)
{
    setup_rec(s, RAM, 0, RAM);
    uint8_t p[MIGRATE_RUN_HEADER + 4096] = {0};
    put_le32(p + 12, 2); /* says two pages, carries one */
    rec(s, MIGRATE_PAGES, p, sizeof(p));
}
static void two_states(struct stream *s)
{
    setup_rec(s, RAM, 0, RAM);
    rec(s, MIGRATE_STATE, "a", 1);
}
static void go_from_source(struct stream *s)
{
    setup_rec(s, RAM, 0, RAM);
    rec(s, MIGRATE_GO, NULL, 0);
}

static void malformed_records_refused(void **state)
{
    expect_refused(pages_first, "out of order");
    expect_refused(two_setups, "out of order");
    expect_refused(small_ram, "8 MiB");
    expect_refused(odd_ram, "whole pages");
    expect_refused(other_layout, "layout");
    expect_refused(past_end, "outside region");
    expect_refused(straddles_end, "outside region");
    expect_refused(wraps, "outside region");
    expect_refused(no_region, "region 1");
    expect_refused(empty_run, "0 pages");
    expect_refused(count_mismatch, "2 pages");
    expect_refused(two_states, "out of order");
    expect_refused(go_from_source, "not for the destination");
}

static void header_and_lengths_checked(void **state)
{
    char err[256];
    uint8_t h[MIGRATE_HEADER_SIZE];
    migrate_header_put(h);
    assert_int_equal(migrate_header_check(h, err, sizeof(err)), 0);
    h[0] ^= 1;
    assert_int_equal(migrate_header_check(h, err, sizeof(err)), -EBADMSG);
    migrate_header_put(h);
    put_le32(h + 8, 2);
    assert_int_equal(migrate_header_check(h, err, sizeof(err)), -EBADMSG);
    migrate_header_put(h);
    put_le32(h + 12, 1);
    assert_int_equal(migrate_header_check(h, err, sizeof(err)), -EBADMSG);

    struct migrate_record_header rh;
    uint8_t r[MIGRATE_RECORD_HEADER];
    migrate_record_header_put(r, MIGRATE_STATE, MIGRATE_MAX_STATE);
    assert_int_equal(migrate_record_header_parse(r, &rh, err, sizeof(err)), 0);
    migrate_record_header_put(r, MIGRATE_STATE, MIGRATE_MAX_STATE + 1);
    assert_int_equal(migrate_record_header_parse(r, &rh, err, sizeof(err)), -EBADMSG);
    migrate_record_header_put(r, MIGRATE_PAGES, MIGRATE_RUN_HEADER + 4095);
    assert_int_equal(migrate_record_header_parse(r, &rh, err, sizeof(err)), -EBADMSG);
    migrate_record_header_put(r, MIGRATE_END, 1);
    assert_int_equal(migrate_record_header_parse(r, &rh, err, sizeof(err)), -EBADMSG);
    migrate_record_header_put(r, 0, 0);
    assert_int_equal(migrate_record_header_parse(r, &rh, err, sizeof(err)), -EBADMSG);
    migrate_record_header_put(r, MIGRATE_END, 0);
    put_le16(r + 2, 1); /* flags */
    assert_int_equal(migrate_record_header_parse(r, &rh, err, sizeof(err)), -EBADMSG);
}

static void ram_cap_enforced(void **state)
{
    struct stream s = {0};
    header(&s);
    setup_rec(&s, RAM, 0, RAM);
    struct migrate_rx rx;
    char err[256];
    migrate_rx_init(&rx, RAM - 4096);
    assert_int_equal(migrate_rx_feed(&rx, s.buf, s.len, err, sizeof(err)), -ENOMEM);
    assert_non_null(strstr(err, "more than this host"));
    migrate_rx_free(&rx);
    free(s.buf);
}

static void addresses_parsed(void **state)
{
    struct migrate_addr a;
    char err[256];
    assert_int_equal(migrate_addr_parse("tcp:127.0.0.1:4444", &a, err, sizeof(err)), 0);
    assert_int_equal(a.ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), 4444);
    assert_int_equal(migrate_addr_parse("tcp:[::1]:80", &a, err, sizeof(err)), 0);
    assert_int_equal(a.ss.ss_family, AF_INET6);
    assert_int_equal(migrate_addr_parse("tcp:localhost:1", &a, err, sizeof(err)), 0);
    const char *bad[] = {"127.0.0.1:1", "tcp:127.0.0.1", "tcp:127.0.0.1:0", "tcp::1",
                         "tcp:127.0.0.1:65536", "tcp:127.0.0.1:-1", "tcp:host.example:1",
                         "tcp:[::1:1", "tcp:127.0.0.1:1x", "udp:127.0.0.1:1", "tcp:"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (migrate_addr_parse(bad[i], &a, err, sizeof(err)) != -EINVAL)
            fail_msg("'%s' accepted", bad[i]);
}

static void zero_detection(void **state)
{
    uint8_t page[4096] = {0};
    assert_true(migrate_page_is_zero(page, sizeof(page)));
    for (size_t i = 0; i < sizeof(page); i += 511) {
        page[i] = 1;
        assert_false(migrate_page_is_zero(page, sizeof(page)));
        page[i] = 0;
    }
    page[4095] = 1;
    assert_false(migrate_page_is_zero(page, sizeof(page)));
    assert_true(migrate_page_is_zero(page, 4095));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_stream_applies),
        cmocka_unit_test(zero_run_clears_pages),
        cmocka_unit_test(every_truncation_refused),
        cmocka_unit_test(malformed_records_refused),
        cmocka_unit_test(header_and_lengths_checked),
        cmocka_unit_test(ram_cap_enforced),
        cmocka_unit_test(addresses_parsed),
        cmocka_unit_test(zero_detection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
