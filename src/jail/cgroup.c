#include "jail/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define CGROUP_PARENT "kiln" /* every VM's cgroup lives under <mount>/kiln */

static int cg_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int cg_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return ret;
}

static int write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int ret = n < 0 ? -errno : (size_t)n == len ? 0 : -EIO;
    close(fd);
    return ret;
}

/* Reads a small text file whole (NUL-terminated, truncated to `len`). */
static int read_text(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, len - 1);
    int ret = n < 0 ? -errno : 0;
    buf[n < 0 ? 0 : n] = '\0';
    close(fd);
    return ret;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
    char *out = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *out++ = (char)((p[1] - '0') << 6 | (p[2] - '0') << 3 | (p[3] - '0'));
            p += 3;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
}

/* A mountinfo line: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE SOURCE ... */
static int mount_line_cgroup2(const char *line, char *out, size_t outlen)
{
    const char *sep = strstr(line, " - ");
    char mnt[1024];
    if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0 ||
        sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1)
        return -ENOENT;
    unescape_octal(mnt);
    if (strlen(mnt) >= outlen)
        return -ENAMETOOLONG;
    strcpy(out, mnt);
    return 0;
}

int cgroup2_mount_point(const char *mountinfo, char *out, size_t outlen)
{
    const char *line = mountinfo;
    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[1024];
        if (len < sizeof(buf)) {
            memcpy(buf, line, len);
            buf[len] = '\0';
            int ret = mount_line_cgroup2(buf, out, outlen);
            if (ret != -ENOENT)
                return ret;
        }
        line = end ? end + 1 : NULL;
    }
    return -ENOENT;
}

static int find_cgroup2(char *out, size_t outlen)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -errno;
    char line[1024];
    int ret = -ENOENT;
    while (ret == -ENOENT && fgets(line, sizeof(line), f))
        ret = mount_line_cgroup2(line, out, outlen);
    fclose(f);
    return ret;
}

static bool has_word(const char *list, const char *word)
{
    size_t wlen = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += wlen) {
        bool starts = p == list || p[-1] == ' ';
        bool ends = p[wlen] == '\0' || p[wlen] == ' ' || p[wlen] == '\n';
        if (starts && ends)
            return true;
    }
    return false;
}

/* Enables `ctrl` for the children of `dir` unless it already is. */
static int enable_controller(const char *dir, const char *ctrl)
{
    char path[PATH_MAX], cur[512], cmd[32];
    snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
    if (read_text(path, cur, sizeof(cur)) == 0 && has_word(cur, ctrl))
        return 0;
    snprintf(cmd, sizeof(cmd), "+%s", ctrl);
    return write_text(path, cmd);
}

static void format_limit(char *buf, size_t len, uint64_t v)
{
    if (v == CGROUP_MAX)
        snprintf(buf, len, "max");
    else
        snprintf(buf, len, "%" PRIu64, v);
}

static int write_limit(const struct cgroup *cg, const char *file, const char *value, char *err,
                       size_t errlen)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", cg->path, file);
    int ret = write_text(path, value);
    if (ret < 0)
        return cg_fail(err, errlen, ret, "cgroup %s: %s=%s: %s", cg->path, file, value,
                       strerror(-ret));
    return 0;
}

static int write_limits(const struct cgroup *cg, const struct jail_cgroup_config *cfg, char *err,
                        size_t errlen)
{
    char v[64];
    int ret = 0;
    if (cfg->has_memory) {
        format_limit(v, sizeof(v), cfg->memory_max);
        ret = write_limit(cg, "memory.max", v, err, errlen);
        /* A hard limit means RAM: the guest must not spill into swap instead (no swap
         * accounting compiled in means no swap for the cgroup to use anyway). */
        char path[PATH_MAX + 32];
        snprintf(path, sizeof(path), "%s/memory.swap.max", cg->path);
        if (ret == 0 && cfg->memory_max != CGROUP_MAX && access(path, F_OK) == 0)
            ret = write_limit(cg, "memory.swap.max", "0", err, errlen);
    }
    if (ret == 0 && cfg->has_cpu) {
        char quota[32];
        format_limit(quota, sizeof(quota), cfg->cpu_quota);
        snprintf(v, sizeof(v), "%s %" PRIu64, quota, cfg->cpu_period);
        ret = write_limit(cg, "cpu.max", v, err, errlen);
    }
    if (ret == 0 && cfg->has_pids) {
        format_limit(v, sizeof(v), cfg->pids_max);
        ret = write_limit(cg, "pids.max", v, err, errlen);
    }
    return ret;
}

