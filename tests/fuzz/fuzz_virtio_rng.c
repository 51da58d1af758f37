/* virtio-rng (virtio/rng.c): chains of any shape on its one queue, filled from getrandom. */
#include <stdlib.h>

#include "fuzz_guest.h"
#include "virtio/virtio.h"
#include "virtio/rng.h"

static struct fuzz_guest guest;
static struct virtio_rng rng;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_guest_init(&guest);
    virtio_rng_init(&rng);
    pthread_mutex_init(&rng.vdev.lock, NULL);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        rng.vdev.kick_fd[q] = -1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct virtio_device *vdev = &rng.vdev;
    unsigned rounds = fuzz_vio_start(&guest, vdev, data, size);
    for (unsigned r = 0; r < rounds; r++)
        fuzz_vio_kick(vdev, data);
    fuzz_vio_check_used(&guest, vdev);
    fuzz_vio_reset(vdev);
    return 0;
}
