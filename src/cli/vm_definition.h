/*
 * A VM's stored definition (config.json): Firecracker's config-file schema, so the same
 * file works with `kiln run --config-file`, plus kiln's extensions (see docs/cli.md).
 */
#ifndef KILN_VM_DEFINITION_H
#define KILN_VM_DEFINITION_H

#include <stddef.h>

#include <jansson.h>

#include "vmm/vm_config.h"

/*
 * Builds the definition from parsed `kiln run` options. Paths are made absolute (relative
 * to the current directory) so the definition means the same wherever it is started from;
 * files must exist. Returns NULL with a one-line reason in err.
 */
json_t *vm_definition_from_config(const struct vm_config *cfg, char *err, size_t errlen);

/* The figures `kiln ls` shows, read back from a definition; 0 when absent. */
struct vm_definition_summary {
    unsigned vcpus;
    unsigned long long mem_mib;
};
void vm_definition_summarize(const json_t *def, struct vm_definition_summary *sum);

/*
 * A definition's devices as `kiln run` options (--disk, --net, --vsock, --rng, --console),
 * for the commands that continue a saved or migrated VM (`kiln restore`, `kiln receive`):
 * they take no API configuration, and a restored VM needs the devices it was saved with.
 * The strings are the caller's to release with vm_device_args_free.
 */
#define VM_DEVICE_ARGS_MAX 64
struct vm_device_args {
    char *argv[VM_DEVICE_ARGS_MAX];
    unsigned argc;
};
int vm_definition_device_args(const json_t *def, struct vm_device_args *out, char *err,
                              size_t errlen);
void vm_device_args_free(struct vm_device_args *a);

#endif
