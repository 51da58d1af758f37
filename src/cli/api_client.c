#include "cli/api_client.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "dynlib.h"

/* Replies larger than this are refused: a VM's API has no reason to send megabytes. */
#define API_REPLY_MAX (1 << 20)

/* The few libcurl entry points kiln uses, resolved from the dlopen()ed library. */
struct curl_fns {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
};

struct api_client {
    void *lib;
    struct curl_fns fn;
    CURL *curl;
    char sock_path[108];
    long timeout_ms;
};

struct reply_buf {
    char *data;
    size_t len;
    bool too_big;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int load_curl(struct api_client *api, char *err, size_t errlen)
{
    const struct dynlib_symbol syms[] = {
        {"curl_easy_init", (void **)&api->fn.easy_init},
        {"curl_easy_setopt", (void **)&api->fn.easy_setopt},
        {"curl_easy_perform", (void **)&api->fn.easy_perform},
        {"curl_easy_getinfo", (void **)&api->fn.easy_getinfo},
        {"curl_easy_cleanup", (void **)&api->fn.easy_cleanup},
        {"curl_easy_strerror", (void **)&api->fn.easy_strerror},
        {"curl_slist_append", (void **)&api->fn.slist_append},
        {"curl_slist_free_all", (void **)&api->fn.slist_free_all},
    };
    char why[256];
    /* `kiln ls` opens a client per VM; libcurl and its ~30 libraries load once. */
    api->lib = dynlib_load("libcurl.so.4", syms, sizeof(syms) / sizeof(syms[0]), why, sizeof(why));
    if (!api->lib) {
        set_err(err, errlen, "cannot load libcurl (Debian package libcurl4): %s", why);
        return -ENOENT;
    }
    return 0;
}

struct api_client *api_client_open(const char *sock_path, long timeout_ms, char *err, size_t errlen)
{
    if (strlen(sock_path) >= sizeof(((struct api_client *)0)->sock_path)) {
        set_err(err, errlen, "API socket path '%s' is too long for a Unix socket", sock_path);
        return NULL;
    }
    struct api_client *api = calloc(1, sizeof(*api));
    if (!api) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    strcpy(api->sock_path, sock_path);
    api->timeout_ms = timeout_ms;
    /* curl_easy_init() runs libcurl's global init once; kiln's CLI is single-threaded. */
    if (load_curl(api, err, errlen) < 0 || !(api->curl = api->fn.easy_init())) {
        if (api->lib && !api->curl && !err[0])
            set_err(err, errlen, "libcurl failed to initialize");
        api_client_close(api);
        return NULL;
    }
    return api;
}

void api_client_close(struct api_client *api)
{
    if (!api)
        return;
    if (api->curl)
        api->fn.easy_cleanup(api->curl);
    if (api->lib)
        dlclose(api->lib);
    free(api);
}

static size_t on_reply_data(char *ptr, size_t size, size_t nmemb, void *opaque)
{
    struct reply_buf *rb = opaque;
    size_t n = size * nmemb;
    if (n > API_REPLY_MAX - rb->len) {
        rb->too_big = true;
        return 0; /* makes libcurl abort the transfer */
    }
    char *grown = realloc(rb->data, rb->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + rb->len, ptr, n);
    rb->data = grown;
    rb->len += n;
    rb->data[rb->len] = '\0';
    return n;
}

static int transport_error(struct api_client *api, CURLcode rc, const struct reply_buf *rb,
                           char *err, size_t errlen)
{
    if (rb->too_big) {
        set_err(err, errlen, "the API's reply is larger than %d bytes", API_REPLY_MAX);
        return -EIO;
    }
    set_err(err, errlen, "API socket %s: %s", api->sock_path, api->fn.easy_strerror(rc));
    if (rc == CURLE_COULDNT_CONNECT)
        return -ECONNREFUSED;
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return -ETIMEDOUT;
    return -EIO;
}

int api_request(struct api_client *api, const char *method, const char *path, json_t *body,
                long *status, json_t **reply, char *err, size_t errlen)
{
    char url[512];
    /* The host part is ignored over a Unix socket; "localhost" keeps the Host header sane. */
    if (snprintf(url, sizeof(url), "http://localhost%s", path) >= (int)sizeof(url)) {
        set_err(err, errlen, "API path too long");
        return -EINVAL;
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !text) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    struct curl_slist *headers = api->fn.slist_append(NULL, "Accept: application/json");
    if (text)
        headers = api->fn.slist_append(headers, "Content-Type: application/json");
    headers = api->fn.slist_append(headers, "Expect:"); /* no 100-continue round trip */
    struct reply_buf rb = {0};
    CURL *c = api->curl;
    api->fn.easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, api->sock_path);
    api->fn.easy_setopt(c, CURLOPT_URL, url);
    api->fn.easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (text) {
        api->fn.easy_setopt(c, CURLOPT_POSTFIELDS, text);
        api->fn.easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    } else {
        api->fn.easy_setopt(c, CURLOPT_HTTPGET, 1L); /* no body; the verb is set next */
    }
    api->fn.easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    api->fn.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_reply_data);
    api->fn.easy_setopt(c, CURLOPT_WRITEDATA, &rb);
    api->fn.easy_setopt(c, CURLOPT_TIMEOUT_MS, api->timeout_ms);
    api->fn.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = api->fn.easy_perform(c);
    api->fn.slist_free_all(headers);
    api->fn.easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    free(text);
    int ret = 0;
    if (rc != CURLE_OK) {
        ret = transport_error(api, rc, &rb, err, errlen);
    } else {
        api->fn.easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        *reply = rb.len ? json_loadb(rb.data, rb.len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    }
    free(rb.data);
    return ret;
}

int api_call(struct api_client *api, const char *method, const char *path, json_t *body,
             json_t **reply, char *err, size_t errlen)
{
    long status = 0;
    json_t *r = NULL;
    int ret = api_request(api, method, path, body, &status, &r, err, errlen);
    if (ret < 0)
        return ret;
    if (status >= 200 && status < 300) {
        if (reply)
            *reply = r;
        else
            json_decref(r);
        return 0;
    }
    const char *fault = json_string_value(json_object_get(r, "fault_message"));
    set_err(err, errlen, "%s %s: HTTP %ld: %s", method, path, status,
            fault ? fault : "(no fault message)");
    json_decref(r);
    return -EIO;
}
