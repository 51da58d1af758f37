/*
 * virtio over PCI, modern interface only (virtio 1.2 §4.1): one 32-bit memory BAR holds the
 * common configuration, ISR, device configuration, notification area and MSI-X table, each
 * described by a vendor capability. Queue kicks arrive through ioeventfds on the event
 * loop; interrupts leave through MSI-X irqfds, or INTx when the driver uses no MSI-X.
 */
#include "virtio/virtio.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "mem/guest_mem.h"
#include "snapshot/state_file.h"
#include "util.h"
#include "vmm/event_loop.h"
#include "le.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + device type: modern, non-transitional */

/* BAR0 layout. */
#define BAR_COMMON 0x0000
#define BAR_COMMON_SIZE 56
#define BAR_ISR 0x1000
#define BAR_DEVICE 0x2000
#define BAR_DEVICE_MAX 0x1000
#define BAR_NOTIFY 0x3000
#define NOTIFY_MULTIPLIER 4
#define BAR_MSIX_TABLE 0x4000
#define BAR_MSIX_PBA 0x6000

/* Capabilities in configuration space. */
#define CAP_MSIX 0x40
#define CAP_COMMON 0x50
#define CAP_ISR 0x60
#define CAP_DEVICE 0x70
#define CAP_NOTIFY 0x80
#define CAP_PCI_CFG 0x98
#define CAP_PCI_CFG_DATA (CAP_PCI_CFG + 16)

/* virtio_pci_cap.cfg_type, §4.1.4. */
#define CFG_TYPE_COMMON 1
#define CFG_TYPE_NOTIFY 2
#define CFG_TYPE_ISR 3
#define CFG_TYPE_DEVICE 4
#define CFG_TYPE_PCI 5

#define PCI_COMMAND 0x04
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS 0x06
#define PCI_STATUS_INTERRUPT 0x08

#define ISR_QUEUE 1
#define ISR_CONFIG 2

static const uint32_t class_codes[] = {
    [1] = 0x020000,  /* network controller */
    [2] = 0x010000,  /* mass storage */
    [3] = 0x078000,  /* simple communication controller */
    [4] = 0x00ff00,  /* unclassified */
    [19] = 0x00ff00, /* unclassified */
};

static uint64_t offered_features(const struct virtio_device *vdev)
{
    return vdev->host_features | 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_INDIRECT_DESC |
           1ULL << VIRTIO_F_EVENT_IDX;
}

bool virtio_has_feature(const struct virtio_device *vdev, unsigned bit)
{
    return bit < 64 && (vdev->state.driver_features >> bit & 1);
}

bool virtio_is_active(const struct virtio_device *vdev)
{
    return (vdev->state.status & VIRTIO_STATUS_DRIVER_OK) &&
           !(vdev->state.status & VIRTIO_STATUS_NEEDS_RESET);
}

/* ---- interrupts ---- */

static uint16_t pci_command(const struct virtio_device *vdev)
{
    return (uint16_t)(vdev->pci.config[PCI_COMMAND] | vdev->pci.config[PCI_COMMAND + 1] << 8);
}

/*
 * INTA# follows the ISR, unless the driver disabled INTx in the command register or uses
 * MSI-X (PCI 3.0 §6.2.2, §6.8.2). Recomputed whenever any of the three changes.
 */
static void virtio_update_intx(struct virtio_device *vdev)
{
    bool level = vdev->state.isr != 0 && !(pci_command(vdev) & PCI_COMMAND_INTX_DISABLE) &&
                 !msix_enabled(&vdev->msix);
    if (vdev->intx_level == level)
        return;
    vdev->intx_level = level;
    irq_line_set(&vdev->intx, level);
}

static void virtio_raise(struct virtio_device *vdev, uint16_t vector, uint8_t isr_bit)
{
    /* §4.1.4.5.1: the ISR bit is set even when the notification goes out as an MSI-X. */
    vdev->state.isr |= isr_bit;
    if (msix_enabled(&vdev->msix))
        msix_notify(&vdev->msix, vector);
    else
        virtio_update_intx(vdev);
}

void virtio_queue_interrupt(struct virtio_device *vdev, unsigned q)
{
    if (q < vdev->ops->num_queues && virtq_should_interrupt(&vdev->queues[q]))
        virtio_raise(vdev, vdev->state.queue_msix_vector[q], ISR_QUEUE);
}

void virtio_config_interrupt(struct virtio_device *vdev)
{
    vdev->state.config_generation++;
    if (vdev->state.status & VIRTIO_STATUS_DRIVER_OK)
        virtio_raise(vdev, vdev->state.config_msix_vector, ISR_CONFIG);
}

