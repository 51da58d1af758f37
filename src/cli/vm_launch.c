/* Launching a VM process in the background, shared by `kiln start` and `kiln restore`. */
#include "cli/vm_launch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/exit_codes.h"
#include "cli/state_dir.h"

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
