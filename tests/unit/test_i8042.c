/* Unit tests for the i8042 keyboard controller: probing, command byte, CPU reset, keyboard. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hw/i8042.h"

#define ST_OBF 0x01
#define ST_IBF 0x02
#define ST_SYS 0x04
#define ST_CMD 0x08

struct fixture {
    struct i8042 kbc;
    unsigned resets;
};

static void fake_reset(void *opaque)
{
    struct fixture *f = opaque;
    /* The hook stops the VM, so it must run without the controller's lock. */
    assert_int_equal(pthread_mutex_trylock(&f->kbc.lock), 0);
    pthread_mutex_unlock(&f->kbc.lock);
    f->resets++;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    i8042_init(&f->kbc, fake_reset, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    i8042_destroy(&f->kbc);
    free(f);
    return 0;
}

static uint8_t status(struct fixture *f)
{
    uint8_t val = 0xff;
    i8042_cmd_io(&f->kbc, 0, &val, 1, false);
    return val;
}

static void command(struct fixture *f, uint8_t cmd)
{
    i8042_cmd_io(&f->kbc, 0, &cmd, 1, true);
}

static uint8_t data_read(struct fixture *f)
{
    uint8_t val = 0xff;
    i8042_data_io(&f->kbc, 0, &val, 1, false);
    return val;
}

static void data_write(struct fixture *f, uint8_t val)
{
    i8042_data_io(&f->kbc, 0, &val, 1, true);
}

/* Reads a reply the way Linux's i8042_command() does: poll OBF, then read port 0x60. */
static uint8_t reply(struct fixture *f)
{
    assert_true(status(f) & ST_OBF);
    uint8_t val = data_read(f);
    assert_false(status(f) & ST_OBF);
    return val;
}

/* A keyboard byte: the keyboard's next byte may follow into the buffer at once. */
static uint8_t kbd_reply(struct fixture *f)
{
    assert_true(status(f) & ST_OBF);
    return data_read(f);
}

static void test_initial_status(void **state)
{
    struct fixture *f = *state;
    uint8_t st = status(f);

    assert_int_equal(st & (ST_OBF | ST_IBF | ST_SYS), 0);
    assert_true(st & 0x10); /* key lock not engaged */
}

static void test_self_test(void **state)
{
    struct fixture *f = *state;

    command(f, 0xaa);
    assert_true(status(f) & ST_SYS);
    assert_true(status(f) & ST_CMD);
    assert_int_equal(reply(f), 0x55);
    command(f, 0xab);
    assert_int_equal(reply(f), 0x00);
    assert_false(status(f) & ST_IBF);
    assert_int_equal(f->resets, 0);
}

static void test_command_byte_round_trip(void **state)
{
    struct fixture *f = *state;

    command(f, 0x20);
    uint8_t initial = reply(f);
    assert_int_equal(initial & 0x04, 0); /* cold start: system flag clear */

    command(f, 0x60);
    assert_false(status(f) & ST_OBF); /* waits for its data byte, no reply */
    data_write(f, 0x65);
    assert_false(status(f) & ST_CMD);
    command(f, 0x20);
    assert_int_equal(reply(f), 0x65);
    assert_true(status(f) & ST_SYS); /* bit 2 of the command byte mirrors into status */

    command(f, 0x60);
    data_write(f, 0x61);
    assert_false(status(f) & ST_SYS);
    command(f, 0x20);
    assert_int_equal(reply(f), 0x61);
}

static void test_enable_disable_commands(void **state)
{
    struct fixture *f = *state;

    command(f, 0x60);
    data_write(f, 0x00);
    command(f, 0xad); /* disable keyboard interface */
    command(f, 0xa7); /* disable aux interface */
    assert_false(status(f) & ST_OBF);
    command(f, 0x20);
    assert_int_equal(reply(f), 0x30);
    command(f, 0xae);
    command(f, 0xa8);
    command(f, 0x20);
    assert_int_equal(reply(f), 0x00);
}

static void test_output_port(void **state)
{
    struct fixture *f = *state;

    command(f, 0xd0);
    uint8_t port = reply(f);
    assert_int_equal(port & 0x01, 0x01); /* reset line not asserted */

    command(f, 0xd1);
    data_write(f, 0x03);
    assert_int_equal(f->resets, 0);
    command(f, 0xd0);
    assert_int_equal(reply(f), 0x03);

    /* Bit 0 clear asserts the CPU reset line. */
    command(f, 0xd1);
    data_write(f, 0xfe);
    assert_int_equal(f->resets, 1);
    command(f, 0xd0);
    assert_int_equal(reply(f), 0xff); /* a pulse: the line is released again */
}

