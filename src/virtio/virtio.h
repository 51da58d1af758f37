/*
 * A virtio device as the transport sees it (virtio 1.2 §2-§4.1): device type, queues,
 * feature bits and configuration space, plus the hooks each device implements. The PCI
 * transport (virtio_pci.c) owns everything guest-facing that is common to all devices.
 */
#ifndef KILN_VIRTIO_H
#define KILN_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hw/msix.h"
#include "util.h"
#include "hw/pci.h"
#include "virtio/virtqueue.h"
#include "vmm/irq.h"

struct guest_mem;
struct event_loop;
struct irq_routing;
struct virtio_device;
struct state_reader;
struct state_writer;

#define VIRTIO_MAX_QUEUES 8

/* Feature bits every kiln device offers (the transport adds them). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_ACCESS_PLATFORM 33

/* Device status bits, §2.1. */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

struct virtio_device_ops {
    const char *name;
    uint16_t device_id; /* virtio device type: 1 net, 2 block, 3 console, 4 rng, 19 vsock */
    unsigned num_queues;
    uint16_t queue_size; /* largest size offered for each queue */
    /* Device configuration space (§2.5); offsets and lengths are checked by the transport. */
    uint32_t config_size;
    void (*config_read)(struct virtio_device *vdev, uint32_t offset, uint8_t *data, uint32_t len);
    void (*config_write)(struct virtio_device *vdev, uint32_t offset, const uint8_t *data,
                         uint32_t len);
    /* DRIVER_OK: queues are set up; start the backend. Non-zero marks the device broken. */
    int (*activate)(struct virtio_device *vdev);
    /* The driver reset the device (status 0): stop using the queues, drop in-flight work. */
    void (*reset)(struct virtio_device *vdev);
    /* The driver kicked queue `q`. Runs on the event-loop thread with the device lock held. */
    void (*queue_notify)(struct virtio_device *vdev, unsigned q);
    /* kiln exits: close the backend and free the device (vdev->opaque). NULL: free(opaque). */
    void (*destroy)(struct virtio_device *vdev);
    /*
     * Snapshots (docs/snapshot.md). A device without `idle` cannot be saved yet. `idle`
     * (lock held): no I/O in flight that could still write guest memory. `save` writes the
     * device's own fields (at most VIRTIO_SAVED_DEVICE_MAX bytes); `check` (lock held) gets
     * them back at restore and refuses a backend that does not match (-EINVAL).
     */
    bool (*idle)(struct virtio_device *vdev);
    void (*save)(struct virtio_device *vdev, struct state_writer *w);
    int (*check)(struct virtio_device *vdev, struct state_reader *r);
};

/* Transport state the guest can see: plain data, savable. */
struct virtio_pci_state {
    uint32_t device_feature_select;
    uint32_t driver_feature_select;
    uint64_t driver_features;
    uint16_t config_msix_vector;
    uint8_t status;
    uint8_t config_generation;
    uint16_t queue_select;
    uint8_t isr;
    uint16_t queue_msix_vector[VIRTIO_MAX_QUEUES];
    uint16_t queue_enable[VIRTIO_MAX_QUEUES];
    struct {
        uint8_t bar;
        uint32_t offset;
        uint32_t length;
    } cfg_access; /* VIRTIO_PCI_CAP_PCI_CFG window */
};

#define VIRTIO_SAVED_DEVICE_MAX 64

/* One virtio device as a snapshot holds it, read back and range-checked (not yet against
 * the device it is restored into: virtio_pci_restore does that). */
struct virtio_pci_saved {
    uint16_t device_id;
    uint8_t num_queues;
    struct virtio_pci_state state;
    struct virtq_state queues[VIRTIO_MAX_QUEUES];
    bool broken[VIRTIO_MAX_QUEUES];
    struct msix_state msix;
    uint8_t device[VIRTIO_SAVED_DEVICE_MAX]; /* the device's own fields */
    uint32_t device_len;
};

