/*
 * The virtio-vsock device against fake driver rings in test memory and real host Unix
 * sockets in a temporary directory: connection set-up both ways, relaying, credit in both
 * directions, hostile packets, shutdown, reset.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "mem/guest_mem.h"
#include "virtio/vsock.h"

#define RAM_SIZE (4u << 20)
#define QSIZE 128
#define RING_GPA(q) (0x1000u + 0x2000u * (q)) /* desc, then avail at +0x800, used at +0x1000 */
#define RX_BUF_GPA 0x10000u
#define RX_BUF_STRIDE 0x2000u
#define RX_BUF_LEN (VSOCK_HDR_SIZE + 4096)
#define TX_HDR_GPA 0x200000u
#define TX_DATA_GPA 0x201000u
#define F_NEXT 1
#define F_WRITE 2
#define GUEST_CID 3
#define GUEST_PORT 1025

struct fixture {
    char dir[64];
    char uds[108];
    uint8_t *ram;
    struct guest_mem mem;
    struct virtio_vsock *dev;
    uint16_t avail_idx[3];
    uint16_t rx_seen; /* used entries of the receive queue already read */
    uint32_t guest_buf_alloc;
    uint32_t guest_fwd_cnt;
};

struct pkt {
    struct vsock_hdr h;
    uint8_t data[4096];
};

/* ---- the fake driver ---- */

static uint8_t *gpa(struct fixture *f, uint64_t a)
{
    return f->ram + a;
}