static void test_pulse_reset(void **state)
{
    struct fixture *f = *state;

    command(f, 0xfe);
    assert_int_equal(f->resets, 1);
    assert_false(status(f) & ST_OBF);
    command(f, 0xff); /* pulses no line */
    assert_int_equal(f->resets, 1);
    command(f, 0xf0); /* pulses all four, reset included */
    assert_int_equal(f->resets, 2);
    command(f, 0xfd); /* bit 0 set: reset not pulsed */
    assert_int_equal(f->resets, 2);
}

/* Linux's keyboard reboot: ten times "wait for IBF clear, write 0xfe". */
static void test_linux_kbd_reboot(void **state)
{
    struct fixture *f = *state;

    for (int i = 0; i < 10; i++) {
        assert_false(status(f) & ST_IBF);
        command(f, 0xfe);
    }
    assert_int_equal(f->resets, 10);
}

/* A data byte with no controller command pending is for the keyboard, which answers. */
static void test_data_goes_to_keyboard(void **state)
{
    struct fixture *f = *state;

    command(f, 0x20);
    uint8_t cb = reply(f);
    data_write(f, 0xff); /* keyboard reset: ACK, then self-test passed */
    assert_int_equal(kbd_reply(f), 0xfa);
    assert_int_equal(kbd_reply(f), 0xaa);
    data_write(f, 0xf4);
    assert_int_equal(kbd_reply(f), 0xfa);
    assert_false(status(f) & ST_OBF);
    command(f, 0x20);
    assert_int_equal(reply(f), cb);

    /* Another command cancels a pending one: the data byte then goes to the keyboard. */
    command(f, 0x60);
    command(f, 0x12); /* unknown: ignored */
    data_write(f, 0x00);
    assert_int_equal(kbd_reply(f), 0xfe); /* not a keyboard command */
    command(f, 0x20);
    assert_int_equal(reply(f), cb);

    /* The data byte of 0xd1 is consumed once: a second one goes to the keyboard. */
    command(f, 0xd1);
    data_write(f, 0x03);
    data_write(f, 0x00);
    assert_int_equal(kbd_reply(f), 0xfe);
    assert_int_equal(f->resets, 0);
}

/* What Linux's i8042 and atkbd drivers do at boot, with translation on (kiln's default). */
static void test_atkbd_probe(void **state)
{
    struct fixture *f = *state;

    /* No mouse: the loopback byte comes back without the aux flag, the aux test fails. */
    command(f, 0xd3);
    data_write(f, 0x5a);
    assert_true(status(f) & ST_OBF);
    assert_false(status(f) & 0x20);
    assert_int_equal(data_read(f), 0x5a);
    command(f, 0xa9);
    assert_int_equal(reply(f), 0x02);

    data_write(f, 0xf2); /* identify: an MF2 keyboard, ID translated */
    assert_int_equal(kbd_reply(f), 0xfa);
    assert_int_equal(kbd_reply(f), 0xab);
    assert_int_equal(kbd_reply(f), 0x41);
    data_write(f, 0xf5);
    assert_int_equal(kbd_reply(f), 0xfa);
    data_write(f, 0xed); /* LEDs: command and parameter each acknowledged */
    assert_int_equal(kbd_reply(f), 0xfa);
    data_write(f, 0x00);
    assert_int_equal(kbd_reply(f), 0xfa);
    data_write(f, 0xf0); /* which scancode set? 2 (translated: 0x41) */
    assert_int_equal(kbd_reply(f), 0xfa);
    data_write(f, 0x00);
    assert_int_equal(kbd_reply(f), 0xfa);
    assert_int_equal(kbd_reply(f), 0x41);
    data_write(f, 0xee);
    assert_int_equal(kbd_reply(f), 0xee);

    /* Keys are refused until the driver enables the keyboard. */
    assert_int_equal(i8042_send_ctrl_alt_del(&f->kbc), -ENODEV);
    data_write(f, 0xf4);
    assert_int_equal(kbd_reply(f), 0xfa);
    assert_int_equal(i8042_send_ctrl_alt_del(&f->kbc), 0);
    static const uint8_t set1[] = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};
    for (size_t i = 0; i < sizeof(set1); i++)
        assert_int_equal(kbd_reply(f), set1[i]);
    assert_false(status(f) & ST_OBF);
}

struct irq_log {
    unsigned raises, lowers;
};

static void log_irq(void *ctx, unsigned gsi, bool level)
{
    struct irq_log *log = ctx;
    assert_int_equal(gsi, I8042_KBD_IRQ);
    if (level)
        log->raises++;
    else
        log->lowers++;
}

