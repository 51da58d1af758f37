/* `kiln console NAME`: attach this terminal to a running VM's serial console socket. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/vm_ref.h"
#include "util.h"

#define CONSOLE_ESCAPE 0x1d /* Ctrl-], as virsh console and telnet */

static const char console_usage[] =
    "Usage: kiln console NAME\n"
    "\n"
    "Attach this terminal to the running VM NAME's serial console: the VM's recent output\n"
    "is replayed, then what it prints appears here and what you type goes to it. Ctrl-]\n"
    "detaches; the VM keeps running. The terminal is put back as it was on every exit.\n"
    "\n"
    "Exit status: 0 detached, or the VM exited; 2 bad usage; 6 the console socket cannot\n"
    "be reached; 7 no such VM; 8 not running.\n";

struct console_session {
    int sock;
    int sig_fd;
    bool raw;
    struct termios saved;
};

static int connect_console(const struct vm_ref *ref)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (vm_ref_path(ref, VM_FILE_CONSOLE_SOCK, addr.sun_path, sizeof(addr.sun_path)) < 0)
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static void terminal_raw(struct console_session *s)
{
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &s->saved) < 0)
        return;
    struct termios raw = s->saved;
    cfmakeraw(&raw);
    s->raw = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
}

static void terminal_restore(struct console_session *s)
{
    if (s->raw)
        tcsetattr(STDIN_FILENO, TCSANOW, &s->saved);
    s->raw = false;
}

/* Keyboard to the VM, up to the escape key. Returns 1 to detach, 0 to go on, -1 on EOF. */
static int forward_input(struct console_session *s)
{
    char buf[512];
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n <= 0)
        return n < 0 && errno == EINTR ? 0 : -1;
    char *esc = memchr(buf, CONSOLE_ESCAPE, (size_t)n);
    size_t len = esc ? (size_t)(esc - buf) : (size_t)n;
    if (len && write_full(s->sock, buf, len) < 0)
        return 1;
    return esc ? 1 : 0;
}

/* The VM's output to the terminal. Returns false when the VM side closed. */
static bool forward_output(struct console_session *s)
{
    char buf[4096];
    ssize_t n = read(s->sock, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
        return true;
    return n > 0 && write_full(STDOUT_FILENO, buf, (size_t)n) == 0;
}

/* Returns the reason the session ended, for the closing message. */
static const char *console_loop(struct console_session *s)
{
    struct pollfd pfd[3] = {{.fd = s->sock, .events = POLLIN},
                            {.fd = s->sig_fd, .events = POLLIN},
                            {.fd = STDIN_FILENO, .events = POLLIN}};
    nfds_t nfds = 3;
    for (;;) {
        if (poll(pfd, nfds, -1) < 0) {
            if (errno == EINTR)
                continue;
            return strerror(errno);
        }
        if (pfd[1].revents)
            return "a signal";
        if (pfd[0].revents && !forward_output(s))
            return "the VM closed the console (it stopped, or another client holds it)";
        if (nfds == 3 && pfd[2].revents) {
            int r = forward_input(s);
            if (r == 1)
                return NULL;
            if (r < 0)
                nfds = 2; /* input ended: keep showing output until detached */
        }
    }
}

static int attach(const struct vm_ref *ref)
{
    struct vm_runtime rt;
    if (vm_runtime_probe(ref->dir, &rt, false) != 1) {
        log_error("VM '%s' is not running", ref->name);
        return KILN_EXIT_VM_STATE;
    }
    struct console_session s = {.sock = connect_console(ref)};
    if (s.sock < 0) {
        log_error("VM '%s': console socket: %s", ref->name, strerror(-s.sock));
        return KILN_EXIT_DEVICE;
    }
    /* Signals arrive through a descriptor, so every exit goes through terminal_restore. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigprocmask(SIG_BLOCK, &set, &old);
    s.sig_fd = signalfd(-1, &set, SFD_CLOEXEC);
    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "kiln: connected to VM '%s' (Ctrl-] detaches)\n", ref->name);
    terminal_raw(&s);
    const char *why = s.sig_fd >= 0 ? console_loop(&s) : strerror(errno);
    terminal_restore(&s);
    if (why)
        fprintf(stderr, "\nkiln: console of VM '%s' ended: %s\n", ref->name, why);
    else
        fprintf(stderr, "\nkiln: detached from VM '%s'; it keeps running\n", ref->name);
    close(s.sock);
    if (s.sig_fd >= 0)
        close(s.sig_fd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return KILN_EXIT_OK;
}

int cmd_console(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    optind = 0;
    opterr = 0;
    for (int opt; (opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1;) {
        fputs(console_usage, opt == 'h' ? stdout : stderr);
        return opt == 'h' ? KILN_EXIT_OK : KILN_EXIT_USAGE;
    }
    if (optind != argc - 1) {
        fputs(console_usage, stderr);
        return KILN_EXIT_USAGE;
    }
    struct vm_ref ref;
    int rc = vm_ref_open(argv[optind], true, &ref);
    return rc == KILN_EXIT_OK ? attach(&ref) : rc;
}
