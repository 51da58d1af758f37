/* The Firecracker JSON <-> configuration layer (api/fc_config.c, api/vm_spec.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "api/fc_config.h"
#include "api/vm_spec.h"

static struct vm_spec spec;
static char err[512];

static int setup(void **state)
{
    vm_spec_init(&spec);
    err[0] = '\0';
    return 0;
}

/* Applies `json` with `fn`-style dispatch by name; returns the result. */
static int put(const char *what, const char *id, const char *json)
{
    json_t *body = fc_parse_object(json, strlen(json), err, sizeof(err));
    if (!body)
        return -EBADMSG;
    int ret;
    if (strcmp(what, "boot") == 0)
        ret = fc_put_boot_source(&spec, body, err, sizeof(err));
    else if (strcmp(what, "machine") == 0)
        ret = fc_put_machine_config(&spec, body, false, err, sizeof(err));
    else if (strcmp(what, "machine-patch") == 0)
        ret = fc_put_machine_config(&spec, body, true, err, sizeof(err));
    else if (strcmp(what, "drive") == 0)
        ret = fc_put_drive(&spec, id, body, err, sizeof(err));
    else if (strcmp(what, "net") == 0)
        ret = fc_put_network_interface(&spec, id, body, err, sizeof(err));
    else if (strcmp(what, "vsock") == 0)
        ret = fc_put_vsock(&spec, body, err, sizeof(err));
    else if (strcmp(what, "entropy") == 0)
        ret = fc_put_entropy(&spec, body, err, sizeof(err));
    else
        ret = fc_config_apply(&spec, body, err, sizeof(err));
    json_decref(body);
    return ret;
}

static void boot_source(void **state)
{
    assert_int_equal(put("boot", NULL,
                         "{\"kernel_image_path\": \"/k\", \"initrd_path\": \"/i\", "
                         "\"boot_args\": \"console=ttyS0\"}"),
                     0);
    assert_string_equal(spec.cfg.kernel_path, "/k");
    assert_string_equal(spec.cfg.initrd_path, "/i");
    assert_string_equal(spec.cfg.cmdline, "console=ttyS0");
    assert_int_equal(spec.cfg.kernel_format, KERNEL_FORMAT_AUTO);
    /* Without boot_args, the default command line; the raw-format extension. */
    assert_int_equal(put("boot", NULL, "{\"kernel_image_path\": \"/r\", "
                                       "\"kiln_kernel_format\": \"raw\"}"),
                     0);
    assert_string_equal(spec.cfg.cmdline, VM_DEFAULT_CMDLINE);
    assert_null(spec.cfg.initrd_path);
    assert_int_equal(spec.cfg.kernel_format, KERNEL_FORMAT_RAW);
}

static void boot_source_errors(void **state)
{
    assert_int_equal(put("boot", NULL, "{}"), -EINVAL);
    assert_non_null(strstr(err, "kernel_image_path"));
    assert_int_equal(put("boot", NULL, "{\"kernel_image_path\": 5}"), -EINVAL);
    assert_non_null(strstr(err, "must be a string"));
    assert_int_equal(put("boot", NULL, "{\"kernel_image_path\": \"/k\", \"x\": 1}"), -EINVAL);
    assert_non_null(strstr(err, "unknown field 'x'"));
    assert_int_equal(put("boot", NULL, "{\"kernel_image_path\": \"\"}"), -EINVAL);
    /* jansson refuses "\u0000" in strings (no JSON_ALLOW_NUL): no path can hide a NUL. */
    assert_int_equal(put("boot", NULL, "{\"kernel_image_path\": \"a\\u0000b\"}"), -EBADMSG);
    assert_int_equal(put("boot", NULL, "{\"kernel_image_path\": \"/k\", "
                                       "\"kiln_kernel_format\": \"exe\"}"),
                     -EINVAL);
    /* A path longer than the buffer is refused, not truncated. */
    char *big = malloc(VM_SPEC_PATH_MAX + 64);
    int n = snprintf(big, VM_SPEC_PATH_MAX + 64, "{\"kernel_image_path\": \"");
    memset(big + n, 'a', VM_SPEC_PATH_MAX);
    strcpy(big + n + VM_SPEC_PATH_MAX, "\"}");
    assert_int_equal(put("boot", NULL, big), -EINVAL);
    assert_non_null(strstr(err, "longer"));
    free(big);
    /* Nothing was changed by the failures. */
    assert_null(spec.cfg.kernel_path);
}

