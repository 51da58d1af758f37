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
/* Stops serving, waits for the server thread and removes the socket file. */
void api_server_stop(struct api_server *server);

#endif
