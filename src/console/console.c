#include "console/console.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "console/console_sock.h"
#include "util.h"

/*
 * The terminal settings to put back if kiln dies from a signal. Process-wide by nature (a
 * process has one controlling terminal) and only read from the crash handler, which cannot
 * be given a context pointer.
 */
static struct termios crash_restore_termios;
static int crash_restore_fd = -1;

static void write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the reader went away; the guest must not stall on it */
        buf += n;
        len -= (size_t)n;
    }
}

void console_crash_restore(void)
{
    if (crash_restore_fd >= 0)
        tcsetattr(crash_restore_fd, TCSANOW, &crash_restore_termios);
}

static void console_crash_handler(int sig)
{
    console_crash_restore();
    signal(sig, SIG_DFL);
    raise(sig);
}

int console_init(struct console *con, int in_fd, int out_fd, const char *log_path)
{
    memset(con, 0, sizeof(*con));
    con->in_fd = in_fd;
    con->out_fd = out_fd;
    con->log_fd = -1;
    con->is_tty = in_fd >= 0 && isatty(in_fd) && tcgetattr(in_fd, &con->saved) == 0;
    if (log_path) {
        con->log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (con->log_fd < 0)
            return -errno;
    }
    return 0;
}

int console_attach_sock(struct console *con, const char *path, struct event_loop *loop,
                        const struct console_sock_sink *sink)
{
    struct console_sock *sock = malloc(sizeof(*sock));
    if (!sock)
        return -ENOMEM;
    int ret = console_sock_open(sock, path, loop, sink);
    if (ret < 0) {
        console_sock_close(sock);
        free(sock);
        return ret;
    }
    con->sock = sock;
    return 0;
}

void console_close(struct console *con)
{
    console_restore(con);
    if (con->sock) {
        console_sock_close(con->sock);
        free(con->sock);
        con->sock = NULL;
    }
    if (con->log_fd >= 0)
        close(con->log_fd);
    con->log_fd = -1;
}

void console_enter_raw(struct console *con)
{
    if (!con->is_tty || con->raw)
        return;
    struct termios raw = con->saved;
    /* Like cfmakeraw(), but keep output post-processing off too: the guest sends \r\n. */
    raw.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    raw.c_oflag &= ~OPOST;
    raw.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    raw.c_cflag &= ~(CSIZE | PARENB);
    raw.c_cflag |= CS8;
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    crash_restore_termios = con->saved;
    crash_restore_fd = con->in_fd;
    const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < ARRAY_SIZE(fatal); i++)
        signal(fatal[i], console_crash_handler);
    if (tcsetattr(con->in_fd, TCSANOW, &raw) == 0)
        con->raw = true;
}

void console_restore(struct console *con)
{
    if (!con->raw)
        return;
    tcsetattr(con->in_fd, TCSANOW, &con->saved);
    con->raw = false;
    crash_restore_fd = -1;
}

void console_output(void *opaque, const uint8_t *buf, size_t len)
{
    struct console *con = opaque;
    if (con->sock)
        console_sock_output(con->sock, buf, len);
    else if (con->out_fd >= 0)
        write_all(con->out_fd, buf, len);
    if (con->log_fd >= 0)
        write_all(con->log_fd, buf, len);
}

size_t console_filter_input(struct console *con, const uint8_t *in, size_t len, uint8_t *out,
                            enum console_action *action)
{
    size_t n = 0;
    *action = CONSOLE_ACTION_NONE;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        if (!con->escape_pending) {
            if (c == CONSOLE_ESCAPE_CHAR)
                con->escape_pending = true;
            else
                out[n++] = c;
            continue;
        }
        con->escape_pending = false;
        switch (c) {
        case 'x':
        case 'X':
            *action = CONSOLE_ACTION_QUIT;
            return n;
        case 'h':
        case 'H':
        case '?':
            if (*action == CONSOLE_ACTION_NONE)
                *action = CONSOLE_ACTION_HELP;
            break;
        case 'p':
        case 'P':
            if (*action == CONSOLE_ACTION_NONE)
                *action = CONSOLE_ACTION_POWER_BUTTON;
            break;
        case CONSOLE_ESCAPE_CHAR:
            out[n++] = c;
            break;
        default:
            break; /* unknown command: swallowed, as QEMU does */
        }
    }
    return n;
}

void console_print_help(struct console *con)
{
    static const char help[] = "\r\n"
                               "kiln console escapes (Ctrl-A then the key):\r\n"
                               "  Ctrl-A x        quit kiln (the VM is stopped)\r\n"
                               "  Ctrl-A p        press the power button (the guest shuts down)\r\n"
                               "  Ctrl-A h        this help\r\n"
                               "  Ctrl-A Ctrl-A   send Ctrl-A to the guest\r\n";
    if (con->out_fd >= 0)
        write_all(con->out_fd, (const uint8_t *)help, sizeof(help) - 1);
}