static void malformed_bodies(void **state)
{
    static const char *const bad[] = {"", "{", "[]", "\"s\"", "1", "null", "{\"a\":1,\"a\":2}",
                                      "{\"a\": 1} trailing", "\xff\xfe", "{\"a\": 1e999999}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *o = fc_parse_object(bad[i], strlen(bad[i]), err, sizeof(err));
        assert_null(o);
        assert_true(err[0] != '\0');
    }
    /* Embedded NUL in the body and an oversized body. */
    assert_null(fc_parse_object("{}\0{}", 5, err, sizeof(err)));
    char *huge = calloc(1, FC_MAX_BODY + 2);
    memset(huge, ' ', FC_MAX_BODY + 1);
    assert_null(fc_parse_object(huge, FC_MAX_BODY + 1, err, sizeof(err)));
    assert_non_null(strstr(err, "larger"));
    free(huge);
    /* Deep nesting is refused by jansson's depth limit, not by running out of stack. */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 16);
    size_t len = 0;
    len += (size_t)sprintf(deep, "{\"a\":");
    for (size_t i = 0; i < depth && len < FC_MAX_BODY / 2; i++)
        deep[len++] = '[';
    assert_null(fc_parse_object(deep, len, err, sizeof(err)));
    free(deep);
}

static void machine_config(void **state)
{
    assert_int_equal(put("machine", NULL, "{\"vcpu_count\": 2, \"mem_size_mib\": 512, "
                                          "\"smt\": false, \"track_dirty_pages\": false}"),
                     0);
    assert_int_equal(spec.cfg.cpus, 2);
    assert_int_equal(spec.cfg.memory, 512ULL << 20);
    assert_false(spec.track_dirty_pages);
    /* Diff snapshots need no switch in kiln; the setting is taken and reported back. */
    assert_int_equal(put("machine-patch", NULL, "{\"track_dirty_pages\": true}"), 0);
    json_t *back = fc_machine_config_json(&spec);
    assert_true(json_is_true(json_object_get(back, "track_dirty_pages")));
    json_decref(back);
    assert_int_equal(put("machine-patch", NULL, "{\"vcpu_count\": 4}"), 0);
    assert_int_equal(spec.cfg.cpus, 4);
    assert_int_equal(spec.cfg.memory, 512ULL << 20);

    assert_int_equal(put("machine", NULL, "{\"vcpu_count\": 2}"), -EINVAL);
    assert_non_null(strstr(err, "mem_size_mib"));
    assert_int_equal(put("machine", NULL, "{\"vcpu_count\": -1, \"mem_size_mib\": 64}"),
                     -EINVAL);
    assert_int_equal(put("machine", NULL, "{\"vcpu_count\": 1.5, \"mem_size_mib\": 64}"),
                     -EINVAL);
    assert_int_equal(put("machine", NULL, "{\"vcpu_count\": 0, \"mem_size_mib\": 64}"), -EINVAL);
    assert_int_equal(put("machine", NULL, "{\"vcpu_count\": 1025, \"mem_size_mib\": 64}"),
                     -EINVAL);
    assert_int_equal(put("machine", NULL, "{\"vcpu_count\": 1, \"mem_size_mib\": 4}"), -EINVAL);
    assert_int_equal(
        put("machine", NULL, "{\"vcpu_count\": 1, \"mem_size_mib\": 9223372036854775807}"),
        -EINVAL);
    assert_int_equal(put("machine", NULL, "{\"vcpu_count\": true, \"mem_size_mib\": 64}"),
                     -EINVAL);
    assert_int_equal(put("machine", NULL, "{\"vcpu_count\": 1, \"mem_size_mib\": 64, "
                                          "\"smt\": true}"),
                     -EINVAL);
    assert_non_null(strstr(err, "not supported"));
    assert_int_equal(put("machine", NULL, "{\"vcpu_count\": 1, \"mem_size_mib\": 64, "
                                          "\"cpu_template\": \"T2\"}"),
                     -EINVAL);
    assert_int_equal(put("machine", NULL, "{\"vcpu_count\": 1, \"mem_size_mib\": 64, "
                                          "\"cpu_template\": \"None\", \"huge_pages\": null}"),
                     0);
    assert_int_equal(spec.cfg.cpus, 1);
}

