/*
 * i8042 keyboard controller (IBM PC/AT technical reference, "Keyboard controller
 * commands") with a PS/2 keyboard behind it, so guests can probe the controller, reset the
 * CPU, and bind a keyboard driver that receives Ctrl+Alt+Del. The keyboard answers the
 * commands Linux's atkbd sends (reset, identify, enable/disable, LEDs, typematic rate,
 * scancode set) and sends scan code set 2, which the controller translates to set 1 while
 * the command byte's translation bit is set, as real controllers do. Keyboard bytes raise
 * IRQ 1 (an edge) when the command byte enables it; controller replies are polled.
 *
 * The reset hook is called after the lock is dropped, because it stops the VM.
 */
#include "hw/i8042.h"

#include <errno.h>
#include <string.h>

#include "snapshot/state_file.h"

/* Status register (port 0x64 read). */
#define STATUS_OBF 0x01      /* output buffer full: port 0x60 has a byte */
#define STATUS_IBF 0x02      /* input buffer full: never, writes are consumed at once */
#define STATUS_SYS 0x04      /* system flag: set by self-test or command byte bit 2 */
#define STATUS_CMD 0x08      /* last write was to port 0x64 (command), not 0x60 (data) */
#define STATUS_UNLOCKED 0x10 /* keyboard not inhibited by the key lock */
#define STATUS_AUXDATA 0x20  /* the byte in the output buffer came from the aux port */

/* Controller command byte. */
#define CB_KBD_INT 0x01
#define CB_SYS 0x04
#define CB_KBD_DISABLE 0x10
#define CB_AUX_DISABLE 0x20
#define CB_XLATE 0x40
#define CB_DEFAULT (CB_KBD_INT | CB_XLATE) /* as a PC BIOS typically leaves it */

/* Output port (commands 0xd0/0xd1). Bit 0 drives the CPU reset line, active low. */
#define OUTPORT_RESET 0x01
#define OUTPORT_A20 0x02
#define OUTPORT_DEFAULT (OUTPORT_RESET | OUTPORT_A20)

enum {
    CMD_READ_CB = 0x20,
    CMD_WRITE_CB = 0x60,
    CMD_AUX_DISABLE = 0xa7,
    CMD_AUX_ENABLE = 0xa8,
    CMD_SELF_TEST = 0xaa,
    CMD_KBD_TEST = 0xab,
    CMD_KBD_DISABLE = 0xad,
    CMD_KBD_ENABLE = 0xae,
    CMD_AUX_TEST = 0xa9,
    CMD_READ_OUTPORT = 0xd0,
    CMD_WRITE_OUTPORT = 0xd1,
    CMD_WRITE_KBD_OUT = 0xd2, /* the data byte appears as if the keyboard sent it */
    CMD_WRITE_AUX_OUT = 0xd3, /* ... as if the mouse sent it */
    CMD_WRITE_AUX = 0xd4,     /* the data byte goes to the mouse */
    CMD_PULSE_BASE = 0xf0, /* 0xf0-0xff: pulse the output port bits that are 0 in the low nibble */
};

#define SELF_TEST_OK 0x55
#define KBD_TEST_OK 0x00
#define AUX_TEST_CLOCK_LOW 0x02 /* "clock line stuck low": no mouse port to use */

/* PS/2 keyboard commands and replies. */
enum {
    KBD_SET_LEDS = 0xed,
    KBD_ECHO = 0xee,
    KBD_SCANCODE_SET = 0xf0,
    KBD_GET_ID = 0xf2,
    KBD_TYPEMATIC = 0xf3,
    KBD_ENABLE = 0xf4,
    KBD_DISABLE = 0xf5,
    KBD_DEFAULTS = 0xf6,
    KBD_RESEND = 0xfe,
    KBD_RESET = 0xff,
};
#define KBD_ACK 0xfa
#define KBD_BAT_OK 0xaa
#define KBD_NAK 0xfe
#define KBD_ID_1 0xab
#define KBD_ID_2 0x83            /* MF2 keyboard */
#define KBD_ID_2_TRANSLATED 0x41 /* ... as the controller translates it */

