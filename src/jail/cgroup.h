/*
 * cgroup v2 limits for a jailed VM: one cgroup per VM at <cgroup2 mount>/kiln/<name>, with the
 * controllers it needs enabled on the way down. cgroup v1 is not supported: where a controller
 * is bound to a v1 hierarchy (hybrid layouts), creation fails and says so.
 */
#ifndef KILN_CGROUP_H
#define KILN_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "jail/jail_config.h"

struct cgroup {
    char path[PATH_MAX]; /* the VM's cgroup directory; empty: none was made */
    int procs_fd;        /* its cgroup.procs, open so that the VM process can join it */
};

/*
 * Creates the cgroup `name` and writes the limits `cfg` asks for. Returns 0, or a negative
 * errno with a one-line reason in `err`; on failure nothing is left behind.
 */
int cgroup_create(struct cgroup *cg, const struct jail_cgroup_config *cfg, const char *name,
                  char *err, size_t errlen);
/* Moves the calling process into the cgroup (before it maps guest memory). 0 or -errno. */
int cgroup_join(const struct cgroup *cg);
/* How many processes the OOM killer ended in the cgroup (memory.events), 0 if unknown. */
unsigned long long cgroup_oom_kills(const struct cgroup *cg);
/* Removes the cgroup once its processes are gone. */
void cgroup_remove(struct cgroup *cg);

/* Finds the first cgroup2 mount in `mountinfo` text; 0 or -ENOENT. Exposed for tests. */
int cgroup2_mount_point(const char *mountinfo, char *out, size_t outlen);

#endif
