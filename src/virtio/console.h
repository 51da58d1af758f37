/* The virtio console (virtio 1.2 §5.3): port 0 (hvc0) on kiln's terminal. */
#ifndef KILN_VIRTIO_CONSOLE_H
#define KILN_VIRTIO_CONSOLE_H

#include "vmm/vm_config.h"

struct vm;

/* Opens the backend and adds the device to `vm`. Returns 0 or -errno (already logged). */
int virtio_console_create(struct vm *vm);

#endif
