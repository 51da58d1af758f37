/* Shared pieces of the fuzz harnesses; see fuzz_guest.h for the input layouts. */
#include "fuzz_guest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "util.h"
#include "virtio/virtio.h"
#include "vmm/bus.h"

#define MAX_FUZZ_QUEUES 4

/* Guest mistakes are logged (rate-limited) in kiln; here they would drown the fuzzer's output. */
__attribute__((constructor)) static void fuzz_quiet(void)
{
    log_set_verbosity(0);
}

void fuzz_guest_init(struct fuzz_guest *g)
{
    memset(g, 0, sizeof(*g));
    g->ram = aligned_alloc(4096, FUZZ_RAM_SIZE);
    if (!g->ram || guest_mem_add_region(&g->mem, 0, FUZZ_RAM_SIZE, g->ram) < 0)
        abort();
}

void fuzz_guest_load(struct fuzz_guest *g, const uint8_t *image, size_t len)
{
    if (len > FUZZ_RAM_SIZE)
        len = FUZZ_RAM_SIZE;
    memcpy(g->ram, image, len);
    memset(g->ram + len, 0, FUZZ_RAM_SIZE - len);
}

static uint16_t header_queue_size(const uint8_t *data)
{
    unsigned log2 = data[0] & 7;
    return log2 == 7 ? 0 : (uint16_t)(1u << log2); /* 0 is invalid and must be refused */
}

static uint64_t header_features(const struct virtio_device *vdev, const uint8_t *data)
{
    uint64_t f = 1ULL << VIRTIO_F_VERSION_1;
    if (data[1] & 1)
        f |= 1ULL << VIRTIO_F_EVENT_IDX;
    if (data[1] & 2)
        f |= 1ULL << VIRTIO_F_INDIRECT_DESC;
    /* Bits 2-7 turn off the device's feature bits 0-5; everything else it offers is taken. */
    uint64_t off = (uint64_t)(data[1] >> 2) & 0x3f;
    return f | (vdev->host_features & ~off);
}

static unsigned fuzz_queue_count(const struct virtio_device *vdev)
{
    unsigned n = vdev->ops->num_queues;
    return n < MAX_FUZZ_QUEUES ? n : MAX_FUZZ_QUEUES;
}

void fuzz_vio_reset(struct virtio_device *vdev)
{
    pthread_mutex_lock(&vdev->lock);
    if (vdev->ops->reset)
        vdev->ops->reset(vdev);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        virtq_disable(&vdev->queues[q]);
        memset(&vdev->queues[q].state, 0, sizeof(vdev->queues[q].state));
        vdev->queues[q].broken = false;
        vdev->state.queue_enable[q] = 0;
    }
    vdev->state.status = 0;
    vdev->state.driver_features = 0;
    pthread_mutex_unlock(&vdev->lock);
}

static void enable_queues(struct fuzz_guest *g, struct virtio_device *vdev, const uint8_t *data)
{
    bool event_idx = virtio_has_feature(vdev, VIRTIO_F_EVENT_IDX);
    for (unsigned q = 0; q < fuzz_queue_count(vdev); q++) {
        struct virtq *vq = &vdev->queues[q];
        vq->state.size = header_queue_size(data);
        vq->state.desc_addr = FUZZ_RING(q);
        if (q == 0 && (data[3] & 1))
            memcpy(&vq->state.desc_addr, data + 4, 8);
        vq->state.avail_addr = FUZZ_RING(q) + FUZZ_AVAIL_OFF;
        vq->state.used_addr = FUZZ_RING(q) + FUZZ_USED_OFF;
        if (virtq_enable(vq, &g->mem, event_idx) == 0)
            vdev->state.queue_enable[q] = 1;
    }
}

unsigned fuzz_vio_start(struct fuzz_guest *g, struct virtio_device *vdev, const uint8_t *data,
                        size_t size)
{
    if (size < FUZZ_VIO_HEADER)
        return 0;
    fuzz_guest_load(g, data + FUZZ_VIO_HEADER, size - FUZZ_VIO_HEADER);
    pthread_mutex_lock(&vdev->lock);
    vdev->mem = &g->mem;
    vdev->bus_master = true;
    vdev->state.driver_features = header_features(vdev, data);
    enable_queues(g, vdev, data);
    vdev->state.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                         VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
    int ret = vdev->ops->activate ? vdev->ops->activate(vdev) : 0;
    pthread_mutex_unlock(&vdev->lock);
    return ret == 0 ? (data[2] & 3) + 1u : 0;
}

