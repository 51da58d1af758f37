/* Unit tests for the 16550A UART: register model, interrupts, FIFOs and loopback. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "hw/serial8250.h"

/* Register offsets and bits, spelled out here so the tests do not share the device's macros. */
enum { RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3 };
enum { MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

struct fixture {
    struct serial8250 uart;
    /* fake irq_line */
    unsigned irq_calls;
    bool irq_level;
    unsigned irq_gsi;
    /* output and rx_ready hooks */
    uint8_t out[512];
    size_t out_len;
    unsigned rx_ready_calls;
};

static void fake_set_level(void *ctx, unsigned gsi, bool level)
{
    struct fixture *f = ctx;
    f->irq_calls++;
    f->irq_level = level;
    f->irq_gsi = gsi;
}

static void fake_output(void *opaque, const uint8_t *buf, size_t len)
{
    struct fixture *f = opaque;
    assert_true(f->out_len + len <= sizeof(f->out));
    memcpy(f->out + f->out_len, buf, len);
    f->out_len += len;
}

static void fake_rx_ready(void *opaque)
{
    struct fixture *f = opaque;
    /* Called without the device lock: taking it here must not deadlock. */
    assert_int_equal(pthread_mutex_trylock(&f->uart.lock), 0);
    pthread_mutex_unlock(&f->uart.lock);
    f->rx_ready_calls++;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    struct irq_line line = {.set_level = fake_set_level, .ctx = f, .gsi = SERIAL8250_COM1_IRQ};
    serial8250_init(&f->uart, &line);
    f->uart.output = fake_output;
    f->uart.output_opaque = f;
    f->uart.rx_ready = fake_rx_ready;
    f->uart.rx_ready_opaque = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    serial8250_destroy(&f->uart);
    free(f);
    return 0;
}

static void out8(struct fixture *f, unsigned reg, uint8_t val)
{
    serial8250_io(&f->uart, reg, &val, 1, true);
}

static uint8_t in8(struct fixture *f, unsigned reg)
{
    uint8_t val = 0xff;
    serial8250_io(&f->uart, reg, &val, 1, false);
    return val;
}

static void test_reset_values(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(in8(f, IER), 0x00);
    assert_int_equal(in8(f, IIR), 0x01); /* no interrupt, FIFOs off */
    assert_int_equal(in8(f, LCR), 0x00);
    assert_int_equal(in8(f, MCR), 0x00);
    assert_int_equal(in8(f, LSR), 0x60); /* THRE | TEMT */
    assert_int_equal(in8(f, MSR), 0xb0); /* DCD | DSR | CTS, no deltas */
    assert_int_equal(f->irq_calls, 0);
}

/* The probe sequence of Linux's 8250 autoconfig() and autoconfig_16550a(), step by step. */
static void test_linux_autoconfig(void **state)
{
    struct fixture *f = *state;

    /* IER existence test: bits 0-3 read back as written. */
    uint8_t scratch = in8(f, IER);
    out8(f, IER, 0);
    assert_int_equal(in8(f, IER) & 0x0f, 0x00);
    out8(f, IER, 0x0f);
    assert_int_equal(in8(f, IER) & 0x0f, 0x0f);
    out8(f, IER, scratch);

    /* Loopback test: MCR = LOOP | OUT2 | RTS must show DCD | CTS in MSR. */
    uint8_t save_mcr = in8(f, MCR);
    uint8_t save_lcr = in8(f, LCR);
    out8(f, MCR, 0x10 | 0x0a);
    assert_int_equal(in8(f, MSR) & 0xf0, 0x90);
    out8(f, MCR, save_mcr);

    /* FIFO type: IIR bits 7:6 = 3 means 16550A. */
    out8(f, LCR, 0xbf);
    out8(f, 2, 0); /* EFR on chips that have one; FCR here */
    out8(f, LCR, 0);
    out8(f, FCR, 0x01);
    assert_int_equal(in8(f, IIR) >> 6, 3);

    /* No EFR behind LCR = 0x80 or 0xbf: offset 2 must not read 0. */
    out8(f, LCR, 0x80);
    assert_int_not_equal(in8(f, 2), 0);
    out8(f, LCR, 0xbf);
    assert_int_not_equal(in8(f, 2), 0);

    /* Not a National SuperIO: offset 2 under LCR = 0xe0 does not follow MCR.LOOP. */
    out8(f, LCR, 0);
    uint8_t status1 = in8(f, MCR);
    out8(f, LCR, 0xe0);
    uint8_t status2 = in8(f, 2);
    assert_int_equal((status1 ^ status2) & 0x10, 0);
    out8(f, LCR, 0);
    out8(f, MCR, status1 ^ 0x10);
    out8(f, LCR, 0xe0);
    status2 = in8(f, 2);
    out8(f, LCR, 0);
    out8(f, MCR, status1);
    assert_int_equal((status1 ^ status2) & 0x10, 0);

    /* Not a TI16750: IIR bit 5 stays clear with FCR bit 5 set, with or without DLAB. */
    out8(f, FCR, 0x21);
    assert_int_equal(in8(f, IIR) >> 5, 6);
    out8(f, FCR, 0x01);
    out8(f, LCR, 0x80);
    out8(f, FCR, 0x21);
    assert_int_equal(in8(f, IIR) >> 5, 6);
    out8(f, FCR, 0x01);
    out8(f, LCR, 0);

    /* Not an XScale: IER bit 6 (UUE) cannot be set. */
    uint8_t iersave = in8(f, IER);
    out8(f, IER, iersave | 0x40);
    assert_int_equal(in8(f, IER) & 0x40, 0);
    out8(f, IER, iersave);

    out8(f, LCR, save_lcr);
    out8(f, MCR, save_mcr);
    assert_int_equal(f->out_len, 0);
    assert_int_equal(f->irq_calls, 0); /* OUT2 was never left set with an interrupt enabled */
}

/* Linux's size_fifo(): 256 bytes sent in loopback, count what arrives. */
static void test_fifo_size_probe(void **state)
{
    struct fixture *f = *state;

    out8(f, FCR, 0x07);
    out8(f, MCR, 0x10);
    out8(f, LCR, 0x80);
    out8(f, DLL, 0x01);
    out8(f, DLM, 0x00);
    out8(f, LCR, 0x03);
    for (unsigned i = 0; i < 256; i++)
        out8(f, THR, (uint8_t)i);
    unsigned count = 0;
    while ((in8(f, LSR) & 0x01) && count < 256) {
        assert_int_equal(in8(f, RBR), count);
        count++;
    }
    assert_int_equal(count, SERIAL8250_FIFO_SIZE);
    assert_int_equal(f->out_len, 0); /* loopback never reaches the host */
}

static void test_scratch_register(void **state)
{
    struct fixture *f = *state;
    out8(f, SCR, 0xa5);
    assert_int_equal(in8(f, SCR), 0xa5);
    out8(f, SCR, 0x5a);
    assert_int_equal(in8(f, SCR), 0x5a);
}

static void test_dlab_divisor_latch(void **state)
{
    struct fixture *f = *state;

    out8(f, IER, 0x05);
    out8(f, LCR, 0x83); /* DLAB, 8N1 */
    out8(f, DLL, 0x0c); /* 9600 baud */
    out8(f, DLM, 0x01);
    assert_int_equal(in8(f, DLL), 0x0c);
    assert_int_equal(in8(f, DLM), 0x01);
    assert_int_equal(f->out_len, 0); /* DLL writes do not transmit */
    assert_int_equal(in8(f, LCR), 0x83);

    out8(f, LCR, 0x03);
    assert_int_equal(in8(f, IER), 0x05); /* IER untouched by the DLM write */
    out8(f, THR, 'x');
    assert_int_equal(f->out_len, 1);
    assert_int_equal(f->out[0], 'x');

    out8(f, LCR, 0x83);
    assert_int_equal(in8(f, DLL), 0x0c); /* latch kept across DLAB toggles */
    assert_int_equal(in8(f, DLM), 0x01);
}

static void test_fcr_iir_fifo_bits(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(in8(f, IIR) & 0xc0, 0x00);
    out8(f, FCR, 0xc1); /* enable, trigger 14 */
    assert_int_equal(in8(f, IIR), 0xc1);
    out8(f, FCR, 0x00);
    assert_int_equal(in8(f, IIR), 0x01);
    out8(f, FCR, 0xc6); /* clear bits without FCR0 do not enable anything */
    assert_int_equal(in8(f, IIR), 0x01);
}

static void test_thr_output(void **state)
{
    struct fixture *f = *state;
    const char *msg = "hello, kiln\n";

    for (const char *p = msg; *p; p++) {
        assert_int_equal(in8(f, LSR) & 0x60, 0x60); /* THRE and TEMT: ready for the next byte */
        out8(f, THR, (uint8_t)*p);
    }
    assert_int_equal(f->out_len, strlen(msg));
    assert_memory_equal(f->out, msg, strlen(msg));
    assert_int_equal(in8(f, LSR) & 0x01, 0); /* nothing looped back */
}

static void test_thre_interrupt(void **state)
{
    struct fixture *f = *state;

    out8(f, FCR, 0x01);
    out8(f, MCR, 0x0b); /* DTR | RTS | OUT2 */
    assert_int_equal(f->irq_calls, 0);

    /* IER.THRI 0 -> 1 with THR empty raises the interrupt. */
    out8(f, IER, 0x02);
    assert_int_equal(f->irq_calls, 1);
    assert_true(f->irq_level);
    assert_int_equal(f->irq_gsi, SERIAL8250_COM1_IRQ);

    /* Reading IIR reports THRE and acknowledges it. */
    assert_int_equal(in8(f, IIR), 0xc2);
    assert_int_equal(f->irq_calls, 2);
    assert_false(f->irq_level);
    assert_int_equal(in8(f, IIR), 0xc1);
    assert_int_equal(f->irq_calls, 2);

    /* Writing THR empties it again at once: THRE pending again. */
    out8(f, THR, 'a');
    assert_int_equal(f->irq_calls, 3);
    assert_true(f->irq_level);
    out8(f, THR, 'b'); /* still pending: no new signal */
    assert_int_equal(f->irq_calls, 3);

    /* Re-writing IER with THRI still set is not a 0 -> 1 edge. */
    assert_int_equal(in8(f, IIR), 0xc2);
    out8(f, IER, 0x02);
    assert_int_equal(in8(f, IIR), 0xc1);
    assert_false(f->irq_level);

    /* Linux's THRE re-assertion test: clear IER, set THRI again. */
    out8(f, IER, 0x00);
    out8(f, IER, 0x02);
    assert_true(f->irq_level);
    assert_int_equal(in8(f, IIR), 0xc2);

    /* Masking in IER lowers the line without acknowledging. */
    out8(f, THR, 'c');
    assert_true(f->irq_level);
    unsigned calls = f->irq_calls;
    out8(f, IER, 0x00);
    assert_false(f->irq_level);
    assert_int_equal(f->irq_calls, calls + 1);
    assert_int_equal(in8(f, IIR), 0xc1);
}

static void test_iir_priority(void **state)
{
    struct fixture *f = *state;

    out8(f, FCR, 0x01);
    out8(f, MCR, 0x10 | 0x08 | 0x02); /* loopback, OUT2, RTS: MSR deltas appear */
    for (unsigned i = 0; i < SERIAL8250_FIFO_SIZE + 1; i++)
        out8(f, THR, (uint8_t)i); /* the last one overruns */
    out8(f, IER, 0x0f);
    assert_true(f->irq_level);

    assert_int_equal(in8(f, IIR), 0xc6);        /* line status first */
    assert_int_equal(in8(f, LSR) & 0x03, 0x03); /* OE | DR, OE clears on read */
    assert_int_equal(in8(f, LSR) & 0x02, 0x00);
    assert_int_equal(in8(f, IIR), 0xc4); /* then received data */
    for (unsigned i = 0; i < SERIAL8250_FIFO_SIZE; i++)
        assert_int_equal(in8(f, RBR), i);
    assert_int_equal(in8(f, IIR), 0xc2);        /* then THRE (acknowledged by this read) */
    assert_int_equal(in8(f, IIR), 0xc0);        /* then modem status */
    assert_int_equal(in8(f, MSR), 0x90 | 0x02); /* loopback dropped DSR: DDSR */
    assert_int_equal(in8(f, IIR), 0xc1);
    assert_false(f->irq_level);
}

static void test_rx_fifo_fill_and_drain(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[20];

    for (unsigned i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)('A' + i);
    out8(f, FCR, 0x01);
    assert_int_equal(serial8250_rx_room(&f->uart), SERIAL8250_FIFO_SIZE);
    assert_int_equal(serial8250_receive(&f->uart, buf, 10), 10);
    assert_int_equal(serial8250_rx_room(&f->uart), SERIAL8250_FIFO_SIZE - 10);
    /* Only what fits is taken; the caller keeps the rest. */
    assert_int_equal(serial8250_receive(&f->uart, buf + 10, 10), SERIAL8250_FIFO_SIZE - 10);
    assert_int_equal(serial8250_rx_room(&f->uart), 0);
    assert_int_equal(serial8250_receive(&f->uart, buf, 1), 0);
    assert_int_equal(in8(f, LSR) & 0x03, 0x01); /* DR, and no overrun: nothing was lost */

    for (unsigned i = 0; i < SERIAL8250_FIFO_SIZE; i++) {
        assert_int_equal(in8(f, LSR) & 0x01, 0x01);
        assert_int_equal(f->rx_ready_calls, 0);
        assert_int_equal(in8(f, RBR), 'A' + i);
    }
    assert_int_equal(f->rx_ready_calls, 1); /* once, when the FIFO ran empty */
    assert_int_equal(in8(f, LSR) & 0x01, 0x00);
    in8(f, RBR); /* reading an empty RBR is harmless and does not signal again */
    assert_int_equal(f->rx_ready_calls, 1);
    assert_int_equal(serial8250_rx_room(&f->uart), SERIAL8250_FIFO_SIZE);
}

static void test_rx_without_fifo_holds_one_byte(void **state)
{
    struct fixture *f = *state;
    const uint8_t buf[3] = {1, 2, 3};

    assert_int_equal(serial8250_rx_room(&f->uart), 1);
    assert_int_equal(serial8250_receive(&f->uart, buf, 3), 1);
    assert_int_equal(in8(f, RBR), 1);
    assert_int_equal(f->rx_ready_calls, 1);
    assert_int_equal(serial8250_receive(&f->uart, buf + 1, 2), 1);
    assert_int_equal(in8(f, RBR), 2);
}

static void test_rx_interrupt(void **state)
{
    struct fixture *f = *state;
    const uint8_t buf[2] = {'o', 'k'};

    out8(f, FCR, 0x01);
    out8(f, MCR, 0x08);
    out8(f, IER, 0x01);
    assert_int_equal(f->irq_calls, 0);
    assert_int_equal(serial8250_receive(&f->uart, buf, 2), 2);
    assert_int_equal(f->irq_calls, 1);
    assert_true(f->irq_level);
    assert_int_equal(in8(f, IIR), 0xc4);
    assert_int_equal(in8(f, RBR), 'o');
    assert_int_equal(f->irq_calls, 1); /* still data: line stays up, no new signal */
    assert_int_equal(in8(f, RBR), 'k');
    assert_int_equal(f->irq_calls, 2);
    assert_false(f->irq_level);
    assert_int_equal(in8(f, IIR), 0xc1);
    assert_int_equal(f->rx_ready_calls, 1);
}

static void test_fcr_clears_rx_fifo(void **state)
{
    struct fixture *f = *state;
    const uint8_t buf[4] = {1, 2, 3, 4};

    out8(f, FCR, 0x01);
    assert_int_equal(serial8250_receive(&f->uart, buf, 4), 4);
    out8(f, FCR, 0x01 | 0x02);
    assert_int_equal(in8(f, LSR) & 0x01, 0);
    assert_int_equal(f->rx_ready_calls, 1);
    out8(f, FCR, 0x01 | 0x02); /* already empty: no signal */
    assert_int_equal(f->rx_ready_calls, 1);

    /* Leaving FIFO mode empties the FIFO too. */
    assert_int_equal(serial8250_receive(&f->uart, buf, 4), 4);
    out8(f, FCR, 0x00);
    assert_int_equal(in8(f, LSR) & 0x01, 0);
    assert_int_equal(f->rx_ready_calls, 2);
}

static void test_out2_gates_irq(void **state)
{
    struct fixture *f = *state;

    out8(f, IER, 0x02); /* THRE pending, but OUT2 clear */
    assert_int_equal(f->irq_calls, 0);
    assert_int_equal(in8(f, IIR) & 0x0f, 0x02); /* the UART itself sees it */
    out8(f, THR, 'x');                          /* pending again */
    out8(f, MCR, 0x08);
    assert_int_equal(f->irq_calls, 1);
    assert_true(f->irq_level);
    out8(f, MCR, 0x00);
    assert_int_equal(f->irq_calls, 2);
    assert_false(f->irq_level);
    out8(f, MCR, 0x00);
    assert_int_equal(f->irq_calls, 2); /* no change, no signal */
}

static void test_loopback(void **state)
{
    struct fixture *f = *state;
    const uint8_t host = 'h';

    out8(f, FCR, 0x01);
    in8(f, MSR); /* clear reset-time deltas, if any */

    /* Each MCR output shows up on its MSR input: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD. */
    out8(f, MCR, 0x10 | 0x02);
    assert_int_equal(in8(f, MSR) & 0xf0, 0x10);
    out8(f, MCR, 0x10 | 0x01);
    assert_int_equal(in8(f, MSR) & 0xf0, 0x20);
    out8(f, MCR, 0x10 | 0x04);
    assert_int_equal(in8(f, MSR), 0x40 | 0x02); /* RI up, DSR went down */
    out8(f, MCR, 0x10);
    assert_int_equal(in8(f, MSR), 0x04); /* TERI: RI fell */
    out8(f, MCR, 0x10 | 0x08);
    assert_int_equal(in8(f, MSR), 0x80 | 0x08);
    assert_int_equal(in8(f, MCR), 0x18);

    /* Transmitted bytes come back through the receiver, not the host. */
    out8(f, THR, 'L');
    assert_int_equal(f->out_len, 0);
    assert_int_equal(in8(f, LSR) & 0x01, 0x01);
    /* The serial input is disconnected: host bytes are refused. */
    assert_int_equal(serial8250_rx_room(&f->uart), 0);
    assert_int_equal(serial8250_receive(&f->uart, &host, 1), 0);
    assert_int_equal(in8(f, RBR), 'L');
    assert_int_equal(f->rx_ready_calls, 1);

    /* Leaving loopback reconnects the host and tells it so. */
    out8(f, MCR, 0x08);
    assert_int_equal(f->rx_ready_calls, 2);
    assert_int_equal(in8(f, MSR) & 0xf0, 0xb0);
    assert_int_equal(serial8250_receive(&f->uart, &host, 1), 1);
    out8(f, THR, 'T');
    assert_int_equal(f->out_len, 1);
    assert_int_equal(f->out[0], 'T');
}

static void test_msr_interrupt(void **state)
{
    struct fixture *f = *state;

    out8(f, MCR, 0x08);
    in8(f, MSR);
    out8(f, IER, 0x08);
    assert_int_equal(f->irq_calls, 0);
    out8(f, MCR, 0x18); /* loopback: DSR and CTS drop, DCD stays */
    assert_true(f->irq_level);
    assert_int_equal(in8(f, IIR), 0x00);
    assert_int_equal(in8(f, MSR), 0x80 | 0x03);
    assert_false(f->irq_level);
    assert_int_equal(in8(f, IIR), 0x01);
}

static void test_wide_accesses(void **state)
{
    struct fixture *f = *state;

    /* A word write at DLL fills DLL and DLM, as two byte cycles would. */
    out8(f, LCR, 0x80);
    uint8_t word[2] = {0x34, 0x12};
    serial8250_io(&f->uart, DLL, word, 2, true);
    assert_int_equal(in8(f, DLL), 0x34);
    assert_int_equal(in8(f, DLM), 0x12);
    uint8_t rd[4] = {0};
    serial8250_io(&f->uart, DLL, rd, 2, false);
    assert_int_equal(rd[0], 0x34);
    assert_int_equal(rd[1], 0x12);
    out8(f, LCR, 0x00);

    /* Bytes past the last register are left as the bus pre-filled them. */
    memset(rd, 0xff, sizeof(rd));
    serial8250_io(&f->uart, 6, rd, 4, false);
    assert_int_equal(rd[0], 0xb0);
    assert_int_equal(rd[1], 0x00); /* SCR */
    assert_int_equal(rd[2], 0xff);
    assert_int_equal(rd[3], 0xff);
}

/* Every offset and width the bus could pass, reads and writes: nothing breaks. */
static void test_every_offset_and_len(void **state)
{
    struct fixture *f = *state;
    static const uint32_t lens[] = {1, 2, 4, 8};

    for (uint64_t off = 0; off < SERIAL8250_NR_PORTS + 2; off++) {
        for (unsigned l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
            uint8_t buf[16];
            memset(buf, 0xff, sizeof(buf));
            serial8250_io(&f->uart, off, buf, lens[l], false);
            for (uint32_t i = lens[l]; i < sizeof(buf); i++)
                assert_int_equal(buf[i], 0xff);
            for (uint32_t i = 0; i < lens[l]; i++)
                if (off + i >= SERIAL8250_NR_PORTS)
                    assert_int_equal(buf[i], 0xff);
            memset(buf, 0, sizeof(buf));
            serial8250_io(&f->uart, off, buf, lens[l], true);
        }
    }
    /* Far out of range is ignored too. */
    uint8_t far[4] = {0x55, 0x55, 0x55, 0x55};
    serial8250_io(&f->uart, UINT64_MAX, far, 4, true);
    serial8250_io(&f->uart, UINT64_MAX - 1, far, 4, false);
    assert_int_equal(far[0], 0x55);
    assert_int_equal(far[3], 0x55);
    /* The device still works afterwards. */
    out8(f, LCR, 0x03);
    out8(f, MCR, 0x00);
    out8(f, THR, 'z');
    assert_int_equal(f->out[f->out_len - 1], 'z');
}

static void test_no_irq_line(void **state)
{
    (void)state;
    struct serial8250 uart;
    memset(&uart, 0, sizeof(uart));
    serial8250_init(&uart, NULL);
    uint8_t v = 0x08;
    serial8250_io(&uart, MCR, &v, 1, true);
    v = 0x0f;
    serial8250_io(&uart, IER, &v, 1, true); /* would raise: no line, no crash */
    v = 'q';
    serial8250_io(&uart, THR, &v, 1, true); /* no output hook: dropped */
    assert_true(uart.irq_level);
    serial8250_destroy(&uart);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_reset_values),
        T(test_linux_autoconfig),
        T(test_fifo_size_probe),
        T(test_scratch_register),
        T(test_dlab_divisor_latch),
        T(test_fcr_iir_fifo_bits),
        T(test_thr_output),
        T(test_thre_interrupt),
        T(test_iir_priority),
        T(test_rx_fifo_fill_and_drain),
        T(test_rx_without_fifo_holds_one_byte),
        T(test_rx_interrupt),
        T(test_fcr_clears_rx_fifo),
        T(test_out2_gates_irq),
        T(test_loopback),
        T(test_msr_interrupt),
        T(test_wide_accesses),
        T(test_every_offset_and_len),
        cmocka_unit_test(test_no_irq_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