static void set_desc(struct fixture *f, unsigned q, uint16_t i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    uint8_t *d = gpa(f, RING_GPA(q) + 16u * i);
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

static void publish(struct fixture *f, unsigned q, uint16_t head)
{
    uint8_t *avail = gpa(f, RING_GPA(q) + 0x800);
    memcpy(avail + 4 + 2 * (f->avail_idx[q] % QSIZE), &head, 2);
    f->avail_idx[q]++;
    memcpy(avail + 2, &f->avail_idx[q], 2);
}

static uint16_t used_idx(struct fixture *f, unsigned q)
{
    uint16_t idx;
    memcpy(&idx, gpa(f, RING_GPA(q) + 0x1000 + 2), 2);
    return idx;
}

static void notify(struct fixture *f, unsigned q)
{
    pthread_mutex_lock(&f->dev->vdev.lock);
    f->dev->vdev.ops->queue_notify(&f->dev->vdev, q);
    pthread_mutex_unlock(&f->dev->vdev.lock);
}

/* Posts `n` receive buffers (descriptor i owns buffer i) and kicks. */
static void post_rx(struct fixture *f, unsigned n)
{
    for (unsigned k = 0; k < n; k++) {
        uint16_t i = (uint16_t)(f->avail_idx[VSOCK_QUEUE_RX] % QSIZE);
        set_desc(f, VSOCK_QUEUE_RX, i, RX_BUF_GPA + RX_BUF_STRIDE * i, RX_BUF_LEN, F_WRITE, 0);
        publish(f, VSOCK_QUEUE_RX, i);
    }
    notify(f, VSOCK_QUEUE_RX);
}

/* Takes the next packet the device put on the receive queue, refilling its buffer. */
static bool rx_next(struct fixture *f, struct pkt *p)
{
    if (used_idx(f, VSOCK_QUEUE_RX) == f->rx_seen)
        return false;
    uint8_t *e = gpa(f, RING_GPA(VSOCK_QUEUE_RX) + 0x1000 + 4 + 8 * (f->rx_seen % QSIZE));
    uint32_t id, len;
    memcpy(&id, e, 4);
    memcpy(&len, e + 4, 4);
    f->rx_seen++;
    assert_true(id < QSIZE);
    assert_true(len >= VSOCK_HDR_SIZE && len <= RX_BUF_LEN);
    const uint8_t *buf = gpa(f, RX_BUF_GPA + RX_BUF_STRIDE * id);
    vsock_hdr_decode(buf, &p->h);
    assert_int_equal(p->h.len, len - VSOCK_HDR_SIZE);
    memcpy(p->data, buf + VSOCK_HDR_SIZE, p->h.len);
    assert_int_equal(p->h.src_cid, VSOCK_HOST_CID);
    assert_int_equal(p->h.dst_cid, GUEST_CID);
    assert_int_equal(p->h.type, VSOCK_TYPE_STREAM);
    if (p->h.op == VSOCK_OP_RW)
        f->guest_fwd_cnt += p->h.len; /* the fake guest consumes at once */
    return true;
}

static void expect_rx(struct fixture *f, struct pkt *p, uint16_t op)
{
    assert_true(rx_next(f, p));
    assert_int_equal(p->h.op, op);
}

static void expect_no_rx(struct fixture *f)
{
    struct pkt p;
    assert_false(rx_next(f, &p));
}

static struct vsock_hdr guest_hdr(struct fixture *f, uint16_t op, uint32_t local, uint32_t peer)
{
    return (struct vsock_hdr){
        .src_cid = GUEST_CID,
        .dst_cid = VSOCK_HOST_CID,
        .src_port = local,
        .dst_port = peer,
        .type = VSOCK_TYPE_STREAM,
        .op = op,
        .buf_alloc = f->guest_buf_alloc,
        .fwd_cnt = f->guest_fwd_cnt,
    };
}

/* Sends one packet on the transmit queue: header and payload in two descriptors. */
static void tx_raw(struct fixture *f, const struct vsock_hdr *h, const void *data, uint32_t len,
                   uint32_t hdr_desc_len)
{
    vsock_hdr_encode(h, gpa(f, TX_HDR_GPA));
    if (len)
        memcpy(gpa(f, TX_DATA_GPA), data, len);
    uint16_t head = (uint16_t)(2 * (f->avail_idx[VSOCK_QUEUE_TX] % (QSIZE / 2)));
    set_desc(f, VSOCK_QUEUE_TX, head, TX_HDR_GPA, hdr_desc_len, len ? F_NEXT : 0,
             (uint16_t)(head + 1));
    set_desc(f, VSOCK_QUEUE_TX, (uint16_t)(head + 1), TX_DATA_GPA, len, 0, 0);
    uint16_t before = used_idx(f, VSOCK_QUEUE_TX);
    publish(f, VSOCK_QUEUE_TX, head);
    notify(f, VSOCK_QUEUE_TX);
    assert_int_equal(used_idx(f, VSOCK_QUEUE_TX), (uint16_t)(before + 1)); /* always returned */
}

static void tx(struct fixture *f, struct vsock_hdr h, const void *data, uint32_t len)
{
    h.len = len;
    tx_raw(f, &h, data, len, VSOCK_HDR_SIZE);
}

static void poll_host(struct fixture *f)
{
    for (int i = 0; i < 4; i++)
        vsock_device_poll(f->dev);
}

/* ---- host-side helpers ---- */

static int unix_listen(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    return fd;
}

static int unix_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* A guest-initiated connection to uds_52, accepted on the host side; returns its fd. */
static int guest_connect(struct fixture *f, uint32_t port, int *listen_fd)
{
    char path[128];
    snprintf(path, sizeof(path), "%s_%u", f->uds, port);
    *listen_fd = unix_listen(path);
    tx(f, guest_hdr(f, VSOCK_OP_REQUEST, GUEST_PORT, port), NULL, 0);
    struct pkt p;
    expect_rx(f, &p, VSOCK_OP_RESPONSE);
    assert_int_equal(p.h.src_port, port);
    assert_int_equal(p.h.dst_port, GUEST_PORT);
    assert_int_equal(p.h.buf_alloc, VSOCK_BUF_ALLOC);
    int fd = accept(*listen_fd, NULL, NULL);
    assert_true(fd >= 0);
    return fd;
}

/* ---- fixture ---- */

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/kiln-vsock-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->uds, sizeof(f->uds), "%s/v.sock", f->dir);
    f->ram = calloc(1, RAM_SIZE);
    guest_mem_add_region(&f->mem, 0, RAM_SIZE, f->ram);
    struct vsock_config cfg = {.enabled = true, .guest_cid = GUEST_CID};
    snprintf(cfg.uds_path, sizeof(cfg.uds_path), "%s", f->uds);
    assert_int_equal(vsock_device_new(&f->dev, &cfg), 0);
    struct virtio_device *vdev = &f->dev->vdev;
    pthread_mutex_init(&vdev->lock, NULL); /* virtio_pci_init's job in kiln */
    vdev->mem = &f->mem;
    for (unsigned q = 0; q < 3; q++) {
        struct virtq *vq = &vdev->queues[q];
        vq->state.size = QSIZE;
        vq->state.desc_addr = RING_GPA(q);
        vq->state.avail_addr = RING_GPA(q) + 0x800;
        vq->state.used_addr = RING_GPA(q) + 0x1000;
        assert_int_equal(virtq_enable(vq, &f->mem, false), 0);
    }
    vdev->state.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                         VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
    f->guest_buf_alloc = 1 << 20;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    pthread_mutex_destroy(&f->dev->vdev.lock);
    vsock_device_free(f->dev);
    struct stat st;
    assert_int_not_equal(stat(f->uds, &st), 0); /* the listening socket file is removed */
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f->ram);
    free(f);
    return 0;
}

