#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/aml.h"

#define assert_aml(a, ...)                                                                         \
    do {                                                                                           \
        const uint8_t expect_[] = {__VA_ARGS__};                                                   \
        assert_int_equal((a)->err, 0);                                                             \
        assert_int_equal((a)->len, sizeof(expect_));                                               \
        assert_memory_equal((a)->buf, expect_, sizeof(expect_));                                   \
    } while (0)

static void test_integer(void **state)
{
    uint8_t buf[16];
    struct aml a;
    const struct {
        uint64_t value;
        uint8_t enc[9];
        size_t len;
    } cases[] = {
        {0, {0x00}, 1},
        {1, {0x01}, 1},
        {2, {0x0a, 0x02}, 2},
        {0xff, {0x0a, 0xff}, 2},
        {0x100, {0x0b, 0x00, 0x01}, 3},
        {0xffff, {0x0b, 0xff, 0xff}, 3},
        {0x10000, {0x0c, 0x00, 0x00, 0x01, 0x00}, 5},
        {0xfebfffff, {0x0c, 0xff, 0xff, 0xbf, 0xfe}, 5},
        {0x100000000, {0x0e, 0, 0, 0, 0, 1, 0, 0, 0}, 9},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        aml_init(&a, buf, sizeof(buf));
        aml_integer(&a, cases[i].value);
        assert_int_equal(a.err, 0);
        assert_int_equal(a.len, cases[i].len);
        assert_memory_equal(buf, cases[i].enc, cases[i].len);
    }
    aml_init(&a, buf, sizeof(buf));
    aml_dword(&a, 5);
    assert_aml(&a, 0x0c, 0x05, 0x00, 0x00, 0x00);
}

static void test_name_string(void **state)
{
    uint8_t buf[32];
    struct aml a;

    aml_init(&a, buf, sizeof(buf));
    aml_name_string(&a, "_S5");
    assert_aml(&a, '_', 'S', '5', '_');

    aml_init(&a, buf, sizeof(buf));
    aml_name_string(&a, "\\_SB.PCI0");
    assert_aml(&a, '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0');

    aml_init(&a, buf, sizeof(buf));
    aml_name_string(&a, "\\_SB.PCI0.RTC");
    assert_aml(&a, '\\', 0x2f, 3, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'R', 'T', 'C', '_');

    aml_init(&a, buf, sizeof(buf));
    aml_name_string(&a, "^^COM1");
    assert_aml(&a, '^', '^', 'C', 'O', 'M', '1');

    aml_init(&a, buf, sizeof(buf));
    aml_name_string(&a, "\\");
    assert_aml(&a, '\\', 0x00);
}

static void test_name_string_invalid(void **state)
{
    const char *bad[] = {"1ABC", "ABCDE", "A..B", "A.", ".A", "pci0", "A-B", "\\^A"};
    uint8_t buf[32];
    struct aml a;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        aml_init(&a, buf, sizeof(buf));
        aml_name_string(&a, bad[i]);
        assert_int_equal(a.err, -EINVAL);
    }
}

static void test_eisaid_and_string(void **state)
{
    uint8_t buf[32];
    struct aml a;

    /* The encodings iasl produces for EisaId ("PNP0A03") and EisaId ("PNP0501"). */
    aml_init(&a, buf, sizeof(buf));
    aml_eisaid(&a, "PNP0A03");
    aml_eisaid(&a, "PNP0501");
    assert_aml(&a, 0x0c, 0x41, 0xd0, 0x0a, 0x03, 0x0c, 0x41, 0xd0, 0x05, 0x01);

    const char *bad[] = {"pnp0a03", "PNP0A0", "PNP0A033", "PNP0G03"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        aml_init(&a, buf, sizeof(buf));
        aml_eisaid(&a, bad[i]);
        assert_int_equal(a.err, -EINVAL);
    }

    aml_init(&a, buf, sizeof(buf));
    aml_string(&a, "COM1");
    assert_aml(&a, 0x0d, 'C', 'O', 'M', '1', 0x00);
}