void virtio_set_needs_reset(struct virtio_device *vdev, const char *why)
{
    if (vdev->state.status & VIRTIO_STATUS_NEEDS_RESET)
        return;
    if (ratelimit_allow(&vdev->error_log))
        log_warn("virtio-%s: %s; the device needs a reset", vdev->ops->name, why);
    vdev->state.status |= VIRTIO_STATUS_NEEDS_RESET;
    virtio_config_interrupt(vdev);
}

/* ---- queue notifications ---- */

static void virtio_kick(void *opaque, uint32_t events);

static void virtio_ioeventfds_set(struct virtio_device *vdev, uint32_t bar, bool assign)
{
    for (unsigned q = 0; q < vdev->ops->num_queues; q++) {
        struct kvm_ioeventfd io = {
            .addr = bar + BAR_NOTIFY + q * NOTIFY_MULTIPLIER,
            .len = 2,
            .fd = vdev->kick_fd[q],
            .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
        };
        if (ioctl(vdev->vm_fd, KVM_IOEVENTFD, &io) < 0 && assign)
            log_warn("virtio-%s: ioeventfd for queue %u: %s (kicks will exit to kiln)",
                     vdev->ops->name, q, strerror(errno));
    }
}

/*
 * Kicks take the fast path (an ioeventfd, no exit to kiln) while the driver is running and
 * the BAR decodes; they follow the BAR when the guest moves it.
 */
static void virtio_sync_ioeventfds(struct virtio_device *vdev)
{
    uint32_t bar = pci_device_bar_address(&vdev->pci, 0);
    bool want = (vdev->state.status & VIRTIO_STATUS_DRIVER_OK) && bar != 0;
    if (vdev->ioeventfd_registered && (!want || bar != vdev->ioeventfd_bar)) {
        virtio_ioeventfds_set(vdev, vdev->ioeventfd_bar, false);
        vdev->ioeventfd_registered = false;
    }
    if (want && !vdev->ioeventfd_registered) {
        virtio_ioeventfds_set(vdev, bar, true);
        vdev->ioeventfd_registered = true;
        vdev->ioeventfd_bar = bar;
    }
}

static void virtio_kick_queue(struct virtio_device *vdev, unsigned q)
{
    uint64_t one = 1;
    if (write(vdev->kick_fd[q], &one, sizeof(one)) < 0) {
        /* eventfd counter overflow is impossible with single increments */
    }
}

/* ---- device reset and activation ---- */

static void virtio_reset(struct virtio_device *vdev)
{
    if (vdev->ops->reset)
        vdev->ops->reset(vdev);
    vdev->state.status = 0;
    virtio_sync_ioeventfds(vdev);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        virtq_disable(&vdev->queues[q]);
        memset(&vdev->queues[q].state, 0, sizeof(vdev->queues[q].state));
        vdev->queues[q].state.size = vdev->ops->queue_size;
        vdev->state.queue_msix_vector[q] = MSIX_NO_VECTOR;
        vdev->state.queue_enable[q] = 0;
    }
    vdev->state.status = 0;
    vdev->state.driver_features = 0;
    vdev->state.device_feature_select = 0;
    vdev->state.driver_feature_select = 0;
    vdev->state.queue_select = 0;
    vdev->state.config_msix_vector = MSIX_NO_VECTOR;
    vdev->state.isr = 0;
    virtio_update_intx(vdev);
}

static void virtio_features_ok(struct virtio_device *vdev, uint8_t *status)
{
    uint64_t f = vdev->state.driver_features;
    /* §3.1.1: the device refuses features it did not offer and legacy drivers. */
    if ((f & ~offered_features(vdev)) || !(f >> VIRTIO_F_VERSION_1 & 1))
        *status &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
}

static void virtio_driver_ok(struct virtio_device *vdev)
{
    virtio_sync_ioeventfds(vdev);
    if (vdev->ops->activate && vdev->ops->activate(vdev) != 0)
        virtio_set_needs_reset(vdev, "could not start its backend");
    /* Buffers made available before DRIVER_OK were not kicked through the ioeventfd. */
    for (unsigned q = 0; q < vdev->ops->num_queues; q++)
        if (vdev->queues[q].state.ready)
            virtio_kick_queue(vdev, q);
}

static void virtio_write_status(struct virtio_device *vdev, uint8_t status)
{
    if (status == 0) {
        virtio_reset(vdev);
        return;
    }
    uint8_t old = vdev->state.status;
    if ((status & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK))
        virtio_features_ok(vdev, &status);
    /*
     * §2.1.2: the driver never clears a status bit except by writing 0, and NEEDS_RESET is
     * the device's alone. Keeping bits sticky also means activate runs once per reset.
     */
    status = (uint8_t)((status & ~VIRTIO_STATUS_NEEDS_RESET) | old);
    vdev->state.status = status;
    if ((status & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK))
        virtio_driver_ok(vdev);
}

