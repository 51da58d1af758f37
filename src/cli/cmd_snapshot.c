/*
 * `kiln snapshot NAME DIR`: save the running VM NAME into DIR (state, memory) through its
 * API (docs/snapshot.md). A running VM is paused for the snapshot and resumed after it; a
 * paused one stays paused. DIR also gets NAME's definition and name, so that `kiln restore
 * DIR` knows what it restores.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/vm_ref.h"
#include "snapshot/snapshot.h"
#include "util.h"

#define SNAPSHOT_API_TIMEOUT_MS (10 * 60 * 1000) /* writing a large guest's RAM takes time */
#define SNAPSHOT_NAME_FILE "vm-name"

static const char snapshot_usage[] =
    "Usage: kiln snapshot [--diff] [--leave-paused] NAME DIR\n"
    "\n"
    "Save the running VM NAME into the directory DIR (created if needed): DIR/state (the\n"
    "VM's vCPU and device state) and DIR/memory (guest RAM, sparse). The VM is paused\n"
    "while it is saved and resumed afterwards. 'kiln restore DIR' continues it.\n"
    "\n"
    "  --diff           save only the memory pages written since this VM's previous\n"
    "                   snapshot (or the one it was restored from), which must stay\n"
    "  --leave-paused   do not resume the VM afterwards\n"
    "\n"
    "Exit status: 0 saved; 1 the API refused (its fault message is shown); 2 bad usage;\n"
    "5 DIR cannot be created; 7 no such VM; 8 not running or busy.\n";

/* DIR, created if needed, as an absolute path: the VM process has its own working dir. */
static int snapshot_dir(const char *dir, char *abs)
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        log_error("snapshot directory '%s': %s", dir, strerror(errno));
        return KILN_EXIT_RESOURCES;
    }
    if (!realpath(dir, abs)) {
        log_error("snapshot directory '%s': %s", dir, strerror(errno));
        return KILN_EXIT_RESOURCES;
    }
    return KILN_EXIT_OK;
}

/* NAME's definition and name next to the snapshot (best effort: the snapshot is complete). */
static void save_identity(const struct vm_ref *ref, const char *dir)
{
    char path[PATH_MAX + 32];
    json_t *def = vm_ref_definition(ref);
    char *text = def ? json_dumps(def, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(def);
    snprintf(path, sizeof(path), "%s/%s", dir, VM_FILE_CONFIG);
    if (!text || write_file_atomic(path, text, strlen(text)) < 0)
        log_warn("could not copy VM '%s''s definition into %s", ref->name, dir);
    free(text);
    snprintf(path, sizeof(path), "%s/%s", dir, SNAPSHOT_NAME_FILE);
    if (write_file_atomic(path, ref->name, strlen(ref->name)) < 0)
        log_warn("could not record the VM's name in %s", dir);
}

/* "Running" or "Paused" from GET /, or NULL (the error printed). */
static const char *api_vm_state(struct api_client *api, const struct vm_ref *ref, char *buf,
                                size_t len)
{
    json_t *reply = NULL;
    char err[512] = "";
    if (api_call(api, "GET", "/", NULL, &reply, err, sizeof(err)) < 0) {
        log_error("VM '%s': %s", ref->name, err);
        return NULL;
    }
    snprintf(buf, len, "%s", json_string_value(json_object_get(reply, "state")) ?: "");
    json_decref(reply);
    return buf;
}

static int set_paused(struct api_client *api, const struct vm_ref *ref, bool paused)
{
    char err[512] = "";
    json_t *body = json_pack("{s:s}", "state", paused ? "Paused" : "Resumed");
    int ret = api_call(api, "PATCH", "/vm", body, NULL, err, sizeof(err));
    json_decref(body);
    if (ret < 0)
        log_error("VM '%s': %s", ref->name, err);
    return ret;
}

static int take_snapshot(const struct vm_ref *ref, const char *dir, bool diff, bool leave_paused)
{
    struct vm_runtime rt;
    if (vm_runtime_probe(ref->dir, &rt, true) != 1) {
        log_error("VM '%s' is not running", ref->name);
        return KILN_EXIT_VM_STATE;
    }
    char state_path[PATH_MAX + 16], mem_path[PATH_MAX + 16];
    snprintf(state_path, sizeof(state_path), "%s/%s", dir, SNAPSHOT_STATE_NAME);
    snprintf(mem_path, sizeof(mem_path), "%s/%s", dir, SNAPSHOT_MEMORY_NAME);
    struct api_client *api = vm_ref_api(ref, SNAPSHOT_API_TIMEOUT_MS);
    if (!api)
        return KILN_EXIT_VM_FAILED;
    char state[32];
    int rc = KILN_EXIT_VM_FAILED;
    if (!api_vm_state(api, ref, state, sizeof(state)))
        goto out;
    bool was_running = strcmp(state, "Running") == 0;
    if (!was_running && strcmp(state, "Paused") != 0) {
        log_error("VM '%s' is %s: nothing to snapshot", ref->name, state);
        rc = KILN_EXIT_VM_STATE;
        goto out;
    }
    if (was_running && set_paused(api, ref, true) < 0)
        goto out;
    char err[512] = "";
    json_t *body = json_pack("{s:s, s:s, s:s}", "snapshot_type", diff ? "Diff" : "Full",
                             "snapshot_path", state_path, "mem_file_path", mem_path);
    int ret = api_call(api, "PUT", "/snapshot/create", body, NULL, err, sizeof(err));
    json_decref(body);
    if (ret < 0)
        log_error("VM '%s': %s", ref->name, err);
    else
        save_identity(ref, dir);
    if (was_running && !leave_paused && set_paused(api, ref, false) < 0)
        ret = -EIO;
    rc = ret < 0 ? KILN_EXIT_VM_FAILED : KILN_EXIT_OK;
out:
    api_client_close(api);
    return rc;
}

int cmd_snapshot(int argc, char **argv)
{
    static const struct option opts[] = {{"diff", no_argument, NULL, 'd'},
                                         {"leave-paused", no_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    bool diff = false, leave_paused = false;
    optind = 0;
    opterr = 0;
    for (int opt; (opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1;) {
        if (opt == 'd' || opt == 'p') {
            *(opt == 'd' ? &diff : &leave_paused) = true;
            continue;
        }
        fputs(snapshot_usage, opt == 'h' ? stdout : stderr);
        return opt == 'h' ? KILN_EXIT_OK : KILN_EXIT_USAGE;
    }
    if (optind != argc - 2) {
        fputs(snapshot_usage, stderr);
        return KILN_EXIT_USAGE;
    }
    struct vm_ref ref;
    int rc = vm_ref_open(argv[optind], true, &ref);
    char dir[PATH_MAX];
    if (rc == KILN_EXIT_OK)
        rc = snapshot_dir(argv[optind + 1], dir);
    if (rc == KILN_EXIT_OK)
        rc = vm_ref_lock(&ref);
    if (rc == KILN_EXIT_OK)
        rc = take_snapshot(&ref, dir, diff, leave_paused);
    if (rc == KILN_EXIT_OK)
        printf("saved VM '%s' to %s\n", ref.name, dir);
    vm_ref_close(&ref);
    return rc;
}
