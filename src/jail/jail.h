/*
 * `kiln run --jail DIR`: the VM process gives up everything it does not need before the guest
 * runs. The sequence, in the order it happens:
 *
 *   jail_spawn (root, single-threaded):
 *     join the network namespace /run/netns/NAME (so tap devices made there are found),
 *     create the VM's cgroup v2, unshare the PID namespace and fork. The parent stays
 *     outside as a small supervisor: it forwards SIGINT/SIGTERM/SIGHUP, waits, reports an
 *     OOM kill, removes the cgroup and exits with the VM's status. The child (PID 1 of the
 *     new namespace) joins the cgroup before any guest memory exists, then unshares the
 *     mount, IPC, UTS and cgroup namespaces.
 *   the child opens everything as root: kernel, initrd, /dev/kvm, guest memory, console log,
 *     disks, tap devices, sockets (the ordinary `kiln run` path, unchanged);
 *   jail_enter (still single-threaded, before any vCPU starts):
 *     pivot_root into DIR (bind-mounted read-only, nosuid, nodev, noexec; the host's tree is
 *     detached, no /proc), drop to the jail uid/gid with no supplementary groups, clear
 *     every capability set (bounding and ambient included), set no_new_privs, make the
 *     process undumpable, and apply rlimits.
 */
#ifndef KILN_JAIL_H
#define KILN_JAIL_H

#include <limits.h>
#include <stddef.h>

#include "jail/cgroup.h"
#include "jail/jail_config.h"

struct vm_config;

struct jail {
    const struct jail_config *cfg;
    char root[PATH_MAX]; /* DIR, resolved */
    struct cgroup cgroup;
};

#define JAIL_CHILD 0  /* jail_spawn: this is the VM process; go on and build the VM */
#define JAIL_PARENT 1 /* jail_spawn: the VM process has ended; exit with *status */

/*
 * Forks the VM process into its namespaces and cgroup (see above). Returns JAIL_CHILD,
 * JAIL_PARENT with the VM's exit status in *status, or a negative errno (logged).
 */
int jail_spawn(struct jail *j, const struct jail_config *cfg, int *status);

/*
 * Rewrites the paths in `cfg` that the VM uses after it is jailed: disk paths become absolute
 * (they are opened after the working directory moves to DIR), the vsock socket path becomes
 * relative to DIR (it must lie inside DIR: guest connections reach it from inside the jail).
 * Returns 0 or -EINVAL with a reason in `err`.
 */
int jail_rewrite_paths(const struct jail *j, struct vm_config *cfg, char *err, size_t errlen);

/* Moves the working directory to DIR, where device paths are now relative. 0 or -errno. */
int jail_chdir(const struct jail *j);

/*
 * Pivots into DIR and drops every privilege (see above). Must run before the process
 * starts a thread. Returns 0 or a negative errno (logged); on failure the caller must not
 * run the guest.
 */
int jail_enter(const struct jail *j);

#endif
