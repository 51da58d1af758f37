/*
 * The CLI's API client against a canned HTTP server on a Unix socket (a thread here): the
 * request it sends, status and JSON replies, fault messages, oversized replies, no server.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli/api_client.h"

struct fake_server {
    int listen_fd;
    char path[108];
    const char *reply_head; /* status line and headers, without Content-Length */
    const char *reply_body;
    size_t reply_len;
    char request[8192]; /* what the client sent: head and body */
    size_t request_len;
    pthread_t thread;
};

/* Reads one request: the head, then Content-Length bytes of body. */
static void read_request(struct fake_server *s, int fd)
{
    size_t want = SIZE_MAX;
    while (s->request_len < sizeof(s->request) - 1 && s->request_len < want) {
        ssize_t n = read(fd, s->request + s->request_len, sizeof(s->request) - 1 - s->request_len);
        if (n <= 0)
            break;
        s->request_len += (size_t)n;
        s->request[s->request_len] = '\0';
        char *end = strstr(s->request, "\r\n\r\n");
        if (end && want == SIZE_MAX) {
            const char *cl = strcasestr(s->request, "Content-Length:");
            size_t body = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
            want = (size_t)(end + 4 - s->request) + body;
        }
    }
}

static void *serve_one(void *opaque)
{
    struct fake_server *s = opaque;
    int fd = accept(s->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    read_request(s, fd);
    char head[512];
    int n = snprintf(head, sizeof(head), "%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     s->reply_head, s->reply_len);
    if (write(fd, head, (size_t)n) == n) {
        for (size_t off = 0; off < s->reply_len;) {
            ssize_t w = write(fd, s->reply_body + off, s->reply_len - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
    }
    close(fd);
    return NULL;
}

static void server_start(struct fake_server *s, const char *head, const char *body, size_t len)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->path, sizeof(s->path), "/tmp/kiln-test-api-%d.sock", (int)getpid());
    unlink(s->path);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, s->path);
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(s->listen_fd, 1), 0);
    s->reply_head = head;
    s->reply_body = body;
    s->reply_len = len;
    assert_int_equal(pthread_create(&s->thread, NULL, serve_one, s), 0);
}

static void server_stop(struct fake_server *s)
{
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    unlink(s->path);
}

static void put_sends_json_and_reads_204(void **state)
{
    struct fake_server s;
    server_start(&s, "HTTP/1.1 204 No Content\r\n", "", 0);
    char err[256] = "";
    struct api_client *api = api_client_open(s.path, 5000, err, sizeof(err));
    assert_non_null(api);
    json_t *body = json_pack("{s:s}", "action_type", "InstanceStart");
    assert_int_equal(api_call(api, "PUT", "/actions", body, NULL, err, sizeof(err)), 0);
    json_decref(body);
    api_client_close(api);
    server_stop(&s);
    assert_non_null(strstr(s.request, "PUT /actions HTTP/1.1\r\n"));
    assert_non_null(strstr(s.request, "Content-Type: application/json\r\n"));
    assert_null(strstr(s.request, "Expect:")); /* no 100-continue round trip */
    assert_non_null(strstr(s.request, "\r\n\r\n{\"action_type\":\"InstanceStart\"}"));
}

static void get_parses_reply(void **state)
{
    static const char reply[] = "{\"id\":\"vm1\",\"state\":\"Paused\"}";
    struct fake_server s;
    server_start(&s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n", reply, strlen(reply));
    char err[256] = "";
    struct api_client *api = api_client_open(s.path, 5000, err, sizeof(err));
    json_t *info = NULL;
    assert_int_equal(api_call(api, "GET", "/", NULL, &info, err, sizeof(err)), 0);
    assert_string_equal(json_string_value(json_object_get(info, "state")), "Paused");
    json_decref(info);
    api_client_close(api);
    server_stop(&s);
    assert_non_null(strstr(s.request, "GET / HTTP/1.1\r\n"));
}

static void fault_message_is_reported(void **state)
{
    static const char reply[] = "{\"fault_message\":\"InstanceStart: already running\"}";
    struct fake_server s;
    server_start(&s, "HTTP/1.1 400 Bad Request\r\n", reply, strlen(reply));
    char err[256] = "";
    struct api_client *api = api_client_open(s.path, 5000, err, sizeof(err));
    json_t *body = json_pack("{s:s}", "action_type", "InstanceStart");
    assert_int_equal(api_call(api, "PUT", "/actions", body, NULL, err, sizeof(err)), -EIO);
    json_decref(body);
    assert_string_equal(err, "PUT /actions: HTTP 400: InstanceStart: already running");
    api_client_close(api);
    server_stop(&s);
}

static void non_json_error_body(void **state)
{
    static const char reply[] = "<html>teapot</html>";
    struct fake_server s;
    server_start(&s, "HTTP/1.1 418 I'm a teapot\r\n", reply, strlen(reply));
    char err[256] = "";
    struct api_client *api = api_client_open(s.path, 5000, err, sizeof(err));
    long status = 0;
    json_t *r = (json_t *)1;
    assert_int_equal(api_request(api, "GET", "/", NULL, &status, &r, err, sizeof(err)), 0);
    assert_int_equal(status, 418);
    assert_null(r); /* not JSON: no reply object, no crash */
    api_client_close(api);
    server_stop(&s);
}

static void oversized_reply_is_refused(void **state)
{
    size_t len = (1 << 20) + 4096;
    char *big = malloc(len);
    memset(big, ' ', len);
    struct fake_server s;
    server_start(&s, "HTTP/1.1 200 OK\r\n", big, len);
    char err[256] = "";
    struct api_client *api = api_client_open(s.path, 5000, err, sizeof(err));
    json_t *r = NULL;
    assert_int_equal(api_call(api, "GET", "/", NULL, &r, err, sizeof(err)), -EIO);
    assert_non_null(strstr(err, "larger than"));
    assert_null(r);
    api_client_close(api);
    server_stop(&s);
    free(big);
}

static void no_server(void **state)
{
    char err[256] = "";
    struct api_client *api = api_client_open("/nonexistent/kiln/api.sock", 2000, err, sizeof(err));
    assert_non_null(api);
    long status;
    json_t *r = NULL;
    assert_int_equal(api_request(api, "GET", "/", NULL, &status, &r, err, sizeof(err)),
                     -ECONNREFUSED);
    assert_non_null(strstr(err, "/nonexistent/kiln/api.sock"));
    api_client_close(api);
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = '\0';
    assert_null(api_client_open(longpath, 2000, err, sizeof(err)));
    assert_non_null(strstr(err, "too long"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_sends_json_and_reads_204), cmocka_unit_test(get_parses_reply),
        cmocka_unit_test(fault_message_is_reported),    cmocka_unit_test(non_json_error_body),
        cmocka_unit_test(oversized_reply_is_refused),   cmocka_unit_test(no_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
