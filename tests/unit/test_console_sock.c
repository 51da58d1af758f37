/*
 * The console socket against real Unix sockets and the real event loop (no KVM): replay,
 * live output, input with backpressure, one client at a time, a client that never reads,
 * reconnecting, stale socket files.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "console/console_sock.h"
#include "vmm/event_loop.h"

struct fixture {
    char dir[64];
    char path[128];
    struct event_loop loop;
    struct console_sock sock;
    size_t room; /* what the fake guest can take now */
    uint8_t input[8192];
    size_t input_len;
};

static size_t sink_room(void *opaque)
{
    struct fixture *f = opaque;
    return f->room;
}

static void sink_input(void *opaque, const uint8_t *buf, size_t len)
{
    struct fixture *f = opaque;
    assert_true(len <= f->room);
    assert_true(f->input_len + len <= sizeof(f->input));
    memcpy(f->input + f->input_len, buf, len);
    f->input_len += len;
    f->room -= len;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    strcpy(f->dir, "/tmp/kiln-test-csock.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/console.sock", f->dir);
    assert_int_equal(event_loop_init(&f->loop), 0);
    f->room = 4096;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    event_loop_destroy(&f->loop);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void open_sock(struct fixture *f)
{
    const struct console_sock_sink sink = {sink_room, sink_input, f};
    assert_int_equal(console_sock_open(&f->sock, f->path, &f->loop, &sink), 0);
}

/* Runs the event loop until nothing is ready. */
static void pump(struct fixture *f)
{
    for (int i = 0; i < 100 && event_loop_run_once(&f->loop, 20) > 0; i++) {
    }
}

static int client_connect(struct fixture *f)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, f->path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    pump(f);
    return fd;
}

/* Everything the client can read now; returns the byte count (-1: the server closed). */
static ssize_t client_read(int fd, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
        if (n == 0)
            return got ? (ssize_t)got : -1;
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            return (ssize_t)got;
        }
        got += (size_t)n;
        if (got == cap)
            return (ssize_t)got;
    }
}

static void output(struct fixture *f, const char *text)
{
    console_sock_output(&f->sock, (const uint8_t *)text, strlen(text));
}

