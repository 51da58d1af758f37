/*
 * The API's endpoints: a table of (method, path) -> handler, in Firecracker's schema
 * (its swagger file, "firecracker.yaml"). Handlers run one at a time under api->lock.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/fc_config.h"
#include "migrate/migrate.h"
#include "util.h"

#define FAULT_MAX 512

/* Firecracker's API level that kiln's endpoints follow (reported by GET /version). */
#define FC_API_VERSION "1.7.0"

struct request {
    struct api *api;
    const char *id;  /* the {id} of /drives/{id} and /network-interfaces/{id}, or NULL */
    json_t *body;    /* parsed object for PUT/PATCH, NULL for GET */
    struct api_reply *reply;
    char fault[FAULT_MAX];
};

void api_init(struct api *api, const struct vm_spec *spec, const struct api_ops *ops,
              void *opaque, const char *id)
{
    memset(api, 0, sizeof(*api));
    pthread_mutex_init(&api->lock, NULL);
    if (spec)
        vm_spec_copy(&api->spec, spec);
    else
        vm_spec_init(&api->spec);
    api->ops = ops;
    api->opaque = opaque;
    snprintf(api->id, sizeof(api->id), "%s", id && id[0] ? id : "anonymous-instance");
}

void api_destroy(struct api *api)
{
    pthread_mutex_destroy(&api->lock);
}

void api_set_state(struct api *api, enum api_vm_state state)
{
    pthread_mutex_lock(&api->lock);
    api->state = state;
    pthread_mutex_unlock(&api->lock);
}

void api_reply_free(struct api_reply *reply)
{
    free(reply->body);
    reply->body = NULL;
}

static unsigned reply_json(struct request *rq, unsigned status, json_t *obj)
{
    rq->reply->status = status;
    rq->reply->body = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!rq->reply->body) {
        rq->reply->status = 500;
        rq->reply->body = strdup("{\"fault_message\":\"out of memory\"}");
    }
    return rq->reply->status;
}

static unsigned reply_fault(struct request *rq, unsigned status, const char *msg)
{
    return reply_json(rq, status, json_pack("{s:s}", "fault_message", msg));
}

static unsigned reply_no_content(struct request *rq)
{
    rq->reply->status = 204;
    rq->reply->body = NULL;
    return 204;
}

/* A handler's 0 / -errno result with rq->fault as the reason. */
static unsigned reply_result(struct request *rq, int ret)
{
    if (ret == 0)
        return reply_no_content(rq);
    return reply_fault(rq, 400, rq->fault[0] ? rq->fault : strerror(-ret));
}

static const char *state_name(enum api_vm_state s)
{
    switch (s) {
    case API_VM_RUNNING:
        return "Running";
    case API_VM_PAUSED:
        return "Paused";
    default:
        return "Not started";
    }
}

/* ---- handlers ---- */

static unsigned get_instance(struct request *rq)
{
    return reply_json(rq, 200,
                      json_pack("{s:s, s:s, s:s, s:s}", "id", rq->api->id, "state",
                                state_name(rq->api->state), "vmm_version", KILN_VERSION,
                                "app_name", "kiln"));
}

static unsigned get_version(struct request *rq)
{
    return reply_json(rq, 200,
                      json_pack("{s:s, s:s}", "firecracker_version", FC_API_VERSION,
                                "kiln_version", KILN_VERSION));
}

static unsigned get_machine_config(struct request *rq)
{
    return reply_json(rq, 200, fc_machine_config_json(&rq->api->spec));
}

static unsigned get_vm_config(struct request *rq)
{
    return reply_json(rq, 200, fc_config_json(&rq->api->spec));
}

static unsigned put_boot_source(struct request *rq)
{
    return reply_result(rq, fc_put_boot_source(&rq->api->spec, rq->body, rq->fault, FAULT_MAX));
}

static unsigned put_machine_config(struct request *rq)
{
    return reply_result(
        rq, fc_put_machine_config(&rq->api->spec, rq->body, false, rq->fault, FAULT_MAX));
}

static unsigned patch_machine_config(struct request *rq)
{
    return reply_result(
        rq, fc_put_machine_config(&rq->api->spec, rq->body, true, rq->fault, FAULT_MAX));
}

static unsigned put_drive(struct request *rq)
{
    return reply_result(rq, fc_put_drive(&rq->api->spec, rq->id, rq->body, rq->fault, FAULT_MAX));
}

static unsigned put_network_interface(struct request *rq)
{
    return reply_result(
        rq, fc_put_network_interface(&rq->api->spec, rq->id, rq->body, rq->fault, FAULT_MAX));
}

static unsigned put_vsock(struct request *rq)
{
    return reply_result(rq, fc_put_vsock(&rq->api->spec, rq->body, rq->fault, FAULT_MAX));
}

