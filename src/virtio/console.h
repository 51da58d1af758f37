/*
 * The virtio console (virtio 1.2 §5.3): port 0 (hvc0) on kiln's terminal. One port, no
 * MULTIPORT: receiveq 0 carries terminal input to the guest, transmitq 1 the guest's output.
 * Offers F_SIZE (the terminal's size at start) when stdout is a terminal, and EMERG_WRITE.
 */
#ifndef KILN_VIRTIO_CONSOLE_H
#define KILN_VIRTIO_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "virtio/virtio.h"
#include "vmm/vm_config.h"

struct vm;
struct console;

#define VIRTIO_CONSOLE_RXQ 0
#define VIRTIO_CONSOLE_TXQ 1

struct virtio_console {
    struct virtio_device vdev;
    struct console *con;
    /* Called when the driver posts receive buffers: input held back may go in now. */
    void (*rx_ready)(void *opaque);
    void *rx_ready_opaque;
    uint16_t cols;
    uint16_t rows;
    struct virtq_elem elem; /* scratch for the chain being handled (lock held) */
};

/* Opens the backend and adds the device to `vm`. Returns 0 or -errno (already logged). */
int virtio_console_create(struct vm *vm);

/* The device without a VM, for unit tests: output to `con`. */
void virtio_console_init(struct virtio_console *vc, struct console *con);

/*
 * Terminal input for the guest: copies what fits into the driver's receive buffers and
 * returns how many bytes that was (0 while the driver is not ready). Takes the lock.
 */
size_t virtio_console_receive(void *opaque, const uint8_t *buf, size_t len);

#endif
