#include "cli/vm_ref.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/api_client.h"
#include "cli/exit_codes.h"
#include "cli/vm_process.h"
#include "util.h"

/* getenv, with the signature state_dir_resolve() takes. */
static const char *env_get(const char *name)
{
    return getenv(name);
}

int vm_state_dir(char *buf, size_t len)
{
    int ret = state_dir_resolve(buf, len, getuid(), env_get);
    /* Absolute, because the VM process runs in its own directory and gets these paths. */
    if (ret == 0 && buf[0] != '/') {
        char cwd[STATE_PATH_MAX / 2], rel[STATE_PATH_MAX / 2];
        int n = snprintf(rel, sizeof(rel), "%s", buf);
        if (!getcwd(cwd, sizeof(cwd)) || n < 0 || (size_t)n >= sizeof(rel) ||
            snprintf(buf, len, "%s/%s", cwd, rel) >= (int)len)
            ret = -ENAMETOOLONG;
    }
    if (ret < 0) {
        log_error("cannot find the state directory (set KILN_STATE_DIR or HOME): %s",
                  strerror(-ret));
        return KILN_EXIT_USAGE;
    }
    return KILN_EXIT_OK;
}

int vm_ref_init(struct vm_ref *ref, const char *state_dir, const char *name)
{
    ref->lock_fd = -1;
    if (vm_name_check(name) < 0)
        return -EINVAL;
    snprintf(ref->name, sizeof(ref->name), "%s", name);
    snprintf(ref->state_dir, sizeof(ref->state_dir), "%s", state_dir);
    return vm_path(ref->dir, sizeof(ref->dir), state_dir, name, NULL);
}

bool vm_ref_defined(const struct vm_ref *ref)
{
    char config[STATE_PATH_MAX];
    return vm_ref_path(ref, VM_FILE_CONFIG, config, sizeof(config)) == 0 &&
           access(config, F_OK) == 0;
}

int vm_ref_open(const char *name, bool must_exist, struct vm_ref *ref)
{
    char state_dir[STATE_PATH_MAX];
    ref->lock_fd = -1;
    int rc = vm_state_dir(state_dir, sizeof(state_dir));
    if (rc != KILN_EXIT_OK)
        return rc;
    int ret = vm_ref_init(ref, state_dir, name);
    if (ret == -EINVAL) {
        log_error("'%s' is not a valid VM name: use 1 to %d of A-Z a-z 0-9 _ . - "
                  "(not starting with '.' or '-')",
                  name, VM_NAME_MAX);
        return KILN_EXIT_USAGE;
    }
    if (ret < 0) {
        log_error("state directory path too long");
        return KILN_EXIT_USAGE;
    }
    if (must_exist && !vm_ref_defined(ref)) {
        log_error("no VM named '%s' (see 'kiln ls')", name);
        return KILN_EXIT_NO_SUCH_VM;
    }
    return KILN_EXIT_OK;
}

int vm_ref_lock(struct vm_ref *ref)
{
    int fd = vm_lock(ref->dir);
    if (fd == -EBUSY) {
        log_error("VM '%s' is busy: another kiln command is working on it", ref->name);
        return KILN_EXIT_VM_STATE;
    }
    if (fd < 0) {
        log_error("VM '%s': cannot take its lock: %s", ref->name, strerror(-fd));
        return fd == -ENOENT ? KILN_EXIT_NO_SUCH_VM : KILN_EXIT_RESOURCES;
    }
    ref->lock_fd = fd;
    /* `kiln rm` may have removed the VM between this command's look and its lock. */
    if (!vm_ref_defined(ref)) {
        log_error("no VM named '%s' (see 'kiln ls')", ref->name);
        return KILN_EXIT_NO_SUCH_VM;
    }
    return KILN_EXIT_OK;
}

int vm_ref_open_operand(int argc, char **argv, const char *usage, struct vm_ref *ref)
{
    ref->lock_fd = -1;
    if (optind != argc - 1) {
        fputs(usage, stderr);
        return KILN_EXIT_USAGE;
    }
    int rc = vm_ref_open(argv[optind], true, ref);
    return rc == KILN_EXIT_OK ? vm_ref_lock(ref) : rc;
}

int vm_ref_open_process(const struct vm_ref *ref, struct vm_process *p)
{
    struct vm_runtime rt;
    if (vm_runtime_probe(ref->dir, &rt, true) != 1 || vm_process_open(&rt, p) < 0) {
        vm_runtime_clean(ref->dir);
        log_error("VM '%s' is not running", ref->name);
        return KILN_EXIT_VM_STATE;
    }
    return KILN_EXIT_OK;
}

void vm_ref_close(struct vm_ref *ref)
{
    if (ref->lock_fd >= 0)
        close(ref->lock_fd);
    ref->lock_fd = -1;
}

int vm_ref_path(const struct vm_ref *ref, const char *file, char *buf, size_t len)
{
    return vm_path(buf, len, ref->state_dir, ref->name, file);
}

json_t *vm_ref_definition(const struct vm_ref *ref)
{
    char path[STATE_PATH_MAX];
    if (vm_ref_path(ref, VM_FILE_CONFIG, path, sizeof(path)) < 0)
        return NULL;
    json_error_t jerr;
    json_t *def = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!def || !json_is_object(def)) {
        log_error("VM '%s': %s: %s", ref->name, path, def ? "not a JSON object" : jerr.text);
        json_decref(def);
        return NULL;
    }
    return def;
}

struct api_client *vm_ref_api(const struct vm_ref *ref, long timeout_ms)
{
    char path[STATE_PATH_MAX], err[256] = "";
    if (vm_ref_path(ref, VM_FILE_API_SOCK, path, sizeof(path)) < 0)
        return NULL;
    struct api_client *api = api_client_open(path, timeout_ms, err, sizeof(err));
    if (!api)
        log_error("VM '%s': %s", ref->name, err);
    return api;
}

const char *vm_live_state(const struct vm_ref *ref, bool running)
{
    if (!running)
        return "stopped";
    char path[STATE_PATH_MAX], err[256] = "";
    if (vm_ref_path(ref, VM_FILE_API_SOCK, path, sizeof(path)) < 0)
        return "unresponsive";
    struct api_client *api = api_client_open(path, 2000, err, sizeof(err));
    json_t *info = NULL;
    const char *state = "unresponsive";
    if (api && api_call(api, "GET", "/", NULL, &info, err, sizeof(err)) == 0) {
        const char *s = json_string_value(json_object_get(info, "state"));
        if (s && strcmp(s, "Running") == 0)
            state = "running";
        else if (s && strcmp(s, "Paused") == 0)
            state = "paused";
        else if (s && strcmp(s, "Not started") == 0)
            state = "starting";
    }
    json_decref(info);
    api_client_close(api);
    return state;
}

void vm_ref_print_log_tail(const struct vm_ref *ref)
{
    char path[STATE_PATH_MAX];
    if (vm_ref_path(ref, VM_FILE_KILN_LOG, path, sizeof(path)) < 0)
        return;
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    /* The last 2 KiB are enough to show why a VM process gave up. */
    char buf[2048];
    if (fseek(f, -(long)sizeof(buf) + 1, SEEK_END) < 0)
        rewind(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (n == 0)
        return;
    fprintf(stderr, "kiln: the end of %s:\n%s%s", path, buf, buf[n - 1] == '\n' ? "" : "\n");
}
