/*
 * The VMM's event loop: one epoll instance on the main thread that waits on file
 * descriptors (console input, signals, stop requests, and device work) and calls their
 * handlers. vCPU threads never block on host I/O; they hand work to this loop.
 */
#ifndef KILN_EVENT_LOOP_H
#define KILN_EVENT_LOOP_H

#include <stdint.h>

typedef void (*event_fn)(void *opaque, uint32_t events);

struct event_source;

struct event_loop {
    int epfd;
    struct event_source *sources; /* singly linked, owned */
};

int event_loop_init(struct event_loop *loop);
void event_loop_destroy(struct event_loop *loop);
/* Watches `fd` for `events` (EPOLLIN...). Returns 0 or a negative errno. */
int event_loop_add(struct event_loop *loop, int fd, uint32_t events, event_fn fn, void *opaque);
/* Changes the events watched on `fd` (0 pauses it). */
int event_loop_modify(struct event_loop *loop, int fd, uint32_t events);
int event_loop_remove(struct event_loop *loop, int fd);
/* Waits up to `timeout_ms` (-1: forever) and runs the handlers of what became ready. */
int event_loop_run_once(struct event_loop *loop, int timeout_ms);

#endif
