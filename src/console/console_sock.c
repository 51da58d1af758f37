#include "console/console_sock.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "vmm/event_loop.h"

#define CONSOLE_SOCK_BACKLOG 4
#define CONSOLE_SOCK_READ_CHUNK 256

/* The events to watch on the client: input unless paused or ended, output when stalled. */
static void sock_update_client_events(struct console_sock *s, int fd, bool stalled)
{
    uint32_t ev = 0;
    if (!s->input_paused && !s->input_eof)
        ev |= EPOLLIN;
    if (stalled)
        ev |= EPOLLOUT;
    event_loop_modify(s->loop, fd, ev); /* EPOLLHUP and EPOLLERR are always reported */
}

/*
 * Sends what the client has not seen yet, without blocking. A client more than the
 * history behind skips to the oldest byte still held. Main thread.
 */
static void sock_flush(struct console_sock *s)
{
    pthread_mutex_lock(&s->lock);
    int fd = s->client_fd;
    if (fd < 0 || s->broken) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    uint64_t tail = ring_tail(&s->history);
    if (s->sent < tail) {
        s->dropped += tail - s->sent;
        s->sent = tail;
    }
    bool stalled = false;
    while (s->sent < s->history.head) {
        const uint8_t *data;
        size_t n = ring_peek(&s->history, s->sent, &data);
        ssize_t w = send(fd, data, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            stalled = true;
            break;
        }
        if (w <= 0) {
            /* The client went away; its own handler drops it (EPOLLHUP/EPOLLERR). */
            s->broken = true;
            stalled = true;
            break;
        }
        s->sent += (uint64_t)w;
    }
    bool changed = stalled != s->stalled;
    s->stalled = stalled;
    pthread_mutex_unlock(&s->lock);
    if (changed)
        sock_update_client_events(s, fd, stalled);
}

static void sock_drop_client(struct console_sock *s)
{
    pthread_mutex_lock(&s->lock);
    int fd = s->client_fd;
    s->client_fd = -1;
    s->broken = false;
    s->stalled = false;
    pthread_mutex_unlock(&s->lock);
    if (fd < 0)
        return;
    event_loop_remove(s->loop, fd);
    close(fd);
    log_debug("console socket: client detached");
}

static void sock_read_client(struct console_sock *s, int fd)
{
    size_t room = s->sink.room(s->sink.opaque);
    if (room == 0) {
        console_sock_pause_input(s, true);
        return;
    }
    uint8_t buf[CONSOLE_SOCK_READ_CHUNK];
    ssize_t n = read(fd, buf, room < sizeof(buf) ? room : sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        /* The client closed its sending side; it may still read output. */
        s->input_eof = true;
        sock_update_client_events(s, fd, s->stalled);
        return;
    }
    s->sink.input(s->sink.opaque, buf, (size_t)n);
}

/* Registered with the client fd; the only place a client is dropped (see event_loop.c). */
static void sock_on_client(void *opaque, uint32_t events)
{
    struct console_sock *s = opaque;
    int fd = s->client_fd; /* only the main thread changes it */
    if (fd < 0)
        return;
    if ((events & EPOLLIN) && !s->input_paused && !s->input_eof)
        sock_read_client(s, fd);
    if (events & EPOLLOUT)
        sock_flush(s);
    pthread_mutex_lock(&s->lock);
    bool broken = s->broken;
    pthread_mutex_unlock(&s->lock);
    /*
     * After a hang-up, input still buffered is read first (it comes with EPOLLIN), unless
     * the guest is not taking input: then it is dropped with the client.
     */
    bool more_input = (events & EPOLLIN) && !s->input_eof && !s->input_paused;
    if (broken || (events & EPOLLERR) || ((events & EPOLLHUP) && !more_input))
        sock_drop_client(s);
}

static void sock_refuse(struct console_sock *s, int fd)
{
    static const char msg[] = CONSOLE_SOCK_BUSY_MSG;
    if (send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        /* it may be gone already; it is refused either way */
    }
    close(fd);
    s->refused++;
    log_debug("console socket: refused a second client");
}