/* ---- tests ---- */

static void guest_connect_nobody_listening_gets_rst(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 8);
    tx(f, guest_hdr(f, VSOCK_OP_REQUEST, GUEST_PORT, 52), NULL, 0);
    struct pkt p;
    expect_rx(f, &p, VSOCK_OP_RST);
    assert_int_equal(p.h.src_port, 52);
    assert_int_equal(p.h.dst_port, GUEST_PORT);
    expect_no_rx(f);
}

static void guest_connect_relays_both_ways(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 8);
    int lfd, fd = guest_connect(f, 52, &lfd);
    tx(f, guest_hdr(f, VSOCK_OP_RW, GUEST_PORT, 52), "hello", 5);
    char buf[16] = {0};
    assert_int_equal(read(fd, buf, sizeof(buf)), 5);
    assert_string_equal(buf, "hello");
    assert_int_equal(write(fd, "world!", 6), 6);
    poll_host(f);
    struct pkt p;
    expect_rx(f, &p, VSOCK_OP_RW);
    assert_int_equal(p.h.len, 6);
    assert_memory_equal(p.data, "world!", 6);
    assert_int_equal(p.h.fwd_cnt, 5); /* the 5 bytes the host took */
    assert_int_equal(p.h.buf_alloc, VSOCK_BUF_ALLOC);
    expect_no_rx(f);
    close(fd);
    close(lfd);
}

static void host_data_respects_guest_credit(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 32);
    f->guest_buf_alloc = 100;
    int lfd, fd = guest_connect(f, 52, &lfd);
    char data[1000];
    memset(data, 'x', sizeof(data));
    assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
    poll_host(f);
    struct pkt p;
    uint32_t got = 0;
    while (rx_next(f, &p)) {
        assert_int_equal(p.h.op, VSOCK_OP_RW);
        got += p.h.len;
    }
    assert_int_equal(got, 100); /* exactly the guest's buffer, no more */
    poll_host(f);
    expect_no_rx(f);
    /* The guest read it: its credit update lets the next 100 bytes through. */
    tx(f, guest_hdr(f, VSOCK_OP_CREDIT_UPDATE, GUEST_PORT, 52), NULL, 0);
    poll_host(f);
    got = 0;
    while (rx_next(f, &p))
        got += p.h.len;
    assert_int_equal(got, 100);
    close(fd);
    close(lfd);
}

static void guest_beyond_credit_is_reset_without_losing_data(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 32);
    int lfd, fd = guest_connect(f, 52, &lfd);
    static uint8_t chunk[65536];
    memset(chunk, 'y', sizeof(chunk));
    uint64_t accepted = 0;
    struct pkt p;
    bool reset = false;
    /* The host never reads: kiln's socket buffer, then its advertised buffer fill up. */
    for (int i = 0; i < 256 && !reset; i++) {
        tx(f, guest_hdr(f, VSOCK_OP_RW, GUEST_PORT, 52), chunk, sizeof(chunk));
        while (rx_next(f, &p))
            reset |= p.h.op == VSOCK_OP_RST;
        if (!reset)
            accepted += sizeof(chunk);
    }
    assert_true(reset);
    assert_true(accepted >= VSOCK_BUF_ALLOC); /* the advertised buffer was honoured */
    /* What kiln accepted still reaches the host, then the socket closes. */
    uint64_t read_total = 0;
    for (int i = 0; i < 100000; i++) {
        poll_host(f);
        ssize_t n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n == 0)
            break;
        if (n > 0)
            read_total += (uint64_t)n;
    }
    assert_int_equal(read_total, accepted);
    close(fd);
    close(lfd);
}

