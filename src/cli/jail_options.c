#include "cli/jail_options.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define CPU_PERIOD_DEFAULT 100000u /* cgroup v2's own default, in microseconds */
#define CPU_PERIOD_MIN 1000u       /* the kernel's bounds for cpu.max (1 ms .. 1 s) */
#define CPU_PERIOD_MAX 1000000u
#define PIDS_MAX_LIMIT (1u << 22) /* PID_MAX_LIMIT on 64-bit */
#define MEMORY_MAX_MIN (1u << 20)

/* Splits "key=value" at the first '=' into NUL-terminated copies. */
static int split_item(const char *item, size_t len, char *key, size_t klen, char *value,
                      size_t vlen)
{
    const char *eq = memchr(item, '=', len);
    if (!eq || eq == item)
        return -EINVAL;
    size_t kl = (size_t)(eq - item), vl = len - kl - 1;
    if (kl >= klen || vl >= vlen || vl == 0)
        return -EINVAL;
    memcpy(key, item, kl);
    key[kl] = '\0';
    memcpy(value, eq + 1, vl);
    value[vl] = '\0';
    return 0;
}

typedef int (*kv_fn)(const char *key, const char *value, void *ctx, char *err, size_t errlen);

static int for_each_kv(const char *opt, const char *arg, kv_fn fn, void *ctx, char *err,
                       size_t errlen)
{
    const char *p = arg;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char key[32], value[64];
        if (split_item(p, len, key, sizeof(key), value, sizeof(value)) < 0)
            return invalid(err, errlen, "%s '%.*s': expected KEY=VALUE", opt, (int)len, p);
        int ret = fn(key, value, ctx, err, errlen);
        if (ret < 0)
            return ret;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* "max" or a number in [min, max] (a size when `size`). */
static int parse_limit(const char *v, bool size, uint64_t min, uint64_t max, uint64_t *out)
{
    if (strcmp(v, "max") == 0) {
        *out = CGROUP_MAX;
        return 0;
    }
    uint64_t n;
    int ret = size ? parse_size(v, &n) : parse_uint(v, 0, UINT64_MAX, &n);
    if (ret < 0 || n < min || n > max)
        return -EINVAL;
    *out = n;
    return 0;
}

/* cpu.max=QUOTA[/PERIOD]: QUOTA microseconds of CPU time per PERIOD (default 100000). */
static int parse_cpu_max(const char *v, struct jail_cgroup_config *cg)
{
    char quota[32];
    const char *slash = strchr(v, '/');
    size_t qlen = slash ? (size_t)(slash - v) : strlen(v);
    if (qlen == 0 || qlen >= sizeof(quota))
        return -EINVAL;
    memcpy(quota, v, qlen);
    quota[qlen] = '\0';
    cg->cpu_period = CPU_PERIOD_DEFAULT;
    if (slash && parse_uint(slash + 1, CPU_PERIOD_MIN, CPU_PERIOD_MAX, &cg->cpu_period) < 0)
        return -EINVAL;
    return parse_limit(quota, false, CPU_PERIOD_MIN, UINT64_MAX / 2, &cg->cpu_quota);
}

static int cgroup_kv(const char *key, const char *value, void *ctx, char *err, size_t errlen)
{
    struct jail_cgroup_config *cg = ctx;
    if (strcmp(key, "memory.max") == 0) {
        cg->has_memory = true;
        if (parse_limit(value, true, MEMORY_MAX_MIN, UINT64_MAX / 2, &cg->memory_max) < 0)
            return invalid(err, errlen,
                        "--jail-cgroup memory.max=%s: expected a size of at least 1M, or max",
                        value);
        return 0;
    }
    if (strcmp(key, "cpu.max") == 0) {
        cg->has_cpu = true;
        if (parse_cpu_max(value, cg) < 0)
            return invalid(err, errlen,
                        "--jail-cgroup cpu.max=%s: expected QUOTA[/PERIOD] in microseconds "
                        "(each 1000 to 1000000; QUOTA may be max)",
                        value);
        return 0;
    }
    if (strcmp(key, "pids.max") == 0) {
        cg->has_pids = true;
        if (parse_limit(value, false, 1, PIDS_MAX_LIMIT, &cg->pids_max) < 0)
            return invalid(err, errlen, "--jail-cgroup pids.max=%s: expected 1 to %u, or max", value,
                        PIDS_MAX_LIMIT);
        return 0;
    }
    return invalid(err, errlen, "--jail-cgroup %s: unknown; expected memory.max, cpu.max or pids.max",
                key);
}

int parse_jail_cgroup_option(const char *arg, struct jail_cgroup_config *cg, char *err,
                             size_t errlen)
{
    *cg = (struct jail_cgroup_config){.enabled = true};
    return for_each_kv("--jail-cgroup", arg, cgroup_kv, cg, err, errlen);
}

static int rlimit_kv(const char *key, const char *value, void *ctx, char *err, size_t errlen)
{
    struct jail_rlimit_config *rl = ctx;
    if (strcmp(key, "nofile") == 0) {
        /* kiln itself needs a few dozen descriptors before the guest adds any */
        if (parse_uint(value, 64, 1u << 20, &rl->nofile) < 0)
            return invalid(err, errlen, "--jail-rlimit nofile=%s: expected 64 to 1048576", value);
        return 0;
    }
    if (strcmp(key, "fsize") == 0) {
        if (parse_size(value, &rl->fsize) < 0 || rl->fsize == 0)
            return invalid(err, errlen, "--jail-rlimit fsize=%s: expected a size such as 1G", value);
        return 0;
    }
    if (strcmp(key, "nproc") == 0) {
        if (parse_uint(value, 1, 1u << 22, &rl->nproc) < 0)
            return invalid(err, errlen, "--jail-rlimit nproc=%s: expected 1 to 4194304", value);
        return 0;
    }
    return invalid(err, errlen, "--jail-rlimit %s: unknown; expected nofile, fsize or nproc", key);
}

int parse_jail_rlimit_option(const char *arg, struct jail_rlimit_config *rl, char *err,
                             size_t errlen)
{
    return for_each_kv("--jail-rlimit", arg, rlimit_kv, rl, err, errlen);
}

int parse_jail_id(const char *opt, const char *arg, uint32_t *id, char *err, size_t errlen)
{
    uint64_t v;
    if (parse_uint(arg, 1, UINT32_MAX - 1, &v) < 0)
        return invalid(err, errlen, "%s '%s': expected a number from 1 to %u (not root)", opt, arg,
                    UINT32_MAX - 1);
    *id = (uint32_t)v;
    return 0;
}
