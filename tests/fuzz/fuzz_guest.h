/*
 * Shared pieces of the libFuzzer harnesses: a small guest RAM the fuzzer fills, a virtio
 * driver that lays the fuzzer's bytes out as rings and buffers and kicks a device, and a
 * register-access sequencer for the port/MMIO handlers.
 *
 * Input layout for virtio targets (struct fuzz_vio_header, then the guest memory image):
 *   byte 0  queue size as log2 (low 3 bits, 1..128; values past 7 ask for 0 or 3, invalid)
 *   byte 1  driver feature bits: bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bits 2-7 select
 *           device feature bits 0-5 of the device's low byte; the rest is all offered bits
 *   byte 2  kick rounds (low 2 bits + 1) and queue mask (high nibble)
 *   byte 3  bit 0: take the descriptor table address from bytes 4-11 (queue 0)
 *   bytes 4-11  that address (little-endian)
 *   bytes 12-  copied into guest RAM from address 0 (the rest of RAM is zero)
 * Queue q's rings sit at FUZZ_RING(q): descriptors at +0, avail at +0x800, used at +0xc00.
 */
#ifndef KILN_FUZZ_GUEST_H
#define KILN_FUZZ_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem/guest_mem.h"

struct virtio_device;

#define FUZZ_RAM_SIZE (64u * 1024)
#define FUZZ_RING(q) (0x1000u * (q))
#define FUZZ_AVAIL_OFF 0x800u
#define FUZZ_USED_OFF 0xc00u
#define FUZZ_DATA_GPA 0x4000u /* where seeds put their buffers */
#define FUZZ_VIO_HEADER 12u

struct fuzz_guest {
    uint8_t *ram;
    struct guest_mem mem;
};

/* Allocates FUZZ_RAM_SIZE bytes of RAM at guest address 0. Aborts on failure. */
void fuzz_guest_init(struct fuzz_guest *g);
/* Zeroes RAM, then copies `len` bytes of `image` to address 0. */
void fuzz_guest_load(struct fuzz_guest *g, const uint8_t *image, size_t len);

/*
 * Prepares `vdev` (already initialised by its device code, lock initialised) as a driver
 * that negotiated what the header asks would: resets it, loads RAM, enables its queues,
 * sets DRIVER_OK and activates it. Returns the kick rounds to run, or 0 if the input is too
 * short or the device refused to start (the caller then just resets it).
 */
unsigned fuzz_vio_start(struct fuzz_guest *g, struct virtio_device *vdev, const uint8_t *data,
                        size_t size);
/* One round of kicks: queue_notify for every enabled queue in the header's mask. */
void fuzz_vio_kick(struct virtio_device *vdev, const uint8_t *data);
/* Device reset as the transport does it (status 0): ops->reset and all queues off. */
void fuzz_vio_reset(struct virtio_device *vdev);
/* Checks the device's ring counters: it returned no more chains than it took, else abort. */
void fuzz_vio_check_used(struct fuzz_guest *g, struct virtio_device *vdev);

/*
 * Register accesses: each operation is FUZZ_IO_OP bytes: control (bits 0-1 width 1/2/4/8,
 * bit 2 write, bits 3-7 target), offset (16-bit), value (64-bit). `io` is called with the
 * target, offset and a buffer; anything it writes past the access width aborts.
 */
#define FUZZ_IO_OP 11u
typedef void (*fuzz_io_fn)(void *opaque, unsigned target, uint64_t offset, uint8_t *data,
                           uint32_t len, bool is_write);
void fuzz_io_run(const uint8_t *data, size_t size, unsigned max_width, fuzz_io_fn io,
                 void *opaque);

/*
 * Register accesses through a bus as a vCPU exit makes them: offsets land in a window from
 * 4 bytes below `base` to 4 bytes past its `len`, so accesses also straddle the edges.
 */
struct bus;
void fuzz_bus_run(const struct bus *bus, uint64_t base, uint64_t len, unsigned max_width,
                  const uint8_t *data, size_t size);

/*
 * Kernel loading (arch/x86/boot.c) of the input as a kernel of `format` (an enum
 * kernel_format) into 16 MiB of guest RAM, with the input's last 64 bytes as an initrd.
 * A failure must come with a message.
 */
void fuzz_boot_run(int format, const uint8_t *data, size_t size);

#endif
