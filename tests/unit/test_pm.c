#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "hw/pm.h"

struct calls {
    unsigned poweroff;
    unsigned reset;
};

static void on_poweroff(void *opaque)
{
    ((struct calls *)opaque)->poweroff++;
}

static void on_reset(void *opaque)
{
    ((struct calls *)opaque)->reset++;
}

struct fixture {
    struct pm pm;
    struct calls calls;
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    pm_init(&f.pm, on_poweroff, on_reset, &f.calls);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    pm_destroy(&f->pm);
    return 0;
}

static void outb(struct pm *pm, unsigned offset, uint8_t value)
{
    pm_io(pm, offset, &value, 1, true);
}

static uint8_t inb(struct pm *pm, unsigned offset)
{
    uint8_t v = 0xee;
    pm_io(pm, offset, &v, 1, false);
    return v;
}

static uint8_t sleep_value(unsigned slp_typ, bool enable)
{
    return (uint8_t)((slp_typ << PM_SLP_TYP_SHIFT) | (enable ? PM_SLP_EN : 0));
}

static void test_poweroff_on_s5(void **state)
{
    struct fixture *f = *state;
    /* What Linux writes for \_S5 = {5, ...}: (5 << 2) | SLP_EN. */
    outb(&f->pm, PM_SLEEP_CONTROL, 0x34);
    assert_int_equal(f->calls.poweroff, 1);
    assert_int_equal(f->calls.reset, 0);
}

static void test_no_poweroff_otherwise(void **state)
{
    struct fixture *f = *state;
    outb(&f->pm, PM_SLEEP_CONTROL, sleep_value(PM_S5_SLP_TYP, false)); /* no SLP_EN */
    for (unsigned typ = 0; typ < 8; typ++) {
        if (typ != PM_S5_SLP_TYP)
            outb(&f->pm, PM_SLEEP_CONTROL, sleep_value(typ, true));
    }
    /* S5 with SLP_EN, but in the wrong register. */
    outb(&f->pm, PM_SLEEP_STATUS, 0x34);
    outb(&f->pm, PM_RESET, 0x34);
    outb(&f->pm, 7, 0x34);
    assert_int_equal(f->calls.poweroff, 0);
    assert_int_equal(f->calls.reset, 0);
    /* Bits outside SLP_TYP and SLP_EN do not matter. */
    outb(&f->pm, PM_SLEEP_CONTROL, 0x34 | 0xc3);
    assert_int_equal(f->calls.poweroff, 1);
}

static void test_reset(void **state)
{
    struct fixture *f = *state;
    outb(&f->pm, PM_RESET, 0x02);
    outb(&f->pm, PM_RESET, 0xff);
    outb(&f->pm, PM_RESET + 1, PM_RESET_VALUE);
    outb(&f->pm, PM_SLEEP_CONTROL, PM_RESET_VALUE);
    assert_int_equal(f->calls.reset, 0);
    outb(&f->pm, PM_RESET, PM_RESET_VALUE);
    assert_int_equal(f->calls.reset, 1);
    assert_int_equal(f->calls.poweroff, 0);
}

static void test_reads(void **state)
{
    struct fixture *f = *state;
    for (unsigned off = 0; off < PM_NR_PORTS; off++)
        assert_int_equal(inb(&f->pm, off), 0);
    /* Sleep status reads back its state; WAK_STS is write-1-to-clear. */
    f->pm.state.sleep_status = PM_WAK_STS;
    assert_int_equal(inb(&f->pm, PM_SLEEP_STATUS), PM_WAK_STS);
    outb(&f->pm, PM_SLEEP_STATUS, 0x00);
    assert_int_equal(inb(&f->pm, PM_SLEEP_STATUS), PM_WAK_STS);
    outb(&f->pm, PM_SLEEP_STATUS, PM_WAK_STS);
    assert_int_equal(inb(&f->pm, PM_SLEEP_STATUS), 0);
    assert_int_equal(inb(&f->pm, PM_SLEEP_CONTROL), 0);
    assert_int_equal(inb(&f->pm, PM_RESET), 0);
}

/* Wider accesses act on consecutive byte registers and never run past the data. */
static void test_wide_accesses(void **state)
{
    struct fixture *f = *state;
    uint8_t d[8] = {0x34, 0, 0, 0, PM_RESET_VALUE, 0, 0, 0};
    pm_io(&f->pm, 0, d, 8, true);
    assert_int_equal(f->calls.poweroff, 1);
    assert_int_equal(f->calls.reset, 1);
    memset(d, 0xee, sizeof(d));
    f->pm.state.sleep_status = PM_WAK_STS;
    pm_io(&f->pm, 0, d, 4, false);
    assert_int_equal(d[0], 0);
    assert_int_equal(d[1], PM_WAK_STS);
    assert_int_equal(d[2], 0);
    assert_int_equal(d[3], 0);
    assert_int_equal(d[4], 0xee);
    pm_io(&f->pm, 6, d, 8, false);
    memset(d, 0x34, sizeof(d));
    pm_io(&f->pm, UINT64_MAX - 1, d, 4, true); /* would wrap to offset 0 */
    assert_int_equal(f->calls.poweroff, 1);
}

static void test_no_callbacks(void **state)
{
    struct pm pm;
    pm_init(&pm, NULL, NULL, NULL);
    outb(&pm, PM_SLEEP_CONTROL, 0x34);
    outb(&pm, PM_RESET, PM_RESET_VALUE);
    pm_destroy(&pm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_poweroff_on_s5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_poweroff_otherwise, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wide_accesses, setup, teardown),
        cmocka_unit_test(test_no_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