static void virtio_enable_queue(struct virtio_device *vdev, unsigned q)
{
    struct virtq *vq = &vdev->queues[q];
    if (vdev->state.queue_enable[q])
        return;
    if (virtq_enable(vq, vdev->mem, virtio_has_feature(vdev, VIRTIO_F_EVENT_IDX)) < 0) {
        char why[64];
        snprintf(why, sizeof(why), "queue %u has bad ring addresses or size", q);
        virtio_set_needs_reset(vdev, why);
        return;
    }
    vdev->state.queue_enable[q] = 1;
}

/* ---- common configuration (§4.1.4.3) ---- */

static void common_image(const struct virtio_device *vdev, uint8_t *img)
{
    const struct virtio_pci_state *s = &vdev->state;
    memset(img, 0, BAR_COMMON_SIZE);
    put_le32(img + 0, s->device_feature_select);
    if (s->device_feature_select < 2)
        put_le32(img + 4, (uint32_t)(offered_features(vdev) >> (32 * s->device_feature_select)));
    put_le32(img + 8, s->driver_feature_select);
    if (s->driver_feature_select < 2)
        put_le32(img + 12, (uint32_t)(s->driver_features >> (32 * s->driver_feature_select)));
    put_le16(img + 16, s->config_msix_vector);
    put_le16(img + 18, (uint16_t)vdev->ops->num_queues);
    img[20] = s->status;
    img[21] = s->config_generation;
    put_le16(img + 22, s->queue_select);
    unsigned q = s->queue_select;
    if (q < vdev->ops->num_queues) {
        const struct virtq_state *vq = &vdev->queues[q].state;
        put_le16(img + 24, vq->size);
        put_le16(img + 26, s->queue_msix_vector[q]);
        put_le16(img + 28, s->queue_enable[q]);
        put_le16(img + 30, (uint16_t)q); /* queue_notify_off */
        put_le64(img + 32, vq->desc_addr);
        put_le64(img + 40, vq->avail_addr);
        put_le64(img + 48, vq->used_addr);
    }
}

static uint16_t valid_vector(const struct virtio_device *vdev, uint16_t v)
{
    return v < vdev->msix.nvec ? v : MSIX_NO_VECTOR;
}

static bool touches(uint64_t off, uint32_t len, unsigned field, unsigned size)
{
    return off < field + size && field < off + len;
}

static void common_write_queue(struct virtio_device *vdev, const uint8_t *img, uint64_t off,
                               uint32_t len)
{
    unsigned q = vdev->state.queue_select;
    if (q >= vdev->ops->num_queues)
        return;
    struct virtq_state *vq = &vdev->queues[q].state;
    if (touches(off, len, 26, 2))
        vdev->state.queue_msix_vector[q] = valid_vector(vdev, get_le16(img + 26));
    if (!vdev->state.queue_enable[q]) {
        /* Ring layout is frozen once the queue is enabled (§4.1.4.3.2). */
        if (touches(off, len, 24, 2)) {
            uint16_t size = get_le16(img + 24);
            if (size && size <= vdev->ops->queue_size && !(size & (size - 1)))
                vq->size = size;
        }
        if (touches(off, len, 32, 8))
            vq->desc_addr = get_le64(img + 32);
        if (touches(off, len, 40, 8))
            vq->avail_addr = get_le64(img + 40);
        if (touches(off, len, 48, 8))
            vq->used_addr = get_le64(img + 48);
    }
    if (touches(off, len, 28, 2) && get_le16(img + 28) == 1)
        virtio_enable_queue(vdev, q);
}

static void common_write(struct virtio_device *vdev, uint64_t off, const uint8_t *data,
                         uint32_t len)
{
    uint8_t img[BAR_COMMON_SIZE];
    common_image(vdev, img);
    memcpy(img + off, data, len);
    struct virtio_pci_state *s = &vdev->state;
    if (touches(off, len, 0, 4))
        s->device_feature_select = get_le32(img + 0);
    if (touches(off, len, 8, 4))
        s->driver_feature_select = get_le32(img + 8);
    if (touches(off, len, 12, 4) && s->driver_feature_select < 2 &&
        !(s->status & VIRTIO_STATUS_FEATURES_OK)) {
        unsigned shift = 32 * s->driver_feature_select;
        s->driver_features =
            (s->driver_features & ~(0xffffffffULL << shift)) | (uint64_t)get_le32(img + 12) << shift;
    }
    if (touches(off, len, 16, 2))
        s->config_msix_vector = valid_vector(vdev, get_le16(img + 16));
    if (touches(off, len, 22, 2))
        s->queue_select = get_le16(img + 22);
    common_write_queue(vdev, img, off, len);
    if (touches(off, len, 20, 1))
        virtio_write_status(vdev, img[20]);
}