static void sock_on_listen(void *opaque, uint32_t events)
{
    struct console_sock *s = opaque;
    (void)events;
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return; /* EAGAIN, or the client left already */
    if (s->client_fd >= 0) {
        sock_refuse(s, fd);
        return;
    }
    s->input_eof = false;
    if (event_loop_add(s->loop, fd, s->input_paused ? 0 : EPOLLIN, sock_on_client, s) < 0) {
        close(fd);
        return;
    }
    pthread_mutex_lock(&s->lock);
    s->client_fd = fd;
    s->sent = ring_tail(&s->history); /* replay everything still held */
    s->stalled = false;
    s->broken = false;
    pthread_mutex_unlock(&s->lock);
    log_debug("console socket: client attached");
    sock_flush(s);
}

static void sock_on_wake(void *opaque, uint32_t events)
{
    struct console_sock *s = opaque;
    (void)events;
    uint64_t count;
    if (read(s->wake_fd, &count, sizeof(count)) < 0) {
        /* spurious: flush anyway */
    }
    pthread_mutex_lock(&s->lock);
    s->wake_pending = false;
    pthread_mutex_unlock(&s->lock);
    sock_flush(s);
}

void console_sock_output(struct console_sock *s, const uint8_t *buf, size_t len)
{
    pthread_mutex_lock(&s->lock);
    ring_write(&s->history, buf, len);
    /* A stalled client is woken by EPOLLOUT; one wake-up covers any number of writes. */
    bool wake = s->client_fd >= 0 && !s->stalled && !s->wake_pending;
    if (wake)
        s->wake_pending = true;
    pthread_mutex_unlock(&s->lock);
    if (wake && write(s->wake_fd, &(uint64_t){1}, sizeof(uint64_t)) < 0) {
        /* cannot fail with one-increments */
    }
}

void console_sock_pause_input(struct console_sock *s, bool paused)
{
    if (s->input_paused == paused)
        return;
    s->input_paused = paused;
    pthread_mutex_lock(&s->lock);
    int fd = s->client_fd;
    bool stalled = s->stalled;
    pthread_mutex_unlock(&s->lock);
    if (fd >= 0)
        sock_update_client_events(s, fd, stalled);
}

bool console_sock_has_client(struct console_sock *s)
{
    pthread_mutex_lock(&s->lock);
    bool has = s->client_fd >= 0;
    pthread_mutex_unlock(&s->lock);
    return has;
}

static int sock_listen(struct console_sock *s, const char *path)
{
    if (strlen(path) >= sizeof(s->path))
        return -ENAMETOOLONG;
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0)
        return -errno;
    int ret = unix_bind_replacing_stale(s->listen_fd, path);
    if (ret < 0)
        return ret;
    strcpy(s->path, path);
    struct stat st;
    if (stat(path, &st) == 0) {
        s->dev = st.st_dev;
        s->ino = st.st_ino;
    }
    /* The console is a root shell in most guests: only the owner may connect. */
    if (chmod(path, 0600) < 0 || listen(s->listen_fd, CONSOLE_SOCK_BACKLOG) < 0)
        return -errno;
    return 0;
}

int console_sock_open(struct console_sock *s, const char *path, struct event_loop *loop,
                      const struct console_sock_sink *sink)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->sink = *sink;
    s->listen_fd = s->wake_fd = s->client_fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    int ret = ring_init(&s->history, CONSOLE_SOCK_HISTORY);
    ret = ret ?: sock_listen(s, path);
    if (ret < 0)
        return ret;
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0)
        return -errno;
    ret = event_loop_add(loop, s->listen_fd, EPOLLIN, sock_on_listen, s);
    return ret ?: event_loop_add(loop, s->wake_fd, EPOLLIN, sock_on_wake, s);
}

void console_sock_close(struct console_sock *s)
{
    sock_drop_client(s);
    if (s->listen_fd >= 0) {
        event_loop_remove(s->loop, s->listen_fd);
        close(s->listen_fd);
    }
    if (s->wake_fd >= 0) {
        event_loop_remove(s->loop, s->wake_fd);
        close(s->wake_fd);
    }
    s->listen_fd = s->wake_fd = -1;
    struct stat st;
    /* Remove the socket file only if it is still the one we made. */
    if (s->path[0] && stat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
        unlink(s->path);
    s->path[0] = '\0';
    ring_destroy(&s->history);
    pthread_mutex_destroy(&s->lock);
}
