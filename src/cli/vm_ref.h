/*
 * What every lifecycle command does first: find the state directory, check the VM name,
 * load the definition, see whether the VM runs, and talk to its API socket.
 */
#ifndef KILN_VM_REF_H
#define KILN_VM_REF_H

#include <stdbool.h>

#include <jansson.h>

#include "cli/state_dir.h"

struct api_client;

struct vm_ref {
    char state_dir[STATE_PATH_MAX];
    char name[VM_NAME_MAX + 1];
    char dir[STATE_PATH_MAX];
    int lock_fd; /* -1 unless vm_ref_lock() succeeded */
};

/* The state directory (see state_dir_resolve); prints the error and returns an exit code. */
int vm_state_dir(char *buf, size_t len);

/* Fills ref for NAME in state_dir without printing. Returns 0, -EINVAL (bad name), or
 * -ENAMETOOLONG. */
int vm_ref_init(struct vm_ref *ref, const char *state_dir, const char *name);

/* True when the VM has a definition. */
bool vm_ref_defined(const struct vm_ref *ref);

/*
 * Resolves NAME. With must_exist, a VM without a definition is an error. Prints the error
 * and returns a kiln exit code (KILN_EXIT_OK on success).
 */
int vm_ref_open(const char *name, bool must_exist, struct vm_ref *ref);

/* Takes the VM's lock; prints the error and returns an exit code. */
int vm_ref_lock(struct vm_ref *ref);

/*
 * For commands that act on one VM: the single NAME operand left after the options (else
 * `usage` goes to stderr and the status is 2), opened and locked. `ref` can be closed
 * whatever this returns.
 */
int vm_ref_open_operand(int argc, char **argv, const char *usage, struct vm_ref *ref);
void vm_ref_close(struct vm_ref *ref);

/*
 * The process of a locked VM, opened for signals and waits. When it does not run, its stale
 * runtime files are removed, the error is printed and KILN_EXIT_VM_STATE returned.
 */
struct vm_process;
int vm_ref_open_process(const struct vm_ref *ref, struct vm_process *p);

/* DIR/FILE of this VM. */
int vm_ref_path(const struct vm_ref *ref, const char *file, char *buf, size_t len);

/* The definition (config.json), or NULL with an error printed. */
json_t *vm_ref_definition(const struct vm_ref *ref);

/* A client of the VM's API socket, or NULL with an error printed. */
struct api_client *vm_ref_api(const struct vm_ref *ref, long timeout_ms);

/*
 * The state as `kiln ls` shows it: "stopped", or for a running process the API's view:
 * "running", "paused", "starting" (not yet InstanceStart), "unresponsive" (no answer).
 */
const char *vm_live_state(const struct vm_ref *ref, bool running);

/* Prints the last lines of the VM's kiln.log to stderr, to explain a failure. */
void vm_ref_print_log_tail(const struct vm_ref *ref);

#endif
