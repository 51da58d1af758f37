/*
 * 16550A UART. Register names and bits follow the National PC16550D datasheet (RBR, THR,
 * IER, IIR, FCR, LCR, MCR, LSR, MSR, SCR, DLL, DLM). The transmitter has no timing: a byte
 * written to THR is handed to the host at once, so LSR always shows THRE and TEMT.
 *
 * Locking: every register access runs under uart->lock. The output hook and the interrupt
 * line are driven with the lock held (keeps bytes and level changes in order); rx_ready
 * is called after the lock is dropped, so it may call back into serial8250_receive().
 */
#include "hw/serial8250.h"

#include <string.h>

#include "snapshot/state_file.h"

/* Register offsets from the port base. */
enum {
    REG_RBR_THR = 0, /* DLL while LCR.DLAB is set */
    REG_IER = 1,     /* DLM while LCR.DLAB is set */
    REG_IIR_FCR = 2, /* IIR on read, FCR on write; not affected by DLAB */
    REG_LCR = 3,
    REG_MCR = 4,
    REG_LSR = 5,
    REG_MSR = 6,
    REG_SCR = 7,
};

/* IER: interrupt enables. Bits 4-7 are reserved and read as 0 on a 16550A. */
#define IER_RDI 0x01  /* received data available */
#define IER_THRI 0x02 /* transmitter holding register empty */
#define IER_RLSI 0x04 /* receiver line status */
#define IER_MSI 0x08  /* modem status */
#define IER_MASK 0x0f

/* IIR: interrupt identification, bits 1-3 in priority order, bit 0 set when none pending. */
#define IIR_NO_INT 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_FIFO_ENABLED 0xc0 /* both bits follow FCR0; 0xc0 is what identifies a 16550A */

/* FCR: FIFO control. Bits 1 and 2 are self-clearing actions. */
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define FCR_DMA_MODE 0x08
#define FCR_TRIGGER 0xc0
#define FCR_STORED (FCR_ENABLE | FCR_DMA_MODE | FCR_TRIGGER)

#define LCR_DLAB 0x80 /* divisor latch access */

/* MCR: modem outputs. Bits 5-7 are always 0 on a 16550A. */
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08 /* on PCs this gates the chip's INTR pin onto the ISA IRQ line */
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

/* LSR: line status. Bits 1-4 are error flags, cleared by reading LSR. */
#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_PE 0x04
#define LSR_FE 0x08
#define LSR_BI 0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define LSR_ERRORS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

/* MSR: modem inputs in bits 4-7, their change ("delta") flags in bits 0-3. */
#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04 /* trailing edge of RI: RI went from 1 to 0 */
#define MSR_DDCD 0x08
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80
#define MSR_DELTAS 0x0f
#define MSR_INPUTS 0xf0

/* What the host end looks like outside loopback: a terminal that is present and ready. */
#define MSR_HOST_LINES (MSR_DCD | MSR_DSR | MSR_CTS)

/* In 16450 mode (FCR0 clear) the receiver holds a single byte in RBR. */
static unsigned serial8250_rx_capacity(const struct serial8250_state *s)
{
    return (s->fcr & FCR_ENABLE) ? SERIAL8250_FIFO_SIZE : 1;
}

static unsigned serial8250_rx_space(const struct serial8250_state *s)
{
    unsigned cap = serial8250_rx_capacity(s);
    return s->rx_count >= cap ? 0 : cap - s->rx_count;
}

/* Indexes are taken modulo the FIFO size so that a restored state can never index out. */
static void serial8250_rx_push(struct serial8250_state *s, uint8_t byte)
{
    s->rx_fifo[(s->rx_head + s->rx_count) % SERIAL8250_FIFO_SIZE] = byte;
    s->rx_count++;
    s->lsr |= LSR_DR;
}

/* Returns true when this emptied a FIFO that held data (the host may send more). */
static bool serial8250_rx_clear(struct serial8250_state *s)
{
    bool had_data = s->rx_count > 0;

    s->rx_head = 0;
    s->rx_count = 0;
    s->lsr &= ~LSR_DR;
    return had_data;
}