/* ---- BAR dispatch ---- */

static void virtio_device_config(struct virtio_device *vdev, uint64_t off, uint8_t *data,
                                 uint32_t len, bool is_write)
{
    const struct virtio_device_ops *ops = vdev->ops;
    if (off > ops->config_size || len > ops->config_size - off)
        return; /* outside the device's structure: reads stay all ones */
    if (is_write && ops->config_write)
        ops->config_write(vdev, (uint32_t)off, data, len);
    else if (!is_write && ops->config_read)
        ops->config_read(vdev, (uint32_t)off, data, len);
}

static void virtio_bar_access(struct virtio_device *vdev, uint64_t off, uint8_t *data, uint32_t len,
                              bool is_write)
{
    if (!is_write)
        memset(data, 0xff, len);
    if (off < BAR_COMMON + BAR_COMMON_SIZE) {
        if (len > BAR_COMMON_SIZE - off)
            return;
        if (is_write) {
            common_write(vdev, off, data, len);
        } else {
            uint8_t img[BAR_COMMON_SIZE];
            common_image(vdev, img);
            memcpy(data, img + off, len);
        }
    } else if (off == BAR_ISR) {
        if (!is_write) {
            /* Reading the ISR acknowledges it and deasserts INTx (§4.1.4.5). */
            memset(data, 0, len);
            data[0] = vdev->state.isr;
            vdev->state.isr = 0;
            virtio_update_intx(vdev);
        }
    } else if (off >= BAR_DEVICE && off < BAR_DEVICE + BAR_DEVICE_MAX) {
        virtio_device_config(vdev, off - BAR_DEVICE, data, len, is_write);
    } else if (off >= BAR_NOTIFY && off < BAR_NOTIFY + NOTIFY_MULTIPLIER * VIRTIO_MAX_QUEUES) {
        unsigned q = (unsigned)(off - BAR_NOTIFY) / NOTIFY_MULTIPLIER;
        if (is_write && q < vdev->ops->num_queues)
            virtio_kick_queue(vdev, q); /* a kick the ioeventfd did not catch */
    } else if (off >= BAR_MSIX_TABLE && off < BAR_MSIX_PBA) {
        msix_table_io(&vdev->msix, off - BAR_MSIX_TABLE, data, len, is_write);
    } else if (off >= BAR_MSIX_PBA && off < BAR_MSIX_PBA + 8) {
        msix_pba_io(&vdev->msix, off - BAR_MSIX_PBA, data, len, is_write);
    }
}

static void virtio_bar_io(struct pci_device *pci, unsigned bar, uint64_t off, uint8_t *data,
                          uint32_t len, bool is_write)
{
    struct virtio_device *vdev = pci->opaque;
    if (bar != 0)
        return;
    pthread_mutex_lock(&vdev->lock);
    virtio_bar_access(vdev, off, data, len, is_write);
    pthread_mutex_unlock(&vdev->lock);
}

/* ---- PCI configuration space ---- */

static void virtio_pci_cfg_window(struct virtio_device *vdev, uint8_t *data, unsigned len,
                                  bool is_write)
{
    /* VIRTIO_PCI_CAP_PCI_CFG: config-space window onto the BAR (§4.1.4.9). */
    const uint8_t *cap = vdev->pci.config + CAP_PCI_CFG;
    uint32_t off = get_le32(cap + 8), alen = get_le32(cap + 12);
    if (cap[4] != 0 || (alen != 1 && alen != 2 && alen != 4) || len < alen)
        return;
    pthread_mutex_lock(&vdev->lock);
    virtio_bar_access(vdev, off, data, alen, is_write);
    pthread_mutex_unlock(&vdev->lock);
}

static void virtio_config_read(struct pci_device *pci, unsigned off, uint8_t *data, unsigned len)
{
    struct virtio_device *vdev = pci->opaque;
    if (off == CAP_PCI_CFG_DATA) {
        virtio_pci_cfg_window(vdev, data, len, false);
    } else if (touches(off, len, PCI_STATUS, 1)) {
        /* Status bit 3, Interrupt Status: INTx is pending (§6.2.3), whatever its masking. */
        pthread_mutex_lock(&vdev->lock);
        if (vdev->state.isr)
            data[PCI_STATUS - off] |= PCI_STATUS_INTERRUPT;
        pthread_mutex_unlock(&vdev->lock);
    }
}