static unsigned put_entropy(struct request *rq)
{
    return reply_result(rq, fc_put_entropy(&rq->api->spec, rq->body, rq->fault, FAULT_MAX));
}

static int set_fault(struct request *rq, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_fault(struct request *rq, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rq->fault, FAULT_MAX, fmt, ap);
    va_end(ap);
    return err;
}

static int start_instance(struct request *rq)
{
    struct api *api = rq->api;
    if (api->state != API_VM_NOT_STARTED) {
        snprintf(rq->fault, FAULT_MAX, "the microVM is already running");
        return -EALREADY;
    }
    if (!api->spec.cfg.kernel_path) {
        snprintf(rq->fault, FAULT_MAX,
                 "no kernel to boot: configure one with PUT /boot-source first");
        return -EINVAL;
    }
    int ret = api->ops->start(api->opaque, &api->spec, rq->fault, FAULT_MAX);
    if (ret == 0)
        api->state = API_VM_RUNNING;
    return ret;
}

static int need_running(struct request *rq, const char *action)
{
    if (rq->api->state != API_VM_NOT_STARTED)
        return 0;
    snprintf(rq->fault, FAULT_MAX, "%s: the microVM is not started", action);
    return -EINVAL;
}

static unsigned put_actions(struct request *rq)
{
    json_t *type = json_object_get(rq->body, "action_type");
    if (json_object_size(rq->body) != 1 || !json_is_string(type))
        return reply_fault(rq, 400,
                           "actions: expected {\"action_type\": \"InstanceStart\" | "
                           "\"SendCtrlAltDel\" | \"PowerButton\"}");
    const char *name = json_string_value(type);
    struct api *api = rq->api;
    int ret;
    if (strcmp(name, "InstanceStart") == 0)
        ret = start_instance(rq);
    else if (strcmp(name, "SendCtrlAltDel") == 0)
        ret = need_running(rq, name) ?: api->ops->ctrl_alt_del(api->opaque, rq->fault, FAULT_MAX);
    else if (strcmp(name, "PowerButton") == 0) /* kiln extension: ACPI power button */
        ret = need_running(rq, name) ?: api->ops->power_button(api->opaque, rq->fault, FAULT_MAX);
    else if (strcmp(name, "FlushMetrics") == 0)
        ret = set_fault(rq, -ENOTSUP, "FlushMetrics: kiln has no metrics sink");
    else
        ret = set_fault(rq, -EINVAL, "unknown action_type '%.64s'", name);
    return reply_result(rq, ret);
}

static unsigned patch_vm(struct request *rq)
{
    json_t *state = json_object_get(rq->body, "state");
    if (json_object_size(rq->body) != 1 || !json_is_string(state))
        return reply_fault(rq, 400, "vm: expected {\"state\": \"Paused\" | \"Resumed\"}");
    struct api *api = rq->api;
    const char *want = json_string_value(state);
    int ret;
    if (strcmp(want, "Paused") == 0) {
        ret = need_running(rq, "pause")
                  ?: api->ops->pause(api->opaque, rq->fault, FAULT_MAX);
        if (ret == 0)
            api->state = API_VM_PAUSED;
    } else if (strcmp(want, "Resumed") == 0) {
        ret = need_running(rq, "resume")
                  ?: api->ops->resume(api->opaque, rq->fault, FAULT_MAX);
        if (ret == 0)
            api->state = API_VM_RUNNING;
    } else {
        ret = set_fault(rq, -EINVAL, "vm: 'state' must be Paused or Resumed");
    }
    return reply_result(rq, ret);
}

/* ---- snapshots (docs/snapshot.md) ---- */

#define SNAPSHOT_PATH_MAX 4096

/* A required string member with a sane length, or NULL with the fault set. */
static const char *body_path(struct request *rq, json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (!s || !s[0] || strlen(s) >= SNAPSHOT_PATH_MAX || strlen(s) != json_string_length(v)) {
        set_fault(rq, -EINVAL, "'%s' must be a non-empty path shorter than %d bytes", name,
                  SNAPSHOT_PATH_MAX);
        return NULL;
    }
    return s;
}

/* Only members from `allowed` (NULL-terminated) may appear. */
static bool body_members_known(struct request *rq, const char *const *allowed)
{
    const char *key;
    json_t *value;
    json_object_foreach(rq->body, key, value) {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(key, *a) == 0;
        if (!known) {
            set_fault(rq, -EINVAL, "unknown member '%.64s'", key);
            return false;
        }
    }
    (void)value;
    return true;
}

