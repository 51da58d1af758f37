/*
 * HTTP/1.1 on a Unix socket (libmicrohttpd, its own thread) in front of api_dispatch().
 */
#ifndef KILN_API_SERVER_H
#define KILN_API_SERVER_H

struct api;
struct api_server;

/*
 * Binds `path` and serves `api` on it. A socket file left by a dead process is replaced;
 * one that something still listens on is not (-EADDRINUSE), nor any other file (-EEXIST).
 * Returns 0 or a negative errno (logged).
 */
int api_server_start(struct api_server **out, struct api *api, const char *path);
/* Stops serving, waits for the server thread and removes the socket file. */
void api_server_stop(struct api_server *server);

#endif
