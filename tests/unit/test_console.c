/* Ctrl-A escapes on the terminal console: which bytes reach the guest, which command runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "console/console.h"

static size_t filter(struct console *con, const char *in, uint8_t *out, enum console_action *action)
{
    return console_filter_input(con, (const uint8_t *)in, strlen(in), out, action);
}

static void test_plain_and_escapes(void **state)
{
    (void)state;
    struct console con;
    assert_int_equal(console_init(&con, -1, -1, NULL), 0);
    uint8_t out[64];
    enum console_action action;
    assert_int_equal(filter(&con, "ls\r", out, &action), 3);
    assert_int_equal(action, CONSOLE_ACTION_NONE);
    /* Ctrl-A Ctrl-A is one Ctrl-A for the guest; unknown commands are swallowed. */
    assert_int_equal(filter(&con,
                            "a\x01\x01"
                            "b\x01zc",
                            out, &action),
                     4);
    assert_memory_equal(out,
                        "a\x01"
                        "bc",
                        4);
    assert_int_equal(action, CONSOLE_ACTION_NONE);
    console_close(&con);
}

static void test_power_button(void **state)
{
    (void)state;
    struct console con;
    assert_int_equal(console_init(&con, -1, -1, NULL), 0);
    uint8_t out[64];
    enum console_action action;
    assert_int_equal(filter(&con, "x\x01py", out, &action), 2);
    assert_memory_equal(out, "xy", 2);
    assert_int_equal(action, CONSOLE_ACTION_POWER_BUTTON);
    /* The escape may arrive split across reads. */
    assert_int_equal(filter(&con, "\x01", out, &action), 0);
    assert_int_equal(action, CONSOLE_ACTION_NONE);
    assert_int_equal(filter(&con, "P", out, &action), 0);
    assert_int_equal(action, CONSOLE_ACTION_POWER_BUTTON);
    /* Quit wins over an earlier command and drops what follows it. */
    assert_int_equal(filter(&con, "\x01p\x01xrest", out, &action), 0);
    assert_int_equal(action, CONSOLE_ACTION_QUIT);
    console_close(&con);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_escapes),
        cmocka_unit_test(test_power_button),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