static uint8_t serial8250_rx_pop(struct serial8250_state *s, bool *rx_wake)
{
    if (s->rx_count == 0)
        return 0;
    uint8_t byte = s->rx_fifo[s->rx_head % SERIAL8250_FIFO_SIZE];
    s->rx_head = (s->rx_head + 1) % SERIAL8250_FIFO_SIZE;
    s->rx_count--;
    if (s->rx_count == 0) {
        s->lsr &= ~LSR_DR;
        *rx_wake = true;
    }
    return byte;
}

/* The highest-priority enabled source, as the IIR reports it (PC16550D table IV). */
static uint8_t serial8250_iir_id(const struct serial8250_state *s)
{
    if ((s->ier & IER_RLSI) && (s->lsr & LSR_ERRORS))
        return IIR_RLSI;
    if ((s->ier & IER_RDI) && s->rx_count > 0)
        return IIR_RDI;
    if ((s->ier & IER_THRI) && s->thr_ipending)
        return IIR_THRI;
    if ((s->ier & IER_MSI) && (s->msr & MSR_DELTAS))
        return IIR_MSI;
    return IIR_NO_INT;
}

/*
 * INTR follows "some enabled source pending"; the PC wiring passes it to the IRQ line only
 * while MCR.OUT2 is set. The line is touched only when its level changes.
 */
static void serial8250_update_irq(struct serial8250 *uart)
{
    const struct serial8250_state *s = &uart->state;
    bool level = serial8250_iir_id(s) != IIR_NO_INT && (s->mcr & MCR_OUT2);

    if (level == uart->irq_level)
        return;
    uart->irq_level = level;
    irq_line_set(&uart->irq, level);
}

/*
 * Modem inputs: in loopback (MCR.LOOP) the outputs are wired back internally, RTS->CTS,
 * DTR->DSR, OUT1->RI, OUT2->DCD; otherwise the host end is always ready. Changes latch
 * the delta bits, which stay set until MSR is read.
 */
static void serial8250_update_msr(struct serial8250_state *s)
{
    uint8_t in = MSR_HOST_LINES;

    if (s->mcr & MCR_LOOP) {
        in = 0;
        in |= (s->mcr & MCR_RTS) ? MSR_CTS : 0;
        in |= (s->mcr & MCR_DTR) ? MSR_DSR : 0;
        in |= (s->mcr & MCR_OUT1) ? MSR_RI : 0;
        in |= (s->mcr & MCR_OUT2) ? MSR_DCD : 0;
    }
    uint8_t changed = (s->msr ^ in) & MSR_INPUTS;
    uint8_t delta = 0;
    delta |= (changed & MSR_CTS) ? MSR_DCTS : 0;
    delta |= (changed & MSR_DSR) ? MSR_DDSR : 0;
    delta |= (changed & MSR_DCD) ? MSR_DDCD : 0;
    delta |= ((changed & MSR_RI) && !(in & MSR_RI)) ? MSR_TERI : 0;
    s->msr = in | ((s->msr | delta) & MSR_DELTAS);
}

/* THR write: the byte leaves at once, so THR is empty again and THRE is pending anew. */
static void serial8250_transmit(struct serial8250 *uart, uint8_t byte)
{
    struct serial8250_state *s = &uart->state;

    if (s->mcr & MCR_LOOP) {
        /* Loopback: the serial output feeds the receiver; a full FIFO overruns. */
        if (serial8250_rx_space(s) > 0)
            serial8250_rx_push(s, byte);
        else
            s->lsr |= LSR_OE;
    } else if (uart->output) {
        uart->output(uart->output_opaque, &byte, 1);
    }
    s->thr_ipending = 1;
}

static void serial8250_write_ier(struct serial8250_state *s, uint8_t val)
{
    uint8_t old = s->ier;

    s->ier = val & IER_MASK;
    /* Enabling THRI while THR is empty (always, here) raises the THRE interrupt again. */
    if (!(old & IER_THRI) && (s->ier & IER_THRI))
        s->thr_ipending = 1;
}