static void drives(void **state)
{
    assert_int_equal(put("drive", "data", "{\"drive_id\": \"data\", \"path_on_host\": \"/d\", "
                                          "\"is_root_device\": false}"),
                     0);
    assert_int_equal(put("drive", "rootfs", "{\"drive_id\": \"rootfs\", \"path_on_host\": "
                                            "\"/r\", \"is_root_device\": true, "
                                            "\"is_read_only\": true, \"cache_type\": \"Unsafe\"}"),
                     0);
    assert_int_equal(spec.cfg.ndisks, 2);
    assert_true(spec.cfg.disks[1].readonly);
    assert_string_equal(spec.cfg.disks[1].id, "rootfs");
    /* PUT with the same id replaces. */
    assert_int_equal(put("drive", "data", "{\"drive_id\": \"data\", \"path_on_host\": \"/d2\", "
                                          "\"is_root_device\": false}"),
                     0);
    assert_int_equal(spec.cfg.ndisks, 2);
    assert_string_equal(spec.cfg.disks[0].path, "/d2");
    /* A second root device, mismatched ids, bad ids, unsupported fields. */
    assert_int_equal(put("drive", "r2", "{\"drive_id\": \"r2\", \"path_on_host\": \"/x\", "
                                        "\"is_root_device\": true}"),
                     -EINVAL);
    assert_non_null(strstr(err, "already the root"));
    assert_int_equal(put("drive", "a", "{\"drive_id\": \"b\", \"path_on_host\": \"/x\", "
                                       "\"is_root_device\": false}"),
                     -EINVAL);
    assert_int_equal(put("drive", "a/../b", "{\"drive_id\": \"a/../b\", \"path_on_host\": "
                                            "\"/x\", \"is_root_device\": false}"),
                     -EINVAL);
    assert_int_equal(put("drive", "a", "{\"drive_id\": \"a\", \"path_on_host\": \"/x\"}"),
                     -EINVAL);
    assert_int_equal(put("drive", "a", "{\"drive_id\": \"a\", \"path_on_host\": \"/x\", "
                                       "\"is_root_device\": false, \"rate_limiter\": {}}"),
                     -EINVAL);
    assert_int_equal(put("drive", "a", "{\"drive_id\": \"a\", \"path_on_host\": \"/x\", "
                                       "\"is_root_device\": false, \"cache_type\": \"Bogus\"}"),
                     -EINVAL);
    assert_int_equal(spec.cfg.ndisks, 2);
    /* The table fills up cleanly. */
    for (int i = 2; i < VM_MAX_DISKS; i++) {
        char body[128], id[16];
        snprintf(id, sizeof(id), "d%d", i);
        snprintf(body, sizeof(body),
                 "{\"drive_id\": \"%s\", \"path_on_host\": \"/x\", \"is_root_device\": false}",
                 id);
        assert_int_equal(put("drive", id, body), 0);
    }
    assert_int_equal(put("drive", "more", "{\"drive_id\": \"more\", \"path_on_host\": \"/x\", "
                                          "\"is_root_device\": false}"),
                     -EINVAL);
    assert_non_null(strstr(err, "at most"));
}

static void boot_config(void **state)
{
    put("boot", NULL, "{\"kernel_image_path\": \"/k\", \"boot_args\": "
                      "\"console=ttyS0 reboot=k panic=1 pci=off\"}");
    put("drive", "data", "{\"drive_id\": \"data\", \"path_on_host\": \"/d\", "
                         "\"is_root_device\": false}");
    put("drive", "rootfs", "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r\", "
                           "\"is_root_device\": true, \"is_read_only\": true}");
    struct vm_config cfg;
    char line[256];
    bool dropped;
    assert_int_equal(vm_spec_boot_config(&spec, &cfg, line, sizeof(line), &dropped), 0);
    assert_true(dropped);
    assert_string_equal(cfg.cmdline, "console=ttyS0 reboot=k panic=1 root=/dev/vda ro");
    assert_string_equal(cfg.disks[0].path, "/r"); /* the root drive is vda */
    assert_string_equal(cfg.disks[1].path, "/d");
    /* A command line naming its own root keeps it. */
    put("boot", NULL, "{\"kernel_image_path\": \"/k\", \"boot_args\": \"root=/dev/vdb\"}");
    assert_int_equal(vm_spec_boot_config(&spec, &cfg, line, sizeof(line), &dropped), 0);
    assert_false(dropped);
    assert_string_equal(line, "root=/dev/vdb");
    /* Too long for the buffer: an error, not truncation. */
    char small[8];
    assert_int_equal(vm_spec_boot_config(&spec, &cfg, small, sizeof(small), &dropped), -E2BIG);
}

