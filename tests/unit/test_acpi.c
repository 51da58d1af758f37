#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "hw/pm.h"

/*
 * The tables are parsed here the way a guest would: from the RSDP through the XSDT to
 * each table, following guest physical addresses back into the buffer.
 */

static const struct acpi_params default_params = {
    .ncpus = 4,
    .pm_base = PM_BASE,
    .ioapic_addr = X86_IOAPIC_ADDR,
    .lapic_addr = X86_LAPIC_ADDR,
    .pci_mmio_start = X86_PCI_MMIO_START,
    .pci_mmio_end = X86_PCI_MMIO_END,
    .power_button_gsi = PM_POWER_BUTTON_GSI,
};

struct tables {
    uint8_t buf[X86_ACPI_SIZE];
    long used;
};

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t len)
{
    uint8_t s = 0;
    for (size_t i = 0; i < len; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

static struct tables *build(const struct acpi_params *params)
{
    struct tables *t = malloc(sizeof(*t));
    assert_non_null(t);
    memset(t->buf, 0xa5, sizeof(t->buf)); /* stale contents must not leak into tables */
    t->used = acpi_build(t->buf, sizeof(t->buf), X86_ACPI_ADDR, params);
    assert_true(t->used > 0);
    assert_true((size_t)t->used <= sizeof(t->buf));
    return t;
}

/* The table at guest address `gpa`: inside the used area, right signature, valid sum. */
static const uint8_t *table_at(const struct tables *t, uint64_t gpa, const char *sig)
{
    assert_true(gpa >= X86_ACPI_ADDR);
    uint64_t off = gpa - X86_ACPI_ADDR;
    assert_true(off + 36 <= (uint64_t)t->used);
    const uint8_t *p = t->buf + off;
    uint32_t len = get32(p + 4);
    assert_true(len >= 36);
    assert_true(off + len <= (uint64_t)t->used);
    assert_memory_equal(p, sig, 4);
    assert_int_equal(sum(p, len), 0);
    assert_memory_equal(p + 10, "KILN  ", 6);
    return p;
}

static const uint8_t *find_table(const struct tables *t, const char *sig)
{
    const uint8_t *xsdt = table_at(t, get64(t->buf + 24), "XSDT");
    uint32_t n = (get32(xsdt + 4) - 36) / 8;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t gpa = get64(xsdt + 36 + 8 * i);
        assert_true(gpa >= X86_ACPI_ADDR && gpa - X86_ACPI_ADDR + 4 <= (uint64_t)t->used);
        if (!memcmp(t->buf + (gpa - X86_ACPI_ADDR), sig, 4))
            return table_at(t, gpa, sig);
    }
    fail_msg("no %s in the XSDT", sig);
    return NULL;
}

static void test_rsdp(void **state)
{
    struct tables *t = build(&default_params);
    const uint8_t *rsdp = t->buf;
    assert_memory_equal(rsdp, "RSD PTR ", 8);
    assert_int_equal(sum(rsdp, 20), 0);
    assert_int_equal(sum(rsdp, 36), 0);
    assert_memory_equal(rsdp + 9, "KILN  ", 6);
    assert_int_equal(rsdp[15], 2);
    assert_int_equal(get32(rsdp + 16), 0); /* no RSDT */
    assert_int_equal(get32(rsdp + 20), 36);
    const uint8_t *xsdt = table_at(t, get64(rsdp + 24), "XSDT");
    assert_int_equal(xsdt[8], 1);
    assert_int_equal(get32(xsdt + 4), 36 + 2 * 8);
    free(t);
}

static void test_xsdt_entries(void **state)
{
    struct tables *t = build(&default_params);
    const uint8_t *xsdt = table_at(t, get64(t->buf + 24), "XSDT");
    table_at(t, get64(xsdt + 36), "FACP");
    table_at(t, get64(xsdt + 44), "APIC");
    free(t);
}

static void check_gas_io8(const uint8_t *gas, uint64_t port)
{
    assert_int_equal(gas[0], 1); /* system I/O */
    assert_int_equal(gas[1], 8);
    assert_int_equal(gas[2], 0);
    assert_int_equal(gas[3], 1); /* byte access */
    assert_int_equal(get64(gas + 4), port);
}

static void test_fadt(void **state)
{
    struct tables *t = build(&default_params);
    const uint8_t *fadt = find_table(t, "FACP");
    assert_int_equal(get32(fadt + 4), 276);
    assert_int_equal(fadt[8], 6);
    assert_int_equal(fadt[131], 4);                               /* minor version */
    assert_int_equal(get32(fadt + 112), (1u << 20) | (1u << 10)); /* HW_REDUCED, RESET_REG_SUP */
    /* IAPC_BOOT_ARCH: VGA not present; an 8042 (keyboard); the CMOS RTC is there. */
    assert_int_equal(get16(fadt + 109), (1u << 2) | (1u << 1));
    assert_int_equal(get16(fadt + 46), 0); /* no SCI */
    check_gas_io8(fadt + 116, PM_BASE + PM_RESET);
    assert_int_equal(fadt[128], PM_RESET_VALUE);
    check_gas_io8(fadt + 244, PM_BASE + PM_SLEEP_CONTROL);
    check_gas_io8(fadt + 256, PM_BASE + PM_SLEEP_STATUS);
    assert_int_equal(get32(fadt + 36), 0); /* no FACS */
    assert_int_equal(get32(fadt + 40), 0); /* 32-bit DSDT unused */
    const uint8_t *dsdt = table_at(t, get64(fadt + 140), "DSDT");
    assert_int_equal(dsdt[8], 2);
    free(t);
}

static void test_fadt_pm_base(void **state)
{
    struct acpi_params params = default_params;
    params.pm_base = 0xb000;
    struct tables *t = build(&params);
    const uint8_t *fadt = find_table(t, "FACP");
    check_gas_io8(fadt + 116, 0xb000 + PM_RESET);
    check_gas_io8(fadt + 244, 0xb000 + PM_SLEEP_CONTROL);
    free(t);
}

struct madt_counts {
    unsigned lapic, ioapic, iso, nmi;
};

static struct madt_counts check_madt(const struct tables *t, unsigned ncpus)
{
    const uint8_t *madt = find_table(t, "APIC");
    assert_int_equal(get32(madt + 36), X86_LAPIC_ADDR);
    assert_int_equal(get32(madt + 40), 1); /* PCAT_COMPAT */
    struct madt_counts c = {0};
    uint32_t len = get32(madt + 4), off = 44;
    while (off < len) {
        const uint8_t *e = madt + off;
        assert_true(e[1] >= 2 && off + e[1] <= len);
        switch (e[0]) {
        case 0:
            assert_int_equal(e[1], 8);
            assert_int_equal(e[2], c.lapic); /* processor UID */
            assert_int_equal(e[3], c.lapic); /* APIC ID */
            assert_int_equal(get32(e + 4), 1);
            c.lapic++;
            break;
        case 1:
            assert_int_equal(e[1], 12);
            assert_int_equal(get32(e + 4), X86_IOAPIC_ADDR);
            assert_int_equal(get32(e + 8), 0);
            c.ioapic++;
            break;
        case 2:
            assert_int_equal(e[1], 10);
            assert_int_equal(e[2], 0); /* ISA */
            assert_int_equal(e[3], 0);
            assert_int_equal(get32(e + 4), 2);
            assert_int_equal(get16(e + 8), 0x5); /* edge, active high */
            c.iso++;
            break;
        case 4:
            assert_int_equal(e[1], 6);
            assert_int_equal(e[2], 0xff);
            assert_int_equal(e[5], 1); /* LINT1 */
            c.nmi++;
            break;
        default:
            fail_msg("unexpected MADT entry type %u", e[0]);
        }
        off += e[1];
    }
    assert_int_equal(off, len);
    assert_int_equal(c.lapic, ncpus);
    return c;
}

static void test_madt(void **state)
{
    const unsigned counts[] = {1, 2, 4, 64, 255};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        struct acpi_params params = default_params;
        params.ncpus = counts[i];
        struct tables *t = build(&params);
        struct madt_counts c = check_madt(t, counts[i]);
        assert_int_equal(c.ioapic, 1);
        assert_int_equal(c.iso, 1);
        assert_int_equal(c.nmi, 1);
        free(t);
    }
}

