/*
 * kiln's Firecracker-compatible API, without the HTTP: api_dispatch() takes a method, a
 * path and a body and fills a reply. The HTTP server (api_server.c) and fuzzers call it;
 * what it does to the VM goes through `struct api_ops`, so it runs without KVM in tests.
 */
#ifndef KILN_API_H
#define KILN_API_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "api/vm_spec.h"

struct migrate_progress;

enum api_vm_state {
    API_VM_NOT_STARTED,
    API_VM_RUNNING,
    API_VM_PAUSED,
};

/* Each returns 0 or a negative errno with a one-line reason in `err`. */
struct api_ops {
    /* Boots the VM from `spec`; returns once the guest runs or the start failed. */
    int (*start)(void *opaque, const struct vm_spec *spec, char *err, size_t errlen);
    int (*pause)(void *opaque, char *err, size_t errlen);
    int (*resume)(void *opaque, char *err, size_t errlen);
    int (*ctrl_alt_del)(void *opaque, char *err, size_t errlen);
    int (*power_button)(void *opaque, char *err, size_t errlen);
    /* PUT /snapshot/create on a paused VM: the state file and the memory file. */
    int (*snapshot_create)(void *opaque, bool diff, const char *state_path,
                           const char *mem_path, char *err, size_t errlen);
    /* PUT /snapshot/load before any start: the VM continues from the snapshot. */
    int (*snapshot_load)(void *opaque, const char *state_path, const char *mem_path,
                         bool resume, char *err, size_t errlen);
    /* PUT /migrate: starts sending the VM to `destination` (docs/migration.md). */
    int (*migrate_start)(void *opaque, const char *destination, char *err, size_t errlen);
    /* PUT /migrate/cancel: the VM stays here (unless it was handed over already). */
    int (*migrate_cancel)(void *opaque, char *err, size_t errlen);
    /* GET /migrate: the current or last migration's progress. */
    void (*migrate_status)(void *opaque, struct migrate_progress *out);
};

struct api {
    pthread_mutex_t lock; /* one request at a time; guards spec and state */
    struct vm_spec spec;
    enum api_vm_state state;
    const struct api_ops *ops;
    void *opaque;
    char id[65]; /* the instance id GET / reports */
};

struct api_reply {
    unsigned status; /* HTTP status */
    char *body;      /* malloc'd JSON, or NULL for no body (204) */
};

/* `spec` pre-fills the configuration (command-line options); NULL for the defaults. */
void api_init(struct api *api, const struct vm_spec *spec, const struct api_ops *ops,
              void *opaque, const char *id);
void api_destroy(struct api *api);
/* The VM was started outside the API (--config-file). */
void api_set_state(struct api *api, enum api_vm_state state);

/*
 * Handles one request. `body` need not be NUL-terminated and may hold anything. Never
 * fails: errors become 4xx replies with {"fault_message": ...}. Returns reply->status.
 */
unsigned api_dispatch(struct api *api, const char *method, const char *path, const char *body,
                      size_t len, struct api_reply *reply);
void api_reply_free(struct api_reply *reply);

#endif
