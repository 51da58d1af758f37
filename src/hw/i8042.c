/*
 * i8042 keyboard controller: just the controller's own commands (IBM PC/AT technical
 * reference, "Keyboard controller commands"), so guests can probe it and reset the CPU.
 * Bytes written for the keyboard are dropped, since none is attached, and the controller
 * raises no interrupts: command replies are read by polling the status register.
 *
 * The reset hook is called after the lock is dropped, because it stops the VM.
 */
#include "hw/i8042.h"

/* Status register (port 0x64 read). */
#define STATUS_OBF 0x01      /* output buffer full: port 0x60 has a byte */
#define STATUS_IBF 0x02      /* input buffer full: never, writes are consumed at once */
#define STATUS_SYS 0x04      /* system flag: set by self-test or command byte bit 2 */
#define STATUS_CMD 0x08      /* last write was to port 0x64 (command), not 0x60 (data) */
#define STATUS_UNLOCKED 0x10 /* keyboard not inhibited by the key lock */

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
    CMD_READ_OUTPORT = 0xd0,
    CMD_WRITE_OUTPORT = 0xd1,
    CMD_PULSE_BASE = 0xf0, /* 0xf0-0xff: pulse the output port bits that are 0 in the low nibble */
};

#define SELF_TEST_OK 0x55
#define KBD_TEST_OK 0x00

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
    case CMD_READ_OUTPORT:
        i8042_put_output(s, s->output_port);
        break;
    default:
        /* 0xfe is the usual reboot command; 0xff pulses nothing. Other commands: ignored. */
        return cmd >= CMD_PULSE_BASE && !(cmd & OUTPORT_RESET);
    }
    return false;
}

/* A data byte completes a pending command; without one it would go to the keyboard. */
static bool i8042_data(struct i8042_state *s, uint8_t val)
{
    uint8_t cmd = s->pending_command;

    s->pending_command = 0;
    if (cmd == CMD_WRITE_CB)
        i8042_set_command_byte(s, val);
    else if (cmd == CMD_WRITE_OUTPORT)
        return i8042_write_output_port(s, val);
    return false;
}

/* Calls the reset hook without the lock: it stops the VM and may wait on vCPU threads. */
static void i8042_finish(struct i8042 *kbc, bool reset)
{
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
