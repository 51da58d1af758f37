/* Request routing and state rules of the API (api/api_routes.c), with fake VM operations. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/api.h"
#include "migrate/migrate.h"

struct fake_vm {
    int starts, pauses, resumes;
    int start_result;
    int snapshots, diffs, loads;
    char snap_state[256], snap_mem[256];
    bool load_resume;
    int migrations, cancels;
    char destination[160];
};

static int fake_start(void *opaque, const struct vm_spec *spec, char *err, size_t errlen)
{
    struct fake_vm *f = opaque;
    f->starts++;
    if (f->start_result)
        snprintf(err, errlen, "kernel '%s': not a kernel", spec->cfg.kernel_path);
    return f->start_result;
}

static int fake_pause(void *opaque, char *err, size_t errlen)
{
    ((struct fake_vm *)opaque)->pauses++;
    return 0;
}

static int fake_resume(void *opaque, char *err, size_t errlen)
{
    ((struct fake_vm *)opaque)->resumes++;
    return 0;
}

static int fake_unsupported(void *opaque, char *err, size_t errlen)
{
    snprintf(err, errlen, "not supported by this build");
    return -ENOTSUP;
}

static int fake_snapshot_create(void *opaque, bool diff, const char *state_path,
                                const char *mem_path, char *err, size_t errlen)
{
    struct fake_vm *f = opaque;
    f->snapshots++;
    f->diffs += diff;
    snprintf(f->snap_state, sizeof(f->snap_state), "%s", state_path);
    snprintf(f->snap_mem, sizeof(f->snap_mem), "%s", mem_path);
    return 0;
}

static int fake_snapshot_load(void *opaque, const char *state_path, const char *mem_path,
                              bool resume, char *err, size_t errlen)
{
    struct fake_vm *f = opaque;
    f->loads++;
    snprintf(f->snap_state, sizeof(f->snap_state), "%s", state_path);
    snprintf(f->snap_mem, sizeof(f->snap_mem), "%s", mem_path);
    f->load_resume = resume;
    return 0;
}

static int fake_migrate_start(void *opaque, const char *destination, char *err, size_t errlen)
{
    struct fake_vm *f = opaque;
    f->migrations++;
    snprintf(f->destination, sizeof(f->destination), "%s", destination);
    return 0;
}

static int fake_migrate_cancel(void *opaque, char *err, size_t errlen)
{
    ((struct fake_vm *)opaque)->cancels++;
    return 0;
}

static void fake_migrate_status(void *opaque, struct migrate_progress *out)
{
    *out = (struct migrate_progress){.state = MIGRATE_ACTIVE, .pass = 2, .bytes_sent = 12345};
}

static const struct api_ops fake_ops = {
    fake_start,          fake_pause,          fake_resume,         fake_unsupported,
    fake_unsupported,    fake_snapshot_create, fake_snapshot_load, fake_migrate_start,
    fake_migrate_cancel, fake_migrate_status};

static struct api api;
static struct fake_vm fake;

static int setup(void **state)
{
    memset(&fake, 0, sizeof(fake));
    api_init(&api, NULL, &fake_ops, &fake, "test-vm");
    return 0;
}

static int teardown(void **state)
{
    api_destroy(&api);
    return 0;
}

/* Sends a request; returns the status and leaves the body in `reply_body` (or ""). */
static char reply_body[4096];

static unsigned req(const char *method, const char *path, const char *body)
{
    struct api_reply reply;
    unsigned status =
        api_dispatch(&api, method, path, body, body ? strlen(body) : 0, &reply);
    snprintf(reply_body, sizeof(reply_body), "%s", reply.body ? reply.body : "");
    assert_int_equal(status, reply.status);
    if (status >= 400) /* every error carries a fault message */
        assert_non_null(strstr(reply_body, "\"fault_message\""));
    if (status == 204)
        assert_null(reply.body);
    api_reply_free(&reply);
    return status;
}

