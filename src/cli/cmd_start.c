/* `kiln start NAME`: launch `kiln run --api-sock ...` in the background and configure it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/vm_launch.h"
#include "cli/vm_ref.h"
#include "util.h"

#define START_SOCKET_WAIT_MS 10000 /* from launch to the API socket answering */
#define START_API_TIMEOUT_MS 30000 /* one request; InstanceStart loads the kernel */

static const char start_usage[] =
    "Usage: kiln start NAME\n"
    "\n"
    "Start the VM NAME in the background: a 'kiln run' process (daemonized) serves its\n"
    "API on STATE/NAME/api.sock and its console on STATE/NAME/console.sock, writes\n"
    "the console to STATE/NAME/console.log and its messages to STATE/NAME/kiln.log;\n"
    "this command configures it through the API from config.json, boots it, and returns.\n"
    "\n"
    "Exit status: 0 started; 1 the VM failed to start (the API's fault message and\n"
    "kiln.log tell why) or the VM process exited with a status listed in\n"
    "'kiln run --help', which is passed on (3 bad kernel, 4 no KVM, 5 resources,\n"
    "6 device); 2 bad usage; 7 no such VM; 8 already running or busy.\n";

struct launch {
    pid_t pid;
    int exit_status; /* of `kiln run`, once it exited during the start; -1 while it runs */
};

static int launch_vmm(const struct vm_ref *ref, char **args, struct launch *out)
{
    pid_t vmm = vm_launch(ref, args);
    if (vmm < 0)
        return vmm;
    *out = (struct launch){.pid = vmm, .exit_status = -1};
    return 0;
}

/* True (with exit_status set) once the launched process has exited. */
static bool launch_exited(struct launch *l)
{
    int status;
    if (l->exit_status >= 0)
        return true;
    if (waitpid(l->pid, &status, WNOHANG) != l->pid)
        return false;
    l->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return true;
}

/* Polls GET / until the API answers, the process exits, or the wait runs out. */
static int wait_for_api(struct api_client *api, struct launch *l)
{
    uint64_t deadline = monotonic_ns() + START_SOCKET_WAIT_MS * 1000000ULL;
    char err[256];
    while (monotonic_ns() < deadline) {
        long status;
        json_t *reply = NULL;
        if (api_request(api, "GET", "/", NULL, &status, &reply, err, sizeof(err)) == 0) {
            json_decref(reply);
            return 0;
        }
        if (launch_exited(l))
            return -ECHILD;
        usleep(5000);
    }
    return -ETIMEDOUT;
}

