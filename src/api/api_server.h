/*
 * HTTP/1.1 on a Unix socket (libmicrohttpd, driven from a thread of kiln's) in front of
 * api_dispatch().
 */
#ifndef KILN_API_SERVER_H
#define KILN_API_SERVER_H

#include <stdbool.h>

struct api;
struct api_server;

/*
 * Binds `path` and serves `api` on it from a thread of its own. A socket file left by a dead
 * process is replaced; one that something still listens on is not (-EADDRINUSE), nor any
 * other file (-EEXIST). With `confine`, that thread installs the API seccomp filter on
 * itself before it serves anything (vmm/seccomp.h). Returns 0 or a negative errno (logged).
 */
int api_server_start(struct api_server **out, struct api *api, const char *path, bool confine);

/*
 * api_server_start in two steps, for a jailed VM: api_server_open binds the socket and
 * prepares the server without a thread; until api_server_spawn starts the thread (which
 * confines itself as above; 0 or a negative errno, logged), the caller serves requests
 * itself: poll api_server_poll_fd for input, at most api_server_timeout_ms (-1: no
 * limit), then call api_server_run_once.
 */
int api_server_open(struct api_server **out, struct api *api, const char *path, bool confine);
int api_server_spawn(struct api_server *server);
int api_server_poll_fd(const struct api_server *server);
int api_server_timeout_ms(const struct api_server *server);
void api_server_run_once(struct api_server *server);
/* The socket file is out of this process's reach (after pivot_root): leave it at stop. */
void api_server_keep_file(struct api_server *server);

/* Stops serving, waits for the server thread and removes the socket file. */
void api_server_stop(struct api_server *server);

#endif
