/*
 * The guest console on a Unix stream socket (`kiln run --console-sock PATH`), for a VMM
 * that runs in the background. kiln keeps the most recent output in a ring; a client that
 * connects gets that replayed, then live output, and what it sends goes to the guest's
 * console input unchanged (no escape keys: the client has its own).
 *
 * One client at a time: a second one gets a one-line refusal and is closed. A client that
 * does not read never slows the guest: output goes to the ring, and a client that falls
 * more than the ring behind skips what it missed (counted in `dropped`). Output may come
 * from any thread (vCPU threads write the UART); everything else runs on the event loop.
 */
#ifndef KILN_CONSOLE_SOCK_H
#define KILN_CONSOLE_SOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "console/ring.h"

#define CONSOLE_SOCK_HISTORY (64 * 1024) /* output replayed to a client that connects */
#define CONSOLE_SOCK_BUSY_MSG "kiln: console busy: another client is attached\r\n"

struct event_loop;

/*
 * Where client input goes. `room` says how many bytes `input` can take now; when it is 0
 * the socket stops reading until console_sock_pause_input(s, false).
 */
struct console_sock_sink {
    size_t (*room)(void *opaque);
    void (*input)(void *opaque, const uint8_t *buf, size_t len);
    void *opaque;
};

struct console_sock {
    struct event_loop *loop;
    struct console_sock_sink sink;
    int listen_fd;
    int wake_fd; /* eventfd: new output for a client that was caught up */
    char path[108];
    dev_t dev; /* the socket file we made, removed at close if it is still ours */
    ino_t ino;

    pthread_mutex_t lock; /* history, client_fd, sent, wake_pending, stalled, dropped */
    struct ring history;
    int client_fd;
    uint64_t sent;     /* history position the client has been sent up to */
    bool wake_pending; /* wake_fd was written and not yet handled */
    bool stalled;      /* the client's socket buffer is full: waiting for EPOLLOUT */
    bool broken;       /* a send failed: the client is dropped from its own handler */
    uint64_t dropped;  /* output bytes clients missed because they read too slowly */

    /* Main thread only. */
    bool input_paused; /* the sink is full */
    bool input_eof;    /* the client shut down its sending side */
    uint64_t refused;  /* clients turned away while another was attached */
};

/*
 * Binds and listens on `path` (a stale socket file nobody listens on is replaced; anything
 * else there is an error) and hooks the socket to `loop`. Returns 0 or a negative errno.
 */
int console_sock_open(struct console_sock *s, const char *path, struct event_loop *loop,
                      const struct console_sock_sink *sink);
void console_sock_close(struct console_sock *s);

/* Guest output: into the history, and to the client when it can take it. Any thread. */
void console_sock_output(struct console_sock *s, const uint8_t *buf, size_t len);

/* Stops or resumes reading client input (the sink's backpressure). Main thread. */
void console_sock_pause_input(struct console_sock *s, bool paused);

bool console_sock_has_client(struct console_sock *s);

#endif
