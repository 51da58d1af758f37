#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cli/run_options.h"

static int parse(struct vm_config *cfg, char *err, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"run";
    for (; *args; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    return run_options_parse(argc, argv, cfg, err, 256);
}

#define PARSE(cfg, err, ...) parse(cfg, err, (const char *const[]){__VA_ARGS__, NULL})

static void defaults(void **state)
{
    struct vm_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, (const char *const[]){NULL}), 0);
    assert_null(cfg.kernel_path);
    assert_int_equal(cfg.memory, 256ULL << 20);
    assert_int_equal(cfg.cpus, 1);
    assert_int_equal(cfg.kernel_format, KERNEL_FORMAT_AUTO);
    assert_string_equal(cfg.cmdline, VM_DEFAULT_CMDLINE);
    assert_false(cfg.no_reboot);
    assert_true(cfg.seccomp); /* filters are on unless asked otherwise */
}

static void every_option(void **state)
{
    struct vm_config cfg;
    char err[256];
    assert_int_equal(PARSE(&cfg, err, "--kernel", "k", "--initrd", "i", "--cmdline", "c=1",
                           "--memory", "4G", "--cpus", "2", "--no-reboot", "--console-log", "log",
                           "--kernel-format", "raw", "-q"),
                     0);
    assert_string_equal(cfg.kernel_path, "k");
    assert_string_equal(cfg.initrd_path, "i");
    assert_string_equal(cfg.cmdline, "c=1");
    assert_int_equal(cfg.memory, 4ULL << 30);
    assert_int_equal(cfg.cpus, 2);
    assert_true(cfg.no_reboot);
    assert_string_equal(cfg.console_log, "log");
    assert_int_equal(cfg.kernel_format, KERNEL_FORMAT_RAW);

    assert_int_equal(PARSE(&cfg, err, "-k", "a", "-i", "b", "-a", "x y", "-m", "128M", "-c", "4",
                           "-v", "--kernel-format=elf"),
                     0);
    assert_string_equal(cfg.kernel_path, "a");
    assert_string_equal(cfg.cmdline, "x y");
    assert_int_equal(cfg.memory, 128ULL << 20);
    assert_int_equal(cfg.cpus, 4);
    assert_int_equal(cfg.kernel_format, KERNEL_FORMAT_ELF);
    assert_int_equal(PARSE(&cfg, err, "--append", "z"), 0);
    assert_string_equal(cfg.cmdline, "z");
}

static void help(void **state)
{
    struct vm_config cfg;
    char err[256];
    assert_int_equal(PARSE(&cfg, err, "--help"), RUN_OPTIONS_HELP);
    assert_int_equal(PARSE(&cfg, err, "-m", "1G", "-h"), RUN_OPTIONS_HELP);
    /* The help text documents every long option. */
    const char *opts[] = {"--kernel",  "--kernel-format", "--initrd",    "--cmdline",
                          "--memory",  "--cpus",          "--no-reboot", "--console-log",
                          "--verbose", "--quiet",         "--help"};
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        assert_non_null(strstr(run_options_usage, opts[i]));
}

static void expect_error(int ret, const char *err, const char *needle)
{
    assert_int_equal(ret, -EINVAL);
    if (!strstr(err, needle))
        fail_msg("error '%s' lacks '%s'", err, needle);
}

static void bad_values(void **state)
{
    struct vm_config cfg;
    char err[256];
    expect_error(PARSE(&cfg, err, "-c", "0"), err, "--cpus");
    expect_error(PARSE(&cfg, err, "-c", "1025"), err, "--cpus");
    expect_error(PARSE(&cfg, err, "-c", "two"), err, "--cpus");
    expect_error(PARSE(&cfg, err, "-m", "1K"), err, "too small");
    expect_error(PARSE(&cfg, err, "-m", "lots"), err, "--memory");
    expect_error(PARSE(&cfg, err, "-m", "99999999999999999999G"), err, "--memory");
    expect_error(PARSE(&cfg, err, "--kernel-format", "pe"), err, "--kernel-format");
    expect_error(PARSE(&cfg, err, "--bogus"), err, "--bogus");
    expect_error(PARSE(&cfg, err, "-z"), err, "-z");
    expect_error(PARSE(&cfg, err, "-k"), err, "needs a value");
    expect_error(PARSE(&cfg, err, "--kernel"), err, "--kernel");
    expect_error(PARSE(&cfg, err, "stray"), err, "unexpected argument");
}

static void seccomp_switch(void **state)
{
    struct vm_config cfg;
    char err[256];
    assert_int_equal(PARSE(&cfg, err, "--seccomp=off"), 0);
    assert_false(cfg.seccomp);
    assert_int_equal(PARSE(&cfg, err, "--seccomp", "off", "--seccomp", "on"), 0);
    assert_true(cfg.seccomp);
    expect_error(PARSE(&cfg, err, "--seccomp", "maybe"), err, "--seccomp");
    expect_error(PARSE(&cfg, err, "--seccomp"), err, "--seccomp");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(every_option),
        cmocka_unit_test(help),
        cmocka_unit_test(bad_values),
        cmocka_unit_test(seccomp_switch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
