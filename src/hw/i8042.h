/*
 * i8042 keyboard controller, only as far as platforms use it: status and command ports,
 * the controller command byte, self-test, and the CPU reset line (command 0xfe, or output
 * port bit 0) that guests pulse to reboot. No keyboard or mouse is attached.
 */
#ifndef KILN_I8042_H
#define KILN_I8042_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64

struct i8042_state {
    uint8_t status;
    uint8_t command_byte;
    uint8_t output_port;
    uint8_t pending_command; /* command awaiting its data byte on port 0x60, or 0 */
    uint8_t out_buf;         /* byte the guest reads next from port 0x60 */
};

struct i8042 {
    struct i8042_state state;
    pthread_mutex_t lock;
    void (*reset)(void *opaque); /* pulled when the guest asserts the reset line */
    void *reset_opaque;
};

void i8042_init(struct i8042 *kbc, void (*reset)(void *opaque), void *opaque);
void i8042_destroy(struct i8042 *kbc);
/* bus_io_fn for a one-port range: register it at 0x60 and again at 0x64. */
void i8042_data_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void i8042_cmd_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
