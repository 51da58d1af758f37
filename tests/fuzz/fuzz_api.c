/*
 * The API without HTTP (api/api_routes.c, api_dispatch, and the JSON layer behind it): an
 * input is a sequence of requests separated by 0x1e bytes, each "METHOD PATH\n" followed by
 * its body, so that state rules (configuration before and after InstanceStart, pause and
 * resume, snapshots) are reached as well as the parsers. The VM operations are recorded,
 * never performed. Besides crashes: every reply has a status from 200 to 499, and every
 * 4xx reply carries a fault message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

#define FUZZ_API_MAX_REQUESTS 16
#define FUZZ_API_SEPARATOR 0x1e

static int op_ok(void *opaque, char *err, size_t errlen)
{
    return 0;
}

static int op_start(void *opaque, const struct vm_spec *spec, char *err, size_t errlen)
{
    return 0;
}

static int op_snapshot_create(void *opaque, bool diff, const char *state_path,
                              const char *mem_path, char *err, size_t errlen)
{
    return 0;
}

static int op_snapshot_load(void *opaque, const char *state_path, const char *mem_path,
                            bool resume, char *err, size_t errlen)
{
    return 0;
}

static int op_migrate_start(void *opaque, const char *destination, char *err, size_t errlen)
{
    return 0;
}

static void op_migrate_status(void *opaque, struct migrate_progress *out)
{
}

static const struct api_ops ops = {op_start,         op_ok, op_ok, op_ok, op_ok, op_snapshot_create,
                                   op_snapshot_load, op_migrate_start, op_ok, op_migrate_status};

/* One request: "METHOD PATH\n" then the body. A request without a newline has no body. */
static void one_request(struct api *api, const char *req, size_t len)
{
    const char *nl = memchr(req, '\n', len);
    size_t head = nl ? (size_t)(nl - req) : len;
    char line[512];
    if (head >= sizeof(line))
        return;
    memcpy(line, req, head);
    line[head] = 0;
    char *path = strchr(line, ' ');
    if (!path)
        return;
    *path++ = 0;
    const char *body = nl ? nl + 1 : req + len;
    struct api_reply reply = {0};
    unsigned status = api_dispatch(api, line, path, body, (size_t)(req + len - body), &reply);
    if (status < 200 || status > 499)
        abort();
    if (status >= 400 && (!reply.body || !strstr(reply.body, "fault_message")))
        abort();
    api_reply_free(&reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct api api;
    api_init(&api, NULL, &ops, NULL, "fuzz");
    const char *p = (const char *)data, *end = p + size;
    for (unsigned n = 0; n < FUZZ_API_MAX_REQUESTS && p < end; n++) {
        const char *sep = memchr(p, FUZZ_API_SEPARATOR, (size_t)(end - p));
        const char *stop = sep ? sep : end;
        one_request(&api, p, (size_t)(stop - p));
        p = sep ? sep + 1 : end;
    }
    api_destroy(&api);
    return 0;
}
