#include "jail/jail.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "cli/exit_codes.h"
#include "util.h"
#include "vmm/vm_config.h"

#define NETNS_DIR "/run/netns"

/* ---- before the fork: directory, network namespace, cgroup ---- */

static int prepare_root(struct jail *j)
{
    const char *dir = j->cfg->dir;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        log_error("--jail %s: %s", dir, strerror(errno));
        return -errno;
    }
    if (!realpath(dir, j->root)) {
        log_error("--jail %s: %s", dir, strerror(errno));
        return -errno;
    }
    struct stat st;
    if (stat(j->root, &st) < 0 || !S_ISDIR(st.st_mode)) {
        log_error("--jail %s: not a directory", dir);
        return -ENOTDIR;
    }
    if (strcmp(j->root, "/") == 0) {
        log_error("--jail %s: the host's root cannot be a jail", dir);
        return -EINVAL;
    }
    return 0;
}

static int join_netns(const char *name)
{
    /* A name, not a path: nothing outside /run/netns can be reached through it. */
    if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
        strlen(name) > 255) {
        log_error("--jail-netns '%s': expected the name of a namespace in " NETNS_DIR, name);
        return -EINVAL;
    }
    char path[300];
    snprintf(path, sizeof(path), NETNS_DIR "/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        log_error("--jail-netns %s: %s: %s", name, path, strerror(errno));
        return -errno;
    }
    int ret = setns(fd, CLONE_NEWNET) < 0 ? -errno : 0;
    if (ret < 0)
        log_error("--jail-netns %s: cannot join: %s", name, strerror(-ret));
    close(fd);
    return ret;
}

/* ---- the supervisor (parent) ---- */

static int status_of_child(struct jail *j, pid_t pid, int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    int sig = WTERMSIG(wstatus);
    unsigned long long ooms = cgroup_oom_kills(&j->cgroup);
    if (sig == SIGKILL && ooms > 0) {
        log_error("the VM process (pid %d) was killed by the OOM killer: the guest and kiln "
                  "need more memory than --jail-cgroup memory.max allows",
                  (int)pid);
        return KILN_EXIT_RESOURCES;
    }
    log_error("the VM process (pid %d) was killed by signal %d (%s)", (int)pid, sig,
              strsignal(sig));
    return KILN_EXIT_VM_FAILED;
}

/* Waits for the VM process, passing on the signals meant for the VM. */
static int supervise(struct jail *j, pid_t pid, const sigset_t *set)
{
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(set, &si);
        if (sig < 0)
            continue; /* EINTR */
        if (sig != SIGCHLD) {
            kill(pid, sig);
            continue;
        }
        int wstatus;
        pid_t r = waitpid(pid, &wstatus, WNOHANG);
        if (r == pid)
            return status_of_child(j, pid, wstatus);
        if (r < 0 && errno != EINTR) {
            log_error("waiting for the VM process: %s", strerror(errno));
            return KILN_EXIT_VM_FAILED;
        }
    }
}

/* ---- the VM process, right after the fork ---- */