static void instance_info(void **state)
{
    assert_int_equal(req("GET", "/", NULL), 200);
    assert_non_null(strstr(reply_body, "\"state\":\"Not started\""));
    assert_non_null(strstr(reply_body, "\"id\":\"test-vm\""));
    assert_non_null(strstr(reply_body, "\"app_name\":\"kiln\""));
    assert_int_equal(req("GET", "/version", NULL), 200);
    assert_non_null(strstr(reply_body, "firecracker_version"));
}

static void routing_errors(void **state)
{
    assert_int_equal(req("GET", "/nope", NULL), 400);
    assert_int_equal(req("POST", "/", NULL), 400);
    assert_int_equal(req("DELETE", "/drives/x", NULL), 400);
    assert_int_equal(req("PUT", "/drives", "{}"), 400);
    assert_int_equal(req("PUT", "/drives/", "{}"), 400);
    assert_int_equal(req("PUT", "/drives/a/b", "{}"), 400);
    assert_int_equal(req("GET", "/machine-config/", NULL), 400);
    assert_int_equal(req("PUT", "//boot-source", "{}"), 400);
    assert_int_equal(req("", "", NULL), 400);
    /* NULL method/path (a fuzzer may pass them) */
    struct api_reply reply;
    assert_int_equal(api_dispatch(&api, NULL, NULL, NULL, 0, &reply), 400);
    api_reply_free(&reply);
    /* A body that is not JSON at all, binary included. */
    assert_int_equal(req("PUT", "/boot-source", "\x01\x02\xff"), 400);
    assert_int_equal(req("PUT", "/actions", ""), 400);
}

static void start_and_state_rules(void **state)
{
    assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 400);
    assert_non_null(strstr(reply_body, "boot-source"));
    assert_int_equal(fake.starts, 0);
    assert_int_equal(req("PATCH", "/vm", "{\"state\": \"Paused\"}"), 400);
    assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}"), 400);

    assert_int_equal(req("PUT", "/boot-source", "{\"kernel_image_path\": \"/bad\"}"), 204);
    fake.start_result = -ENOEXEC;
    assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 400);
    assert_non_null(strstr(reply_body, "kernel '/bad': not a kernel"));
    assert_int_equal(req("GET", "/", NULL), 200);
    assert_non_null(strstr(reply_body, "Not started"));

    fake.start_result = 0;
    assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
    assert_int_equal(fake.starts, 2);
    assert_int_equal(req("GET", "/", NULL), 200);
    assert_non_null(strstr(reply_body, "\"Running\""));
    /* Pre-boot-only endpoints, a second start. */
    assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 400);
    assert_int_equal(req("PUT", "/boot-source", "{\"kernel_image_path\": \"/k\"}"), 400);
    assert_non_null(strstr(reply_body, "after starting"));
    assert_int_equal(req("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}"),
                     400);
    assert_int_equal(req("PATCH", "/machine-config", "{\"vcpu_count\": 1}"), 400);
    assert_int_equal(req("PUT", "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/v\"}"), 400);
    assert_int_equal(req("PUT", "/entropy", "{}"), 400);
    assert_int_equal(fake.starts, 2);
    /* The configuration is still readable. */
    assert_int_equal(req("GET", "/vm/config", NULL), 200);
    assert_non_null(strstr(reply_body, "\"/bad\""));
    assert_int_equal(req("GET", "/machine-config", NULL), 200);

    assert_int_equal(req("PATCH", "/vm", "{\"state\": \"Paused\"}"), 204);
    assert_int_equal(req("GET", "/", NULL), 200);
    assert_non_null(strstr(reply_body, "\"Paused\""));
    assert_int_equal(req("PATCH", "/vm", "{\"state\": \"Resumed\"}"), 204);
    assert_int_equal(fake.pauses, 1);
    assert_int_equal(fake.resumes, 1);
    assert_int_equal(req("PATCH", "/vm", "{\"state\": \"Resumed\", \"x\": 1}"), 400);
    assert_int_equal(req("PATCH", "/vm", "{\"state\": 1}"), 400);
    assert_int_equal(req("PATCH", "/vm", "{\"state\": \"Running\"}"), 400);
    assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"PowerButton\"}"), 400);
    assert_non_null(strstr(reply_body, "not supported by this build"));
    assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"Reboot\"}"), 400);
    assert_int_equal(req("PUT", "/actions", "{}"), 400);
}

