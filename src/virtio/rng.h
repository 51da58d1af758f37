/* virtio entropy device (virtio 1.2 §5.4): fills the guest's buffers from getrandom(2). */
#ifndef KILN_VIRTIO_RNG_H
#define KILN_VIRTIO_RNG_H

#include "virtio/virtio.h"

struct virtio_rng {
    struct virtio_device vdev;
};

void virtio_rng_init(struct virtio_rng *rng);

#endif