static int child_setup(struct jail *j)
{
    if (j->cfg->cgroup.enabled) {
        int ret = cgroup_join(&j->cgroup);
        if (ret < 0) {
            log_error("--jail-cgroup: joining %s: %s", j->cgroup.path, strerror(-ret));
            return ret;
        }
    }
    if (j->cgroup.procs_fd >= 0)
        close(j->cgroup.procs_fd);
    j->cgroup.procs_fd = -1;
    j->cgroup.path[0] = '\0'; /* the supervisor owns the cgroup, not this process */
    if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP) < 0) {
        log_error("--jail: new mount/IPC/UTS/cgroup namespaces: %s", strerror(errno));
        return -errno;
    }
    /* Nothing mounted or unmounted here may reach the host's namespace. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        log_error("--jail: making mounts private: %s", strerror(errno));
        return -errno;
    }
    if (sethostname("kiln", 4) < 0)
        log_warn("--jail: sethostname: %s", strerror(errno));
    return 0;
}

int jail_spawn(struct jail *j, const struct jail_config *cfg, int *status)
{
    memset(j, 0, sizeof(*j));
    j->cfg = cfg;
    j->cgroup.procs_fd = -1;
    if (geteuid() != 0) {
        log_error("--jail needs root: kiln opens the VM's resources as root, then creates "
                  "namespaces and drops to --jail-uid");
        return -EPERM;
    }
    int ret = prepare_root(j);
    if (ret == 0 && cfg->netns)
        ret = join_netns(cfg->netns);
    if (ret < 0)
        return ret;
    if (cfg->cgroup.enabled) {
        char name[32], err[512];
        snprintf(name, sizeof(name), "vm-%d", (int)getpid());
        ret = cgroup_create(&j->cgroup, &cfg->cgroup, name, err, sizeof(err));
        if (ret < 0) {
            log_error("--jail-cgroup: %s", err);
            return ret;
        }
    }
    if (unshare(CLONE_NEWPID) < 0) {
        ret = -errno;
        log_error("--jail: new PID namespace: %s", strerror(errno));
        cgroup_remove(&j->cgroup);
        return ret;
    }
    struct termios tty;
    bool have_tty = tcgetattr(STDIN_FILENO, &tty) == 0;
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);
    pid_t pid = fork();
    if (pid < 0) {
        ret = -errno;
        log_error("--jail: fork: %s", strerror(errno));
        sigprocmask(SIG_SETMASK, &old, NULL);
        cgroup_remove(&j->cgroup);
        return ret;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        ret = child_setup(j);
        return ret < 0 ? ret : JAIL_CHILD;
    }
    log_verbose("jail: the VM runs as pid %d (pid 1 of its PID namespace), uid %u, root %s",
                (int)pid, cfg->uid, j->root);
    *status = supervise(j, pid, &set);
    /* A VM killed outright (the OOM killer) could not restore the terminal itself. */
    if (have_tty)
        tcsetattr(STDIN_FILENO, TCSANOW, &tty);
    cgroup_remove(&j->cgroup);
    return JAIL_PARENT;
}

/* ---- paths ---- */

static int make_absolute(char *path, size_t cap)
{
    if (path[0] == '/')
        return 0;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)))
        return -errno;
    char abs[PATH_MAX + 4096];
    int n = snprintf(abs, sizeof(abs), "%s/%s", cwd, path);
    if (n < 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    memcpy(path, abs, (size_t)n + 1);
    return 0;
}

/* The vsock socket's directory must resolve to DIR or below it; the path becomes relative. */
static int rewrite_uds(const struct jail *j, char *uds, size_t cap, char *err, size_t errlen)
{
    char abs[PATH_MAX], real[PATH_MAX];
    if (strlen(uds) >= sizeof(abs)) {
        snprintf(err, errlen, "--vsock uds=%s: path too long", uds);
        return -EINVAL;
    }
    strcpy(abs, uds);
    char *slash = make_absolute(abs, sizeof(abs)) == 0 ? strrchr(abs, '/') : NULL;
    const char *base = slash ? slash + 1 : "";
    if (slash)
        *slash = '\0';
    const char *dir = slash == abs ? "/" : abs;
    size_t rootlen = strlen(j->root);
    if (!*base || !realpath(dir, real) || strncmp(real, j->root, rootlen) != 0 ||
        (real[rootlen] != '\0' && real[rootlen] != '/')) {
        snprintf(err, errlen,
                 "--vsock uds=%s: with --jail the socket must lie inside %s (the jailed VM "
                 "sees nothing else)",
                 uds, j->root);
        return -EINVAL;
    }
    const char *sub = real[rootlen] ? real + rootlen + 1 : "";
    int n = snprintf(abs, sizeof(abs), "%s%s%s", sub, *sub ? "/" : "", base);
    if (n < 0 || (size_t)n >= cap) {
        snprintf(err, errlen, "--vsock uds=%s: path too long", uds);
        return -EINVAL;
    }
    memcpy(uds, abs, (size_t)n + 1);
    return 0;
}

int jail_rewrite_paths(const struct jail *j, struct vm_config *cfg, char *err, size_t errlen)
{
    for (unsigned i = 0; i < cfg->ndisks; i++) {
        if (make_absolute(cfg->disks[i].path, sizeof(cfg->disks[i].path)) < 0) {
            snprintf(err, errlen, "--disk %s: cannot make the path absolute", cfg->disks[i].path);
            return -EINVAL;
        }
    }
    if (cfg->vsock.enabled)
        return rewrite_uds(j, cfg->vsock.uds_path, sizeof(cfg->vsock.uds_path), err, errlen);
    return 0;
}

