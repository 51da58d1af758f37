/*
 * The virtual machine: all of its state hangs off one struct vm, passed explicitly. No
 * file-scope state anywhere, so a VM can be paused, saved and rebuilt as data.
 */
#ifndef KILN_VM_H
#define KILN_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "console/console.h"
#include "hw/i8042.h"
#include "hw/mc146818.h"
#include "hw/pci.h"
#include "hw/pm.h"
#include "hw/serial8250.h"
#include "mem/guest_mem.h"
#include "util.h"
#include "vmm/bus.h"
#include "vmm/event_loop.h"
#include "vmm/irq_routing.h"
#include "vmm/kvm.h"
#include "vmm/vcpu.h"
#include "vmm/vm_config.h"

/* Why the VM stopped running; the first request wins. */
enum vm_stop_reason {
    VM_STOP_NONE = 0,
    VM_STOP_POWEROFF, /* guest powered off */
    VM_STOP_RESET,    /* guest asked for a reset (reboot) */
    VM_STOP_QUIT,     /* the user quit (Ctrl-A x, SIGTERM, SIGINT) */
    VM_STOP_FAILED,   /* KVM or the VMM failed; the message was logged */
};

struct boot_images;
struct virtio_device;

#define VM_MAX_VIRTIO_DEVICES 24

struct vm {
    const struct vm_config *config;
    const struct boot_images *images; /* kernel, initrd and command line, loaded at each boot */
    struct kvm kvm;
    int fd;
    struct guest_mem mem;
    struct bus pio_bus;
    struct bus mmio_bus;
    struct vcpu *vcpus;
    unsigned ncpus;

    struct serial8250 com1;
    struct mc146818 rtc;
    struct i8042 i8042;
    struct pci_bus pci;
    struct pm pm;
    struct console console;
    struct irq_routing routing;
    struct virtio_device *virtio[VM_MAX_VIRTIO_DEVICES];
    unsigned nvirtio;
    uint32_t next_bar; /* next free address in the PCI MMIO window */
    /* Where console input goes: COM1, or a virtio-console port with --console virtio. */
    size_t (*console_receive)(void *opaque, const uint8_t *buf, size_t len);
    void *console_receive_opaque;

    struct event_loop loop;
    int signal_fd;       /* SIGINT, SIGTERM, SIGHUP: the user wants the VM gone */
    int rx_ready_fd;     /* the UART drained its receive FIFO: feed it pending input */
    int stop_eventfd;    /* written when a stop is requested, wakes the main loop */
    int power_button_fd; /* written by vm_power_button: the main loop presses the button */
    _Atomic int stop_reason;
    unsigned boots; /* how many times the guest was started (resets included) */
    bool confined;  /* the seccomp filters are on (they stay on across resets) */

    /*
     * Pause: vCPU threads park outside KVM_RUN while `paused` is set (vm_pause/vm_resume).
     * run_lock guards these fields and vm->fd against a concurrent teardown.
     */
    pthread_mutex_t run_lock;
    pthread_cond_t run_cond;
    _Atomic bool paused;
    unsigned vcpus_running; /* vCPU threads inside their run loop */
    unsigned vcpus_parked;  /* of those, parked by a pause */
    struct vm_paused_clock {
        bool saved;
        unsigned boot;    /* vm->boots when it was saved: a reboot makes it stale */
        uint64_t clock;   /* KVM_GET_CLOCK at pause, ns */
    } paused_clock;
    /*
     * Snapshots: once a VM has been saved (or was restored), KVM logs the pages the guest
     * dirties, so that a diff snapshot can hold only those; `snapshot_base` is the snapshot
     * they are relative to. A reset makes the base meaningless (RAM starts over).
     */
    bool dirty_log;
    struct vm_snapshot_base {
        bool valid;
        uint64_t id;
        char state_path[4096];
        char mem_path[4096];
    } snapshot_base;
    /* Called on the main thread each time the guest has been booted (resets included). */
    void (*on_boot)(struct vm *vm, void *opaque);
    void *on_boot_opaque;

