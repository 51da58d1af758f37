#include "vmm/event_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct event_source {
    int fd;
    event_fn fn;
    void *opaque;
    struct event_source *next;
};

int event_loop_init(struct event_loop *loop)
{
    memset(loop, 0, sizeof(*loop));
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    return loop->epfd < 0 ? -errno : 0;
}

void event_loop_destroy(struct event_loop *loop)
{
    while (loop->sources) {
        struct event_source *s = loop->sources;
        loop->sources = s->next;
        free(s);
    }
    if (loop->epfd >= 0)
        close(loop->epfd);
    loop->epfd = -1;
}

int event_loop_add(struct event_loop *loop, int fd, uint32_t events, event_fn fn, void *opaque)
{
    struct event_source *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    *s = (struct event_source){.fd = fd, .fn = fn, .opaque = opaque, .next = loop->sources};
    struct epoll_event ev = {.events = events, .data.ptr = s};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int err = errno;
        free(s);
        return -err;
    }
    loop->sources = s;
    return 0;
}

static struct event_source *event_loop_find(struct event_loop *loop, int fd)
{
    for (struct event_source *s = loop->sources; s; s = s->next)
        if (s->fd == fd)
            return s;
    return NULL;
}

int event_loop_modify(struct event_loop *loop, int fd, uint32_t events)
{
    struct event_source *s = event_loop_find(loop, fd);
    if (!s)
        return -ENOENT;
    struct epoll_event ev = {.events = events, .data.ptr = s};
    return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

int event_loop_remove(struct event_loop *loop, int fd)
{
    for (struct event_source **p = &loop->sources; *p; p = &(*p)->next) {
        struct event_source *s = *p;
        if (s->fd != fd)
            continue;
        epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
        *p = s->next;
        free(s);
        return 0;
    }
    return -ENOENT;
}

int event_loop_run_once(struct event_loop *loop, int timeout_ms)
{
    struct epoll_event events[16];
    int n = epoll_wait(loop->epfd, events, 16, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        struct event_source *s = events[i].data.ptr;
        s->fn(s->opaque, events[i].events);
    }
    return n;
}