/* Writes `content` filler bytes inside a package and returns the PkgLength prefix. */
static void check_pkglength(size_t content, const uint8_t *enc, size_t enc_len)
{
    size_t cap = content + 8;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    struct aml a;
    aml_init(&a, buf, cap);
    for (size_t i = 0; i < content; i++)
        aml_byte(&a, 0xaa);
    aml_end(&a, 0);
    assert_int_equal(a.err, 0);
    assert_int_equal(a.len, content + enc_len);
    assert_memory_equal(buf, enc, enc_len);
    if (content) {
        assert_int_equal(buf[enc_len], 0xaa);
        assert_int_equal(buf[a.len - 1], 0xaa);
    }
    free(buf);
}

/* ACPI 6.4 §20.2.4: the length counts its own bytes; 1 byte up to 63, then 2, 3, 4. */
static void test_pkglength(void **state)
{
    check_pkglength(0, (const uint8_t[]){0x01}, 1);
    check_pkglength(62, (const uint8_t[]){0x3f}, 1);
    check_pkglength(63, (const uint8_t[]){0x41, 0x04}, 2); /* 65 */
    check_pkglength(0xffd, (const uint8_t[]){0x4f, 0xff}, 2);
    check_pkglength(0xffe, (const uint8_t[]){0x81, 0x00, 0x01}, 3); /* 0x1001 */
    check_pkglength(0xffffc, (const uint8_t[]){0x8f, 0xff, 0xff}, 3);
    check_pkglength(0xffffd, (const uint8_t[]){0xc1, 0x00, 0x00, 0x01}, 4); /* 0x100001 */
}