void fuzz_vio_kick(struct virtio_device *vdev, const uint8_t *data)
{
    unsigned mask = data[2] >> 4 ? data[2] >> 4 : 0xf;
    pthread_mutex_lock(&vdev->lock);
    for (unsigned q = 0; q < fuzz_queue_count(vdev); q++) {
        /* The transport's kick handler asks the same before it calls the device. */
        if ((mask >> q & 1) && virtio_is_active(vdev) && vdev->state.queue_enable[q] &&
            !vdev->queues[q].broken)
            vdev->ops->queue_notify(vdev, q);
    }
    pthread_mutex_unlock(&vdev->lock);
}

void fuzz_vio_check_used(struct fuzz_guest *g, struct virtio_device *vdev)
{
    /*
     * The used ring's memory may be overlapped by the guest's own buffers, so its contents
     * prove nothing; the device's counters do: it never returns more chains than it took,
     * nor holds more than the ring has.
     */
    for (unsigned q = 0; q < fuzz_queue_count(vdev); q++) {
        const struct virtq *vq = &vdev->queues[q];
        if (!vdev->state.queue_enable[q])
            continue;
        uint16_t held = (uint16_t)(vq->state.last_avail - vq->state.used_idx);
        if (held > vq->state.size) {
            fprintf(stderr, "queue %u: took %u chains, returned %u\n", q, vq->state.last_avail,
                    vq->state.used_idx);
            abort();
        }
    }
    (void)g;
}

void fuzz_io_run(const uint8_t *data, size_t size, unsigned max_width, fuzz_io_fn io,
                 void *opaque)
{
    for (; size >= FUZZ_IO_OP; data += FUZZ_IO_OP, size -= FUZZ_IO_OP) {
        unsigned ctl = data[0];
        uint32_t len = 1u << (ctl & 3);
        if (len > max_width)
            len = max_width;
        bool is_write = ctl & 4;
        uint16_t offset = (uint16_t)(data[1] | data[2] << 8);
        uint8_t buf[16];
        memset(buf, 0xcc, sizeof(buf));
        if (is_write)
            memcpy(buf, data + 3, len);
        io(opaque, ctl >> 3, offset, buf, len, is_write);
        for (unsigned i = len; i < sizeof(buf); i++) {
            if (buf[i] != 0xcc) {
                fprintf(stderr, "handler wrote past a %u-byte access at %#x\n", len, offset);
                abort();
            }
        }
    }
}

struct bus_window {
    const struct bus *bus;
    uint64_t base, len;
};

static void bus_window_io(void *opaque, unsigned target, uint64_t offset, uint8_t *data,
                          uint32_t len, bool is_write)
{
    const struct bus_window *w = opaque;
    uint64_t addr = w->base - 4 + offset % (w->len + 8);
    if (!is_write)
        memset(data, 0xff, len); /* what the vCPU loop hands a read: a floating bus */
    bus_dispatch(w->bus, addr, data, len, is_write);
}

void fuzz_bus_run(const struct bus *bus, uint64_t base, uint64_t len, unsigned max_width,
                  const uint8_t *data, size_t size)
{
    struct bus_window w = {bus, base, len};
    fuzz_io_run(data, size, max_width, bus_window_io, &w);
}

#define BOOT_RAM_SIZE (16u << 20)

void fuzz_boot_run(int format, const uint8_t *data, size_t size)
{
    static struct guest_mem mem;
    if (!mem.nregions) { /* pages are only touched where the loader writes */
        void *ram = calloc(1, BOOT_RAM_SIZE);
        if (!ram || guest_mem_add_region(&mem, 0, BOOT_RAM_SIZE, ram) < 0)
            abort();
    }
    /* Exactly sized copies, so that a read past the image is caught. */
    uint8_t *kernel = malloc(size ? size : 1);
    memcpy(kernel, data, size);
    size_t initrd_size = size < 64 ? size : 64;
    uint8_t *initrd = malloc(initrd_size ? initrd_size : 1);
    memcpy(initrd, data + size - initrd_size, initrd_size);
    struct boot_images img = {
        .kernel = kernel,
        .kernel_size = size,
        .format = (enum kernel_format)format,
        .initrd = initrd_size ? initrd : NULL,
        .initrd_size = initrd_size,
        .cmdline = "console=ttyS0 panic=1",
        .rsdp_addr = 0xe0000,
    };
    struct x86_entry entry;
    struct boot_error err = {{0}};
    int ret = x86_boot_load(&mem, &img, &entry, &err);
    if (ret < 0 && (err.msg[0] == 0 || !memchr(err.msg, 0, sizeof(err.msg)))) {
        fprintf(stderr, "load failed (%d) without a message\n", ret);
        abort();
    }
    free(initrd);
    free(kernel);
}