static void i8042_put_output(struct i8042_state *s, uint8_t byte)
{
    s->out_buf = byte;
    s->status |= STATUS_OBF;
}

/* The command byte's system flag is copied into the status register. */
static void i8042_set_command_byte(struct i8042_state *s, uint8_t val)
{
    s->command_byte = val;
    s->status = (uint8_t)((s->status & ~STATUS_SYS) | ((val & CB_SYS) ? STATUS_SYS : 0));
}

/*
 * Output port write. Bit 0 low asserts reset; the line is treated as a pulse, since the CPU
 * reset that follows would also reset the controller, so the stored bit stays high.
 * Returns true when the CPU must be reset.
 */
static bool i8042_write_output_port(struct i8042_state *s, uint8_t val)
{
    s->output_port = val | OUTPORT_RESET;
    return !(val & OUTPORT_RESET);
}

/* Returns true when the command resets the CPU. */
static bool i8042_command(struct i8042_state *s, uint8_t cmd)
{
    s->pending_command = 0;
    switch (cmd) {
    case CMD_READ_CB:
        i8042_put_output(s, s->command_byte);
        break;
    case CMD_WRITE_CB:
    case CMD_WRITE_OUTPORT:
    case CMD_WRITE_KBD_OUT:
    case CMD_WRITE_AUX_OUT:
    case CMD_WRITE_AUX:
        s->pending_command = cmd; /* the data byte follows on port 0x60 */
        break;
    case CMD_AUX_DISABLE:
        s->command_byte |= CB_AUX_DISABLE;
        break;
    case CMD_AUX_ENABLE:
        s->command_byte &= ~CB_AUX_DISABLE;
        break;
    case CMD_SELF_TEST:
        s->status |= STATUS_SYS;
        i8042_put_output(s, SELF_TEST_OK);
        break;
    case CMD_KBD_TEST:
        i8042_put_output(s, KBD_TEST_OK);
        break;
    case CMD_KBD_DISABLE:
        s->command_byte |= CB_KBD_DISABLE;
        break;
    case CMD_KBD_ENABLE:
        s->command_byte &= ~CB_KBD_DISABLE;
        break;
    case CMD_AUX_TEST:
        i8042_put_output(s, AUX_TEST_CLOCK_LOW);
        break;
    case CMD_READ_OUTPORT:
        i8042_put_output(s, s->output_port);
        break;
    default:
        /* 0xfe is the usual reboot command; 0xff pulses nothing. Other commands: ignored. */
        return cmd >= CMD_PULSE_BASE && !(cmd & OUTPORT_RESET);
    }
    return false;
}

/* ---- the keyboard ---- */

static void kbd_send(struct i8042_state *s, uint8_t byte)
{
    if (s->kbd_len < I8042_KBD_QUEUE) /* a full keyboard buffer drops, as hardware does */
        s->kbd_queue[s->kbd_len++] = byte;
}

