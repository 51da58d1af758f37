#include "virtio/vsock.h"

#include <errno.h>

#include "util.h"

int virtio_vsock_create(struct vm *vm, const struct vsock_config *cfg)
{
    (void)vm;
    log_error("virtio-vsock is not available yet");
    return -ENOSYS;
}