static void hostile_packets(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 8);
    /* Forged source CID: dropped silently, nothing connects. */
    struct vsock_hdr h = guest_hdr(f, VSOCK_OP_REQUEST, GUEST_PORT, 52);
    h.src_cid = GUEST_CID + 1;
    tx(f, h, NULL, 0);
    expect_no_rx(f);
    /* Header longer than its buffer, unknown operation, another CID: RST. */
    struct pkt p;
    h = guest_hdr(f, VSOCK_OP_RW, GUEST_PORT, 52);
    h.len = 5000;
    tx_raw(f, &h, "abc", 3, VSOCK_HDR_SIZE);
    expect_rx(f, &p, VSOCK_OP_RST);
    tx(f, guest_hdr(f, 42, GUEST_PORT, 52), NULL, 0);
    expect_rx(f, &p, VSOCK_OP_RST);
    h = guest_hdr(f, VSOCK_OP_REQUEST, GUEST_PORT, 52);
    h.dst_cid = 1;
    tx(f, h, NULL, 0);
    expect_rx(f, &p, VSOCK_OP_RST);
    /* Packets for no connection: RST, except an RST. */
    tx(f, guest_hdr(f, VSOCK_OP_RW, GUEST_PORT, 99), "x", 1);
    expect_rx(f, &p, VSOCK_OP_RST);
    tx(f, guest_hdr(f, VSOCK_OP_RST, GUEST_PORT, 99), NULL, 0);
    expect_no_rx(f);
    /* A chain shorter than a header: dropped, the device keeps working. */
    h = guest_hdr(f, VSOCK_OP_REQUEST, GUEST_PORT, 52);
    tx_raw(f, &h, NULL, 0, 20);
    expect_no_rx(f);
    assert_true(virtio_is_active(&f->dev->vdev));
    tx(f, guest_hdr(f, VSOCK_OP_REQUEST, GUEST_PORT, 52), NULL, 0);
    expect_rx(f, &p, VSOCK_OP_RST);
}

static void host_connect_handshake(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 8);
    int c = unix_connect(f->uds);
    /* Bytes after the newline are payload: they must not be swallowed with the line. */
    assert_int_equal(write(c, "CONNECT 1234\nabc", 16), 16);
    poll_host(f);
    struct pkt p;
    expect_rx(f, &p, VSOCK_OP_REQUEST);
    assert_int_equal(p.h.dst_port, 1234);
    uint32_t host_port = p.h.src_port;
    assert_int_equal(host_port, 1u << 30);
    assert_false(readable(c)); /* no OK before the guest answers */
    tx(f, guest_hdr(f, VSOCK_OP_RESPONSE, 1234, host_port), NULL, 0);
    char line[32] = {0};
    assert_int_equal(read(c, line, sizeof(line) - 1), 14);
    assert_string_equal(line, "OK 1073741824\n");
    poll_host(f);
    expect_rx(f, &p, VSOCK_OP_RW);
    assert_int_equal(p.h.len, 3);
    assert_memory_equal(p.data, "abc", 3);
    /* Guest to host on the same connection. */
    tx(f, guest_hdr(f, VSOCK_OP_RW, 1234, host_port), "pong", 4);
    assert_int_equal(read(c, line, sizeof(line)), 4);
    assert_memory_equal(line, "pong", 4);
    /* Host closes: the guest hears it. */
    close(c);
    poll_host(f);
    expect_rx(f, &p, VSOCK_OP_SHUTDOWN);
    assert_int_equal(p.h.flags, VSOCK_SHUTDOWN_BOTH);
    tx(f, guest_hdr(f, VSOCK_OP_RST, 1234, host_port), NULL, 0);
    expect_no_rx(f);
}

