/* Booting one configured VM on the main thread; shared by plain `kiln run` and the API. */
#ifndef KILN_RUN_VM_H
#define KILN_RUN_VM_H

#include <stdint.h>

#include "arch/x86/boot.h"

struct vm;
struct vm_config;
struct jail;

struct run_hooks {
    void (*booted)(struct vm *vm, void *opaque);   /* after each boot, resets included */
    void (*finished)(struct vm *vm, void *opaque); /* the VM stopped; it is destroyed next */
    void *opaque;
};

/*
 * Loads and checks the kernel and initrd, builds the VM and runs it until it stops.
 * Returns the process exit status (cli/exit_codes.h); errors are logged. `hooks` may be NULL.
 */
int run_configured(struct vm_config *cfg, const struct run_hooks *hooks);

/*
 * Builds the VM and runs it until it stops; `img` is NULL for a VM restored from a
 * snapshot. Returns the exit status.
 */
struct boot_images;
int run_vm(struct vm_config *cfg, struct boot_images *img, const struct run_hooks *hooks,
           const struct jail *jail);

/*
 * run_configured in two steps, for a VM whose jail must be entered before its API thread
 * starts: run_prepare loads the images, builds the VM, opens its devices and enters `jail`
 * (if not NULL); run_prepared runs it to its end. run_prepare returns KILN_EXIT_OK or the
 * exit status (logged, nothing left to free); KILN_EXIT_JAIL means the process may be
 * half-confined and must not try again.
 */
struct run_prepared {
    struct vm *vm;
    uint8_t *kernel, *initrd;
    struct boot_images img;
};
int run_prepare(struct vm_config *cfg, const struct jail *jail, struct run_prepared *p);
int run_prepared(struct run_prepared *p, const struct run_hooks *hooks);
/* A prepared VM that will not run after all. */
void run_prepared_discard(struct run_prepared *p);

/* `kiln run --restore DIR` (run_restore.c). Returns the exit status. */
int run_restored(struct vm_config *cfg);
/*
 * Reads and checks the snapshot, then runs the VM it describes (paused at first if
 * cfg->restore_paused). Returns the exit status; 3 for an unusable snapshot.
 */
int restore_and_run(struct vm_config *cfg, const char *state_path, const char *mem_path,
                    const struct run_hooks *hooks);

/*
 * `kiln run --incoming tcp:ADDR:PORT` (run_incoming.c). incoming_check refuses options a
 * migration cannot take (exit status 2); incoming_listen opens the listening socket (or
 * -errno, logged); incoming_and_run accepts one source on it, receives the VM and runs
 * it. `hooks` (the API's, or NULL) see the VM once it runs here. Returns the exit status.
 */
int incoming_check(const struct vm_config *cfg);
int incoming_listen(const char *where);
int incoming_and_run(struct vm_config *cfg, int lfd, const struct run_hooks *hooks);

/*
 * `kiln run --api-sock` / `--config-file` (run_control.c). Returns the exit status. With
 * `jail` (only with --api-sock alone), the API is served by the main thread until
 * InstanceStart, which builds the VM and enters the jail; the API thread starts after that.
 */
int run_controlled(struct vm_config *cfg, const struct jail *jail);

#endif