/* Checks that the root offers each controller, then enables it down to <mount>/kiln. */
static int prepare_controllers(const char *mnt, const char *parent,
                               const struct jail_cgroup_config *cfg, char *err, size_t errlen)
{
    const char *want[3];
    size_t n = 0;
    if (cfg->has_memory)
        want[n++] = "memory";
    if (cfg->has_cpu)
        want[n++] = "cpu";
    if (cfg->has_pids)
        want[n++] = "pids";
    char path[PATH_MAX + 32], offered[512];
    snprintf(path, sizeof(path), "%s/cgroup.controllers", mnt);
    int ret = read_text(path, offered, sizeof(offered));
    if (ret < 0)
        return cg_fail(err, errlen, ret, "cgroup v2 at %s: %s: %s", mnt, path, strerror(-ret));
    offered[strcspn(offered, "\n")] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!has_word(offered, want[i]))
            return cg_fail(err, errlen, -EOPNOTSUPP,
                           "cgroup v2 at %s has no '%s' controller (it offers: '%s'); on a "
                           "host with a hybrid cgroup layout it is bound to cgroup v1, which "
                           "kiln does not use",
                           mnt, want[i], offered);
    }
    if (mkdir(parent, 0755) < 0 && errno != EEXIST)
        return cg_fail(err, errlen, -errno, "cgroup %s: %s", parent, strerror(errno));
    for (size_t i = 0; i < n; i++) {
        ret = enable_controller(mnt, want[i]);
        ret = ret ?: enable_controller(parent, want[i]);
        if (ret < 0)
            return cg_fail(err, errlen, ret, "cgroup v2: enabling the '%s' controller under %s: %s",
                           want[i], parent, strerror(-ret));
    }
    return 0;
}

int cgroup_create(struct cgroup *cg, const struct jail_cgroup_config *cfg, const char *name,
                  char *err, size_t errlen)
{
    cg->path[0] = '\0';
    cg->procs_fd = -1;
    char mnt[PATH_MAX], parent[PATH_MAX + 16];
    int ret = find_cgroup2(mnt, sizeof(mnt));
    if (ret < 0)
        return cg_fail(err, errlen, ret,
                       "no cgroup v2 file system is mounted (e.g. mount -t cgroup2 none "
                       "/sys/fs/cgroup): %s",
                       strerror(-ret));
    snprintf(parent, sizeof(parent), "%s/%s", mnt, CGROUP_PARENT);
    ret = prepare_controllers(mnt, parent, cfg, err, errlen);
    if (ret < 0)
        return ret;
    if ((size_t)snprintf(cg->path, sizeof(cg->path), "%s/%s", parent, name) >= sizeof(cg->path))
        return cg_fail(err, errlen, -ENAMETOOLONG, "cgroup path too long");
    rmdir(cg->path); /* left by a crashed kiln with the same name; fails harmlessly if busy */
    if (mkdir(cg->path, 0755) < 0) {
        ret = -errno;
        cg_fail(err, errlen, ret, "cgroup %s: %s", cg->path, strerror(errno));
        cg->path[0] = '\0';
        return ret;
    }
    ret = write_limits(cg, cfg, err, errlen);
    char procs[PATH_MAX + 16];
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg->path);
    if (ret == 0 && (cg->procs_fd = open(procs, O_WRONLY | O_CLOEXEC)) < 0)
        ret = cg_fail(err, errlen, -errno, "cgroup %s: %s", procs, strerror(errno));
    if (ret < 0)
        cgroup_remove(cg);
    return ret;
}

int cgroup_join(const struct cgroup *cg)
{
    /* "0" is the writer itself, whatever PID namespace it is in. */
    return write(cg->procs_fd, "0", 1) == 1 ? 0 : -errno;
}

unsigned long long cgroup_oom_kills(const struct cgroup *cg)
{
    char path[PATH_MAX + 16], text[1024];
    snprintf(path, sizeof(path), "%s/memory.events", cg->path);
    if (!cg->path[0] || read_text(path, text, sizeof(text)) < 0)
        return 0;
    const char *p = strstr(text, "oom_kill ");
    unsigned long long n = 0;
    if (p && sscanf(p, "oom_kill %llu", &n) != 1)
        n = 0;
    return n;
}

void cgroup_remove(struct cgroup *cg)
{
    if (cg->procs_fd >= 0)
        close(cg->procs_fd);
    cg->procs_fd = -1;
    if (!cg->path[0])
        return;
    /* The last task's exit can trail the parent's wait by a moment: retry briefly. */
    for (int i = 0; i < 50 && rmdir(cg->path) < 0 && errno == EBUSY; i++)
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    cg->path[0] = '\0';
}
