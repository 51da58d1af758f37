/* The virtio block device (virtio 1.2 §5.2) on a raw image file or block device. */
#ifndef KILN_VIRTIO_BLK_H
#define KILN_VIRTIO_BLK_H

#include "vmm/vm_config.h"

struct vm;

/* Opens the backend and adds the device to `vm`. Returns 0 or -errno (already logged). */
int virtio_blk_create(struct vm *vm, const struct disk_config *cfg);

#endif
