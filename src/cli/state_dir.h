/*
 * The state directory of the lifecycle commands: one directory per VM name holding its
 * definition (config.json) and, while it runs, its runtime files.
 */
#ifndef KILN_STATE_DIR_H
#define KILN_STATE_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"
#include <sys/types.h>

#define VM_NAME_MAX 64
#define STATE_PATH_MAX 4096

/* Files inside a VM's directory. */
#define VM_FILE_CONFIG "config.json"
#define VM_FILE_RUNTIME "runtime.json"
#define VM_FILE_LOCK "lock"
#define VM_FILE_API_SOCK "api.sock"
#define VM_FILE_CONSOLE_SOCK "console.sock"
#define VM_FILE_CONSOLE_LOG "console.log"
#define VM_FILE_KILN_LOG "kiln.log"

/*
 * Checks a VM name: 1..VM_NAME_MAX characters of [A-Za-z0-9_.-], not starting with '.'
 * or '-' (no hidden files, no option look-alikes, no "." or ".."). Returns 0 or -EINVAL.
 */
int vm_name_check(const char *name);

/*
 * The state directory from the environment: KILN_STATE_DIR, else /var/lib/kiln for root,
 * else $XDG_STATE_HOME/kiln, else $HOME/.local/state/kiln. `env` is getenv (injectable for
 * tests). Returns 0 or -ENAMETOOLONG / -ENOENT (no HOME for a non-root user).
 */
int state_dir_resolve(char *buf, size_t len, uid_t uid, const char *(*env)(const char *));

/* Creates the state directory and its parents (mode 0700 for the last). Returns 0 or -errno. */
int state_dir_ensure(const char *dir);

/* DIR/NAME/FILE (FILE may be NULL for the VM's directory). Returns 0 or -ENAMETOOLONG. */
int vm_path(char *buf, size_t len, const char *state_dir, const char *name, const char *file);

/* What a started VM left behind: written by `kiln start`, removed when it is seen dead. */
struct vm_runtime {
    pid_t pid;
    uint64_t proc_start_ticks; /* /proc/PID/stat field 22: tells a reused pid apart */
    int64_t started_at;        /* wall clock, seconds since the epoch */
};

/* Writes NAME's runtime.json atomically. Returns 0 or -errno. */
int vm_runtime_write(const char *vm_dir, const struct vm_runtime *rt);
/* Reads it. Returns 0, -ENOENT when the VM was never started (or was cleaned), or -errno. */
int vm_runtime_read(const char *vm_dir, struct vm_runtime *rt);

/* A process's start time in clock ticks since boot, from /proc. Returns 0 or -errno. */
int proc_start_ticks(pid_t pid, uint64_t *ticks);

/* True when rt's process still exists and is the one that was started (not a reused pid). */
bool vm_runtime_alive(const struct vm_runtime *rt);

/* Removes the runtime files of a VM whose process is gone (logs are kept). */
void vm_runtime_clean(const char *vm_dir);

/*
 * Loads a VM's runtime state and cleans it if its process is dead (when the caller holds
 * the VM's lock, or the lock is free). Returns 1 when the VM runs (rt filled), else 0.
 */
int vm_runtime_probe(const char *vm_dir, struct vm_runtime *rt, bool have_lock);

/*
 * Takes the VM's lock (flock on DIR/lock, without waiting), so that two kiln commands
 * cannot change one VM at once. Returns the lock fd, -EBUSY when another command holds
 * it, or -errno. Closing the fd releases it.
 */
int vm_lock(const char *vm_dir);


#endif
