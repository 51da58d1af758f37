#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cli/device_options.h"

static void disk_forms(void **state)
{
    struct disk_config d;
    char err[256];
    assert_int_equal(parse_disk_option("root.img", &d, err, sizeof(err)), 0);
    assert_string_equal(d.path, "root.img");
    assert_false(d.readonly);
    assert_int_equal(d.cache, DISK_CACHE_WRITEBACK);
    assert_string_equal(d.id, "");
    assert_int_equal(parse_disk_option("/dev/sdb,ro,id=data-01,cache=none", &d, err, sizeof(err)),
                     0);
    assert_string_equal(d.path, "/dev/sdb");
    assert_true(d.readonly);
    assert_string_equal(d.id, "data-01");
    assert_int_equal(d.cache, DISK_CACHE_NONE);
}

static void disk_errors(void **state)
{
    struct disk_config d;
    char err[256];
    assert_int_equal(parse_disk_option("", &d, err, sizeof(err)), -EINVAL);
    assert_int_equal(parse_disk_option("a.img,cache=sometimes", &d, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "cache"));
    assert_int_equal(parse_disk_option("a.img,id=123456789012345678901", &d, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "20 bytes"));
    assert_int_equal(parse_disk_option("a.img,bogus", &d, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "bogus"));
}

static void mac_parsing(void **state)
{
    uint8_t mac[6];
    assert_int_equal(parse_mac("52:54:00:12:34:56", mac), 0);
    assert_int_equal(mac[0], 0x52);
    assert_int_equal(mac[5], 0x56);
    assert_int_equal(parse_mac("52:54:00:12:34", mac), -EINVAL);
    assert_int_equal(parse_mac("52:54:00:12:34:5g", mac), -EINVAL);
    assert_int_equal(parse_mac("52-54-00-12-34-56", mac), -EINVAL);
    assert_int_equal(parse_mac("01:00:5e:00:00:01", mac), -EINVAL); /* multicast */
    assert_int_equal(parse_mac("52:54:00:12:34:567", mac), -EINVAL);
    assert_int_equal(parse_mac("+2:54:00:12:34:56", mac), -EINVAL);
}

static void net_forms(void **state)
{
    struct net_config n;
    char err[256];
    assert_int_equal(parse_net_option("tap=tap0", &n, err, sizeof(err)), 0);
    assert_int_equal(n.backend, NET_TAP);
    assert_string_equal(n.ifname, "tap0");
    assert_false(n.has_mac);
    assert_int_equal(parse_net_option("tap=tap1,mac=52:54:00:aa:bb:cc", &n, err, sizeof(err)), 0);
    assert_true(n.has_mac);
    assert_int_equal(n.mac[5], 0xcc);
    assert_int_equal(parse_net_option("user", &n, err, sizeof(err)), 0);
    assert_int_equal(n.backend, NET_USER);
    assert_int_equal(parse_net_option("user,hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:5353-:53",
                                      &n, err, sizeof(err)),
                     0);
    assert_int_equal(n.nhostfwd, 2);
    assert_false(n.hostfwd[0].udp);
    assert_int_equal(n.hostfwd[0].host_port, 2222);
    assert_int_equal(n.hostfwd[0].guest_port, 22);
    assert_int_equal(n.hostfwd[0].host_addr, 0);
    assert_true(n.hostfwd[1].udp);
    assert_int_equal(n.hostfwd[1].host_addr, 0x7f000001);
}

static void net_errors(void **state)
{
    struct net_config n;
    char err[256];
    assert_int_equal(parse_net_option("bridge=br0", &n, err, sizeof(err)), -EINVAL);
    assert_int_equal(parse_net_option("tap=", &n, err, sizeof(err)), -EINVAL);
    assert_int_equal(parse_net_option("tap=averyveryverylongname", &n, err, sizeof(err)), -EINVAL);
    assert_int_equal(parse_net_option("tap=tap0,mac=zz", &n, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "MAC"));
    assert_int_equal(parse_net_option("tap=tap0,hostfwd=tcp::1-:2", &n, err, sizeof(err)), -EINVAL);
    const char *bad_fwd[] = {"user,hostfwd=tcp::0-:22",       "user,hostfwd=tcp::70000-:22",
                             "user,hostfwd=sctp::1-:2",       "user,hostfwd=tcp:1.2.3:1-:2",
                             "user,hostfwd=tcp::22",          "user,hostfwd=tcp::x-:2",
                             "user,hostfwd=tcp::1-10.0.2.15", "user,hostfwd="};
    for (size_t i = 0; i < sizeof(bad_fwd) / sizeof(bad_fwd[0]); i++) {
        if (parse_net_option(bad_fwd[i], &n, err, sizeof(err)) != -EINVAL)
            fail_msg("accepted '%s'", bad_fwd[i]);
    }
}

static void vsock_forms(void **state)
{
    struct vsock_config v;
    char err[256];
    assert_int_equal(parse_vsock_option("cid=3,uds=/tmp/v.sock", &v, err, sizeof(err)), 0);
    assert_true(v.enabled);
    assert_int_equal(v.guest_cid, 3);
    assert_string_equal(v.uds_path, "/tmp/v.sock");
    assert_int_equal(parse_vsock_option("cid=2,uds=/tmp/v", &v, err, sizeof(err)), -EINVAL);
    assert_int_equal(parse_vsock_option("cid=3", &v, err, sizeof(err)), -EINVAL);
    assert_int_equal(parse_vsock_option("uds=/tmp/v", &v, err, sizeof(err)), -EINVAL);
    assert_int_equal(parse_vsock_option("cid=3,uds=", &v, err, sizeof(err)), -EINVAL);
    char longpath[200] = "cid=3,uds=/";
    memset(longpath + strlen(longpath), 'a', 120);
    assert_int_equal(parse_vsock_option(longpath, &v, err, sizeof(err)), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(disk_forms), cmocka_unit_test(disk_errors), cmocka_unit_test(mac_parsing),
        cmocka_unit_test(net_forms),  cmocka_unit_test(net_errors),  cmocka_unit_test(vsock_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
