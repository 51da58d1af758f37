/* `kiln ls`'s table and the CLI's definition builder. */
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

#include "cli/run_options.h"
#include "cli/vm_definition.h"
#include "cli/vm_table.h"
#include "util.h"

static void uptime_formats(void **state)
{
    static const struct {
        int64_t s;
        const char *text;
    } cases[] = {
        {-1, "-"},       {0, "0s"},        {59, "59s"},       {60, "1m00s"},    {725, "12m05s"},
        {3600, "1h00m"}, {18420, "5h07m"}, {86399, "23h59m"}, {86400, "1d00h"}, {273600, "3d04h"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        format_uptime(cases[i].s, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].text);
    }
}

static void memory_formats(void **state)
{
    char buf[32];
    format_mem_mib(0, buf, sizeof(buf));
    assert_string_equal(buf, "-");
    format_mem_mib(256, buf, sizeof(buf));
    assert_string_equal(buf, "256M");
    format_mem_mib(2048, buf, sizeof(buf));
    assert_string_equal(buf, "2G");
    format_mem_mib(1536, buf, sizeof(buf));
    assert_string_equal(buf, "1536M");
}

static char *print_table(const struct vm_row *rows, size_t n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    vm_table_print(f, rows, n);
    fclose(f);
    return text;
}

static void table_aligns_columns(void **state)
{
    const struct vm_row rows[] = {
        {.name = "web",
         .state = "running",
         .pid = 4242,
         .vcpus = 2,
         .mem_mib = 1024,
         .uptime_s = 725},
        {.name = "a-much-longer-name",
         .state = "stopped",
         .vcpus = 1,
         .mem_mib = 256,
         .uptime_s = -1},
        {.name = "db", .state = "paused", .pid = 7, .vcpus = 16, .mem_mib = 512, .uptime_s = 5},
    };
    char *text = print_table(rows, 3);
    assert_string_equal(text, "NAME                STATE     PID  VCPUS  MEMORY  UPTIME\n"
                              "web                 running  4242      2      1G  12m05s\n"
                              "a-much-longer-name  stopped     -      1    256M  -\n"
                              "db                  paused      7     16    512M  5s\n");
    free(text);
}

static void table_empty_has_header(void **state)
{
    char *text = print_table(NULL, 0);
    assert_string_equal(text, "NAME  STATE  PID  VCPUS  MEMORY  UPTIME\n");
    free(text);
}

static const struct vm_config base_config = {
    .kernel_path = "/dev/null", /* any readable file; realpath() keeps it */
    .cmdline = "console=ttyS0",
    .memory = 64 * MiB,
    .cpus = 2,
};

