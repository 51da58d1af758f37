/*
 * vs: a minimal AF_VSOCK relay for the test guest, whose busybox has no vsock client.
 *
 *   vs l PORT        listen on PORT, accept one connection ("L" on stderr once listening)
 *   vs c CID PORT    connect to CID:PORT
 *
 * then copy stdin to the socket (shutting its write side at EOF) and the socket to stdout
 * until the peer closes. Exit status: 0 done, 1 usage, 2 socket/bind/listen/accept,
 * 3 connect (errno on stderr), 4 write failed, 5 read failed.
 *
 * No libc: raw x86-64 system calls, so the static binary is a few KiB and quick to type
 * into the guest's console as base64 (tests/linux/test_vsock.py builds it with
 * gcc -static -nostdlib -Os).
 */
typedef unsigned long size_t;
typedef long ssize_t;

#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_poll 7
#define SYS_socket 41
#define SYS_connect 42
#define SYS_accept 43
#define SYS_shutdown 48
#define SYS_bind 49
#define SYS_listen 50
#define SYS_exit_group 231

#define AF_VSOCK 40
#define SOCK_STREAM 1
#define SHUT_WR 1
#define POLLIN 1
#define EINTR 4

struct sockaddr_vm {
    unsigned short family;
    unsigned short reserved;
    unsigned int port;
    unsigned int cid;
    unsigned char zero[4];
};

struct pollfd {
    int fd;
    short events;
    short revents;
};

static long sys(long n, long a, long b, long c)
{
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}

static void die(int status)
{
    sys(SYS_exit_group, status, 0, 0);
    __builtin_unreachable();
}

static size_t len(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static void say(const char *s)
{
    sys(SYS_write, 2, (long)s, (long)len(s));
}

/* "E<errno>\n" on stderr. */
static void say_errno(long err)
{
    char buf[16];
    int i = 15;
    buf[i--] = '\n';
    unsigned long v = (unsigned long)-err;
    do {
        buf[i--] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    buf[i] = 'E';
    sys(SYS_write, 2, (long)(buf + i), 16 - i);
}

static unsigned int number(const char *s)
{
    unsigned int v = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (unsigned int)(*s - '0');
    return v;
}

static int write_all(int fd, const char *p, long n)
{
    while (n > 0) {
        long w = sys(SYS_write, fd, (long)p, n);
        if (w == -EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= w;
    }
    return 0;
}

static char buf[65536];

static void relay(int s)
{
    struct pollfd fds[2] = {{0, POLLIN, 0}, {s, POLLIN, 0}};
    for (;;) {
        if (sys(SYS_poll, (long)fds, 2, -1) < 0)
            continue;
        if (fds[0].revents) {
            long n = sys(SYS_read, 0, (long)buf, sizeof(buf));
            if (n <= 0) {
                sys(SYS_shutdown, s, SHUT_WR, 0);
                fds[0].fd = -1;
            } else if (write_all(s, buf, n) < 0) {
                die(4);
            }
        }
        if (fds[1].revents) {
            long n = sys(SYS_read, s, (long)buf, sizeof(buf));
            if (n == 0)
                return;
            if (n < 0)
                die(5);
            if (write_all(1, buf, n) < 0)
                die(4);
        }
    }
}

static void run(long argc, char **argv)
{
    struct sockaddr_vm sa = {AF_VSOCK, 0, 0, 0, {0}};
    int s = (int)sys(SYS_socket, AF_VSOCK, SOCK_STREAM, 0);
    if (s < 0)
        die(2);
    if (argc == 3 && argv[1][0] == 'l') {
        sa.port = number(argv[2]);
        sa.cid = 0xffffffffu; /* VMADDR_CID_ANY */
        if (sys(SYS_bind, s, (long)&sa, sizeof(sa)) < 0 || sys(SYS_listen, s, 1, 0) < 0)
            die(2);
        say("L\n");
        int c = (int)sys(SYS_accept, s, 0, 0);
        if (c < 0)
            die(2);
        sys(SYS_close, s, 0, 0);
        relay(c);
        die(0);
    }
    if (argc == 4 && argv[1][0] == 'c') {
        sa.cid = number(argv[2]);
        sa.port = number(argv[3]);
        long r = sys(SYS_connect, s, (long)&sa, sizeof(sa));
        if (r < 0) {
            say_errno(r);
            die(3);
        }
        relay(s);
        die(0);
    }
    say("usage: vs l PORT | vs c CID PORT\n");
    die(1);
}

/* The kernel enters with argc at (%rsp) and argv right after it. */
__asm__(".globl _start\n"
        "_start:\n"
        "  mov (%rsp), %rdi\n"
        "  lea 8(%rsp), %rsi\n"
        "  and $-16, %rsp\n"
        "  call start_c\n");

void start_c(long argc, char **argv)
{
    run(argc, argv);
}