static void test_replay_then_live(void **state)
{
    struct fixture *f = *state;
    open_sock(f);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    output(f, "boot messages\r\n");
    int c = client_connect(f);
    assert_true(console_sock_has_client(&f->sock));
    uint8_t buf[256];
    assert_int_equal(client_read(c, buf, sizeof(buf)), 15);
    assert_memory_equal(buf, "boot messages\r\n", 15);
    output(f, "live");
    pump(f);
    assert_int_equal(client_read(c, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "live", 4);
    close(c);
    pump(f);
    assert_false(console_sock_has_client(&f->sock));
    console_sock_close(&f->sock);
    assert_int_equal(access(f->path, F_OK), -1); /* the socket file is gone */
}

/* Only the last CONSOLE_SOCK_HISTORY bytes are replayed. */
static void test_replay_limit(void **state)
{
    struct fixture *f = *state;
    open_sock(f);
    static uint8_t out[CONSOLE_SOCK_HISTORY + 1000], got[CONSOLE_SOCK_HISTORY + 1000];
    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (uint8_t)(i % 251);
    console_sock_output(&f->sock, out, sizeof(out));
    int c = client_connect(f);
    size_t total = 0;
    for (int i = 0; i < 50 && total < CONSOLE_SOCK_HISTORY; i++) {
        ssize_t n = client_read(c, got + total, sizeof(got) - total);
        assert_true(n >= 0);
        total += (size_t)n;
        pump(f);
    }
    assert_int_equal(total, CONSOLE_SOCK_HISTORY);
    assert_memory_equal(got, out + 1000, CONSOLE_SOCK_HISTORY);
    close(c);
    pump(f);
    console_sock_close(&f->sock);
}

static void test_input_and_backpressure(void **state)
{
    struct fixture *f = *state;
    open_sock(f);
    int c = client_connect(f);
    assert_int_equal(send(c, "ls\r", 3, 0), 3);
    pump(f);
    assert_int_equal(f->input_len, 3);
    assert_memory_equal(f->input, "ls\r", 3);
    /* The guest is full: the socket stops reading, nothing is lost. */
    f->room = 2;
    assert_int_equal(send(c, "abcdef", 6, 0), 6);
    pump(f);
    assert_int_equal(f->input_len, 5);
    assert_true(f->sock.input_paused);
    pump(f);
    assert_int_equal(f->input_len, 5);
    f->room = 100;
    console_sock_pause_input(&f->sock, false);
    pump(f);
    assert_int_equal(f->input_len, 9);
    assert_memory_equal(f->input, "ls\rabcdef", 9);
    close(c);
    pump(f);
    console_sock_close(&f->sock);
}

static void test_second_client_refused(void **state)
{
    struct fixture *f = *state;
    open_sock(f);
    output(f, "hi");
    int first = client_connect(f);
    int second = client_connect(f);
    uint8_t buf[256];
    ssize_t n = client_read(second, buf, sizeof(buf));
    assert_int_equal(n, strlen(CONSOLE_SOCK_BUSY_MSG));
    assert_memory_equal(buf, CONSOLE_SOCK_BUSY_MSG, (size_t)n);
    assert_int_equal(client_read(second, buf, sizeof(buf)), -1); /* closed */
    close(second);
    assert_int_equal(f->sock.refused, 1);
    /* The first client is undisturbed. */
    assert_int_equal(client_read(first, buf, sizeof(buf)), 2);
    output(f, "more");
    pump(f);
    assert_int_equal(client_read(first, buf, sizeof(buf)), 4);
    close(first);
    pump(f);
    /* Once it is gone, the next client gets the console and the replay. */
    int third = client_connect(f);
    assert_int_equal(client_read(third, buf, sizeof(buf)), 6);
    assert_memory_equal(buf, "himore", 6);
    close(third);
    pump(f);
    console_sock_close(&f->sock);
}

/*
 * A client that never reads: output keeps going into the history without blocking, the
 * client misses what fell out of it, and still gets the newest bytes when it reads.
 */
static void test_stuck_client(void **state)
{
    struct fixture *f = *state;
    open_sock(f);
    int c = client_connect(f);
    int small = 4096;
    setsockopt(c, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    static uint8_t chunk[4096];
    const size_t total = 8 << 20;
    for (size_t done = 0; done < total; done += sizeof(chunk)) {
        memset(chunk, 'a' + (int)(done / sizeof(chunk) % 26), sizeof(chunk));
        console_sock_output(&f->sock, chunk, sizeof(chunk));
        if (done % (256 << 10) == 0)
            pump(f);
    }
    output(f, "END");
    pump(f);
    /* Read it all now: the stream ends with the newest bytes, and some were skipped. */
    static uint8_t got[4 << 20];
    size_t n = 0;
    for (int i = 0; i < 1000; i++) {
        ssize_t r = client_read(c, got + n, sizeof(got) - n);
        assert_true(r >= 0);
        n += (size_t)r;
        if (n >= 3 && memcmp(got + n - 3, "END", 3) == 0)
            break;
        pump(f);
    }
    assert_true(n >= 3);
    assert_memory_equal(got + n - 3, "END", 3);
    assert_true(n < total);
    assert_true(f->sock.dropped > 0);
    assert_true(f->sock.dropped + n == total + 3); /* nothing else went missing */
    close(c);
    pump(f);
    console_sock_close(&f->sock);
}

/* A client that shuts down its sending side still gets output until it closes. */
static void test_half_close(void **state)
{
    struct fixture *f = *state;
    open_sock(f);
    int c = client_connect(f);
    assert_int_equal(send(c, "x", 1, 0), 1);
    shutdown(c, SHUT_WR);
    pump(f);
    assert_int_equal(f->input_len, 1);
    assert_true(console_sock_has_client(&f->sock));
    output(f, "still here");
    pump(f);
    uint8_t buf[64];
    assert_int_equal(client_read(c, buf, sizeof(buf)), 10);
    close(c);
    pump(f);
    assert_false(console_sock_has_client(&f->sock));
    console_sock_close(&f->sock);
}

static void test_stale_socket_replaced(void **state)
{
    struct fixture *f = *state;
    /* A socket file whose process died: bound, never listening, closed. */
    int dead = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, f->path);
    assert_int_equal(bind(dead, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(dead);
    open_sock(f);
    int c = client_connect(f);
    assert_true(console_sock_has_client(&f->sock));
    close(c);
    pump(f);
    console_sock_close(&f->sock);
}

static void test_live_socket_kept(void **state)
{
    struct fixture *f = *state;
    int live = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, f->path);
    assert_int_equal(bind(live, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(live, 1), 0);
    const struct console_sock_sink sink = {sink_room, sink_input, f};
    assert_int_equal(console_sock_open(&f->sock, f->path, &f->loop, &sink), -EADDRINUSE);
    console_sock_close(&f->sock);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0); /* not ours: left in place */
    close(live);
}

static void test_regular_file_kept(void **state)
{
    struct fixture *f = *state;
    int fd = open(f->path, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    close(fd);
    const struct console_sock_sink sink = {sink_room, sink_input, f};
    assert_int_equal(console_sock_open(&f->sock, f->path, &f->loop, &sink), -EADDRINUSE);
    console_sock_close(&f->sock);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
}

static void test_path_too_long(void **state)
{
    struct fixture *f = *state;
    char path[200];
    memset(path, 'a', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    const struct console_sock_sink sink = {sink_room, sink_input, f};
    assert_int_equal(console_sock_open(&f->sock, path, &f->loop, &sink), -ENAMETOOLONG);
    console_sock_close(&f->sock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replay_then_live, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_input_and_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_client_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stuck_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_socket_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_socket_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regular_file_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_too_long, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
