/* Small helpers shared by every module: logging, sizes, checked arithmetic. */
#ifndef KILN_UTIL_H
#define KILN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

#define ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((__typeof__(x))(a)-1))

/* Messages go to stderr prefixed with "kiln: " so they can be told apart from guest output. */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_verbose(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_set_verbosity(int level); /* 0 quiet, 1 normal, 2 verbose, 3 debug */
/*
 * Until log_capture_end(), the first log_error() of the calling thread is also copied into
 * `buf` (emptied here): the API returns it as a fault message.
 */
void log_capture_begin(char *buf, size_t len);
void log_capture_end(void);
/* Whether log_debug prints: lets hot paths skip building a message nobody sees. */
bool log_debug_enabled(void);

/*
 * Rate limiting for guest-triggered messages: a hostile guest must not be able to flood
 * the host's log. Allows `burst` messages per `interval_s`, then counts the rest.
 */
struct ratelimit {
    time_t window_start;
    unsigned interval_s;
    unsigned burst;
    unsigned printed;
    unsigned long suppressed;
};
#define RATELIMIT_INIT(interval, n)                                                                \
    {                                                                                              \
        .interval_s = (interval), .burst = (n)                                                     \
    }
bool ratelimit_allow(struct ratelimit *rl);

/* Parses "256M", "4G", "512K", "1048576" (bytes). Returns 0 or -EINVAL / -ERANGE. */
int parse_size(const char *text, uint64_t *out);
/* Parses a decimal unsigned integer in [min, max]. Returns 0 or -EINVAL / -ERANGE. */
int parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* Reads a whole file into a malloc'd buffer. Returns 0 or a negative errno. */
int read_file(const char *path, uint8_t **data, size_t *size, size_t max_size);

uint64_t monotonic_ns(void);

/*
 * Binds the Unix stream socket `fd` to `path`, replacing a socket file that nobody listens
 * on (left by a crash). A live socket or any other kind of file is left alone
 * (-EADDRINUSE). -ENAMETOOLONG if `path` does not fit in sun_path.
 */
int unix_bind_replacing_stale(int fd, const char *path);

/* The peak resident set size in KiB (0 if unknown), read from an fd of peak_rss_open(). */
int peak_rss_open(void);
uint64_t peak_rss_kib(int status_fd);

/* Formats a reason for rejecting some input into `err` and returns -EINVAL (parsers). */
int invalid(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Writes all of `data` to `fd`, retrying short writes. 0 or -errno. */
int write_full(int fd, const void *data, size_t len);

/*
 * Replaces `path` durably: writes a temporary file beside it, fsyncs it, renames it over
 * `path` and fsyncs the directory, so a crash leaves the old or the new file, never a torn
 * one. 0 or -errno.
 */
int write_file_atomic(const char *path, const void *data, size_t len);

#endif
