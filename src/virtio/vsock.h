/* The virtio socket device (virtio 1.2 §5.10) bridged to host Unix sockets. */
#ifndef KILN_VIRTIO_VSOCK_H
#define KILN_VIRTIO_VSOCK_H

#include "vmm/vm_config.h"

struct vm;

/* Opens the backend and adds the device to `vm`. Returns 0 or -errno (already logged). */
int virtio_vsock_create(struct vm *vm, const struct vsock_config *cfg);

#endif