static unsigned put_snapshot_create(struct request *rq)
{
    static const char *const allowed[] = {"snapshot_type", "snapshot_path", "mem_file_path",
                                          "version", NULL};
    struct api *api = rq->api;
    if (!body_members_known(rq, allowed))
        return reply_result(rq, -EINVAL);
    json_t *type = json_object_get(rq->body, "snapshot_type");
    if (type && (!json_is_string(type) || (strcmp(json_string_value(type), "Full") != 0 &&
                                           strcmp(json_string_value(type), "Diff") != 0)))
        return reply_result(rq, set_fault(rq, -EINVAL, "'snapshot_type' must be Full or Diff"));
    const char *state = body_path(rq, rq->body, "snapshot_path");
    const char *mem = state ? body_path(rq, rq->body, "mem_file_path") : NULL;
    if (!mem)
        return reply_result(rq, -EINVAL);
    if (api->state != API_VM_PAUSED)
        return reply_result(
            rq, set_fault(rq, -EINVAL, "snapshot/create: the microVM must be paused first"));
    bool diff = type && strcmp(json_string_value(type), "Diff") == 0;
    return reply_result(rq, api->ops->snapshot_create(api->opaque, diff, state, mem, rq->fault,
                                                      FAULT_MAX));
}

/* The memory file: Firecracker's mem_backend {backend_type: File, backend_path} or the
 * older mem_file_path. */
static const char *load_mem_path(struct request *rq)
{
    json_t *backend = json_object_get(rq->body, "mem_backend");
    bool has_file = json_object_get(rq->body, "mem_file_path") != NULL;
    if (!backend == !has_file) {
        set_fault(rq, -EINVAL, "give exactly one of 'mem_backend' and 'mem_file_path'");
        return NULL;
    }
    if (has_file)
        return body_path(rq, rq->body, "mem_file_path");
    json_t *kind = json_object_get(backend, "backend_type");
    if (!json_is_object(backend) || json_object_size(backend) != 2 || !json_is_string(kind) ||
        strcmp(json_string_value(kind), "File") != 0) {
        set_fault(rq, -EINVAL,
                  "'mem_backend' must be {\"backend_type\": \"File\", \"backend_path\": ...}");
        return NULL;
    }
    return body_path(rq, backend, "backend_path");
}

static unsigned put_snapshot_load(struct request *rq)
{
    static const char *const allowed[] = {"snapshot_path", "mem_backend", "mem_file_path",
                                          "enable_diff_snapshots", "resume_vm", NULL};
    struct api *api = rq->api;
    if (!body_members_known(rq, allowed))
        return reply_result(rq, -EINVAL);
    json_t *resume = json_object_get(rq->body, "resume_vm");
    json_t *diff = json_object_get(rq->body, "enable_diff_snapshots");
    if ((resume && !json_is_boolean(resume)) || (diff && !json_is_boolean(diff)))
        return reply_result(
            rq, set_fault(rq, -EINVAL, "'resume_vm' and 'enable_diff_snapshots' are booleans"));
    /* Dirty-page logging is always on in a restored VM, so the flag changes nothing. */
    const char *state = body_path(rq, rq->body, "snapshot_path");
    const char *mem = state ? load_mem_path(rq) : NULL;
    if (!mem)
        return reply_result(rq, -EINVAL);
    bool run = resume && json_is_true(resume);
    int ret = api->ops->snapshot_load(api->opaque, state, mem, run, rq->fault, FAULT_MAX);
    if (ret == 0)
        api->state = run ? API_VM_RUNNING : API_VM_PAUSED;
    return reply_result(rq, ret);
}

/* ---- live migration (docs/migration.md) ---- */

static unsigned put_migrate(struct request *rq)
{
    static const char *const allowed[] = {"destination", NULL};
    struct api *api = rq->api;
    json_t *dest = json_object_get(rq->body, "destination");
    if (!body_members_known(rq, allowed))
        return reply_result(rq, -EINVAL);
    if (!json_is_string(dest) || json_string_length(dest) > 128 ||
        strlen(json_string_value(dest)) != json_string_length(dest))
        return reply_result(
            rq, set_fault(rq, -EINVAL, "migrate: 'destination' must be \"tcp:HOST:PORT\""));
    if (!api->ops->migrate_start)
        return reply_result(rq, set_fault(rq, -ENOTSUP, "migrate: not supported here"));
    int ret = need_running(rq, "migrate")
                  ?: api->ops->migrate_start(api->opaque, json_string_value(dest), rq->fault,
                                             FAULT_MAX);
    return reply_result(rq, ret);
}