static void network_interfaces(void **state)
{
    assert_int_equal(put("net", "eth0", "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", "
                                        "\"guest_mac\": \"06:00:ac:10:00:02\"}"),
                     0);
    assert_int_equal(spec.cfg.nets[0].backend, NET_TAP);
    assert_string_equal(spec.cfg.nets[0].ifname, "tap0");
    assert_true(spec.cfg.nets[0].has_mac);
    assert_int_equal(spec.cfg.nets[0].mac[5], 2);
    assert_int_equal(put("net", "eth1", "{\"iface_id\": \"eth1\", \"kiln_user_net\": "
                                        "{\"hostfwd\": [\"tcp::2222-:22\", \"udp::53-:53\"]}}"),
                     0);
    assert_int_equal(spec.cfg.nets[1].backend, NET_USER);
    assert_int_equal(spec.cfg.nets[1].nhostfwd, 2);
    assert_int_equal(spec.cfg.nets[1].hostfwd[0].host_port, 2222);
    assert_true(spec.cfg.nets[1].hostfwd[1].udp);

    assert_int_equal(put("net", "e", "{\"iface_id\": \"e\"}"), -EINVAL);
    assert_non_null(strstr(err, "either"));
    assert_int_equal(put("net", "e", "{\"iface_id\": \"e\", \"host_dev_name\": \"t\", "
                                     "\"kiln_user_net\": {}}"),
                     -EINVAL);
    assert_int_equal(put("net", "e", "{\"iface_id\": \"e\", \"host_dev_name\": "
                                     "\"a-very-long-tap-name\"}"),
                     -EINVAL);
    assert_int_equal(put("net", "e", "{\"iface_id\": \"e\", \"host_dev_name\": \"t\", "
                                     "\"guest_mac\": \"01:00:00:00:00:00\"}"),
                     -EINVAL);
    assert_int_equal(put("net", "e", "{\"iface_id\": \"e\", \"kiln_user_net\": "
                                     "{\"hostfwd\": [\"tcp::99999-:22\"]}}"),
                     -EINVAL);
    assert_int_equal(put("net", "e", "{\"iface_id\": \"e\", \"kiln_user_net\": "
                                     "{\"hostfwd\": [1]}}"),
                     -EINVAL);
    assert_int_equal(put("net", "e", "{\"iface_id\": \"e\", \"kiln_user_net\": "
                                     "{\"hostfwd\": [\"tcp::1-:1\",\"tcp::2-:1\",\"tcp::3-:1\","
                                     "\"tcp::4-:1\",\"tcp::5-:1\",\"tcp::6-:1\",\"tcp::7-:1\","
                                     "\"tcp::8-:1\",\"tcp::9-:1\"]}}"),
                     -EINVAL);
    assert_int_equal(spec.cfg.nnets, 2);
}