static void definition_uses_firecracker_schema(void **state)
{
    struct vm_config cfg = base_config;
    cfg.kernel_format = KERNEL_FORMAT_RAW;
    cfg.ndisks = 1;
    snprintf(cfg.disks[0].path, sizeof(cfg.disks[0].path), "/dev/null");
    cfg.disks[0].readonly = true;
    cfg.nnets = 2;
    cfg.nets[0] = (struct net_config){.backend = NET_TAP,
                                      .ifname = "tap7",
                                      .has_mac = true,
                                      .mac = {0x52, 0x54, 0, 0x12, 0x34, 0x56}};
    cfg.nets[1] = (struct net_config){
        .backend = NET_USER,
        .nhostfwd = 2,
        .hostfwd = {{.host_port = 8080, .guest_port = 80},
                    {.udp = true, .host_addr = 0x7f000001, .host_port = 53, .guest_port = 5353}}};
    cfg.rng = true;
    cfg.no_reboot = true;
    char err[256] = "";
    json_t *def = vm_definition_from_config(&cfg, err, sizeof(err));
    assert_non_null(def);
    char *text = json_dumps(def, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(
        text, "{\"boot-source\":{\"boot_args\":\"console=ttyS0\",\"kernel_image_path\":"
              "\"/dev/null\",\"kiln_kernel_format\":\"raw\"},"
              "\"drives\":[{\"drive_id\":\"disk0\",\"is_read_only\":true,\"is_root_device\":false,"
              "\"path_on_host\":\"/dev/null\"}],"
              "\"entropy\":{},\"kiln\":{\"no_reboot\":true},"
              "\"machine-config\":{\"mem_size_mib\":64,\"vcpu_count\":2},"
              "\"network-interfaces\":[{\"guest_mac\":\"52:54:00:12:34:56\",\"host_dev_name\":"
              "\"tap7\",\"iface_id\":\"eth0\"},{\"iface_id\":\"eth1\",\"kiln_user_net\":"
              "{\"hostfwd\":[\"tcp::8080-:80\",\"udp:127.0.0.1:53-:5353\"]}}]}");
    free(text);
    struct vm_definition_summary sum;
    vm_definition_summarize(def, &sum);
    assert_int_equal(sum.vcpus, 2);
    assert_int_equal(sum.mem_mib, 64);
    json_decref(def);
}

/* kiln restore/receive give a VM its devices back as options: parsed, they are the same. */
static void definition_devices_round_trip(void **state)
{
    struct vm_config cfg = base_config;
    cfg.ndisks = 2;
    snprintf(cfg.disks[0].path, sizeof(cfg.disks[0].path), "/dev/null");
    cfg.disks[0].readonly = true;
    snprintf(cfg.disks[1].path, sizeof(cfg.disks[1].path), "/dev/zero");
    snprintf(cfg.disks[1].id, sizeof(cfg.disks[1].id), "data");
    cfg.nnets = 2;
    cfg.nets[0] = (struct net_config){.backend = NET_TAP, .ifname = "tap7", .has_mac = true,
                                      .mac = {0x52, 0x54, 0, 0x12, 0x34, 0x56}};
    cfg.nets[1] = (struct net_config){.backend = NET_USER, .nhostfwd = 1,
                                      .hostfwd = {{.host_port = 2222, .guest_port = 22}}};
    cfg.rng = true;
    cfg.console = CONSOLE_VIRTIO;
    char err[256] = "";
    json_t *def = vm_definition_from_config(&cfg, err, sizeof(err));
    assert_non_null(def);
    struct vm_device_args dev;
    assert_int_equal(vm_definition_device_args(def, &dev, err, sizeof(err)), 0);
    json_decref(def);
    char *argv[2 + VM_DEVICE_ARGS_MAX] = {"run"};
    for (unsigned i = 0; i < dev.argc; i++)
        argv[1 + i] = dev.argv[i];
    assert_string_equal(argv[2], "/dev/null,ro");
    assert_string_equal(argv[4], "/dev/zero,id=data");
    struct vm_config back;
    assert_int_equal(run_options_parse((int)dev.argc + 1, argv, &back, err, sizeof(err)), 0);
    assert_int_equal(back.ndisks, 2);
    assert_true(back.disks[0].readonly);
    assert_string_equal(back.disks[0].id, "");
    assert_string_equal(back.disks[1].id, "data");
    assert_false(back.disks[1].readonly);
    assert_int_equal(back.nnets, 2);
    assert_int_equal(back.nets[0].backend, NET_TAP);
    assert_string_equal(back.nets[0].ifname, "tap7");
    assert_memory_equal(back.nets[0].mac, cfg.nets[0].mac, 6);
    assert_int_equal(back.nets[1].backend, NET_USER);
    assert_int_equal(back.nets[1].nhostfwd, 1);
    assert_int_equal(back.nets[1].hostfwd[0].host_port, 2222);
    assert_int_equal(back.nets[1].hostfwd[0].guest_port, 22);
    assert_true(back.rng);
    assert_int_equal(back.console, CONSOLE_VIRTIO);
    vm_device_args_free(&dev);
    (void)state;
}

static void definition_checks_files_and_sizes(void **state)
{
    char err[256];
    struct vm_config cfg = base_config;
    cfg.kernel_path = "/nonexistent/vmlinuz";
    assert_null(vm_definition_from_config(&cfg, err, sizeof(err)));
    assert_string_equal(err, "kernel '/nonexistent/vmlinuz': No such file or directory");
    cfg = base_config;
    cfg.memory = 64 * MiB + 4096;
    assert_null(vm_definition_from_config(&cfg, err, sizeof(err)));
    assert_string_equal(err, "--memory: must be a whole number of MiB");
    cfg = base_config;
    cfg.kernel_path = NULL;
    assert_null(vm_definition_from_config(&cfg, err, sizeof(err)));
    assert_string_equal(err, "--kernel is required");
    cfg = base_config;
    cfg.console_log = "/tmp/x";
    assert_null(vm_definition_from_config(&cfg, err, sizeof(err)));
    cfg = base_config;
    cfg.ndisks = 1;
    snprintf(cfg.disks[0].path, sizeof(cfg.disks[0].path), "/nonexistent.img");
    assert_null(vm_definition_from_config(&cfg, err, sizeof(err)));
    assert_string_equal(err, "disk '/nonexistent.img': No such file or directory");
    snprintf(cfg.disks[0].path, sizeof(cfg.disks[0].path), "/dev/null");
    snprintf(cfg.disks[0].id, sizeof(cfg.disks[0].id), "../x");
    assert_null(vm_definition_from_config(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "id '../x'"));
    cfg.disks[0].id[0] = '\0';
    cfg.disks[0].cache = DISK_CACHE_NONE;
    assert_null(vm_definition_from_config(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "cache=none"));
}

static void summary_ignores_garbage(void **state)
{
    json_t *def =
        json_loads("{\"machine-config\":{\"vcpu_count\":\"x\",\"mem_size_mib\":-5}}", 0, NULL);
    struct vm_definition_summary sum;
    vm_definition_summarize(def, &sum);
    assert_int_equal(sum.vcpus, 0);
    assert_int_equal(sum.mem_mib, 0);
    json_decref(def);
    vm_definition_summarize(NULL, &sum);
    assert_int_equal(sum.vcpus, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(uptime_formats),
        cmocka_unit_test(memory_formats),
        cmocka_unit_test(table_aligns_columns),
        cmocka_unit_test(table_empty_has_header),
        cmocka_unit_test(definition_uses_firecracker_schema),
        cmocka_unit_test(definition_devices_round_trip),
        cmocka_unit_test(definition_checks_files_and_sizes),
        cmocka_unit_test(summary_ignores_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
