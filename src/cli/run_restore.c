/*
 * `kiln run --restore DIR`: continue a VM from a snapshot directory (DIR/state and
 * DIR/memory) in this process. The snapshot decides memory size and vCPUs; backends
 * (disks, network, vsock) would be given again on the command line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/exit_codes.h"
#include "cli/run_vm.h"
#include "snapshot/snapshot.h"
#include "util.h"
#include "vmm/vm_config.h"

/* What the command line asked for that a snapshot cannot take. */
static int check_restore_options(const struct vm_config *cfg)
{
    const char *bad = cfg->kernel_path   ? "--kernel"
                      : cfg->initrd_path ? "--initrd"
                      : cfg->config_file ? "--config-file"
                                         : NULL;
    if (bad)
        log_error("--restore: %s cannot be combined with a snapshot, which has its own kernel "
                  "in its memory",
                  bad);
    return bad ? -EINVAL : 0;
}

int restore_and_run(struct vm_config *cfg, const char *state_path, const char *mem_path,
                    const struct run_hooks *hooks)
{
    if (check_restore_options(cfg) < 0)
        return KILN_EXIT_USAGE;
    struct snapshot *snap = calloc(1, sizeof(*snap));
    if (!snap)
        return KILN_EXIT_RESOURCES;
    char err[512];
    int status;
    uint64_t t0 = monotonic_ns();
    int ret = snapshot_read(state_path, snap, err, sizeof(err));
    if (ret < 0) {
        log_error("snapshot '%s': %s", state_path, err);
        status = ret == -ENOMEM ? KILN_EXIT_RESOURCES : KILN_EXIT_BAD_IMAGE;
        goto out;
    }
    log_verbose("snapshot '%s' checked in %.3f ms", state_path,
                (double)(monotonic_ns() - t0) / 1e6);
    cfg->memory = snap->memory;
    cfg->cpus = snap->ncpus;
    cfg->restore = snap;
    cfg->restore_state_path = state_path;
    cfg->restore_mem_path = mem_path;
    status = run_vm(cfg, NULL, hooks, NULL);
    cfg->restore = NULL;
out:
    snapshot_free(snap);
    free(snap);
    return status;
}

int run_restored(struct vm_config *cfg)
{
    if (check_restore_options(cfg) < 0)
        return KILN_EXIT_USAGE;
    if (cfg->api_sock)
        return run_controlled(cfg, NULL);
    char state_path[4200], mem_path[4200];
    if (snapshot_dir_paths(cfg->restore_dir, state_path, sizeof(state_path), mem_path,
                           sizeof(mem_path)) < 0) {
        log_error("--restore: path too long");
        return KILN_EXIT_USAGE;
    }
    return restore_and_run(cfg, state_path, mem_path, NULL);
}