static void vsock_and_entropy(void **state)
{
    assert_int_equal(put("vsock", NULL, "{\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"}"), 0);
    assert_true(spec.cfg.vsock.enabled);
    assert_int_equal(spec.cfg.vsock.guest_cid, 3);
    assert_int_equal(put("vsock", NULL, "{\"guest_cid\": 2, \"uds_path\": \"/v\"}"), -EINVAL);
    assert_int_equal(put("vsock", NULL, "{\"guest_cid\": 4294967295, \"uds_path\": \"/v\"}"),
                     -EINVAL);
    assert_int_equal(put("vsock", NULL, "{\"guest_cid\": 3}"), -EINVAL);
    assert_int_equal(put("entropy", NULL, "{}"), 0);
    assert_true(spec.cfg.rng);
    assert_int_equal(put("entropy", NULL, "{\"rate_limiter\": {\"bandwidth\": {}}}"), -EINVAL);
}

static void config_file_document(void **state)
{
    const char *doc = "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, "
                      "\"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 128}, "
                      "\"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r\", "
                      "\"is_root_device\": true, \"is_read_only\": false}], "
                      "\"network-interfaces\": [], \"logger\": null}";
    assert_int_equal(put("file", NULL, doc), 0);
    assert_int_equal(spec.cfg.cpus, 2);
    assert_int_equal(spec.cfg.ndisks, 1);
    /* Round trip: GET /vm/config's output is itself a valid config file. */
    json_t *out = fc_config_json(&spec);
    assert_non_null(out);
    struct vm_spec saved;
    vm_spec_copy(&saved, &spec);
    vm_spec_init(&spec);
    assert_int_equal(fc_config_apply(&spec, out, err, sizeof(err)), 0);
    json_decref(out);
    assert_string_equal(spec.cfg.kernel_path, saved.cfg.kernel_path);
    assert_int_equal(spec.cfg.memory, saved.cfg.memory);
    assert_string_equal(spec.drive_ids[0], "rootfs");
    assert_true(spec.drive_is_root[0]);

    /* A document that fails halfway changes nothing. */
    const char *half = "{\"boot-source\": {\"kernel_image_path\": \"/other\"}, "
                       "\"machine-config\": {\"vcpu_count\": 0, \"mem_size_mib\": 128}}";
    assert_int_equal(put("file", NULL, half), -EINVAL);
    assert_string_equal(spec.cfg.kernel_path, "/k");
    assert_int_equal(put("file", NULL, "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, "
                                       "\"balloon\": {\"amount_mib\": 1}}"),
                     -EINVAL);
    assert_non_null(strstr(err, "balloon"));
    assert_int_equal(put("file", NULL, "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, "
                                       "\"drives\": [1]}"),
                     -EINVAL);
    assert_int_equal(put("file", NULL, "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, "
                                       "\"drives\": {}}"),
                     -EINVAL);
}

static void config_file_load(void **state)
{
    char path[] = "/tmp/kiln-fc-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *doc = "{\"boot-source\": {\"kernel_image_path\": \"/k\"}}";
    assert_int_equal(write(fd, doc, strlen(doc)), (ssize_t)strlen(doc));
    close(fd);
    assert_int_equal(fc_config_load_file(&spec, path, err, sizeof(err)), 0);
    assert_string_equal(spec.cfg.kernel_path, "/k");
    unlink(path);
    assert_int_equal(fc_config_load_file(&spec, path, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "No such file"));
}

static void spec_from_command_line(void **state)
{
    struct vm_config cfg = {.kernel_path = "/k", .cmdline = "x", .cpus = 3, .memory = 1ULL << 30,
                            .ndisks = 2};
    strcpy(cfg.disks[1].id, "named");
    assert_int_equal(vm_spec_from_config(&spec, &cfg), 0);
    assert_ptr_equal(spec.cfg.kernel_path, spec.kernel_path);
    assert_string_equal(spec.cfg.kernel_path, "/k");
    assert_null(spec.cfg.initrd_path);
    assert_string_equal(spec.drive_ids[0], "drive0");
    assert_string_equal(spec.drive_ids[1], "named");
    struct vm_spec copy;
    vm_spec_copy(&copy, &spec);
    assert_ptr_equal(copy.cfg.cmdline, copy.cmdline);
    assert_string_equal(copy.cfg.cmdline, "x");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(boot_source, setup),
        cmocka_unit_test_setup(boot_source_errors, setup),
        cmocka_unit_test_setup(malformed_bodies, setup),
        cmocka_unit_test_setup(machine_config, setup),
        cmocka_unit_test_setup(drives, setup),
        cmocka_unit_test_setup(boot_config, setup),
        cmocka_unit_test_setup(network_interfaces, setup),
        cmocka_unit_test_setup(vsock_and_entropy, setup),
        cmocka_unit_test_setup(config_file_document, setup),
        cmocka_unit_test_setup(config_file_load, setup),
        cmocka_unit_test_setup(spec_from_command_line, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
