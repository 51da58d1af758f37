/*
 * 8250/16550A UART (COM1 at 0x3f8, IRQ 4). Transmission completes instantly; received
 * bytes wait in a 16-byte FIFO until the guest reads them, and the interrupt line follows
 * the interrupt identification logic so the guest driver runs interrupt-driven both ways.
 */
#ifndef KILN_SERIAL8250_H
#define KILN_SERIAL8250_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/irq.h"

struct state_reader;
struct state_writer;

#define SERIAL8250_FIFO_SIZE 16
#define SERIAL8250_COM1_BASE 0x3f8
#define SERIAL8250_COM1_IRQ 4
#define SERIAL8250_NR_PORTS 8

/* Guest-visible state: plain data with no pointers, so it can be saved and restored. */
struct serial8250_state {
    uint8_t ier;
    uint8_t lcr;
    uint8_t mcr;
    uint8_t lsr;
    uint8_t msr;
    uint8_t scr;
    uint8_t dll;
    uint8_t dlm;
    uint8_t fcr;
    /* THR-empty interrupt pending: set when THR empties, cleared by IIR read or THR write. */
    uint8_t thr_ipending;
    uint8_t rx_fifo[SERIAL8250_FIFO_SIZE];
    uint8_t rx_head;
    uint8_t rx_count;
};

struct serial8250 {
    struct serial8250_state state;
    pthread_mutex_t lock;
    struct irq_line irq;
    bool irq_level; /* last level driven on the line, to signal only changes */
    /*
     * Called with each byte the guest transmits, under the device lock, so it must not call
     * back into the UART. Not called in loopback mode. serial8250_init leaves these hooks
     * alone: set them on a zeroed struct, before or after init.
     */
    void (*output)(void *opaque, const uint8_t *buf, size_t len);
    void *output_opaque;
    /*
     * Called when the guest empties the receive FIFO (by reading it, resetting it, or leaving
     * loopback), so the host side can feed more input. Called without the device lock held,
     * from the vCPU thread: it must not block, but it may call serial8250_receive().
     */
    void (*rx_ready)(void *opaque);
    void *rx_ready_opaque;
};

void serial8250_init(struct serial8250 *uart, const struct irq_line *irq);
void serial8250_destroy(struct serial8250 *uart);

/* bus_io_fn for the 8 registers at the port base. */
void serial8250_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* Queues host input for the guest. Returns how many bytes fitted in the FIFO. */
size_t serial8250_receive(struct serial8250 *uart, const uint8_t *buf, size_t len);

/* Free space in the receive FIFO (0 in loopback mode, where the input is disconnected). */
size_t serial8250_rx_room(struct serial8250 *uart);


/* Snapshots (docs/snapshot.md): save takes the lock; load checks every field. */
#define SERIAL8250_STATE_VERSION 1
void serial8250_save(struct serial8250 *uart, struct state_writer *w);
int serial8250_state_load(struct serial8250_state *s, struct state_reader *r);
/* Installs a loaded state and drives the IRQ line to match it. */
void serial8250_restore(struct serial8250 *uart, const struct serial8250_state *s);

#endif
