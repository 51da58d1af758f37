/*
 * i8042 keyboard controller as far as platforms use it: status and command ports, the
 * controller command byte, self-test, the CPU reset line (command 0xfe, or output port bit
 * 0) that guests pulse to reboot, and a PS/2 keyboard on its first port, enough for a
 * guest's keyboard driver to bind and receive Ctrl+Alt+Del. No mouse is attached.
 */
#ifndef KILN_I8042_H
#define KILN_I8042_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/irq.h"

struct state_reader;
struct state_writer;

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64

#define I8042_KBD_QUEUE 16
#define I8042_KBD_IRQ 1

struct i8042_state {
    uint8_t status;
    uint8_t command_byte;
    uint8_t output_port;
    uint8_t pending_command; /* command awaiting its data byte on port 0x60, or 0 */
    uint8_t out_buf;         /* byte the guest reads next from port 0x60 */
    /* The keyboard: bytes it has sent that the controller has not passed on yet. */
    uint8_t kbd_queue[I8042_KBD_QUEUE];
    uint8_t kbd_len;
    uint8_t kbd_param_cmd; /* keyboard command waiting for its parameter byte, or 0 */
    bool kbd_scanning;     /* the keyboard reports keys (0xf4 enables, 0xf5 disables) */
};

struct i8042 {
    struct i8042_state state;
    pthread_mutex_t lock;
    struct irq_line irq;         /* ISA IRQ 1: a keyboard byte is ready */
    void (*reset)(void *opaque); /* pulled when the guest asserts the reset line */
    void *reset_opaque;
};

void i8042_init(struct i8042 *kbc, void (*reset)(void *opaque), void *opaque);
void i8042_destroy(struct i8042 *kbc);
/* Connects the keyboard interrupt (IRQ 1); without it the guest can only poll. */
void i8042_set_irq(struct i8042 *kbc, const struct irq_line *irq);
/*
 * Presses and releases Ctrl+Alt+Del on the keyboard. -ENODEV if no guest driver has
 * enabled the keyboard (nothing would read the keys), -EBUSY if its buffer is full.
 */
int i8042_send_ctrl_alt_del(struct i8042 *kbc);
/* bus_io_fn for a one-port range: register it at 0x60 and again at 0x64. */
void i8042_data_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void i8042_cmd_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);


/* Snapshots (docs/snapshot.md). */
#define I8042_STATE_VERSION 1
void i8042_save(struct i8042 *kbc, struct state_writer *w);
int i8042_state_load(struct i8042_state *s, struct state_reader *r);
void i8042_restore(struct i8042 *kbc, const struct i8042_state *s);

#endif
