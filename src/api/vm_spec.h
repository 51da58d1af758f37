/*
 * A VM's configuration as the API and config files build it: a struct vm_config whose
 * strings live in buffers of their own (a vm_config from the command line points into
 * argv), plus the identifiers Firecracker's schema names devices by.
 */
#ifndef KILN_VM_SPEC_H
#define KILN_VM_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "vmm/vm_config.h"

#define VM_SPEC_PATH_MAX 4096
#define VM_SPEC_CMDLINE_MAX 4096
#define VM_SPEC_ID_MAX 64 /* drive_id, iface_id */

struct vm_spec {
    struct vm_config cfg; /* kernel_path, initrd_path, cmdline, console_log point below */
    char kernel_path[VM_SPEC_PATH_MAX];
    char initrd_path[VM_SPEC_PATH_MAX];
    char cmdline[VM_SPEC_CMDLINE_MAX];
    char console_log[VM_SPEC_PATH_MAX];
    char drive_ids[VM_MAX_DISKS][VM_SPEC_ID_MAX + 1];
    bool drive_is_root[VM_MAX_DISKS];
    char iface_ids[VM_MAX_NETS][VM_SPEC_ID_MAX + 1];
    /* machine-config's track_dirty_pages, reported back: kiln can always take a Diff after
     * a Full snapshot (docs/snapshot.md), so the setting changes nothing. */
    bool track_dirty_pages;
};

/* Defaults: no kernel, 1 vCPU, 256 MiB, the default command line. */
void vm_spec_init(struct vm_spec *spec);
/*
 * Takes over a command-line configuration (strings copied). Disks are named by their id=
 * or "drive<N>", NICs "eth<N>". Returns 0 or -ENAMETOOLONG.
 */
int vm_spec_from_config(struct vm_spec *spec, const struct vm_config *cfg);
/* Copies a spec (its string pointers must point into the copy). */
void vm_spec_copy(struct vm_spec *dst, const struct vm_spec *src);
/* Sets one of the spec's strings (`field` is &spec->cfg.kernel_path...); NULL clears it. */
int vm_spec_set_string(struct vm_spec *spec, const char **field, const char *value);

/*
 * The configuration to boot from: the root drive first (so the guest names it vda), and
 * the command line adapted in `cmdline`: "pci=off" dropped (kiln's devices are on PCI;
 * *dropped_pci_off tells), "root=/dev/vda rw|ro" added for a root drive unless the command
 * line names a root itself. Returns 0 or -E2BIG.
 */
int vm_spec_boot_config(const struct vm_spec *spec, struct vm_config *out, char *cmdline,
                        size_t cmdline_len, bool *dropped_pci_off);

#endif