/*
 * FCR0 switches between 16450 and FIFO mode; either change empties the FIFOs. FCR1 resets
 * the receive FIFO, and like the other bits it only takes effect together with FCR0.
 */
static bool serial8250_write_fcr(struct serial8250_state *s, uint8_t val)
{
    bool rx_wake = false;

    if (((val ^ s->fcr) & FCR_ENABLE) || ((val & FCR_ENABLE) && (val & FCR_CLEAR_RX)))
        rx_wake = serial8250_rx_clear(s);
    s->fcr = (val & FCR_ENABLE) ? (val & FCR_STORED) : 0;
    return rx_wake;
}

/* Leaving loopback reconnects the serial input, so the host may feed input again. */
static bool serial8250_write_mcr(struct serial8250_state *s, uint8_t val)
{
    bool left_loop = (s->mcr & MCR_LOOP) && !(val & MCR_LOOP);

    s->mcr = val & MCR_MASK;
    serial8250_update_msr(s);
    return left_loop;
}

/* Reading IIR acknowledges a THRE interrupt, but only when THRE is what it reports. */
static uint8_t serial8250_read_iir(struct serial8250_state *s)
{
    uint8_t id = serial8250_iir_id(s);

    if (id == IIR_THRI)
        s->thr_ipending = 0;
    return id | ((s->fcr & FCR_ENABLE) ? IIR_FIFO_ENABLED : 0);
}

static uint8_t serial8250_read_lsr(struct serial8250_state *s)
{
    uint8_t val = s->lsr;

    s->lsr &= ~LSR_ERRORS;
    return val;
}

static uint8_t serial8250_read_msr(struct serial8250_state *s)
{
    uint8_t val = s->msr;

    s->msr &= ~MSR_DELTAS;
    return val;
}

/* One byte-wide register read. Sets *rx_wake when the guest drained the receive FIFO. */
static uint8_t serial8250_read_reg(struct serial8250 *uart, unsigned reg, bool *rx_wake)
{
    struct serial8250_state *s = &uart->state;
    bool dlab = s->lcr & LCR_DLAB;

    switch (reg) {
    case REG_RBR_THR:
        return dlab ? s->dll : serial8250_rx_pop(s, rx_wake);
    case REG_IER:
        return dlab ? s->dlm : s->ier;
    case REG_IIR_FCR:
        return serial8250_read_iir(s);
    case REG_LCR:
        return s->lcr;
    case REG_MCR:
        return s->mcr;
    case REG_LSR:
        return serial8250_read_lsr(s);
    case REG_MSR:
        return serial8250_read_msr(s);
    default:
        return s->scr;
    }
}

/* One byte-wide register write. Returns true when the host may feed input again. */
static bool serial8250_write_reg(struct serial8250 *uart, unsigned reg, uint8_t val)
{
    struct serial8250_state *s = &uart->state;
    bool dlab = s->lcr & LCR_DLAB;

    switch (reg) {
    case REG_RBR_THR:
        if (dlab)
            s->dll = val;
        else
            serial8250_transmit(uart, val);
        return false;
    case REG_IER:
        if (dlab)
            s->dlm = val;
        else
            serial8250_write_ier(s, val);
        return false;
    case REG_IIR_FCR:
        return serial8250_write_fcr(s, val);
    case REG_LCR:
        s->lcr = val;
        return false;
    case REG_MCR:
        return serial8250_write_mcr(s, val);
    case REG_SCR:
        s->scr = val;
        return false;
    default:
        /* LSR and MSR writes are for factory testing only; the datasheet leaves them undefined. */
        return false;
    }
}

void serial8250_init(struct serial8250 *uart, const struct irq_line *irq)
{
    /* output/rx_ready and their opaques are left as the caller set them (struct starts zeroed). */
    uart->state = (struct serial8250_state){.lsr = LSR_THRE | LSR_TEMT, .msr = MSR_HOST_LINES};
    pthread_mutex_init(&uart->lock, NULL);
    uart->irq = irq ? *irq : (struct irq_line){0};
    uart->irq_level = false;
}