int jail_chdir(const struct jail *j)
{
    if (chdir(j->root) == 0)
        return 0;
    log_error("--jail %s: %s", j->root, strerror(errno));
    return -errno;
}

/* ---- entering the jail ---- */

/* Capabilities, no_new_privs and the bounding set belong to each thread, not the process. */
static int count_threads(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -errno;
    char line[256];
    int n = -ENOENT;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

static int pivot_into(const char *root)
{
    static const unsigned long ro =
        MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
    if (mount(root, root, NULL, MS_BIND, NULL) < 0)
        return -errno;
    if (mount(NULL, root, NULL, ro, NULL) < 0)
        return -errno;
    if (chdir(root) < 0)
        return -errno;
    /* pivot_root(".", "."): the old root ends up stacked under the new one, then goes. */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return -errno;
    if (umount2(".", MNT_DETACH) < 0)
        return -errno;
    return chdir("/") < 0 ? -errno : 0;
}

static int drop_capabilities_while_root(void)
{
    for (unsigned long cap = 0;; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL)
                break; /* past the last capability this kernel knows */
            return -errno;
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -errno;
    /* uid 0 must never regain capabilities through exec, whatever happens later. */
    unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                         SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    return prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0 ? -errno : 0;
}

static int clear_all_capabilities(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -errno;
    if (syscall(SYS_capget, &hdr, data) < 0)
        return -errno;
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable)
            return -EPERM;
    return 0;
}

static int drop_identity(uint32_t uid, uint32_t gid)
{
    if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
        return -errno;
    /* The change must be one way. */
    if (setresuid(0, 0, 0) == 0 || getuid() != uid || geteuid() != uid || getegid() != gid)
        return -EPERM;
    return 0;
}

static int set_limit(int resource, uint64_t value)
{
    struct rlimit rl = {.rlim_cur = value, .rlim_max = value};
    return setrlimit(resource, &rl) < 0 ? -errno : 0;
}

static int apply_rlimits(const struct jail_rlimit_config *rl)
{
    int ret = set_limit(RLIMIT_CORE, 0); /* a core file would hold guest memory */
    if (ret == 0 && rl->nofile)
        ret = set_limit(RLIMIT_NOFILE, rl->nofile);
    if (ret == 0 && rl->fsize)
        ret = set_limit(RLIMIT_FSIZE, rl->fsize);
    if (ret == 0 && rl->nproc)
        ret = set_limit(RLIMIT_NPROC, rl->nproc);
    return ret;
}

static int jail_fail(const char *step, int ret)
{
    log_error("--jail: %s: %s", step, strerror(-ret));
    return ret;
}

int jail_enter(const struct jail *j)
{
    const struct jail_config *cfg = j->cfg;
    int threads = count_threads();
    if (threads != 1) {
        if (threads < 0)
            return jail_fail("counting threads", threads);
        log_error("--jail: %d threads already run, but privileges can only be dropped for all "
                  "of them before the first starts (a device started a thread too early)",
                  threads);
        return -EBUSY;
    }
    int ret = pivot_into(j->root);
    if (ret < 0)
        return jail_fail("pivot_root", ret);
    if ((ret = apply_rlimits(&cfg->rlimit)) < 0)
        return jail_fail("setrlimit", ret);
    if ((ret = drop_capabilities_while_root()) < 0)
        return jail_fail("dropping the capability bounding set", ret);
    if ((ret = drop_identity(cfg->uid, cfg->gid)) < 0)
        return jail_fail("changing to the jail uid/gid", ret);
    if ((ret = clear_all_capabilities()) < 0)
        return jail_fail("clearing capabilities", ret);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return jail_fail("no_new_privs", -errno);
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return jail_fail("undumpable", -errno);
    /* Set after the uid change, which clears it: the VM dies with its supervisor. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        return jail_fail("parent-death signal", -errno);
    log_verbose("jail: entered %s as uid %u gid %u, no capabilities", j->root, cfg->uid, cfg->gid);
    return 0;
}
