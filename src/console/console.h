/*
 * The host side of the guest's serial console: the terminal (raw mode while a guest runs,
 * restored on every exit path), the Ctrl-A escape commands, and the optional log file.
 */
#ifndef KILN_CONSOLE_H
#define KILN_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#define CONSOLE_ESCAPE_CHAR 0x01 /* Ctrl-A, as in QEMU */
#define CONSOLE_PENDING_MAX 4096
#define CONSOLE_READ_CHUNK 256

enum console_action {
    CONSOLE_ACTION_NONE,
    CONSOLE_ACTION_QUIT,         /* Ctrl-A x */
    CONSOLE_ACTION_HELP,         /* Ctrl-A h */
    CONSOLE_ACTION_POWER_BUTTON, /* Ctrl-A p: press the ACPI power button */
};

struct console_sock;

struct console {
    int in_fd;
    int out_fd;
    int log_fd;
    struct console_sock *sock; /* --console-sock: output goes there instead of out_fd */
    bool is_tty;
    bool raw;
    struct termios saved;
    bool escape_pending; /* the previous input byte was Ctrl-A */
    bool input_closed;   /* EOF or error on in_fd */
    /* Input that the guest's UART had no room for yet. */
    uint8_t pending[CONSOLE_PENDING_MAX];
    size_t pending_len;
};

/*
 * `log_path` may be NULL. `in_fd`/`out_fd` may be -1 (no terminal: the console is served on
 * a socket). Returns 0 or a negative errno (the log file could not be opened).
 */
int console_init(struct console *con, int in_fd, int out_fd, const char *log_path);
void console_close(struct console *con);

struct console_sock_sink;
struct event_loop;
/*
 * Serves the console on the Unix socket `path` instead of the terminal (console_sock.h);
 * call after console_init with in_fd = out_fd = -1. Returns 0 or a negative errno.
 */
int console_attach_sock(struct console *con, const char *path, struct event_loop *loop,
                        const struct console_sock_sink *sink);

/* Puts the terminal in raw mode (if it is one) and arranges for it to be restored. */
void console_enter_raw(struct console *con);
void console_restore(struct console *con);
/* From a handler of a fatal signal: puts the terminal back if kiln made it raw.
 * Async-signal-safe. */
void console_crash_restore(void);

/* serial8250 output callback: guest bytes to the terminal (or socket) and the log. */
void console_output(void *opaque, const uint8_t *buf, size_t len);

/*
 * Strips escape commands from host input. Copies the bytes meant for the guest to `out`
 * (at least `len` bytes of room) and returns their count; `*action` gets the first command
 * seen, and input after a quit is dropped. Ctrl-A Ctrl-A sends one Ctrl-A to the guest.
 */
size_t console_filter_input(struct console *con, const uint8_t *in, size_t len, uint8_t *out,
                            enum console_action *action);

/* The text Ctrl-A h prints. */
void console_print_help(struct console *con);

#endif
