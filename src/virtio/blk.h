/* The virtio block device (virtio 1.2 §5.2) on a raw image file or block device. */
#ifndef KILN_VIRTIO_BLK_H
#define KILN_VIRTIO_BLK_H

#include "vmm/vm_config.h"

struct vm;
struct virtio_blk;
struct virtio_device;
struct event_loop;

/* Opens the backend and adds the device to `vm`. Returns 0 or -errno (already logged). */
int virtio_blk_create(struct vm *vm, const struct disk_config *cfg);

/*
 * The device on its own, not yet part of a VM (virtio_blk_create and unit tests): opens and
 * locks the image, starts the I/O engine (KILN_BLK_ENGINE=io_uring|threads forces one) and
 * watches its completions on `loop`. Freed through vdev->ops->destroy. 0 or -errno (logged).
 */
int virtio_blk_new(const struct disk_config *cfg, struct event_loop *loop, struct virtio_blk **out);
struct virtio_device *virtio_blk_vdev(struct virtio_blk *blk);
/* "io_uring" or "threads". */
const char *virtio_blk_engine_name(const struct virtio_blk *blk);
/* Requests taken from the ring and not yet completed. */
unsigned virtio_blk_busy(const struct virtio_blk *blk);

#endif
