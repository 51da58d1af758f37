#include "cli/state_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "util.h"

int vm_name_check(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > VM_NAME_MAX || name[0] == '.' || name[0] == '-')
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok)
            return -EINVAL;
    }
    return 0;
}

static int fmt_path(char *buf, size_t len, const char *fmt, const char *a, const char *b)
{
    int n = snprintf(buf, len, fmt, a, b);
    return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

int state_dir_resolve(char *buf, size_t len, uid_t uid, const char *(*env)(const char *))
{
    const char *over = env("KILN_STATE_DIR");
    if (over && *over)
        return fmt_path(buf, len, "%s%s", over, "");
    if (uid == 0)
        return fmt_path(buf, len, "%s%s", "/var/lib/kiln", "");
    const char *xdg = env("XDG_STATE_HOME");
    if (xdg && xdg[0] == '/') /* the XDG spec says to ignore relative paths */
        return fmt_path(buf, len, "%s/%s", xdg, "kiln");
    const char *home = env("HOME");
    if (!home || !*home)
        return -ENOENT;
    return fmt_path(buf, len, "%s/%s", home, ".local/state/kiln");
}

int state_dir_ensure(const char *dir)
{
    char path[STATE_PATH_MAX];
    if (fmt_path(path, sizeof(path), "%s%s", dir, "") < 0)
        return -ENAMETOOLONG;
    /* mkdir -p: each parent in turn, then the directory itself private to its owner. */
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int vm_path(char *buf, size_t len, const char *state_dir, const char *name, const char *file)
{
    int n = file ? snprintf(buf, len, "%s/%s/%s", state_dir, name, file)
                 : snprintf(buf, len, "%s/%s", state_dir, name);
    return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

int vm_runtime_write(const char *vm_dir, const struct vm_runtime *rt)
{
    char path[STATE_PATH_MAX];
    if (fmt_path(path, sizeof(path), "%s/%s", vm_dir, VM_FILE_RUNTIME) < 0)
        return -ENAMETOOLONG;
    json_t *obj =
        json_pack("{s:I, s:I, s:I}", "pid", (json_int_t)rt->pid, "proc_start_ticks",
                  (json_int_t)rt->proc_start_ticks, "started_at", (json_int_t)rt->started_at);
    if (!obj)
        return -ENOMEM;
    char *text = json_dumps(obj, JSON_INDENT(2));
    json_decref(obj);
    if (!text)
        return -ENOMEM;
    int ret = write_file_atomic(path, text, strlen(text));
    free(text);
    return ret;
}

int vm_runtime_read(const char *vm_dir, struct vm_runtime *rt)
{
    char path[STATE_PATH_MAX];
    if (fmt_path(path, sizeof(path), "%s/%s", vm_dir, VM_FILE_RUNTIME) < 0)
        return -ENAMETOOLONG;
    json_error_t jerr;
    json_t *obj = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj)
        return access(path, F_OK) < 0 ? -ENOENT : -EINVAL;
    json_int_t pid, ticks, started;
    int ret = json_unpack(obj, "{s:I, s:I, s:I}", "pid", &pid, "proc_start_ticks", &ticks,
                          "started_at", &started);
    json_decref(obj);
    if (ret < 0 || pid <= 0 || pid > INT32_MAX || ticks < 0)
        return -EINVAL;
    *rt = (struct vm_runtime){
        .pid = (pid_t)pid,
        .proc_start_ticks = (uint64_t)ticks,
        .started_at = started,
    };
    return 0;
}

int proc_start_ticks(pid_t pid, uint64_t *ticks)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -EIO;
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: start after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -EINVAL;
    p++;
    for (int field = 3; field < 22; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return -EINVAL;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p + 1, &end, 10);
    if (errno || end == p + 1)
        return -EINVAL;
    *ticks = v;
    return 0;
}

bool vm_runtime_alive(const struct vm_runtime *rt)
{
    uint64_t ticks;
    if (proc_start_ticks(rt->pid, &ticks) < 0)
        return false;
    if (ticks != rt->proc_start_ticks)
        return false;
    /* A zombie has exited already; /proc still lists it until its parent reaps it. */
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)rt->pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

void vm_runtime_clean(const char *vm_dir)
{
    static const char *const files[] = {VM_FILE_API_SOCK, VM_FILE_CONSOLE_SOCK, VM_FILE_RUNTIME};
    char path[STATE_PATH_MAX];
    for (size_t i = 0; i < ARRAY_SIZE(files); i++)
        if (fmt_path(path, sizeof(path), "%s/%s", vm_dir, files[i]) == 0)
            unlink(path);
}

int vm_runtime_probe(const char *vm_dir, struct vm_runtime *rt, bool have_lock)
{
    int ret = vm_runtime_read(vm_dir, rt);
    if (ret == -ENOENT)
        return 0;
    if (ret == 0 && vm_runtime_alive(rt))
        return 1;
    /*
     * Dead process or unreadable record: a leftover of a crash, not a running VM. Clean it
     * only under the lock, so as not to remove what a concurrent `kiln start` just wrote.
     */
    int lock = have_lock ? -1 : vm_lock(vm_dir);
    if (have_lock || lock >= 0) {
        if (vm_runtime_read(vm_dir, rt) != 0 || !vm_runtime_alive(rt))
            vm_runtime_clean(vm_dir);
        else
            ret = 1;
    }
    if (lock >= 0)
        close(lock);
    return ret == 1 ? 1 : 0;
}

int vm_lock(const char *vm_dir)
{
    char path[STATE_PATH_MAX];
    if (fmt_path(path, sizeof(path), "%s/%s", vm_dir, VM_FILE_LOCK) < 0)
        return -ENAMETOOLONG;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno == EWOULDBLOCK ? -EBUSY : -errno;
        close(fd);
        return err;
    }
    return fd;
}