    uint64_t unhandled_pio;
    uint64_t unhandled_mmio;
    struct ratelimit unhandled_log;
    uint64_t start_ns;
};

/*
 * Builds what lives across guest resets: memory, devices, console, event loop. `kvm` must
 * be open already (its ownership passes to the VM). Returns 0 or a negative errno.
 */
int vm_create(struct vm *vm, const struct vm_config *config, struct kvm *kvm,
              const struct boot_images *images);
/*
 * Boots the guest and runs it until it powers off, fails or the user quits; a guest reset
 * reboots it in place unless config->no_reboot. -ENOEXEC and friends mean the kernel could
 * not be loaded (already logged).
 */
int vm_run(struct vm *vm, enum vm_stop_reason *reason);
void vm_destroy(struct vm *vm);

/* Asks every vCPU to stop; safe from any thread, including vCPU threads and device code. */
void vm_request_stop(struct vm *vm, enum vm_stop_reason reason);

/*
 * Pause and resume (any thread but a vCPU's). vm_pause returns once every vCPU thread is
 * parked outside KVM_RUN with its pending I/O completed, so the VM's state can be read;
 * it returns -ESHUTDOWN if the VM is stopping. The guest's kvmclock does not advance
 * while paused. Both are idempotent.
 */
int vm_pause(struct vm *vm);
int vm_resume(struct vm *vm);
bool vm_is_paused(struct vm *vm);

/*
 * Turns on dirty-page logging for every RAM slot, KVM's and kiln's own (or, when it is on,
 * clears the logs): from now on vm_dirty_log_collect returns what was written. Call with
 * run_lock held and the VM paused. Returns 0 or -errno.
 */
int vm_dirty_log_start(struct vm *vm);
/*
 * The pages written since the last collect or start, by the guest (KVM_GET_DIRTY_LOG) and
 * by kiln's devices (mem/dirty.h), ORed into `bitmap` (guest_dirty_words(size) words, one
 * bit per page of region `region`) and cleared. The guest may run meanwhile. 0 or -errno.
 */
int vm_dirty_log_collect(struct vm *vm, unsigned region, uint64_t *bitmap);

/* Called by a vCPU thread between exits: parks it while the VM is paused. */
void vm_vcpu_park_if_paused(struct vm *vm, struct vcpu *vcpu);
/* A vCPU thread enters / leaves its run loop. */
void vm_vcpu_running(struct vm *vm, bool running);

/*
 * Ctrl+Alt+Del on the PS/2 keyboard (any thread). -ENODEV: no guest driver enabled the
 * keyboard; -EBUSY: its buffer is full; -ESHUTDOWN: the VM is stopping or resetting.
 */
int vm_send_ctrl_alt_del(struct vm *vm);

/*
 * Adds a virtio device whose ops/opaque/host_features are set: assigns its BAR and hooks it
 * to the event loop. It is attached to the KVM VM at every boot. Returns 0 or -errno.
 */
int vm_add_virtio(struct vm *vm, struct virtio_device *vdev);

/* Creates the virtio devices the configuration asks for. Returns 0 or -errno (logged). */
int vm_add_devices(struct vm *vm);

/*
 * Presses the ACPI power button (a Generic Event Device interrupt that notifies the DSDT's
 * PNP0C0C device): a guest that handles it shuts down in order. Safe from any thread; the
 * press is delivered by the main loop while the guest runs. A guest whose button driver
 * is not loaded yet does not see it.
 */
void vm_power_button(struct vm *vm);

/* The console input sink can take more bytes again (any thread). */
void vm_console_rx_ready(struct vm *vm);

/* Port and MMIO exits from vCPU threads. */
void vm_handle_pio(struct vm *vm, uint16_t port, uint8_t *data, uint32_t len, bool is_write);
void vm_handle_mmio(struct vm *vm, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
