/*
 * The lifecycle commands' client of a VM's API socket: HTTP/1.1 + JSON over a Unix socket.
 * libcurl is loaded with dlopen() on first use, so `kiln run` (the VMM) never maps it and
 * its dozens of dependencies (about 5.6 MiB of resident memory).
 */
#ifndef KILN_API_CLIENT_H
#define KILN_API_CLIENT_H

#include <stddef.h>

#include <jansson.h>

struct api_client;

/* Loads libcurl and prepares requests to `sock_path`. Returns NULL with a reason in err. */
struct api_client *api_client_open(const char *sock_path, long timeout_ms, char *err,
                                   size_t errlen);
void api_client_close(struct api_client *api);

/*
 * One request. `body` may be NULL. On a transfer, returns 0 with the HTTP status in *status
 * and the parsed JSON reply (or NULL for an empty or non-JSON body) in *reply, which the
 * caller json_decref()s. Returns -ECONNREFUSED / -ENOENT when nothing listens, -ETIMEDOUT,
 * or -EIO, with a reason in err.
 */
int api_request(struct api_client *api, const char *method, const char *path, json_t *body,
                long *status, json_t **reply, char *err, size_t errlen);

/*
 * A request that must succeed (2xx). Returns 0, or -EIO with the API's fault_message (or
 * the transport error) in err. *reply may be NULL when the caller wants no body.
 */
int api_call(struct api_client *api, const char *method, const char *path, json_t *body,
             json_t **reply, char *err, size_t errlen);

#endif
