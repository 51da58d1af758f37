/*
 * Launching a VM process in the background, shared by `kiln start`, `kiln restore` and
 * `kiln receive`.
 */
#include "cli/vm_launch.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/exit_codes.h"
#include "cli/api_client.h"
#include "cli/state_dir.h"
#include "cli/vm_definition.h"
#include "cli/vm_ref.h"
#include "util.h"

/* The grandchild: a session of its own, no terminal, logs to kiln.log, then exec. */
static void exec_vmm(const struct vm_ref *ref, char **args, int log_fd)
{
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
        dup2(log_fd, STDERR_FILENO) < 0)
        _exit(KILN_EXIT_RESOURCES);
    if (chdir(ref->dir) < 0)
        _exit(KILN_EXIT_RESOURCES);
    execv("/proc/self/exe", args);
    fprintf(stderr, "kiln: exec /proc/self/exe: %s\n", strerror(errno));
    _exit(KILN_EXIT_RESOURCES);
}

/*
 * Double fork: the VM process is no child of a shell and has no controlling terminal.
 * This process is a child subreaper meanwhile, so the orphaned VM process is reparented to
 * it and its early exit status can still be collected.
 */
pid_t vm_launch(const struct vm_ref *ref, char **args)
{
    char log_path[STATE_PATH_MAX];
    if (vm_ref_path(ref, VM_FILE_KILN_LOG, log_path, sizeof(log_path)) < 0)
        return -ENAMETOOLONG;
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int pipe_fd[2];
    if (log_fd < 0 || pipe2(pipe_fd, O_CLOEXEC) < 0) {
        int err = -errno;
        if (log_fd >= 0)
            close(log_fd);
        return err;
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t child = fork();
    if (child == 0) {
        setsid();
        pid_t vmm = fork();
        if (vmm == 0)
            exec_vmm(ref, args, log_fd);
        ssize_t w = write(pipe_fd[1], &vmm, sizeof(vmm));
        _exit(vmm > 0 && w == sizeof(vmm) ? 0 : 1);
    }
    close(pipe_fd[1]);
    close(log_fd);
    pid_t vmm = -1;
    ssize_t r = child > 0 ? read(pipe_fd[0], &vmm, sizeof(vmm)) : -1;
    close(pipe_fd[0]);
    if (child > 0)
        waitpid(child, NULL, 0);
    return r == sizeof(vmm) && vmm > 0 ? vmm : -ECHILD;
}

/* Polls GET / until the VM answers. Returns 0, or the exit status it died with. */
static int wait_serving(const struct vm_ref *ref, pid_t pid, unsigned wait_ms)
{
    struct api_client *api = vm_ref_api(ref, 2000);
    uint64_t deadline = monotonic_ns() + wait_ms * 1000000ULL;
    int rc = KILN_EXIT_VM_FAILED;
    while (api && monotonic_ns() < deadline) {
        long status;
        json_t *reply = NULL;
        char err[256];
        if (api_request(api, "GET", "/", NULL, &status, &reply, err, sizeof(err)) == 0) {
            json_decref(reply);
            rc = KILN_EXIT_OK;
            break;
        }
        int ws;
        if (waitpid(pid, &ws, WNOHANG) == pid) {
            rc = WIFEXITED(ws) && WEXITSTATUS(ws) ? WEXITSTATUS(ws) : KILN_EXIT_VM_FAILED;
            pid = -1;
            break;
        }
        usleep(5000);
    }
    if (api)
        api_client_close(api);
    if (rc != KILN_EXIT_OK && pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return rc;
}

#define LAUNCH_MAX_RUN_ARGS (2 + VM_DEVICE_ARGS_MAX)

int vm_launch_serving(const struct vm_ref *ref, const char *const *run_args, unsigned nargs,
                      unsigned wait_ms)
{
    struct vm_runtime rt;
    if (vm_runtime_probe(ref->dir, &rt, true) == 1) {
        log_error("VM '%s' is running already (pid %d)", ref->name, (int)rt.pid);
        return KILN_EXIT_VM_STATE;
    }
    vm_runtime_clean(ref->dir);
    char sock[STATE_PATH_MAX], console[STATE_PATH_MAX], log[STATE_PATH_MAX];
    if (nargs > LAUNCH_MAX_RUN_ARGS || vm_ref_path(ref, VM_FILE_API_SOCK, sock, sizeof(sock)) < 0 ||
        vm_ref_path(ref, VM_FILE_CONSOLE_SOCK, console, sizeof(console)) < 0 ||
        vm_ref_path(ref, VM_FILE_CONSOLE_LOG, log, sizeof(log)) < 0 || strlen(sock) >= 108 ||
        strlen(console) >= 108) {
        log_error("VM '%s': its directory's path is too long for a Unix socket", ref->name);
        return KILN_EXIT_USAGE;
    }
    char *args[LAUNCH_MAX_RUN_ARGS + 12];
    unsigned n = 0;
    args[n++] = "kiln";
    args[n++] = "run";
    for (unsigned i = 0; i < nargs; i++)
        args[n++] = (char *)run_args[i];
    char *rest[] = {"--api-sock", sock, "--console-sock", console, "--console-log", log,
                    "--id", (char *)ref->name, NULL};
    memcpy(args + n, rest, sizeof(rest));
    pid_t pid = vm_launch(ref, args);
    if (pid < 0) {
        log_error("VM '%s': cannot launch its process: %s", ref->name, strerror(-pid));
        return KILN_EXIT_RESOURCES;
    }
    rt = (struct vm_runtime){.pid = pid, .started_at = time(NULL)};
    if (proc_start_ticks(pid, &rt.proc_start_ticks) < 0 || vm_runtime_write(ref->dir, &rt) < 0)
        log_warn("VM '%s': could not record its process", ref->name);
    int rc = wait_serving(ref, pid, wait_ms);
    if (rc != KILN_EXIT_OK) {
        vm_runtime_clean(ref->dir);
        return rc;
    }
    return -pid;
}

int vm_launch_continuing(const struct vm_ref *ref, const char *opt, const char *value,
                         unsigned wait_ms)
{
    json_t *def = vm_ref_definition(ref);
    if (!def)
        return KILN_EXIT_NO_SUCH_VM;
    struct vm_device_args dev;
    char err[128];
    int ret = vm_definition_device_args(def, &dev, err, sizeof(err));
    json_decref(def);
    if (ret < 0) {
        log_error("VM '%s': %s", ref->name, err);
        return KILN_EXIT_USAGE;
    }
    const char *args[LAUNCH_MAX_RUN_ARGS] = {opt, value};
    for (unsigned i = 0; i < dev.argc; i++)
        args[2 + i] = dev.argv[i];
    int rc = vm_launch_serving(ref, args, 2 + dev.argc, wait_ms);
    vm_device_args_free(&dev);
    return rc;
}
