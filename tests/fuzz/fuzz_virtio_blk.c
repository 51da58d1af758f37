/*
 * virtio-blk request parsing (virtio/blk.c): request headers, sector ranges, discard and
 * write-zeroes segments, status buffers, in chains the fuzzer lays out, against a small
 * image file in /dev/shm through the default I/O engine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/disk.h"
#include "fuzz_guest.h"
#include "virtio/blk.h"
#include "virtio/virtio.h"
#include "vmm/event_loop.h"
#include "vmm/vm_config.h"

#define IMAGE_SIZE (256u * 1024)
#define DRAIN_ROUNDS 200

static struct fuzz_guest guest;
static struct event_loop loop;
static struct virtio_blk *blk;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_guest_init(&guest);
    if (event_loop_init(&loop) < 0)
        abort();
    struct disk_config cfg = {0};
    snprintf(cfg.path, sizeof(cfg.path), "/dev/shm/kiln-fuzz-blk-XXXXXX");
    int fd = mkstemp(cfg.path);
    if (fd < 0 || ftruncate(fd, IMAGE_SIZE) < 0)
        abort();
    close(fd);
    snprintf(cfg.id, sizeof(cfg.id), "fuzz");
    int ret = virtio_blk_new(&cfg, &loop, &blk);
    unlink(cfg.path); /* the open descriptor keeps it alive */
    if (ret < 0 || virtio_pci_init(virtio_blk_vdev(blk), &guest.mem, &loop, 0) < 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct virtio_device *vdev = virtio_blk_vdev(blk);
    unsigned rounds = fuzz_vio_start(&guest, vdev, data, size);
    for (unsigned r = 0; r < rounds; r++) {
        fuzz_vio_kick(vdev, data);
        for (unsigned i = 0; i < DRAIN_ROUNDS && virtio_blk_busy(blk); i++)
            event_loop_run_once(&loop, 5);
        event_loop_run_once(&loop, 0); /* completions and kicks the device queued */
    }
    fuzz_vio_check_used(&guest, vdev);
    fuzz_vio_reset(vdev);
    return 0;
}
