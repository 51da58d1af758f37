/* What `kiln run --jail` was asked for: plain data, filled by the command line. */
#ifndef KILN_JAIL_CONFIG_H
#define KILN_JAIL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define JAIL_DEFAULT_ID 65534u /* "nobody" on Debian: owns no files */
#define JAIL_DEFAULT_NOFILE 2048u
#define CGROUP_MAX UINT64_MAX /* "max": no limit */

/* --jail-cgroup memory.max=SIZE,cpu.max=QUOTA[/PERIOD],pids.max=N (cgroup v2). */
struct jail_cgroup_config {
    bool enabled;
    bool has_memory, has_cpu, has_pids;
    uint64_t memory_max; /* bytes, or CGROUP_MAX */
    uint64_t cpu_quota;  /* microseconds per period, or CGROUP_MAX */
    uint64_t cpu_period; /* microseconds */
    uint64_t pids_max;   /* tasks (threads count), or CGROUP_MAX */
};

/* --jail-rlimit nofile=N,fsize=SIZE,nproc=N; 0 leaves fsize and nproc as they are. */
struct jail_rlimit_config {
    uint64_t nofile;
    uint64_t fsize;
    uint64_t nproc;
};

struct jail_config {
    const char *dir;   /* --jail DIR: the VM's root; NULL: no jail */
    uint32_t uid, gid; /* --jail-uid, --jail-gid */
    const char *netns; /* --jail-netns NAME: /run/netns/NAME; NULL: stay in this one */
    struct jail_cgroup_config cgroup;
    struct jail_rlimit_config rlimit;
};

#endif