/* A keyboard command or parameter byte written to port 0x60. */
static void kbd_write(struct i8042_state *s, uint8_t byte)
{
    bool translated = s->command_byte & CB_XLATE;
    uint8_t cmd = s->kbd_param_cmd;

    if (cmd) {
        s->kbd_param_cmd = 0;
        kbd_send(s, KBD_ACK);
        if (cmd == KBD_SCANCODE_SET && byte == 0) /* query: always set 2 */
            kbd_send(s, translated ? 0x41 : 0x02);
        return;
    }
    switch (byte) {
    case KBD_SET_LEDS:
    case KBD_TYPEMATIC:
    case KBD_SCANCODE_SET:
        kbd_send(s, KBD_ACK);
        s->kbd_param_cmd = byte;
        break;
    case KBD_ECHO:
        kbd_send(s, KBD_ECHO);
        break;
    case KBD_GET_ID:
        kbd_send(s, KBD_ACK);
        kbd_send(s, KBD_ID_1);
        kbd_send(s, translated ? KBD_ID_2_TRANSLATED : KBD_ID_2);
        break;
    case KBD_ENABLE:
    case KBD_DEFAULTS:
        kbd_send(s, KBD_ACK);
        s->kbd_scanning = true;
        break;
    case KBD_DISABLE:
        kbd_send(s, KBD_ACK);
        s->kbd_scanning = false;
        break;
    case KBD_RESET:
        s->kbd_len = 0;
        kbd_send(s, KBD_ACK);
        kbd_send(s, KBD_BAT_OK);
        s->kbd_scanning = true;
        break;
    default:
        /* 0xf7-0xfd (scan code set 3 key types) and 0xfe: acknowledged; others refused. */
        kbd_send(s, byte >= 0xf7 && byte <= KBD_RESEND ? KBD_ACK : KBD_NAK);
        break;
    }
}

/* A data byte completes a pending command; without one it goes to the keyboard. */
static bool i8042_data(struct i8042_state *s, uint8_t val)
{
    uint8_t cmd = s->pending_command;

    s->pending_command = 0;
    switch (cmd) {
    case CMD_WRITE_CB:
        i8042_set_command_byte(s, val);
        break;
    case CMD_WRITE_OUTPORT:
        return i8042_write_output_port(s, val);
    case CMD_WRITE_KBD_OUT:
        kbd_send(s, val);
        break;
    case CMD_WRITE_AUX_OUT:
        /*
         * With no mouse port the byte comes back without STATUS_AUXDATA, so a guest's
         * loopback test sees at once that there is no aux port instead of timing out.
         */
        i8042_put_output(s, val);
        break;
    case CMD_WRITE_AUX:
        break; /* no mouse */
    default:
        s->command_byte &= ~CB_KBD_DISABLE; /* writing to the keyboard enables its clock */
        kbd_write(s, val);
        break;
    }
    return false;
}

/*
 * Moves the keyboard's next byte into the output buffer when it is free and the keyboard
 * interface is enabled. Returns true if the guest should get an interrupt for it.
 */
static bool i8042_deliver(struct i8042_state *s)
{
    if ((s->status & STATUS_OBF) || !s->kbd_len || (s->command_byte & CB_KBD_DISABLE))
        return false;
    s->out_buf = s->kbd_queue[0];
    s->kbd_len--;
    memmove(s->kbd_queue, s->kbd_queue + 1, s->kbd_len);
    s->status = (uint8_t)((s->status | STATUS_OBF) & ~STATUS_AUXDATA);
    return s->command_byte & CB_KBD_INT;
}

/*
 * Ends a port access: passes on a waiting keyboard byte (an edge on IRQ 1, as the ISA line
 * is edge-triggered), then calls the reset hook without the lock: it stops the VM and may
 * wait on vCPU threads.
 */
static void i8042_finish(struct i8042 *kbc, bool reset)
{
    if (i8042_deliver(&kbc->state)) {
        irq_line_set(&kbc->irq, true);
        irq_line_set(&kbc->irq, false);
    }
    pthread_mutex_unlock(&kbc->lock);
    if (reset && kbc->reset)
        kbc->reset(kbc->reset_opaque);
}

void i8042_init(struct i8042 *kbc, void (*reset)(void *opaque), void *opaque)
{
    kbc->state = (struct i8042_state){
        .status = STATUS_UNLOCKED,
        .command_byte = CB_DEFAULT,
        .output_port = OUTPORT_DEFAULT,
    };
    pthread_mutex_init(&kbc->lock, NULL);
    kbc->reset = reset;
    kbc->reset_opaque = opaque;
}

void i8042_destroy(struct i8042 *kbc)
{
    pthread_mutex_destroy(&kbc->lock);
}