static void virtio_config_written(struct pci_device *pci, unsigned off, unsigned len,
                                  uint32_t value)
{
    struct virtio_device *vdev = pci->opaque;
    uint8_t bytes[4];
    memcpy(bytes, &value, 4);
    if (off == CAP_PCI_CFG_DATA) {
        virtio_pci_cfg_window(vdev, bytes, len, true);
        return;
    }
    pthread_mutex_lock(&vdev->lock);
    if (touches(off, len, CAP_MSIX + 2, 2))
        msix_control_written(&vdev->msix);
    virtio_sync_ioeventfds(vdev);
    virtio_update_intx(vdev);
    /* Bus mastering back on: work queued while DMA was off can proceed now. */
    bool master = pci_command(vdev) & PCI_COMMAND_MASTER;
    if (master && !vdev->bus_master && virtio_is_active(vdev))
        for (unsigned q = 0; q < vdev->ops->num_queues; q++)
            if (vdev->queues[q].state.ready)
                virtio_kick_queue(vdev, q);
    vdev->bus_master = master;
    pthread_mutex_unlock(&vdev->lock);
}

static void add_vendor_cap(struct pci_device *pci, uint8_t at, uint8_t type, uint32_t offset,
                           uint32_t length, unsigned cap_len)
{
    uint8_t cap[20] = {0x09, 0, (uint8_t)cap_len, type, 0 /* bar */};
    put_le32(cap + 8, offset);
    put_le32(cap + 12, length);
    if (type == CFG_TYPE_NOTIFY)
        put_le32(cap + 16, NOTIFY_MULTIPLIER);
    pci_device_add_capability(pci, at, cap, cap_len);
}

static void virtio_build_config_space(struct virtio_device *vdev)
{
    struct pci_device *pci = &vdev->pci;
    uint16_t type = vdev->ops->device_id;
    uint32_t class_code =
        type < ARRAY_SIZE(class_codes) && class_codes[type] ? class_codes[type] : 0x00ff00;
    pci_device_init(pci, VIRTIO_PCI_VENDOR, (uint16_t)(VIRTIO_PCI_DEVICE_BASE + type), class_code,
                    VIRTIO_PCI_VENDOR, (uint16_t)(0x40 + type));
    pci->config[0x08] = 1;   /* revision 1: a modern device (§4.1.2.1) */
    pci->config[0x3d] = 1;   /* INTA# */
    pci->wmask[0x3c] = 0xff; /* interrupt line */
    pci_device_set_bar(pci, 0, vdev->bar_addr, VIRTIO_PCI_BAR_SIZE, false);
    add_vendor_cap(pci, CAP_PCI_CFG, CFG_TYPE_PCI, 0, 0, 20);
    add_vendor_cap(pci, CAP_NOTIFY, CFG_TYPE_NOTIFY, BAR_NOTIFY,
                   NOTIFY_MULTIPLIER * vdev->ops->num_queues, 20);
    if (vdev->ops->config_size)
        add_vendor_cap(pci, CAP_DEVICE, CFG_TYPE_DEVICE, BAR_DEVICE, vdev->ops->config_size, 16);
    add_vendor_cap(pci, CAP_ISR, CFG_TYPE_ISR, BAR_ISR, 1, 16);
    add_vendor_cap(pci, CAP_COMMON, CFG_TYPE_COMMON, BAR_COMMON, BAR_COMMON_SIZE, 16);
    /* The PCI_CFG window's bar, offset, length and data fields are the driver's to write. */
    memset(pci->wmask + CAP_PCI_CFG + 4, 0xff, 1);
    memset(pci->wmask + CAP_PCI_CFG + 8, 0xff, 12);
    pci->config_write = virtio_config_written;
    pci->config_read = virtio_config_read;
    pci->bar_io = virtio_bar_io;
    pci->opaque = vdev;
}

/* ---- life cycle ---- */

static void virtio_kick(void *opaque, uint32_t events)
{
    struct virtio_kick *k = opaque;
    struct virtio_device *vdev = k->vdev;
    unsigned q = k->queue;
    uint64_t count;
    if (read(vdev->kick_fd[q], &count, sizeof(count)) < 0)
        return;
    pthread_mutex_lock(&vdev->lock);
    /* Without bus mastering the device may not touch guest memory (PCI 3.0 §6.2.2). */
    if (!vdev->frozen && virtio_is_active(vdev) && vdev->bus_master &&
        vdev->queues[q].state.ready && !vdev->queues[q].broken)
        vdev->ops->queue_notify(vdev, q);
    pthread_mutex_unlock(&vdev->lock);
    (void)events;
}