void serial8250_destroy(struct serial8250 *uart)
{
    pthread_mutex_destroy(&uart->lock);
}

void serial8250_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct serial8250 *uart = opaque;
    bool rx_wake = false;

    if (offset >= SERIAL8250_NR_PORTS)
        return;
    pthread_mutex_lock(&uart->lock);
    /* A wide access reaches consecutive registers, as ISA splits it into byte cycles. */
    for (uint32_t i = 0; i < len && offset + i < SERIAL8250_NR_PORTS; i++) {
        unsigned reg = (unsigned)offset + i;
        if (is_write)
            rx_wake |= serial8250_write_reg(uart, reg, data[i]);
        else
            data[i] = serial8250_read_reg(uart, reg, &rx_wake);
    }
    serial8250_update_irq(uart);
    pthread_mutex_unlock(&uart->lock);
    if (rx_wake && uart->rx_ready)
        uart->rx_ready(uart->rx_ready_opaque);
}

size_t serial8250_receive(struct serial8250 *uart, const uint8_t *buf, size_t len)
{
    struct serial8250_state *s = &uart->state;
    size_t n = 0;

    pthread_mutex_lock(&uart->lock);
    /* In loopback the serial input pin is disconnected (PC16550D, MCR bit 4). */
    if (!(s->mcr & MCR_LOOP)) {
        while (n < len && serial8250_rx_space(s) > 0)
            serial8250_rx_push(s, buf[n++]);
    }
    serial8250_update_irq(uart);
    pthread_mutex_unlock(&uart->lock);
    return n;
}

size_t serial8250_rx_room(struct serial8250 *uart)
{
    size_t room;

    pthread_mutex_lock(&uart->lock);
    room = (uart->state.mcr & MCR_LOOP) ? 0 : serial8250_rx_space(&uart->state);
    pthread_mutex_unlock(&uart->lock);
    return room;
}

/* ---- snapshot ---- */

void serial8250_save(struct serial8250 *uart, struct state_writer *w)
{
    pthread_mutex_lock(&uart->lock);
    struct serial8250_state s = uart->state;
    pthread_mutex_unlock(&uart->lock);
    uint8_t regs[] = {s.ier, s.lcr, s.mcr, s.lsr, s.msr, s.scr, s.dll, s.dlm, s.fcr,
                      s.thr_ipending, s.rx_head, s.rx_count};
    state_put_bytes(w, regs, sizeof(regs));
    state_put_bytes(w, s.rx_fifo, sizeof(s.rx_fifo));
}

int serial8250_state_load(struct serial8250_state *s, struct state_reader *r)
{
    memset(s, 0, sizeof(*s));
    s->ier = state_get_u8(r);
    s->lcr = state_get_u8(r);
    s->mcr = state_get_u8(r);
    s->lsr = state_get_u8(r);
    s->msr = state_get_u8(r);
    s->scr = state_get_u8(r);
    s->dll = state_get_u8(r);
    s->dlm = state_get_u8(r);
    s->fcr = state_get_u8(r);
    s->thr_ipending = state_get_u8(r);
    s->rx_head = state_get_u8(r);
    s->rx_count = state_get_u8(r);
    state_get_bytes(r, s->rx_fifo, sizeof(s->rx_fifo));
    /* The FIFO holds what its mode allows; IER's top nibble and MCR's top bits read as 0. */
    if (s->rx_head >= SERIAL8250_FIFO_SIZE || s->rx_count > serial8250_rx_capacity(s) ||
        s->thr_ipending > 1 || (s->ier & 0xf0) || (s->mcr & 0xe0))
        state_reader_fail(r);
    return state_reader_done(r);
}

void serial8250_restore(struct serial8250 *uart, const struct serial8250_state *s)
{
    pthread_mutex_lock(&uart->lock);
    uart->state = *s;
    /* Drive the line whatever its last level was: the new KVM irqchip starts from the file. */
    uart->irq_level = !(serial8250_iir_id(s) != IIR_NO_INT && (s->mcr & MCR_OUT2));
    serial8250_update_irq(uart);
    pthread_mutex_unlock(&uart->lock);
}
