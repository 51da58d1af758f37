#include "virtio/blk.h"

#include <errno.h>

#include "util.h"

int virtio_blk_create(struct vm *vm, const struct disk_config *cfg)
{
    (void)vm;
    log_error("virtio-blk is not available yet");
    return -ENOSYS;
}