static void host_connect_refused_or_malformed(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 8);
    int c = unix_connect(f->uds);
    assert_int_equal(write(c, "CONNECT 99\n", 11), 11);
    poll_host(f);
    struct pkt p;
    expect_rx(f, &p, VSOCK_OP_REQUEST);
    tx(f, guest_hdr(f, VSOCK_OP_RST, 99, p.h.src_port), NULL, 0);
    char buf[8];
    assert_int_equal(read(c, buf, sizeof(buf)), 0); /* closed, no OK */
    close(c);
    const char *bad[] = {"HELLO\n", "CONNECT x\n", "CONNECT 1111111111111111111111111111"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = unix_connect(f->uds);
        assert_int_equal(write(c, bad[i], strlen(bad[i])), (ssize_t)strlen(bad[i]));
        poll_host(f);
        /* Closed; with bytes left unread in kiln's end, Linux reports ECONNRESET. */
        ssize_t n = read(c, buf, sizeof(buf));
        assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
        close(c);
    }
    expect_no_rx(f);
}

static void guest_shutdown_gets_rst_and_closes_host(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 8);
    int lfd, fd = guest_connect(f, 52, &lfd);
    tx(f, guest_hdr(f, VSOCK_OP_RW, GUEST_PORT, 52), "bye", 3);
    struct vsock_hdr h = guest_hdr(f, VSOCK_OP_SHUTDOWN, GUEST_PORT, 52);
    h.flags = VSOCK_SHUTDOWN_SEND;
    tx(f, h, NULL, 0);
    char buf[8];
    assert_int_equal(read(fd, buf, sizeof(buf)), 3);
    assert_int_equal(read(fd, buf, sizeof(buf)), 0); /* write side shut: EOF */
    /* The host may still talk until the guest shuts the other half too. */
    assert_int_equal(write(fd, "late", 4), 4);
    poll_host(f);
    struct pkt p;
    expect_rx(f, &p, VSOCK_OP_RW);
    h.flags = VSOCK_SHUTDOWN_BOTH;
    tx(f, h, NULL, 0);
    expect_rx(f, &p, VSOCK_OP_RST);
    poll_host(f);
    assert_int_equal(send(fd, "x", 1, MSG_NOSIGNAL), -1); /* kiln closed its end */
    close(fd);
    close(lfd);
}

static void no_receive_buffers_delays_replies(void **state)
{
    struct fixture *f = *state;
    char path[128];
    snprintf(path, sizeof(path), "%s_52", f->uds);
    int lfd = unix_listen(path);
    tx(f, guest_hdr(f, VSOCK_OP_REQUEST, GUEST_PORT, 52), NULL, 0);
    tx(f, guest_hdr(f, VSOCK_OP_REQUEST, GUEST_PORT, 53), NULL, 0);
    expect_no_rx(f);
    post_rx(f, 1);
    struct pkt p;
    expect_rx(f, &p, VSOCK_OP_RST); /* unmatched replies first */
    expect_no_rx(f);
    post_rx(f, 1);
    expect_rx(f, &p, VSOCK_OP_RESPONSE);
    close(lfd);
}

static void device_reset_closes_connections(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 8);
    int waiting = unix_connect(f->uds); /* has not sent its CONNECT line yet */
    poll_host(f);
    int lfd, fd = guest_connect(f, 52, &lfd);
    pthread_mutex_lock(&f->dev->vdev.lock);
    f->dev->vdev.ops->reset(&f->dev->vdev);
    pthread_mutex_unlock(&f->dev->vdev.lock);
    char buf[8];
    assert_int_equal(read(fd, buf, sizeof(buf)), 0);
    /* The guest never heard of the waiting client: it is kept for the next driver. */
    assert_int_equal(write(waiting, "CONNECT 7\n", 10), 10);
    poll_host(f);
    struct pkt p;
    expect_rx(f, &p, VSOCK_OP_REQUEST);
    assert_int_equal(p.h.dst_port, 7);
    close(waiting);
    close(fd);
    close(lfd);
}

