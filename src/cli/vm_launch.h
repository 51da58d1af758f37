#ifndef KILN_CLI_VM_LAUNCH_H
#define KILN_CLI_VM_LAUNCH_H

#include <sys/types.h>

#include "cli/vm_ref.h"

/*
 * Runs /proc/self/exe with `args` (argv, NULL-terminated) as the VM process of `ref`: no
 * controlling terminal, a session of its own, stdin /dev/null, stdout and stderr to the VM's
 * kiln.log, working directory the VM's directory. The caller becomes a child subreaper, so
 * the process's early exit can still be collected. Returns its pid or a negative errno.
 */
pid_t vm_launch(const struct vm_ref *ref, char **args);

/*
 * Launches `kiln run RUN_ARGS... --api-sock ... --console-sock ... --console-log ... --id
 * NAME` for the locked VM `ref`, records its runtime and waits up to `wait_ms` for its API
 * to answer. Returns minus the pid (<= 0) once it answers, else an exit status (> 0,
 * logged; the process is killed and the runtime files removed; a VM running already is 8).
 */
int vm_launch_serving(const struct vm_ref *ref, const char *const *run_args, unsigned nargs,
                      unsigned wait_ms);

/*
 * vm_launch_serving for `kiln restore` and `kiln receive`: `kiln run OPT VALUE` (--restore
 * DIR, --incoming ADDR) plus the devices of NAME's definition, which such a VM needs again.
 */
int vm_launch_continuing(const struct vm_ref *ref, const char *opt, const char *value,
                         unsigned wait_ms);

#endif