/* PUT one section of the definition, or each element of a list section by its id field. */
static int put_section(struct api_client *api, json_t *def, const char *key, const char *id_key,
                       char *err, size_t errlen)
{
    json_t *section = json_object_get(def, key);
    char path[256];
    if (!section)
        return 0;
    if (!id_key) {
        snprintf(path, sizeof(path), "/%s", key);
        return api_call(api, "PUT", path, section, NULL, err, errlen);
    }
    for (size_t i = 0; i < json_array_size(section); i++) {
        json_t *item = json_array_get(section, i);
        const char *id = json_string_value(json_object_get(item, id_key));
        if (!id || vm_name_check(id) < 0) { /* the id becomes a URL path segment */
            snprintf(err, errlen, "config.json: %s[%zu]: missing or unusable %s", key, i, id_key);
            return -EINVAL;
        }
        snprintf(path, sizeof(path), "/%s/%s", key, id);
        int ret = api_call(api, "PUT", path, item, NULL, err, errlen);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int configure_and_boot(struct api_client *api, json_t *def, char *err, size_t errlen)
{
    static const struct {
        const char *key, *id_key;
    } sections[] = {
        {"machine-config", NULL},           {"boot-source", NULL}, {"drives", "drive_id"},
        {"network-interfaces", "iface_id"}, {"vsock", NULL},       {"entropy", NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(sections); i++) {
        int ret = put_section(api, def, sections[i].key, sections[i].id_key, err, errlen);
        if (ret < 0)
            return ret;
    }
    json_t *action = json_pack("{s:s}", "action_type", "InstanceStart");
    int ret = api_call(api, "PUT", "/actions", action, NULL, err, errlen);
    json_decref(action);
    return ret;
}

/* `kiln run` arguments: the runtime files, plus the process-level settings of "kiln". */
static int build_args(const struct vm_ref *ref, json_t *def, char paths[3][STATE_PATH_MAX],
                      char ids[2][16], char *args[24])
{
    if (vm_ref_path(ref, VM_FILE_API_SOCK, paths[0], STATE_PATH_MAX) < 0 ||
        vm_ref_path(ref, VM_FILE_CONSOLE_SOCK, paths[1], STATE_PATH_MAX) < 0 ||
        vm_ref_path(ref, VM_FILE_CONSOLE_LOG, paths[2], STATE_PATH_MAX) < 0)
        return -ENAMETOOLONG;
    if (strlen(paths[0]) >= 108 || strlen(paths[1]) >= 108)
        return -ENAMETOOLONG; /* sun_path */
    int n = 0;
    args[n++] = "kiln";
    args[n++] = "run";
    args[n++] = "--api-sock";
    args[n++] = paths[0];
    args[n++] = "--console-sock";
    args[n++] = paths[1];
    args[n++] = "--console-log";
    args[n++] = paths[2];
    args[n++] = "--id"; /* what GET / reports as the instance id */
    args[n++] = (char *)ref->name;
    json_t *extra = json_object_get(def, "kiln");
    if (json_is_true(json_object_get(extra, "no_reboot")))
        args[n++] = "--no-reboot";
    const char *console = json_string_value(json_object_get(extra, "console"));
    if (console && strcmp(console, "virtio") == 0) {
        args[n++] = "--console";
        args[n++] = "virtio";
    }
    /* A jailed VM (kiln create --jail): it binds its sockets before it enters the jail. */
    json_t *jail = json_object_get(extra, "jail");
    const char *dir = json_string_value(json_object_get(jail, "dir"));
    if (dir) {
        args[n++] = "--jail";
        args[n++] = (char *)dir;
        snprintf(ids[0], 16, "%lld", (long long)json_integer_value(json_object_get(jail, "uid")));
        snprintf(ids[1], 16, "%lld", (long long)json_integer_value(json_object_get(jail, "gid")));
        args[n++] = "--jail-uid";
        args[n++] = ids[0];
        args[n++] = "--jail-gid";
        args[n++] = ids[1];
        const char *netns = json_string_value(json_object_get(jail, "netns"));
        if (netns) {
            args[n++] = "--jail-netns";
            args[n++] = (char *)netns;
        }
    }
    args[n] = NULL;
    return 0;
}

static int start_failed(const struct vm_ref *ref, struct launch *l, const char *why)
{
    if (!launch_exited(l)) {
        kill(l->pid, SIGKILL);
        waitpid(l->pid, NULL, 0);
        l->exit_status = -1;
    }
    log_error("VM '%s' failed to start: %s", ref->name, why);
    vm_ref_print_log_tail(ref);
    vm_runtime_clean(ref->dir);
    return l->exit_status > 0 && l->exit_status < 128 ? l->exit_status : KILN_EXIT_VM_FAILED;
}

static int start_vm(struct vm_ref *ref, json_t *def)
{
    struct vm_runtime rt;
    if (vm_runtime_probe(ref->dir, &rt, true) == 1) {
        log_error("VM '%s' is running already (pid %d)", ref->name, (int)rt.pid);
        return KILN_EXIT_VM_STATE;
    }
    vm_runtime_clean(ref->dir); /* stale sockets of a crashed run must not block this one */
    char paths[3][STATE_PATH_MAX], ids[2][16], *args[24];
    if (build_args(ref, def, paths, ids, args) < 0) {
        log_error("VM '%s': its directory's path is too long for a Unix socket (%s)", ref->name,
                  ref->dir);
        return KILN_EXIT_USAGE;
    }
    struct launch l = {.pid = -1, .exit_status = -1};
    int ret = launch_vmm(ref, args, &l);
    if (ret < 0) {
        log_error("VM '%s': cannot launch its process: %s", ref->name, strerror(-ret));
        return KILN_EXIT_RESOURCES;
    }
    rt = (struct vm_runtime){.pid = l.pid, .started_at = time(NULL)};
    if (proc_start_ticks(l.pid, &rt.proc_start_ticks) < 0 || vm_runtime_write(ref->dir, &rt) < 0)
        return start_failed(ref, &l, "cannot record its process");
    struct api_client *api = vm_ref_api(ref, START_API_TIMEOUT_MS);
    if (!api)
        return start_failed(ref, &l, "no API client");
    char err[512] = "";
    ret = wait_for_api(api, &l);
    if (ret == 0)
        ret = configure_and_boot(api, def, err, sizeof(err));
    api_client_close(api);
    if (ret == -ECHILD)
        snprintf(err, sizeof(err), "its process exited with status %d", l.exit_status);
    else if (ret == -ETIMEDOUT && !err[0])
        snprintf(err, sizeof(err), "its API socket did not answer within %d s",
                 START_SOCKET_WAIT_MS / 1000);
    if (ret < 0)
        return start_failed(ref, &l, err);
    printf("started VM '%s' (pid %d)\n", ref->name, (int)l.pid);
    return KILN_EXIT_OK;
}

int cmd_start(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    optind = 0;
    opterr = 0;
    for (int opt; (opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1;) {
        fputs(start_usage, opt == 'h' ? stdout : stderr);
        return opt == 'h' ? KILN_EXIT_OK : KILN_EXIT_USAGE;
    }
    if (optind != argc - 1) {
        fputs(start_usage, stderr);
        return KILN_EXIT_USAGE;
    }
    struct vm_ref ref;
    int rc = vm_ref_open(argv[optind], true, &ref);
    if (rc == KILN_EXIT_OK)
        rc = vm_ref_lock(&ref);
    if (rc != KILN_EXIT_OK) {
        vm_ref_close(&ref);
        return rc;
    }
    json_t *def = vm_ref_definition(&ref);
    rc = def ? start_vm(&ref, def) : KILN_EXIT_VM_FAILED;
    json_decref(def);
    vm_ref_close(&ref);
    return rc;
}