static void devices_by_path_id(void **state)
{
    assert_int_equal(req("PUT", "/drives/rootfs",
                         "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r\", "
                         "\"is_root_device\": true, \"is_read_only\": false}"),
                     204);
    assert_int_equal(req("PUT", "/drives/other",
                         "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r\", "
                         "\"is_root_device\": true}"),
                     400);
    assert_int_equal(req("PUT", "/network-interfaces/eth0",
                         "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}"),
                     204);
    assert_int_equal(req("GET", "/vm/config", NULL), 200);
    assert_non_null(strstr(reply_body, "\"drive_id\":\"rootfs\""));
    assert_non_null(strstr(reply_body, "\"host_dev_name\":\"tap0\""));
}

/* Random bytes and mutations of valid requests: only 2xx/4xx replies, never a crash. */
static void random_requests(void **state)
{
    static const char *const methods[] = {"GET", "PUT", "PATCH", "POST", "DELETE"};
    static const char *const paths[] = {"/",           "/boot-source",        "/machine-config",
                                        "/drives/a",   "/network-interfaces/b", "/vsock",
                                        "/entropy",    "/actions",            "/vm",
                                        "/vm/config",  "/version"};
    static const char *const seeds[] = {
        "{\"kernel_image_path\": \"/k\", \"boot_args\": \"a\"}",
        "{\"vcpu_count\": 2, \"mem_size_mib\": 64}",
        "{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true}",
        "{\"iface_id\": \"b\", \"kiln_user_net\": {\"hostfwd\": [\"tcp::1-:2\"]}}",
        "{\"guest_cid\": 3, \"uds_path\": \"/v\"}",
        "{\"action_type\": \"InstanceStart\"}",
        "{\"state\": \"Paused\"}",
    };
    unsigned seed = 12345;
    char body[256];
    for (int i = 0; i < 20000; i++) {
        seed = seed * 1103515245 + 12345;
        const char *src = seeds[(seed >> 8) % 7];
        size_t len = strlen(src);
        memcpy(body, src, len);
        for (int m = 0; m < 1 + (int)((seed >> 4) % 4); m++) {
            seed = seed * 1103515245 + 12345;
            body[(seed >> 8) % len] = (char)(seed >> 16);
        }
        struct api_reply reply;
        unsigned st = api_dispatch(&api, methods[(seed >> 3) % 5], paths[(seed >> 12) % 11], body,
                                   len, &reply);
        assert_true((st >= 200 && st < 300) || (st >= 400 && st < 500));
        api_reply_free(&reply);
    }
}

/* PUT /snapshot/create needs a paused VM and both paths; Diff is refused, not faked. */
static void migrate_rules(void **state)
{
    const char *dest = "{\"destination\": \"tcp:127.0.0.1:4444\"}";
    assert_int_equal(req("PUT", "/migrate", dest), 400); /* not started */
    assert_int_equal(req("PUT", "/boot-source", "{\"kernel_image_path\": \"/k\"}"), 204);
    assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
    assert_int_equal(req("PUT", "/migrate", "{}"), 400);
    assert_int_equal(req("PUT", "/migrate", "{\"destination\": 7}"), 400);
    assert_int_equal(req("PUT", "/migrate", "{\"destination\": \"tcp:a:1\", \"x\": 1}"), 400);
    assert_int_equal(req("PUT", "/migrate/cancel", "{\"now\": true}"), 400);
    assert_int_equal(fake.migrations, 0);
    assert_int_equal(req("PUT", "/migrate", dest), 204);
    assert_int_equal(fake.migrations, 1);
    assert_string_equal(fake.destination, "tcp:127.0.0.1:4444");
    assert_int_equal(req("GET", "/migrate", NULL), 200);
    assert_non_null(strstr(reply_body, "\"state\":\"active\""));
    assert_non_null(strstr(reply_body, "\"pass\":2"));
    assert_non_null(strstr(reply_body, "\"bytes_sent\":12345"));
    assert_int_equal(req("PUT", "/migrate/cancel", "{}"), 204);
    assert_int_equal(fake.cancels, 1);
}

