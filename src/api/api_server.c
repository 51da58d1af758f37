#include "api/api_server.h"

#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/api.h"
#include "api/fc_config.h"
#include "dynlib.h"
#include "util.h"
#include "vmm/seccomp.h"

#define API_MAX_CONNECTIONS 32
#define API_CONNECTION_TIMEOUT_S 30

/* libmicrohttpd's entry points: loaded only with --api-sock (linked, it and gnutls behind it
 * would add ~3 MiB of resident memory to every VM). */
#define MHD_SONAME "libmicrohttpd.so.12"
struct mhd_fns {
    __typeof__(&MHD_start_daemon) start_daemon;
    __typeof__(&MHD_stop_daemon) stop_daemon;
    __typeof__(&MHD_create_response_from_buffer) create_response_from_buffer;
    __typeof__(&MHD_add_response_header) add_response_header;
    __typeof__(&MHD_queue_response) queue_response;
    __typeof__(&MHD_destroy_response) destroy_response;
    __typeof__(&MHD_run) run;
    __typeof__(&MHD_get_timeout) get_timeout;
    __typeof__(&MHD_get_daemon_info) get_daemon_info;
};

struct api_server {
    struct mhd_fns mhd;
    struct MHD_Daemon *daemon;
    struct api *api;
    int fd;
    int epoll_fd; /* MHD's: readable when the listening socket or a connection is */
    int stop_fd;  /* eventfd: api_server_stop asks the thread to end */
    pthread_t thread;
    bool confine; /* install the API seccomp filter on the thread */
    sem_t ready;  /* the thread has confined itself (or failed to): confine_result */
    int confine_result;
    bool triggered; /* KILN_SECCOMP_TRIGGER=api was tried (test builds) */
    bool thread_started;
    bool keep_file; /* the socket file is out of reach (jailed): someone else removes it */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* One request's body, gathered across MHD's calls; anything past the cap is dropped. */
struct request_body {
    char data[FC_MAX_BODY];
    size_t len;
    bool too_large;
};

static int mhd_load(struct mhd_fns *fn)
{
    const struct dynlib_symbol syms[] = {
        {"MHD_start_daemon", (void **)&fn->start_daemon},
        {"MHD_stop_daemon", (void **)&fn->stop_daemon},
        {"MHD_create_response_from_buffer", (void **)&fn->create_response_from_buffer},
        {"MHD_add_response_header", (void **)&fn->add_response_header},
        {"MHD_queue_response", (void **)&fn->queue_response},
        {"MHD_destroy_response", (void **)&fn->destroy_response},
        {"MHD_run", (void **)&fn->run},
        {"MHD_get_timeout", (void **)&fn->get_timeout},
        {"MHD_get_daemon_info", (void **)&fn->get_daemon_info},
    };
    char err[256];
    if (!dynlib_load(MHD_SONAME, syms, ARRAY_SIZE(syms), err, sizeof(err))) {
        log_error("--api-sock needs libmicrohttpd (Debian package libmicrohttpd12): %s", err);
        return -ENOENT;
    }
    return 0;
}

static enum MHD_Result send_reply(const struct mhd_fns *mhd, struct MHD_Connection *conn,
                                  unsigned status, const char *body)
{
    size_t len = body ? strlen(body) : 0;
    struct MHD_Response *resp = mhd->create_response_from_buffer(
        len, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    if (body)
        mhd->add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ret = mhd->queue_response(conn, status, resp);
    mhd->destroy_response(resp);
    return ret;
}

static enum MHD_Result api_access(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct api_server *server = cls;
    struct request_body *rb = *con_cls;
    if (!rb) {
        /* First call: only the headers have arrived. */
        rb = calloc(1, sizeof(*rb));
        if (!rb)
            return MHD_NO;
        *con_cls = rb;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        if (rb->too_large || n > sizeof(rb->data) - rb->len)
            rb->too_large = true;
        else
            memcpy(rb->data + rb->len, upload_data, n);
        if (!rb->too_large)
            rb->len += n;
        *upload_size = 0;
        return MHD_YES;
    }
    if (rb->too_large)
        return send_reply(&server->mhd, conn, 400,
                          "{\"fault_message\":\"request body is larger than the limit of 51200 "
                          "bytes\"}");
    if (!server->triggered && server->thread_started) {
        server->triggered = true;
        if (server->confine)
            seccomp_test_trigger(SECCOMP_THREAD_API); /* the request runs under the filter */
    }
    struct api_reply reply;
    api_dispatch(server->api, method, url, rb->data, rb->len, &reply);
    enum MHD_Result ret = send_reply(&server->mhd, conn, reply.status, reply.body);
    api_reply_free(&reply);
    (void)version;
    return ret;
}

static void api_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    free(*con_cls);
    *con_cls = NULL;
    (void)cls, (void)conn, (void)toe;
}

/* Is something accepting connections on `path`? */
static bool socket_is_live(const struct sockaddr_un *addr)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool live = connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0;
    close(fd);
    return live;
}