static const uint8_t *memmem_or_fail(const uint8_t *hay, size_t len, const void *needle,
                                     size_t nlen)
{
    const uint8_t *p = memmem(hay, len, needle, nlen);
    if (!p)
        fail_msg("byte pattern not found in the DSDT");
    return p;
}

/* Spot checks; tests/unit/check_acpi_iasl.sh has ACPICA disassemble the whole DSDT. */
static void test_dsdt_contents(void **state)
{
    struct tables *t = build(&default_params);
    const uint8_t *fadt = find_table(t, "FACP");
    const uint8_t *dsdt = table_at(t, get64(fadt + 140), "DSDT");
    size_t len = get32(dsdt + 4);
    const uint8_t s5[] = {0x08, '\\', '_',  'S',           '5',  '_',  0x12,
                          0x07, 0x04, 0x0a, PM_S5_SLP_TYP, 0x00, 0x00, 0x00};
    memmem_or_fail(dsdt, len, s5, sizeof(s5));
    memmem_or_fail(dsdt, len, "PCI0", 4);
    const uint8_t pnp0a03[] = {0x0c, 0x41, 0xd0, 0x0a, 0x03};
    memmem_or_fail(dsdt, len, pnp0a03, sizeof(pnp0a03));
    const uint8_t mmio[] = {0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xbf, 0xfe};
    memmem_or_fail(dsdt, len, mmio, sizeof(mmio));
    const uint8_t com1_io[] = {0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00};
    memmem_or_fail(dsdt, len, com1_io, sizeof(com1_io));
    const uint8_t rtc_io[] = {0x47, 0x01, 0x70, 0x00, 0x70, 0x00, 0x01, 0x02, 0x22, 0x00, 0x01};
    memmem_or_fail(dsdt, len, rtc_io, sizeof(rtc_io));
    /* Power button (PNP0C0C) and the Generic Event Device that notifies it. */
    const uint8_t pnp0c0c[] = {0x0c, 0x41, 0xd0, 0x0c, 0x0c};
    memmem_or_fail(dsdt, len, pnp0c0c, sizeof(pnp0c0c));
    memmem_or_fail(dsdt, len, "\x0d" "ACPI0013", 10);
    const uint8_t ged_irq[] = {0x89, 0x06, 0x00, 0x03, 0x01, PM_POWER_BUTTON_GSI, 0, 0, 0};
    memmem_or_fail(dsdt, len, ged_irq, sizeof(ged_irq));
    const uint8_t evt_if[] = {0x93, 0x68, 0x0a, PM_POWER_BUTTON_GSI};
    memmem_or_fail(dsdt, len, evt_if, sizeof(evt_if));
    const uint8_t notify[] = {0x86, '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'W', 'R', 'B', 0x0a, 0x80};
    memmem_or_fail(dsdt, len, notify, sizeof(notify));
    /* The DSDT is the last table: nothing is used after it. */
    assert_ptr_equal(dsdt + len, t->buf + t->used);
    free(t);
}

/* Every buffer too small for the tables gets -ENOSPC and nothing is written past it. */
static void test_nospc(void **state)
{
    struct tables *t = build(&default_params);
    size_t need = (size_t)t->used;
    for (size_t size = 0; size <= need; size++) {
        uint8_t *buf = malloc(size ? size : 1); /* exact size, so ASan sees any overrun */
        assert_non_null(buf);
        long ret = acpi_build(buf, size, X86_ACPI_ADDR, &default_params);
        if (size == need) {
            assert_int_equal(ret, (long)need);
            assert_memory_equal(buf, t->buf, need);
        } else {
            assert_int_equal(ret, -ENOSPC);
        }
        free(buf);
    }
    free(t);
}

static void test_invalid_params(void **state)
{
    static uint8_t buf[X86_ACPI_SIZE];
    struct acpi_params params = default_params;
    params.ncpus = 0;
    assert_int_equal(acpi_build(buf, sizeof(buf), X86_ACPI_ADDR, &params), -EINVAL);
    params.ncpus = 256;
    assert_int_equal(acpi_build(buf, sizeof(buf), X86_ACPI_ADDR, &params), -EINVAL);
    params = default_params;
    params.pci_mmio_end = params.pci_mmio_start - 1;
    assert_int_equal(acpi_build(buf, sizeof(buf), X86_ACPI_ADDR, &params), -EINVAL);
    params = default_params;
    params.pci_mmio_start = 0;
    params.pci_mmio_end = UINT32_MAX; /* the window's length would not fit in 32 bits */
    assert_int_equal(acpi_build(buf, sizeof(buf), X86_ACPI_ADDR, &params), -EINVAL);
    params = default_params;
    params.pm_base = 0xfffc;
    assert_int_equal(acpi_build(buf, sizeof(buf), X86_ACPI_ADDR, &params), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rsdp),  cmocka_unit_test(test_xsdt_entries),
        cmocka_unit_test(test_fadt),  cmocka_unit_test(test_fadt_pm_base),
        cmocka_unit_test(test_madt),  cmocka_unit_test(test_dsdt_contents),
        cmocka_unit_test(test_nospc), cmocka_unit_test(test_invalid_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