static void test_package_and_method(void **state)
{
    uint8_t buf[64];
    struct aml a;

    /* Name (_S5, Package (0x04) {0x05, Zero, Zero, Zero}), as iasl compiles it */
    aml_init(&a, buf, sizeof(buf));
    aml_name(&a, "_S5");
    size_t pkg = aml_package_begin(&a, 4);
    aml_integer(&a, 5);
    aml_integer(&a, 0);
    aml_integer(&a, 0);
    aml_integer(&a, 0);
    aml_end(&a, pkg);
    assert_aml(&a, 0x08, '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00);

    /* Method (_STA, 0) { Return (0x0F) } */
    aml_init(&a, buf, sizeof(buf));
    aml_method_return_int(&a, "_STA", 0x0f);
    assert_aml(&a, 0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f);
}

static void test_scope_device_buffer(void **state)
{
    uint8_t buf[64];
    struct aml a;
    aml_init(&a, buf, sizeof(buf));
    size_t scope = aml_scope_begin(&a, "\\_SB");
    size_t dev = aml_device_begin(&a, "RTC");
    aml_name(&a, "_UID");
    aml_integer(&a, 0);
    aml_name(&a, "BUF");
    size_t b = aml_buffer_begin(&a);
    aml_byte(&a, 0x11);
    aml_byte(&a, 0x22);
    aml_buffer_end(&a, b);
    aml_end(&a, dev);
    aml_end(&a, scope);
    assert_aml(&a, 0x10, 0x1e, '\\', '_', 'S', 'B', '_',         /* Scope (\_SB) */
               0x5b, 0x82, 0x16, 'R', 'T', 'C', '_',             /* Device (RTC) */
               0x08, '_', 'U', 'I', 'D', 0x00,                   /* Name (_UID, Zero) */
               0x08, 'B', 'U', 'F', '_', 0x11, 0x05, 0x0a, 0x02, /* Name (BUF, Buffer (2) */
               0x11, 0x22);
}

/* Expected bytes: what iasl 20200925 compiles the same ResourceTemplate to. */
static void test_resource_template(void **state)
{
    uint8_t buf[128];
    struct aml a;
    aml_init(&a, buf, sizeof(buf));
    size_t rt = aml_restemplate_begin(&a);
    aml_res_word_bus_number(&a, 0, 0);
    aml_res_io(&a, 0xcf8, 0xcf8, 1, 8);
    aml_res_word_io(&a, 0, 0xcf7);
    aml_res_dword_memory(&a, 0xc0000000, 0xfebfffff);
    aml_res_irq_noflags(&a, 4);
    aml_restemplate_end(&a, rt);
    assert_aml(&a, 0x11, 0x4b, 0x04, 0x0a, 0x47,                                 /* Buffer */
               0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* bus */
               0x00, 0x00, 0x00, 0x01, 0x00,                                     /* */
               0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08,                   /* IO */
               0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0xf7, /* WordIO */
               0x0c, 0x00, 0x00, 0xf8, 0x0c,                                     /* */
               0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, /* memory */
               0x00, 0x00, 0xc0, 0xff, 0xff, 0xbf, 0xfe, 0x00, 0x00, 0x00, 0x00, /* */
               0x00, 0x00, 0xc0, 0x3e,                                           /* */
               0x22, 0x10, 0x00,                                                 /* IRQ 4 */
               0x79, 0x00);                                                      /* end */
}

static void test_resource_invalid(void **state)
{
    uint8_t buf[64];
    struct aml a;
    aml_init(&a, buf, sizeof(buf));
    aml_res_irq_noflags(&a, 16);
    assert_int_equal(a.err, -EINVAL);
    aml_init(&a, buf, sizeof(buf));
    aml_res_word_io(&a, 0x100, 0xff);
    assert_int_equal(a.err, -EINVAL);
    aml_init(&a, buf, sizeof(buf));
    aml_res_word_io(&a, 0, 0xffff); /* length 0x10000 does not fit */
    assert_int_equal(a.err, -EINVAL);
    aml_init(&a, buf, sizeof(buf));
    aml_res_dword_memory(&a, 2, 1);
    assert_int_equal(a.err, -EINVAL);
    aml_init(&a, buf, sizeof(buf));
    aml_end(&a, 1); /* a mark past the end */
    assert_int_equal(a.err, -EINVAL);
}

static void build_com1(struct aml *a)
{
    size_t dev = aml_device_begin(a, "COM1");
    aml_name(a, "_HID");
    aml_eisaid(a, "PNP0501");
    aml_name(a, "_CRS");
    size_t rt = aml_restemplate_begin(a);
    aml_res_io(a, 0x3f8, 0x3f8, 1, 8);
    aml_restemplate_end(a, rt);
    aml_end(a, dev);
}

/* Every buffer size short of the object runs out of space cleanly, never writing past it. */
static void test_overflow(void **state)
{
    uint8_t full_buf[64];
    struct aml a;
    aml_init(&a, full_buf, sizeof(full_buf));
    build_com1(&a);
    assert_int_equal(a.err, 0);
    size_t full = a.len;
    for (size_t cap = 0; cap <= full; cap++) {
        uint8_t *buf = malloc(cap ? cap : 1); /* exact size, so ASan sees any overrun */
        assert_non_null(buf);
        aml_init(&a, buf, cap);
        build_com1(&a);
        if (cap == full) {
            assert_int_equal(a.err, 0);
            assert_memory_equal(buf, full_buf, full);
        } else {
            assert_int_equal(a.err, -ENOSPC);
            assert_true(a.len <= cap);
        }
        free(buf);
    }
    /* Errors are sticky. */
    uint8_t one;
    aml_init(&a, &one, 1);
    a.err = -ENOSPC;
    aml_byte(&a, 0);
    assert_int_equal(a.len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integer),
        cmocka_unit_test(test_name_string),
        cmocka_unit_test(test_name_string_invalid),
        cmocka_unit_test(test_eisaid_and_string),
        cmocka_unit_test(test_pkglength),
        cmocka_unit_test(test_package_and_method),
        cmocka_unit_test(test_scope_device_buffer),
        cmocka_unit_test(test_resource_template),
        cmocka_unit_test(test_resource_invalid),
        cmocka_unit_test(test_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
