/*
 * virtio-vsock (virtio/vsock.c, vsock_proto.c): packets on the transmit queue (headers,
 * operations, credit, payloads split over segments) and the receive and event queues, with
 * the device's Unix-socket backend listening in a private temporary directory. Guest
 * connections to the host find no listener there and are answered with RST.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_guest.h"
#include "virtio/virtio.h"
#include "virtio/vsock_proto.h"
#include "vmm/vm_config.h"
#include "virtio/vsock.h"

static struct fuzz_guest guest;
static struct virtio_vsock *dev;
static char dir[] = "/tmp/kiln-fuzz-vsock-XXXXXX";

static void remove_dir(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/v.sock", dir);
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_guest_init(&guest);
    if (!mkdtemp(dir))
        abort();
    atexit(remove_dir);
    struct vsock_config cfg = {.enabled = true, .guest_cid = 3};
    snprintf(cfg.uds_path, sizeof(cfg.uds_path), "%s/v.sock", dir);
    if (vsock_device_new(&dev, &cfg) < 0)
        abort();
    pthread_mutex_init(&dev->vdev.lock, NULL);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        dev->vdev.kick_fd[q] = -1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct virtio_device *vdev = &dev->vdev;
    unsigned rounds = fuzz_vio_start(&guest, vdev, data, size);
    for (unsigned r = 0; r < rounds; r++) {
        fuzz_vio_kick(vdev, data);
        vsock_device_poll(dev); /* host sockets that became ready */
    }
    fuzz_vio_check_used(&guest, vdev);
    fuzz_vio_reset(vdev);
    return 0;
}
