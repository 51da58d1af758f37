/* Parsers for the --jail-* options of `kiln run`; no side effects. */
#ifndef KILN_JAIL_OPTIONS_H
#define KILN_JAIL_OPTIONS_H

#include <stddef.h>

#include "jail/jail_config.h"

/* Each returns 0 or -EINVAL with a one-line reason (naming the option) in `err`. */
int parse_jail_cgroup_option(const char *arg, struct jail_cgroup_config *cg, char *err,
                             size_t errlen);
int parse_jail_rlimit_option(const char *arg, struct jail_rlimit_config *rl, char *err,
                             size_t errlen);
/* --jail-uid / --jail-gid: a number from 1 to 2^32-2 (0 is root, -1 means "unchanged"). */
int parse_jail_id(const char *opt, const char *arg, uint32_t *id, char *err, size_t errlen);

#endif
