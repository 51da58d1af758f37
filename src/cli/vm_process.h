/* A running VM's process, held through a pidfd so a reused pid is never signalled. */
#ifndef KILN_VM_PROCESS_H
#define KILN_VM_PROCESS_H

#include <stdbool.h>

#include "cli/state_dir.h"

struct vm_process {
    int pidfd;
    pid_t pid;
};

/* Opens the process of `rt`. Returns 0, or -ESRCH when it is gone (or the pid was reused). */
int vm_process_open(const struct vm_runtime *rt, struct vm_process *p);
void vm_process_close(struct vm_process *p);

/* Sends `sig`. Returns 0 or -errno (-ESRCH: exited already). */
int vm_process_signal(const struct vm_process *p, int sig);

/* Waits up to timeout_ms for the process to exit. True when it has. */
bool vm_process_wait(const struct vm_process *p, int timeout_ms);

#endif
