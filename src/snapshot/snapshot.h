/*
 * Snapshots of a whole VM (docs/snapshot.md): a state file (snapshot/state_file.h) with one
 * section per component, and a memory file holding guest RAM (sparse: zero pages are holes).
 * Loading parses and checks every section into a plain `struct snapshot` first; only a
 * snapshot that passed all checks is applied to KVM and the devices.
 */
#ifndef KILN_SNAPSHOT_H
#define KILN_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "arch/x86/kvm_state.h"
#include "hw/i8042.h"
#include "hw/mc146818.h"
#include "hw/pci.h"
#include "hw/pm.h"
#include "hw/serial8250.h"
#include "mem/guest_mem.h"
#include "virtio/virtio.h"

struct vm;

#define SNAPSHOT_ARCH "x86_64"
#define SNAPSHOT_MAX_MEMORY (1ULL << 40)
#define SNAPSHOT_STATE_NAME "state"
#define SNAPSHOT_MEMORY_NAME "memory"

#define SNAPSHOT_PATH_MAX 4096
#define SNAPSHOT_MAX_VIRTIO 24 /* = VM_MAX_VIRTIO_DEVICES */
#define SNAPSHOT_MAX_CHAIN 32 /* diffs on diffs: how deep a restore follows bases */

struct snapshot_region {
    uint64_t gpa;
    uint64_t size;
    uint64_t offset; /* in the memory file */
    /* Diff snapshots: bit per 4 KiB page, set for the pages the memory file holds. */
    uint8_t *dirty;
    size_t dirty_len;
};

enum snapshot_kind {
    SNAPSHOT_FULL = 0, /* the memory file holds all of RAM */
    SNAPSHOT_DIFF = 1, /* only the pages written since the base snapshot */
};

struct snapshot {
    uint64_t id; /* random, names this snapshot to the diffs made on top of it */
    enum snapshot_kind kind;
    uint64_t base_id; /* diff: the base snapshot's id and files (absolute paths) */
    char base_state_path[SNAPSHOT_PATH_MAX];
    char base_mem_path[SNAPSHOT_PATH_MAX];
    uint64_t memory; /* bytes of guest RAM */
    unsigned ncpus;
    uint64_t mem_file_size;
    struct snapshot_region regions[GUEST_MEM_MAX_REGIONS];
    unsigned nregions;
    struct x86_vm_state vm;
    struct x86_vcpu_state *vcpus; /* ncpus of them */
    struct serial8250_state com1;
    struct mc146818_state rtc;
    struct i8042_state i8042;
    struct pm_state pm;
    struct pci_bus_state pci;
    struct virtio_pci_saved virtio[SNAPSHOT_MAX_VIRTIO]; /* in vm->virtio order */
    unsigned nvirtio;
};

/*
 * Parses and checks a state file's bytes into `snap` (libFuzzer-ready: no KVM, no files).
 * Returns 0, or -EBADMSG / -ENOMEM with a one-line reason in `err`.
 */
int snapshot_parse(const uint8_t *data, size_t len, struct snapshot *snap, char *err,
                   size_t errlen);
/* Reads and parses the state file at `path`. */
int snapshot_read(const char *path, struct snapshot *snap, char *err, size_t errlen);
void snapshot_free(struct snapshot *snap);

/*
 * Saves a paused VM: guest RAM to `mem_path`, then the state file to `state_path` (the
 * state file's rename is the commit point). Virtio devices are frozen meanwhile (their I/O
 * in flight completes first); only those with snapshot support (blk, rng) can be saved. A diff writes only the pages dirtied since the
 * VM's previous snapshot (the last one taken, or the one it was restored from) and refers
 * to it. -EBUSY if the VM is not paused, -ENOTSUP if a device cannot be saved yet or a
 * diff has no base; the reason is in `err`.
 */
int snapshot_create(struct vm *vm, enum snapshot_kind kind, const char *state_path,
                    const char *mem_path, char *err, size_t errlen);

/*
 * Live migration (migrate/send.c) sends the same state without a memory file. Freeze
 * waits until every virtio device is idle and holds its queue kicks back (thaw releases
 * `frozen` of them, also after a failure); capture builds the state file of a paused,
 * frozen VM in malloc'd memory, and restarts the dirty log. 0 or -errno with `err`.
 */
int snapshot_freeze(struct vm *vm, unsigned *frozen, char *err, size_t errlen);
void snapshot_thaw(struct vm *vm, unsigned frozen);
int snapshot_capture(struct vm *vm, uint8_t **data, size_t *len, char *err, size_t errlen);

/* DIR/state and DIR/memory. -ENAMETOOLONG if they do not fit. */
int snapshot_dir_paths(const char *dir, char *state, size_t slen, char *mem, size_t mlen);

/*
 * Maps the memory file MAP_PRIVATE after checking its size against the snapshot; for a
 * diff, maps its chain of bases first and reads the diff's pages over them.
 */
int snapshot_map_memory(const struct snapshot *snap, const char *mem_path,
                        struct guest_mem *mem, char *err, size_t errlen);

/*
 * Puts the snapshot's state into a VM whose KVM objects and vCPUs were just created (in
 * place of loading a kernel): irqchip and PIT, each vCPU, the devices, then the clock.
 */
int snapshot_apply(struct vm *vm, const struct snapshot *snap, char *err, size_t errlen);

#endif