int virtio_pci_init(struct virtio_device *vdev, const struct guest_mem *mem,
                    struct event_loop *loop, uint32_t bar_addr)
{
    if (vdev->ops->num_queues == 0 || vdev->ops->num_queues > VIRTIO_MAX_QUEUES ||
        vdev->ops->config_size > BAR_DEVICE_MAX)
        return -EINVAL;
    pthread_mutex_init(&vdev->lock, NULL);
    vdev->mem = mem;
    vdev->loop = loop;
    vdev->bar_addr = bar_addr;
    vdev->vm_fd = -1;
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        vdev->kick_fd[q] = -1;
    for (unsigned q = 0; q < vdev->ops->num_queues; q++) {
        vdev->kick_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (vdev->kick_fd[q] < 0)
            return -errno;
        vdev->kick[q] = (struct virtio_kick){vdev, q};
        int ret = event_loop_add(loop, vdev->kick_fd[q], EPOLLIN, virtio_kick, &vdev->kick[q]);
        if (ret < 0)
            return ret;
    }
    return 0;
}

int virtio_pci_attach(struct virtio_device *vdev, int vm_fd, struct pci_bus *bus,
                      struct irq_routing *routing, const struct irq_line *intx)
{
    pthread_mutex_lock(&vdev->lock);
    vdev->vm_fd = vm_fd;
    vdev->routing = routing;
    vdev->ioeventfd_registered = false;
    vdev->bus_master = false;
    vdev->error_log = (struct ratelimit)RATELIMIT_INIT(5, 5);
    virtio_build_config_space(vdev);
    int ret = msix_init(&vdev->msix, &vdev->pci, routing, vdev->ops->num_queues + 1, CAP_MSIX, 0,
                        BAR_MSIX_TABLE, BAR_MSIX_PBA);
    virtio_reset(vdev);
    pthread_mutex_unlock(&vdev->lock);
    if (ret < 0)
        return ret;
    int slot = pci_bus_add_device(bus, &vdev->pci);
    if (slot < 0)
        return slot;
    vdev->intx = *intx;
    vdev->intx.gsi = PCI_INTX_GSI(slot);
    vdev->intx_level = false;
    vdev->attached = true;
    return 0;
}

void virtio_pci_detach(struct virtio_device *vdev)
{
    if (!vdev->attached)
        return;
    pthread_mutex_lock(&vdev->lock);
    virtio_reset(vdev);
    msix_destroy(&vdev->msix);
    vdev->attached = false;
    vdev->vm_fd = -1;
    pthread_mutex_unlock(&vdev->lock);
}

void virtio_pci_destroy(struct virtio_device *vdev)
{
    virtio_pci_detach(vdev);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        if (vdev->kick_fd[q] < 0)
            continue;
        close(vdev->kick_fd[q]);
        vdev->kick_fd[q] = -1;
    }
    pthread_mutex_destroy(&vdev->lock);
}

/* ---- snapshots (docs/snapshot.md) ---- */

#define FREEZE_WAIT_MS 5000

int virtio_pci_freeze(struct virtio_device *vdev)
{
    if (!vdev->ops->idle)
        return -ENOTSUP;
    /* The event loop completes the I/O in flight meanwhile; it needs the lock to do so. */
    for (unsigned waited = 0; waited <= FREEZE_WAIT_MS; waited++) {
        pthread_mutex_lock(&vdev->lock);
        bool idle = vdev->ops->idle(vdev);
        if (idle)
            vdev->frozen = true;
        pthread_mutex_unlock(&vdev->lock);
        if (idle)
            return 0;
        usleep(1000);
    }
    return -EBUSY;
}

void virtio_pci_thaw(struct virtio_device *vdev)
{
    pthread_mutex_lock(&vdev->lock);
    bool was = vdev->frozen;
    vdev->frozen = false;
    /* Kicks that arrived meanwhile were consumed without effect: repeat them. */
    for (unsigned q = 0; was && q < vdev->ops->num_queues; q++)
        if (vdev->queues[q].state.ready)
            virtio_kick_queue(vdev, q);
    pthread_mutex_unlock(&vdev->lock);
}

