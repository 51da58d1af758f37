#include "virtio/net.h"

#include <errno.h>

#include "util.h"

int virtio_net_create(struct vm *vm, const struct net_config *cfg, unsigned index)
{
    (void)vm;
    log_error("virtio-net is not available yet");
    return -ENOSYS;
}
