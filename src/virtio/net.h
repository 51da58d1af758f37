/* The virtio network device (virtio 1.2 §5.1) on a tap device or user-mode networking. */
#ifndef KILN_VIRTIO_NET_H
#define KILN_VIRTIO_NET_H

#include "vmm/vm_config.h"

struct vm;

/* Opens the backend and adds the device to `vm`. Returns 0 or -errno (already logged). */
int virtio_net_create(struct vm *vm, const struct net_config *cfg, unsigned index);

#endif
