/*
 * The 16550A UART (hw/serial8250.c) through the port bus: any sequence of reads and
 * writes of any width to its registers (DLAB, FIFO control, loopback, scratch), with host
 * input arriving in between when the operation's target bits ask for it.
 */
#include <stdlib.h>

#include "fuzz_guest.h"
#include "hw/serial8250.h"
#include "vmm/bus.h"

struct uart_fuzz {
    struct serial8250 uart;
    struct bus bus;
    size_t out_bytes;
};

static void count_output(void *opaque, const uint8_t *buf, size_t len)
{
    ((struct uart_fuzz *)opaque)->out_bytes += len;
}

static void uart_io(void *opaque, unsigned target, uint64_t offset, uint8_t *data, uint32_t len,
                    bool is_write)
{
    struct uart_fuzz *f = opaque;
    if (target & 1) { /* host input: up to 16 bytes, as the console feeds it */
        uint8_t in[16] = {0};
        size_t n = (size_t)(target >> 1) + 1;
        if (serial8250_receive(&f->uart, in, n) > n)
            abort();
        return;
    }
    uint64_t port = SERIAL8250_COM1_BASE - 4 + offset % (SERIAL8250_NR_PORTS + 8);
    bus_dispatch(&f->bus, port, data, len, is_write);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct uart_fuzz f = {0};
    struct irq_line irq = {0};
    f.uart.output = count_output;
    f.uart.output_opaque = &f;
    serial8250_init(&f.uart, &irq);
    bus_init(&f.bus, "pio");
    if (bus_register(&f.bus, SERIAL8250_COM1_BASE, SERIAL8250_NR_PORTS, "com1", serial8250_io,
                     &f.uart) < 0)
        abort();
    fuzz_io_run(data, size, 4, uart_io, &f);
    bus_destroy(&f.bus);
    serial8250_destroy(&f.uart);
    return 0;
}
