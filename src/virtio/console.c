#include "virtio/console.h"

#include <errno.h>

#include "util.h"

int virtio_console_create(struct vm *vm)
{
    (void)vm;
    log_error("virtio-console is not available yet");
    return -ENOSYS;
}