static unsigned put_migrate_cancel(struct request *rq)
{
    struct api *api = rq->api;
    if (json_object_size(rq->body) != 0)
        return reply_result(rq, set_fault(rq, -EINVAL, "migrate/cancel: expected {}"));
    if (!api->ops->migrate_cancel)
        return reply_result(rq, set_fault(rq, -ENOTSUP, "migrate: not supported here"));
    return reply_result(rq, api->ops->migrate_cancel(api->opaque, rq->fault, FAULT_MAX));
}

static unsigned get_migrate(struct request *rq)
{
    struct api *api = rq->api;
    struct migrate_progress p = {0};
    if (api->ops->migrate_status)
        api->ops->migrate_status(api->opaque, &p);
    return reply_json(
        rq, 200,
        json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:s}", "state",
                  migrate_state_name(p.state), "destination", p.destination, "pass", (int)p.pass,
                  "ram_pages", (json_int_t)p.ram_pages, "pages_sent", (json_int_t)p.pages_sent,
                  "zero_pages", (json_int_t)p.zero_pages, "bytes_sent",
                  (json_int_t)p.bytes_sent, "dirty_pages", (json_int_t)p.dirty_pages,
                  "elapsed_ms", (double)p.elapsed_ns / 1e6, "downtime_ms",
                  (double)p.downtime_ns / 1e6, "error", p.error));
}

/* ---- routing ---- */

enum route_kind { EXACT, WITH_ID };

struct route {
    const char *method;
    const char *path; /* EXACT: the path; WITH_ID: the prefix before "/{id}" */
    enum route_kind kind;
    bool preboot_only;
    unsigned (*handler)(struct request *rq);
};

static const struct route routes[] = {
    {"GET", "/", EXACT, false, get_instance},
    {"GET", "/version", EXACT, false, get_version},
    {"GET", "/machine-config", EXACT, false, get_machine_config},
    {"GET", "/vm/config", EXACT, false, get_vm_config},
    {"PUT", "/machine-config", EXACT, true, put_machine_config},
    {"PATCH", "/machine-config", EXACT, true, patch_machine_config},
    {"PUT", "/boot-source", EXACT, true, put_boot_source},
    {"PUT", "/drives", WITH_ID, true, put_drive},
    {"PUT", "/network-interfaces", WITH_ID, true, put_network_interface},
    {"PUT", "/vsock", EXACT, true, put_vsock},
    {"PUT", "/entropy", EXACT, true, put_entropy},
    {"PUT", "/actions", EXACT, false, put_actions},
    {"PATCH", "/vm", EXACT, false, patch_vm},
    {"PUT", "/snapshot/create", EXACT, false, put_snapshot_create},
    {"PUT", "/snapshot/load", EXACT, true, put_snapshot_load},
    {"PUT", "/migrate", EXACT, false, put_migrate},
    {"PUT", "/migrate/cancel", EXACT, false, put_migrate_cancel},
    {"GET", "/migrate", EXACT, false, get_migrate},
};

/* Matches `path` against a route; for WITH_ID sets *id to what follows the prefix. */
static bool route_matches(const struct route *r, const char *path, const char **id)
{
    if (r->kind == EXACT)
        return strcmp(path, r->path) == 0;
    size_t n = strlen(r->path);
    if (strncmp(path, r->path, n) != 0 || path[n] != '/' || !path[n + 1] ||
        strchr(path + n + 1, '/'))
        return false;
    *id = path + n + 1;
    return true;
}

static const struct route *route_find(const char *method, const char *path, const char **id,
                                      bool *path_known)
{
    *path_known = false;
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        if (!route_matches(&routes[i], path, id))
            continue;
        *path_known = true;
        if (strcmp(routes[i].method, method) == 0)
            return &routes[i];
    }
    return NULL;
}

unsigned api_dispatch(struct api *api, const char *method, const char *path, const char *body,
                      size_t len, struct api_reply *reply)
{
    struct request rq = {.api = api, .reply = reply};
    reply->body = NULL;
    bool path_known;
    const struct route *r = route_find(method ? method : "", path ? path : "", &rq.id,
                                       &path_known);
    if (!r)
        return reply_fault(&rq, 400,
                           path_known ? "Invalid request method for this path"
                                      : "Invalid request method and/or path");
    bool has_body = strcmp(method, "GET") != 0;
    if (has_body) {
        rq.body = fc_parse_object(body, len, rq.fault, FAULT_MAX);
        if (!rq.body)
            return reply_fault(&rq, 400, rq.fault);
    }
    pthread_mutex_lock(&api->lock);
    unsigned status;
    if (r->preboot_only && api->state != API_VM_NOT_STARTED)
        status = reply_fault(&rq, 400,
                             "The requested operation is not supported after starting the "
                             "microVM.");
    else
        status = r->handler(&rq);
    pthread_mutex_unlock(&api->lock);
    json_decref(rq.body);
    return status;
}
