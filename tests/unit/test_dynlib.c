#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "dynlib.h"
#include "net/slirp_lib.h"

/* Whether a file whose name contains `needle` is mapped into this process. */
static bool mapped(const char *needle)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* kiln links neither libslirp nor glib: they arrive only when --net user loads them. */
static void slirp_is_loaded_on_demand(void **state)
{
    assert_false(mapped("libslirp.so"));
    assert_false(mapped("libglib-2.0.so"));
    struct slirp_lib lib;
    assert_int_equal(slirp_lib_load(&lib), 0);
    assert_true(mapped("libslirp.so"));
    assert_non_null(lib.new_instance);
    assert_non_null(lib.cleanup);
    assert_non_null(lib.input);
    assert_non_null(lib.add_hostfwd);
    assert_non_null(lib.pollfds_fill);
    assert_non_null(lib.pollfds_poll);
    assert_non_null(lib.handle_timer);
    slirp_lib_unload(&lib);
    assert_null(lib.handle);
    assert_null(lib.new_instance);
}

/* Loading twice (two --net user devices) gives two working handles. */
static void slirp_loads_twice(void **state)
{
    struct slirp_lib a, b;
    assert_int_equal(slirp_lib_load(&a), 0);
    assert_int_equal(slirp_lib_load(&b), 0);
    assert_ptr_equal(a.new_instance, b.new_instance);
    slirp_lib_unload(&a);
    slirp_lib_unload(&b);
}

/* Neither the API's HTTP server (and gnutls behind it) nor the CLI's libcurl is linked. */
static void feature_libraries_are_not_linked(void **state)
{
    assert_false(mapped("libmicrohttpd.so"));
    assert_false(mapped("libgnutls.so"));
    assert_false(mapped("libcurl.so"));
}

static void dynlib_reports_what_is_missing(void **state)
{
    char err[256];
    void *fn = NULL;
    const struct dynlib_symbol good[] = {{"MHD_start_daemon", &fn}};
    assert_null(dynlib_load("libkiln-no-such-library.so.1", good, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "libkiln-no-such-library.so.1"));
    const struct dynlib_symbol bad[] = {{"MHD_start_daemon", &fn}, {"kiln_no_such_symbol", &fn}};
    assert_null(dynlib_load("libmicrohttpd.so.12", bad, 2, err, sizeof(err)));
    assert_string_equal(err, "libmicrohttpd.so.12 has no symbol kiln_no_such_symbol");
    assert_non_null(dynlib_load("libmicrohttpd.so.12", good, 1, err, sizeof(err)));
    assert_non_null(fn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(feature_libraries_are_not_linked),
        cmocka_unit_test(dynlib_reports_what_is_missing),
        cmocka_unit_test(slirp_is_loaded_on_demand),
        cmocka_unit_test(slirp_loads_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