/* Untranslated set 2, one IRQ 1 edge per byte; none while the interrupt is disabled. */
static void test_ctrl_alt_del_set2_irq(void **state)
{
    struct fixture *f = *state;
    struct irq_log log = {0};
    struct irq_line line = {log_irq, &log, I8042_KBD_IRQ};
    i8042_set_irq(&f->kbc, &line);

    command(f, 0x60);
    data_write(f, 0x01); /* keyboard interrupt on, translation off */
    data_write(f, 0xf4);
    assert_int_equal(log.raises, 1);
    assert_int_equal(kbd_reply(f), 0xfa);
    assert_int_equal(i8042_send_ctrl_alt_del(&f->kbc), 0);
    static const uint8_t set2[] = {0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0,
                                   0x71, 0xf0, 0x11, 0xf0, 0x14};
    for (size_t i = 0; i < sizeof(set2); i++)
        assert_int_equal(kbd_reply(f), set2[i]);
    assert_int_equal(log.raises, 1 + sizeof(set2));
    assert_int_equal(log.lowers, log.raises);

    /* A full buffer refuses rather than drops half a key sequence. */
    assert_int_equal(i8042_send_ctrl_alt_del(&f->kbc), 0);
    assert_int_equal(i8042_send_ctrl_alt_del(&f->kbc), -EBUSY);

    /* Interface disabled (0xad): bytes wait; enabled again (0xae): they come. */
    while (status(f) & ST_OBF)
        data_read(f);
    command(f, 0xad);
    data_write(f, 0xee); /* writing to the keyboard re-enables its interface */
    assert_int_equal(kbd_reply(f), 0xee);
    command(f, 0x60);
    data_write(f, 0x00); /* no interrupt, no translation */
    unsigned raises = log.raises;
    data_write(f, 0xee);
    assert_int_equal(kbd_reply(f), 0xee);
    assert_int_equal(log.raises, raises);
}

static void test_stale_data_read(void **state)
{
    struct fixture *f = *state;

    command(f, 0xaa);
    assert_int_equal(reply(f), 0x55);
    assert_int_equal(data_read(f), 0x55); /* with OBF clear, the last byte again */
    assert_false(status(f) & ST_OBF);
}

/* Each handler owns one port; only data[0] is touched, whatever (offset, len) arrives. */
static void test_every_offset_and_len(void **state)
{
    struct fixture *f = *state;
    static const uint32_t lens[] = {1, 2, 4, 8};
    void (*const fns[])(void *, uint64_t, uint8_t *, uint32_t, bool) = {i8042_data_io,
                                                                        i8042_cmd_io};

    for (size_t fn = 0; fn < 2; fn++) {
        for (uint64_t off = 0; off < 3; off++) {
            for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
                uint8_t buf[8];
                memset(buf, 0xff, sizeof(buf));
                fns[fn](&f->kbc, off, buf, lens[l], false);
                for (size_t i = 1; i < sizeof(buf); i++)
                    assert_int_equal(buf[i], 0xff);
                if (off != 0)
                    assert_int_equal(buf[0], 0xff);
                memset(buf, 0xa8, sizeof(buf)); /* harmless: enable aux */
                fns[fn](&f->kbc, off, buf, lens[l], true);
            }
        }
    }
    /* A word write of 0x00fe to port 0x64 is command 0xfe. */
    uint8_t word[2] = {0xfe, 0x00};
    i8042_cmd_io(&f->kbc, 0, word, 2, true);
    assert_int_equal(f->resets, 1);
    uint8_t st[4] = {0, 0xee, 0xee, 0xee};
    i8042_cmd_io(&f->kbc, 0, st, 4, false);
    assert_int_equal(st[0] & ST_IBF, 0);
    assert_int_equal(st[1], 0xee);
}

static void test_no_reset_hook(void **state)
{
    (void)state;
    struct i8042 kbc;
    memset(&kbc, 0, sizeof(kbc));
    i8042_init(&kbc, NULL, NULL);
    uint8_t cmd = 0xfe;
    i8042_cmd_io(&kbc, 0, &cmd, 1, true); /* nothing to call: no crash */
    cmd = 0xaa;
    i8042_cmd_io(&kbc, 0, &cmd, 1, true);
    uint8_t val = 0;
    i8042_data_io(&kbc, 0, &val, 1, false);
    assert_int_equal(val, 0x55);
    i8042_destroy(&kbc);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_initial_status),
        T(test_self_test),
        T(test_command_byte_round_trip),
        T(test_enable_disable_commands),
        T(test_output_port),
        T(test_pulse_reset),
        T(test_linux_kbd_reboot),
        T(test_data_goes_to_keyboard),
        T(test_atkbd_probe),
        T(test_ctrl_alt_del_set2_irq),
        T(test_stale_data_read),
        T(test_every_offset_and_len),
        cmocka_unit_test(test_no_reset_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
