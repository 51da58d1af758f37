#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int verbosity = 1; /* process-wide logging setting, not VM state */

void log_set_verbosity(int level)
{
    verbosity = level;
}

bool log_debug_enabled(void)
{
    return verbosity >= 3;
}

/*
 * The terminal may be in raw mode while a guest runs, so every message ends in "\r\n":
 * a bare "\n" would leave the cursor mid-line.
 */
static void log_vprint(const char *prefix, const char *fmt, va_list ap)
{
    char buf[1024];
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(buf))
        n = sizeof(buf) - 1;
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    fprintf(stderr, "kiln: %s%s\r\n", prefix, buf);
}

/*
 * Per-thread error capture, so that a request handler can hand the reason a deep layer
 * logged back to an API client. Thread-local: each thread captures only its own errors.
 */
static _Thread_local char *capture_buf;
static _Thread_local size_t capture_len;

void log_capture_begin(char *buf, size_t len)
{
    capture_buf = len ? buf : NULL;
    capture_len = len;
    if (capture_buf)
        capture_buf[0] = '\0';
}

void log_capture_end(void)
{
    capture_buf = NULL;
    capture_len = 0;
}

void log_error(const char *fmt, ...)
{
    va_list ap;
    if (capture_buf && !capture_buf[0]) {
        va_start(ap, fmt);
        vsnprintf(capture_buf, capture_len, fmt, ap);
        va_end(ap);
    }
    va_start(ap, fmt);
    log_vprint("", fmt, ap);
    va_end(ap);
}

#define DEFINE_LOG(name, prefix, min_level)                                                        \
    void name(const char *fmt, ...)                                                                \
    {                                                                                              \
        if (verbosity < (min_level))                                                               \
            return;                                                                                \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        log_vprint(prefix, fmt, ap);                                                               \
        va_end(ap);                                                                                \
    }

DEFINE_LOG(log_warn, "warning: ", 1)
DEFINE_LOG(log_info, "", 1)
DEFINE_LOG(log_verbose, "", 2)
DEFINE_LOG(log_debug, "debug: ", 3)

bool ratelimit_allow(struct ratelimit *rl)
{
    time_t now = time(NULL);
    if (now - rl->window_start >= (time_t)rl->interval_s) {
        if (rl->suppressed)
            log_warn("%lu similar messages suppressed", rl->suppressed);
        rl->window_start = now;
        rl->printed = 0;
        rl->suppressed = 0;
    }
    if (rl->printed < rl->burst) {
        rl->printed++;
        return true;
    }
    rl->suppressed++;
    return false;
}

int parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!text || !isdigit((unsigned char)text[0]))
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0')
        return -EINVAL;
    if (errno == ERANGE || v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int parse_size(const char *text, uint64_t *out)
{
    if (!text || !isdigit((unsigned char)text[0]))
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    unsigned shift = 0;
    switch (toupper((unsigned char)*end)) {
    case '\0':
        break;
    case 'K':
        shift = 10;
        break;
    case 'M':
        shift = 20;
        break;
    case 'G':
        shift = 30;
        break;
    case 'T':
        shift = 40;
        break;
    default:
        return -EINVAL;
    }
    if (*end != '\0') {
        end++;
        /* Accept "256M", "256MB", "256MiB". */
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end != '\0')
            return -EINVAL;
    }
    if (shift && v > (UINT64_MAX >> shift))
        return -ERANGE;
    *out = (uint64_t)v << shift;
    return 0;
}

int read_file(const char *path, uint8_t **data, size_t *size, size_t max_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int ret = 0;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) < 0) {
        ret = -errno;
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        ret = -EISDIR;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        ret = -EINVAL;
        goto out;
    }
    if ((uint64_t)st.st_size > max_size) {
        ret = -EFBIG;
        goto out;
    }
    buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    if (!buf) {
        ret = -ENOMEM;
        goto out;
    }
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = -errno;
            goto out;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    *data = buf;
    *size = done;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return ret;
}

uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int peak_rss_open(void)
{
    return open("/proc/self/status", O_RDONLY | O_CLOEXEC);
}

uint64_t peak_rss_kib(int status_fd)
{
    /* VmHWM belongs to the current address space only, unlike getrusage's ru_maxrss, which
     * also remembers the image that exec replaced. Read through an fd opened early: the
     * seccomp filters forbid opening files once the guest runs. */
    char buf[4096];
    ssize_t n = status_fd < 0 ? -1 : pread(status_fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0) {
        /* No /proc (a jailed VM): nothing was exec'd since start, so ru_maxrss is the same. */
        struct rusage ru;
        return getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_maxrss : 0;
    }
    buf[n] = 0;
    const char *p = strstr(buf, "\nVmHWM:");
    unsigned long long kib = 0;
    if (!p || sscanf(p + 1, "VmHWM: %llu kB", &kib) != 1)
        return 0;
    return kib;
}

int unix_bind_replacing_stale(int fd, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    if (bind(fd, (const struct sockaddr *)&sa, sizeof(sa)) == 0)
        return 0;
    if (errno != EADDRINUSE)
        return -errno;
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return -EADDRINUSE;
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return -errno;
    int live = connect(probe, (const struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(probe);
    if (live)
        return -EADDRINUSE; /* another process serves it: not ours to take */
    if (unlink(path) < 0 || bind(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -errno;
    return 0;
}

int write_full(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Makes a rename in the directory holding `path` durable. */
static int fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
        return -ENAMETOOLONG;
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int ret = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return ret;
}

int write_file_atomic(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int ret = write_full(fd, data, len);
    if (ret == 0 && fsync(fd) < 0)
        ret = -errno;
    if (close(fd) < 0 && ret == 0)
        ret = -errno;
    if (ret == 0 && rename(tmp, path) < 0)
        ret = -errno;
    if (ret < 0) {
        unlink(tmp);
        return ret;
    }
    return fsync_dir_of(path);
}

int invalid(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}