void i8042_set_irq(struct i8042 *kbc, const struct irq_line *irq)
{
    pthread_mutex_lock(&kbc->lock);
    kbc->irq = *irq;
    pthread_mutex_unlock(&kbc->lock);
}

int i8042_send_ctrl_alt_del(struct i8042 *kbc)
{
    /* Make codes of Left Ctrl, Left Alt and Delete, then their break codes. */
    static const uint8_t set2[] = {0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14};
    static const uint8_t set1[] = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};
    pthread_mutex_lock(&kbc->lock);
    struct i8042_state *s = &kbc->state;
    bool translated = s->command_byte & CB_XLATE;
    const uint8_t *codes = translated ? set1 : set2;
    size_t n = translated ? sizeof(set1) : sizeof(set2);
    int ret = 0;
    if (!s->kbd_scanning || (s->command_byte & CB_KBD_DISABLE))
        ret = -ENODEV;
    else if (s->kbd_len + n > I8042_KBD_QUEUE)
        ret = -EBUSY;
    for (size_t i = 0; ret == 0 && i < n; i++)
        kbd_send(s, codes[i]);
    i8042_finish(kbc, false);
    return ret;
}

/*
 * Each handler owns a single port, so only data[0] is ours: in a wider access the other
 * bytes belong to the neighbouring ports and are left as the bus set them.
 */
void i8042_data_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct i8042 *kbc = opaque;
    bool reset = false;

    if (offset != 0 || len == 0)
        return;
    pthread_mutex_lock(&kbc->lock);
    if (is_write) {
        kbc->state.status &= ~STATUS_CMD;
        reset = i8042_data(&kbc->state, data[0]);
    } else {
        /* Reading empties the buffer; with nothing new the last byte is read again. */
        data[0] = kbc->state.out_buf;
        kbc->state.status &= ~STATUS_OBF;
    }
    i8042_finish(kbc, reset);
}

void i8042_cmd_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct i8042 *kbc = opaque;
    bool reset = false;

    if (offset != 0 || len == 0)
        return;
    pthread_mutex_lock(&kbc->lock);
    if (is_write) {
        kbc->state.status |= STATUS_CMD;
        reset = i8042_command(&kbc->state, data[0]);
    } else {
        data[0] = kbc->state.status;
    }
    i8042_finish(kbc, reset);
}

/* ---- snapshot ---- */

void i8042_save(struct i8042 *kbc, struct state_writer *w)
{
    pthread_mutex_lock(&kbc->lock);
    struct i8042_state s = kbc->state;
    pthread_mutex_unlock(&kbc->lock);
    uint8_t regs[] = {s.status, s.command_byte, s.output_port, s.pending_command,
                      s.out_buf, s.kbd_len, s.kbd_param_cmd};
    state_put_bytes(w, regs, sizeof(regs));
    state_put_bytes(w, s.kbd_queue, sizeof(s.kbd_queue));
    state_put_bool(w, s.kbd_scanning);
}

int i8042_state_load(struct i8042_state *s, struct state_reader *r)
{
    memset(s, 0, sizeof(*s));
    s->status = state_get_u8(r);
    s->command_byte = state_get_u8(r);
    s->output_port = state_get_u8(r);
    s->pending_command = state_get_u8(r);
    s->out_buf = state_get_u8(r);
    s->kbd_len = state_get_u8(r);
    s->kbd_param_cmd = state_get_u8(r);
    state_get_bytes(r, s->kbd_queue, sizeof(s->kbd_queue));
    s->kbd_scanning = state_get_bool(r);
    if (s->kbd_len > I8042_KBD_QUEUE)
        state_reader_fail(r);
    return state_reader_done(r);
}

void i8042_restore(struct i8042 *kbc, const struct i8042_state *s)
{
    pthread_mutex_lock(&kbc->lock);
    kbc->state = *s;
    pthread_mutex_unlock(&kbc->lock);
}
