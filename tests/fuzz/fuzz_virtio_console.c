/*
 * virtio-console (virtio/console.c): the guest's output chains on the transmit queue and
 * terminal input placed into its receive buffers (the input's tail is typed in).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "console/console.h"
#include "fuzz_guest.h"
#include "virtio/console.h"
#include "virtio/virtio.h"

static struct fuzz_guest guest;
static struct console con;
static struct virtio_console vc;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_guest_init(&guest);
    int out = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (out < 0 || console_init(&con, -1, out, NULL) < 0)
        abort();
    virtio_console_init(&vc, &con);
    pthread_mutex_init(&vc.vdev.lock, NULL);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        vc.vdev.kick_fd[q] = -1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct virtio_device *vdev = &vc.vdev;
    unsigned rounds = fuzz_vio_start(&guest, vdev, data, size);
    for (unsigned r = 0; r < rounds; r++) {
        fuzz_vio_kick(vdev, data);
        size_t typed = size - FUZZ_VIO_HEADER < 64 ? size - FUZZ_VIO_HEADER : 64;
        if (virtio_console_receive(&vc, data + size - typed, typed) > typed)
            abort();
    }
    fuzz_vio_check_used(&guest, vdev);
    fuzz_vio_reset(vdev);
    return 0;
}