static void put_queue(struct state_writer *w, const struct virtq *vq)
{
    const struct virtq_state *q = &vq->state;
    state_put_u16(w, q->size);
    state_put_u16(w, q->ready);
    state_put_u64(w, q->desc_addr);
    state_put_u64(w, q->avail_addr);
    state_put_u64(w, q->used_addr);
    state_put_u16(w, q->last_avail);
    state_put_u16(w, q->used_idx);
    state_put_u16(w, q->signalled_used);
    state_put_u16(w, q->signalled_used_valid);
    state_put_bool(w, vq->broken);
}

void virtio_pci_save(struct virtio_device *vdev, struct state_writer *w)
{
    pthread_mutex_lock(&vdev->lock);
    const struct virtio_pci_state *s = &vdev->state;
    state_put_u16(w, vdev->ops->device_id);
    state_put_u8(w, (uint8_t)vdev->ops->num_queues);
    state_put_u32(w, s->device_feature_select);
    state_put_u32(w, s->driver_feature_select);
    state_put_u64(w, s->driver_features);
    state_put_u16(w, s->config_msix_vector);
    state_put_u8(w, s->status);
    state_put_u8(w, s->config_generation);
    state_put_u16(w, s->queue_select);
    state_put_u8(w, s->isr);
    for (unsigned q = 0; q < vdev->ops->num_queues; q++) {
        state_put_u16(w, s->queue_msix_vector[q]);
        state_put_u16(w, s->queue_enable[q]);
        put_queue(w, &vdev->queues[q]);
    }
    state_put_u8(w, (uint8_t)vdev->msix.nvec);
    for (unsigned v = 0; v < vdev->msix.nvec; v++)
        for (unsigned i = 0; i < 4; i++)
            state_put_u32(w, vdev->msix.state.entries[v][i]);
    state_put_u64(w, vdev->msix.state.pending);
    /* The device's own fields, length-prefixed so that the transport can skip them. */
    struct state_writer dev;
    state_writer_init(&dev);
    size_t start = dev.len;
    if (vdev->ops->save)
        vdev->ops->save(vdev, &dev);
    size_t len = dev.error ? 0 : dev.len - start;
    state_put_u8(w, (uint8_t)(len <= VIRTIO_SAVED_DEVICE_MAX ? len : 0));
    if (len <= VIRTIO_SAVED_DEVICE_MAX)
        state_put_bytes(w, dev.buf + start, len);
    state_writer_free(&dev);
    pthread_mutex_unlock(&vdev->lock);
}

static void get_queue(struct state_reader *r, struct virtq_state *q, bool *broken)
{
    q->size = state_get_u16(r);
    q->ready = state_get_u16(r);
    q->desc_addr = state_get_u64(r);
    q->avail_addr = state_get_u64(r);
    q->used_addr = state_get_u64(r);
    q->last_avail = state_get_u16(r);
    q->used_idx = state_get_u16(r);
    q->signalled_used = state_get_u16(r);
    q->signalled_used_valid = state_get_u16(r);
    *broken = state_get_bool(r);
    if (q->size == 0 || q->size > VIRTQ_MAX_SIZE || (q->size & (q->size - 1)) || q->ready > 1 ||
        q->signalled_used_valid > 1)
        state_reader_fail(r);
}

int virtio_pci_saved_load(struct virtio_pci_saved *s, struct state_reader *r)
{
    memset(s, 0, sizeof(*s));
    struct virtio_pci_state *t = &s->state;
    s->device_id = state_get_u16(r);
    s->num_queues = state_get_u8(r);
    if (s->num_queues == 0 || s->num_queues > VIRTIO_MAX_QUEUES)
        return -EBADMSG;
    t->device_feature_select = state_get_u32(r);
    t->driver_feature_select = state_get_u32(r);
    t->driver_features = state_get_u64(r);
    t->config_msix_vector = state_get_u16(r);
    t->status = state_get_u8(r);
    t->config_generation = state_get_u8(r);
    t->queue_select = state_get_u16(r);
    t->isr = state_get_u8(r);
    for (unsigned q = 0; q < s->num_queues; q++) {
        t->queue_msix_vector[q] = state_get_u16(r);
        t->queue_enable[q] = state_get_u16(r);
        get_queue(r, &s->queues[q], &s->broken[q]);
        if (t->queue_enable[q] > 1 || t->queue_enable[q] != s->queues[q].ready)
            state_reader_fail(r);
    }
    unsigned nvec = state_get_u8(r);
    if (nvec != s->num_queues + 1u) /* the transport's layout: one per queue, one for config */
        return -EBADMSG;
    for (unsigned v = 0; v < nvec; v++)
        for (unsigned i = 0; i < 4; i++)
            s->msix.entries[v][i] = state_get_u32(r);
    s->msix.pending = state_get_u64(r);
    s->device_len = state_get_u8(r);
    if (s->device_len > VIRTIO_SAVED_DEVICE_MAX)
        return -EBADMSG;
    state_get_bytes(r, s->device, s->device_len);
    /* Status: only the bits §2.1 defines; ISR: queue and config bits; PBA within nvec. */
    const uint8_t known = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                          VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FEATURES_OK |
                          VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED;
    if ((t->status & ~known) || (t->isr & ~(ISR_QUEUE | ISR_CONFIG)) ||
        (s->msix.pending >> nvec))
        state_reader_fail(r);
    return state_reader_done(r);
}