struct virtio_kick {
    struct virtio_device *vdev;
    unsigned queue;
};

struct virtio_device {
    const struct virtio_device_ops *ops;
    void *opaque;           /* the device's own state */
    uint64_t host_features; /* device-specific bits; the transport adds its own */
    pthread_mutex_t lock;   /* guards everything below and the device's own state */
    struct virtio_pci_state state;
    struct virtq queues[VIRTIO_MAX_QUEUES];
    int kick_fd[VIRTIO_MAX_QUEUES]; /* ioeventfd per queue */
    struct virtio_kick kick[VIRTIO_MAX_QUEUES];
    bool ioeventfd_registered;
    uint32_t ioeventfd_bar; /* BAR address the ioeventfds were registered at */
    struct pci_device pci;
    struct msix msix;
    struct irq_line intx;
    bool intx_level;
    bool bus_master;            /* PCI command bit: may the device touch guest memory */
    struct ratelimit error_log; /* guest mistakes are logged, but not without bound */
    /* The VM's pieces the transport uses. */
    int vm_fd;
    const struct guest_mem *mem;
    struct event_loop *loop;
    struct irq_routing *routing;
    uint32_t bar_addr;
    bool attached;
    bool frozen; /* a snapshot is being taken: kicks wait (virtio_pci_thaw re-kicks) */
};

/*
 * Creates the transport for `vdev` (ops, opaque and host_features set by the caller): its
 * kick eventfds, registered on `loop`. Once per device. Returns 0 or a negative errno.
 */
int virtio_pci_init(struct virtio_device *vdev, const struct guest_mem *mem,
                    struct event_loop *loop, uint32_t bar_addr);
void virtio_pci_destroy(struct virtio_device *vdev);

/*
 * Plugs the device into a freshly created KVM VM in power-on state: PCI function on `bus`,
 * MSI-X vectors routed through `routing`, INTx through `intx` (its GSI is set from the
 * slot). Called at every boot, since a guest reset rebuilds the KVM VM.
 */
int virtio_pci_attach(struct virtio_device *vdev, int vm_fd, struct pci_bus *bus,
                      struct irq_routing *routing, const struct irq_line *intx);
/* Undoes attach: device reset, irqfds and ioeventfds released. */
void virtio_pci_detach(struct virtio_device *vdev);

/*
 * Snapshots. freeze: waits (up to a few seconds) until the device is idle, then holds its
 * kicks back so guest memory stays as saved; -ENOTSUP if the device cannot be saved yet,
 * -EBUSY if it does not settle. thaw: undoes it. save: the transport and device state of a
 * frozen device. restore: into a device attached to a fresh VM whose PCI config space is
 * restored already; checks everything against this device and guest memory first.
 */
#define VIRTIO_PCI_STATE_VERSION 1
int virtio_pci_freeze(struct virtio_device *vdev);
void virtio_pci_thaw(struct virtio_device *vdev);
void virtio_pci_save(struct virtio_device *vdev, struct state_writer *w);
int virtio_pci_saved_load(struct virtio_pci_saved *s, struct state_reader *r);
int virtio_pci_restore(struct virtio_device *vdev, const struct virtio_pci_saved *s, char *err,
                       size_t errlen);

/* Size of the BAR the transport needs. */
#define VIRTIO_PCI_BAR_SIZE 0x8000

/* For devices: interrupt the driver about queue `q` if it wants one (lock held). */
void virtio_queue_interrupt(struct virtio_device *vdev, unsigned q);
/* For devices: the configuration space changed (lock held). */
void virtio_config_interrupt(struct virtio_device *vdev);
/* For devices: the driver broke the rules; stop and report DEVICE_NEEDS_RESET (lock held). */
void virtio_set_needs_reset(struct virtio_device *vdev, const char *why);
bool virtio_is_active(const struct virtio_device *vdev);
bool virtio_has_feature(const struct virtio_device *vdev, unsigned bit);

#endif