static void snapshot_create_rules(void **state)
{
    const char *full = "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"/s/state\", "
                       "\"mem_file_path\": \"/s/memory\"}";
    assert_int_equal(req("PUT", "/snapshot/create", full), 400); /* not started */
    assert_int_equal(req("PUT", "/boot-source", "{\"kernel_image_path\": \"/k\"}"), 204);
    assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
    assert_int_equal(req("PUT", "/snapshot/create", full), 400); /* running, not paused */
    assert_non_null(strstr(reply_body, "paused"));
    assert_int_equal(req("PATCH", "/vm", "{\"state\": \"Paused\"}"), 204);
    assert_int_equal(req("PUT", "/snapshot/create", "{\"snapshot_path\": \"/s/state\"}"), 400);
    assert_int_equal(req("PUT", "/snapshot/create",
                         "{\"snapshot_path\": \"\", \"mem_file_path\": \"/m\"}"),
                     400);
    assert_int_equal(req("PUT", "/snapshot/create",
                         "{\"snapshot_path\": 7, \"mem_file_path\": \"/m\"}"),
                     400);
    assert_int_equal(req("PUT", "/snapshot/create",
                         "{\"snapshot_path\": \"/a\", \"mem_file_path\": \"/m\", \"x\": 1}"),
                     400);
    assert_int_equal(req("PUT", "/snapshot/create",
                         "{\"snapshot_type\": \"Delta\", \"snapshot_path\": \"/a\", "
                         "\"mem_file_path\": \"/m\"}"),
                     400);
    assert_non_null(strstr(reply_body, "Full or Diff"));
    assert_int_equal(fake.snapshots, 0);
    assert_int_equal(req("PUT", "/snapshot/create", full), 204);
    assert_int_equal(fake.snapshots, 1);
    assert_int_equal(fake.diffs, 0);
    assert_string_equal(fake.snap_state, "/s/state");
    assert_string_equal(fake.snap_mem, "/s/memory");
    /* a snapshot can be taken again, and the VM stays paused */
    assert_int_equal(req("PUT", "/snapshot/create",
                         "{\"snapshot_type\": \"Diff\", \"snapshot_path\": \"/a\", "
                         "\"mem_file_path\": \"/m\"}"),
                     204);
    assert_int_equal(fake.diffs, 1);
    assert_int_equal(req("GET", "/", NULL), 200);
    assert_non_null(strstr(reply_body, "Paused"));
}

static void snapshot_load_rules(void **state)
{
    assert_int_equal(req("PUT", "/snapshot/load", "{\"snapshot_path\": \"/s/state\"}"), 400);
    assert_int_equal(req("PUT", "/snapshot/load",
                         "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", "
                         "\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": "
                         "\"/m\"}}"),
                     400);
    assert_int_equal(req("PUT", "/snapshot/load",
                         "{\"snapshot_path\": \"/s\", \"mem_backend\": {\"backend_type\": "
                         "\"Uffd\", \"backend_path\": \"/m\"}}"),
                     400);
    assert_int_equal(req("PUT", "/snapshot/load",
                         "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", "
                         "\"resume_vm\": \"yes\"}"),
                     400);
    assert_int_equal(fake.loads, 0);
    assert_int_equal(req("PUT", "/snapshot/load",
                         "{\"snapshot_path\": \"/s\", \"mem_backend\": {\"backend_type\": "
                         "\"File\", \"backend_path\": \"/m\"}, \"resume_vm\": true}"),
                     204);
    assert_int_equal(fake.loads, 1);
    assert_true(fake.load_resume);
    assert_string_equal(fake.snap_mem, "/m");
    assert_int_equal(req("GET", "/", NULL), 200);
    assert_non_null(strstr(reply_body, "Running"));
    /* only once, and only before a start */
    assert_int_equal(req("PUT", "/snapshot/load",
                         "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}"),
                     400);
    assert_int_equal(fake.loads, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(instance_info, setup, teardown),
        cmocka_unit_test_setup_teardown(routing_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(start_and_state_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(devices_by_path_id, setup, teardown),
        cmocka_unit_test_setup_teardown(random_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshot_create_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(migrate_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshot_load_rules, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