static bool vector_ok(const struct virtio_device *vdev, uint16_t v)
{
    return v == MSIX_NO_VECTOR || v < vdev->msix.nvec;
}

/* Everything the saved state says, against what this device is and offers. */
static int restore_check(struct virtio_device *vdev, const struct virtio_pci_saved *s,
                         char *err, size_t errlen)
{
    const struct virtio_device_ops *ops = vdev->ops;
    if (s->device_id != ops->device_id || s->num_queues != ops->num_queues) {
        snprintf(err, errlen, "virtio-%s: the snapshot has a different device here (type %u)",
                 ops->name, s->device_id);
        return -EINVAL;
    }
    bool ok = !(s->state.driver_features & ~offered_features(vdev)) &&
              vector_ok(vdev, s->state.config_msix_vector);
    for (unsigned q = 0; ok && q < ops->num_queues; q++)
        ok = s->queues[q].size <= ops->queue_size && vector_ok(vdev, s->state.queue_msix_vector[q]);
    if (!ok) {
        snprintf(err, errlen, "virtio-%s: features, queue sizes or vectors out of range",
                 ops->name);
        return -EINVAL;
    }
    struct state_reader r;
    state_reader_init(&r, s->device, s->device_len);
    if (ops->check && ops->check(vdev, &r) < 0) {
        snprintf(err, errlen, "virtio-%s: the device given at restore does not match the "
                              "snapshot's (disk size, block size, read-only or id; MAC; CID)",
                 ops->name);
        return -EINVAL;
    }
    return 0;
}

/* Enabled queues get their host views anew (addresses checked against RAM), then progress. */
static int restore_queues(struct virtio_device *vdev, const struct virtio_pci_saved *s,
                          char *err, size_t errlen)
{
    bool event_idx = virtio_has_feature(vdev, VIRTIO_F_EVENT_IDX);
    for (unsigned q = 0; q < vdev->ops->num_queues; q++) {
        struct virtq *vq = &vdev->queues[q];
        vq->state = s->queues[q];
        vq->state.ready = 0;
        if (!s->state.queue_enable[q])
            continue;
        if (virtq_enable(vq, vdev->mem, event_idx) < 0) {
            snprintf(err, errlen, "virtio-%s: queue %u's rings are not in guest RAM",
                     vdev->ops->name, q);
            return -EINVAL;
        }
        vq->state = s->queues[q];
        vq->broken = s->broken[q];
    }
    return 0;
}

int virtio_pci_restore(struct virtio_device *vdev, const struct virtio_pci_saved *s, char *err,
                       size_t errlen)
{
    pthread_mutex_lock(&vdev->lock);
    int ret = restore_check(vdev, s, err, errlen);
    if (ret == 0) {
        vdev->state = s->state;
        ret = restore_queues(vdev, s, err, errlen);
    }
    if (ret < 0) {
        virtio_reset(vdev);
        pthread_mutex_unlock(&vdev->lock);
        return ret;
    }
    for (unsigned v = 0; v < vdev->msix.nvec; v++) {
        memcpy(vdev->msix.state.entries[v], s->msix.entries[v], sizeof(s->msix.entries[v]));
        vdev->msix.state.entries[v][3] &= 1; /* only the mask bit is writable */
    }
    vdev->msix.state.pending = s->msix.pending;
    msix_control_written(&vdev->msix); /* delivers what is pending and unmasked */
    vdev->bus_master = pci_command(vdev) & PCI_COMMAND_MASTER;
    vdev->intx_level = false;
    virtio_update_intx(vdev);
    virtio_sync_ioeventfds(vdev);
    if (virtio_is_active(vdev) && vdev->ops->activate && vdev->ops->activate(vdev) != 0)
        virtio_set_needs_reset(vdev, "could not start its backend");
    /* Whatever the driver made available meanwhile is looked at now. */
    for (unsigned q = 0; q < vdev->ops->num_queues; q++)
        if (vdev->queues[q].state.ready)
            virtio_kick_queue(vdev, q);
    pthread_mutex_unlock(&vdev->lock);
    return 0;
}