static int remove_stale_socket(const struct sockaddr_un *addr)
{
    struct stat st;
    if (lstat(addr->sun_path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        log_error("API socket '%s': exists and is not a socket", addr->sun_path);
        return -EEXIST;
    }
    if (socket_is_live(addr)) {
        log_error("API socket '%s': another process is listening on it", addr->sun_path);
        return -EADDRINUSE;
    }
    if (unlink(addr->sun_path) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

static int bind_socket(const char *path, int *out)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (!path[0] || strlen(path) >= sizeof(addr.sun_path)) {
        log_error("API socket '%s': paths have 1 to %zu bytes", path, sizeof(addr.sun_path) - 1);
        return -ENAMETOOLONG;
    }
    memcpy(addr.sun_path, path, strlen(path) + 1);
    int ret = remove_stale_socket(&addr);
    if (ret < 0)
        return ret;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0) {
        ret = -errno;
        log_error("API socket '%s': %s", path, strerror(-ret));
        close(fd);
        return ret;
    }
    *out = fd;
    return 0;
}

/*
 * The server thread. kiln starts it, not libmicrohttpd (the daemon has no thread of its
 * own: it is driven from here with MHD_run), so that the seccomp filter is on before the
 * thread handles anything and every line of HTTP code runs under it.
 */
static void *api_server_thread(void *opaque)
{
    struct api_server *server = opaque;
    pthread_setname_np(pthread_self(), "kiln-api");
    server->confine_result = server->confine ? seccomp_install(SECCOMP_THREAD_API) : 0;
    int confined = server->confine_result;
    sem_post(&server->ready); /* the server may be freed from here on if that failed */
    if (confined < 0)
        return NULL;
    for (;;) {
        /* connection timeouts, or work MHD left for the next round */
        int timeout = api_server_timeout_ms(server);
        struct pollfd fds[2] = {{server->epoll_fd, POLLIN, 0}, {server->stop_fd, POLLIN, 0}};
        if (poll(fds, 2, timeout) < 0 && errno != EINTR) {
            log_error("API socket '%s': poll: %s; no longer serving", server->path,
                      strerror(errno));
            break;
        }
        if (fds[1].revents)
            break;
        server->mhd.run(server->daemon);
    }
    return NULL;
}

int api_server_spawn(struct api_server *server)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    server->thread_started = true; /* before the thread reads it */
    int ret = -pthread_create(&server->thread, NULL, api_server_thread, server);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ret < 0) {
        server->thread_started = false;
        return ret;
    }
    sem_wait(&server->ready);
    if (server->confine_result < 0) {
        pthread_join(server->thread, NULL);
        server->thread_started = false;
        log_error("API socket '%s': installing the API thread's seccomp filter: %s", server->path,
                  strerror(-server->confine_result));
        return server->confine_result;
    }
    return 0;
}

int api_server_open(struct api_server **out, struct api *api, const char *path, bool confine)
{
    struct api_server *server = calloc(1, sizeof(*server));
    if (!server)
        return -ENOMEM;
    server->api = api;
    server->confine = confine;
    server->stop_fd = -1;
    int ret = mhd_load(&server->mhd);
    if (ret < 0) {
        free(server);
        return ret;
    }
    /* The SIGSYS report must be ready before the first filter, which is the API thread's. */
    if (confine && (ret = seccomp_prepare()) < 0) {
        log_error("preparing the seccomp filters: %s", strerror(-ret));
        free(server);
        return ret;
    }
    ret = bind_socket(path, &server->fd);
    if (ret < 0) {
        free(server);
        return ret;
    }
    snprintf(server->path, sizeof(server->path), "%s", path);
    /* No thread of MHD's own: api_server_thread drives it, and requests run one at a time. */
    server->daemon = server->mhd.start_daemon(
        MHD_USE_EPOLL, 0, NULL, NULL, api_access, server,
        MHD_OPTION_LISTEN_SOCKET, server->fd, MHD_OPTION_NOTIFY_COMPLETED, api_completed, server,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_CONNECTION_TIMEOUT_S, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        server->daemon ? server->mhd.get_daemon_info(server->daemon, MHD_DAEMON_INFO_EPOLL_FD)
                       : NULL;
    if (!info) {
        log_error("API socket '%s': cannot start the HTTP server", path);
        if (server->daemon)
            server->mhd.stop_daemon(server->daemon);
        else
            close(server->fd);
        unlink(path);
        free(server);
        return -EIO;
    }
    server->epoll_fd = info->epoll_fd;
    sem_init(&server->ready, 0, 0);
    server->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (server->stop_fd < 0) {
        ret = -errno;
        server->mhd.stop_daemon(server->daemon);
        unlink(path);
        sem_destroy(&server->ready);
        free(server);
        return ret;
    }
    *out = server;
    return 0;
}

int api_server_start(struct api_server **out, struct api *api, const char *path, bool confine)
{
    int ret = api_server_open(out, api, path, confine);
    if (ret == 0 && (ret = api_server_spawn(*out)) < 0) {
        api_server_stop(*out);
        *out = NULL;
    }
    return ret;
}

int api_server_poll_fd(const struct api_server *server)
{
    return server->epoll_fd;
}

int api_server_timeout_ms(const struct api_server *server)
{
    MHD_UNSIGNED_LONG_LONG ms;
    if (server->mhd.get_timeout(server->daemon, &ms) != MHD_YES)
        return -1;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

void api_server_run_once(struct api_server *server)
{
    server->mhd.run(server->daemon);
}

void api_server_keep_file(struct api_server *server)
{
    server->keep_file = true;
}

void api_server_stop(struct api_server *server)
{
    if (!server)
        return;
    if (server->thread_started) {
        uint64_t one = 1;
        if (write(server->stop_fd, &one, sizeof(one)) < 0) {
            /* cannot fail: one increment of a fresh counter */
        }
        pthread_join(server->thread, NULL);
    }
    server->mhd.stop_daemon(server->daemon); /* closes the listening socket too */
    if (!server->keep_file)
        unlink(server->path);
    close(server->stop_fd);
    sem_destroy(&server->ready);
    free(server);
}