static void listener_path_rules(void **state)
{
    char dir[] = "/tmp/kiln-vsock-path-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct vsock_config cfg = {.enabled = true, .guest_cid = GUEST_CID};
    struct virtio_vsock *dev;
    /* A socket file nobody listens on (a crash left it): replaced. */
    snprintf(cfg.uds_path, sizeof(cfg.uds_path), "%s/stale.sock", dir);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", cfg.uds_path);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(s);
    assert_int_equal(vsock_device_new(&dev, &cfg), 0);
    /* While it lives, a second device cannot take the path. */
    struct virtio_vsock *dev2;
    assert_int_equal(vsock_device_new(&dev2, &cfg), -EADDRINUSE);
    vsock_device_free(dev);
    assert_int_equal(access(cfg.uds_path, F_OK), -1);
    /* A regular file is not ours to delete. */
    snprintf(cfg.uds_path, sizeof(cfg.uds_path), "%s/file", dir);
    int fd = open(cfg.uds_path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    assert_int_equal(vsock_device_new(&dev, &cfg), -EADDRINUSE);
    assert_int_equal(access(cfg.uds_path, F_OK), 0);
    unlink(cfg.uds_path);
    /* A missing directory. */
    snprintf(cfg.uds_path, sizeof(cfg.uds_path), "%s/no/such.sock", dir);
    assert_int_equal(vsock_device_new(&dev, &cfg), -ENOENT);
    assert_int_equal(rmdir(dir), 0);
}

static void tiny_receive_buffer_needs_reset(void **state)
{
    struct fixture *f = *state;
    set_desc(f, VSOCK_QUEUE_RX, 0, RX_BUF_GPA, 20, F_WRITE, 0);
    publish(f, VSOCK_QUEUE_RX, 0);
    notify(f, VSOCK_QUEUE_RX);
    tx(f, guest_hdr(f, VSOCK_OP_REQUEST, GUEST_PORT, 52), NULL, 0);
    assert_true(f->dev->vdev.state.status & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(used_idx(f, VSOCK_QUEUE_RX), 0);
}

/* More unanswerable packets than the RST backlog holds: the rest wait in the ring. */
static void rst_backlog_pushes_back_on_transmit(void **state)
{
    struct fixture *f = *state;
    const unsigned n = VSOCK_RST_BACKLOG + 10; /* one descriptor each */
    for (uint16_t i = 0; i < n; i++) {
        struct vsock_hdr h = guest_hdr(f, VSOCK_OP_RW, GUEST_PORT + i, 99);
        vsock_hdr_encode(&h, gpa(f, TX_HDR_GPA + 64u * i));
        set_desc(f, VSOCK_QUEUE_TX, i, TX_HDR_GPA + 64u * i, VSOCK_HDR_SIZE, 0, 0);
        publish(f, VSOCK_QUEUE_TX, i);
    }
    notify(f, VSOCK_QUEUE_TX);
    assert_int_equal(used_idx(f, VSOCK_QUEUE_TX), VSOCK_RST_BACKLOG);
    struct pkt p;
    unsigned rsts = 0;
    for (int round = 0; round < 8 && rsts < n; round++) {
        post_rx(f, QSIZE / 2);
        while (rx_next(f, &p)) {
            assert_int_equal(p.h.op, VSOCK_OP_RST);
            assert_int_equal(p.h.dst_port, GUEST_PORT + rsts);
            rsts++;
        }
    }
    assert_int_equal(rsts, n); /* every packet answered, in order */
    assert_int_equal(used_idx(f, VSOCK_QUEUE_TX), n);
}

static void config_space_has_guest_cid(void **state)
{
    struct fixture *f = *state;
    uint8_t cfg[8];
    f->dev->vdev.ops->config_read(&f->dev->vdev, 0, cfg, 8);
    uint64_t cid;
    memcpy(&cid, cfg, 8);
    assert_int_equal(cid, GUEST_CID);
    f->dev->vdev.ops->config_read(&f->dev->vdev, 4, cfg, 4);
    assert_int_equal(cfg[0], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(guest_connect_nobody_listening_gets_rst, setup, teardown),
        cmocka_unit_test_setup_teardown(guest_connect_relays_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(host_data_respects_guest_credit, setup, teardown),
        cmocka_unit_test_setup_teardown(guest_beyond_credit_is_reset_without_losing_data, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(hostile_packets, setup, teardown),
        cmocka_unit_test_setup_teardown(host_connect_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(host_connect_refused_or_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(guest_shutdown_gets_rst_and_closes_host, setup, teardown),
        cmocka_unit_test_setup_teardown(no_receive_buffers_delays_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(device_reset_closes_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(tiny_receive_buffer_needs_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(rst_backlog_pushes_back_on_transmit, setup, teardown),
        cmocka_unit_test_setup_teardown(config_space_has_guest_cid, setup, teardown),
        cmocka_unit_test(listener_path_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
