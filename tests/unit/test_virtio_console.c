/* virtio-console port 0 against fake driver rings: output, input with backpressure, config. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "console/console.h"
#include "mem/guest_mem.h"
#include "virtio/console.h"

#define RAM_SIZE (1u << 20)
#define QSIZE 16
#define RING_GPA(q) (0x1000u + 0x1000u * (q))
#define DATA_GPA 0x10000u
#define F_NEXT 1
#define F_WRITE 2

struct fixture {
    uint8_t *ram;
    struct guest_mem mem;
    struct console con;
    int pipe[2]; /* the "terminal": the console writes to pipe[1] */
    struct virtio_console vc;
    uint16_t avail_idx[2];
    unsigned rx_ready_calls;
};

static void set_desc(struct fixture *f, unsigned q, uint16_t i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    uint8_t *d = f->ram + RING_GPA(q) + 16u * i;
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

static void publish(struct fixture *f, unsigned q, uint16_t head)
{
    uint8_t *avail = f->ram + RING_GPA(q) + 0x400;
    memcpy(avail + 4 + 2 * (f->avail_idx[q] % QSIZE), &head, 2);
    f->avail_idx[q]++;
    memcpy(avail + 2, &f->avail_idx[q], 2);
}

static void used_elem(struct fixture *f, unsigned q, unsigned n, uint32_t *id, uint32_t *len)
{
    const uint8_t *e = f->ram + RING_GPA(q) + 0x800 + 4 + 8 * (n % QSIZE);
    memcpy(id, e, 4);
    memcpy(len, e + 4, 4);
}

static uint16_t used_idx(struct fixture *f, unsigned q)
{
    uint16_t idx;
    memcpy(&idx, f->ram + RING_GPA(q) + 0x800 + 2, 2);
    return idx;
}

static void notify(struct fixture *f, unsigned q)
{
    pthread_mutex_lock(&f->vc.vdev.lock);
    f->vc.vdev.ops->queue_notify(&f->vc.vdev, q);
    pthread_mutex_unlock(&f->vc.vdev.lock);
}

static void count_rx_ready(void *opaque)
{
    struct fixture *f = opaque;
    f->rx_ready_calls++;
}

static void enable(struct fixture *f)
{
    struct virtio_device *vdev = &f->vc.vdev;
    for (unsigned q = 0; q < 2; q++) {
        struct virtq *vq = &vdev->queues[q];
        vq->state.size = QSIZE;
        vq->state.desc_addr = RING_GPA(q);
        vq->state.avail_addr = RING_GPA(q) + 0x400;
        vq->state.used_addr = RING_GPA(q) + 0x800;
        assert_int_equal(virtq_enable(vq, &f->mem, false), 0);
    }
    vdev->state.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                         VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->ram = calloc(1, RAM_SIZE);
    guest_mem_add_region(&f->mem, 0, RAM_SIZE, f->ram);
    assert_int_equal(pipe2(f->pipe, O_NONBLOCK), 0);
    assert_int_equal(console_init(&f->con, -1, f->pipe[1], NULL), 0);
    virtio_console_init(&f->vc, &f->con);
    f->vc.rx_ready = count_rx_ready;
    f->vc.rx_ready_opaque = f;
    pthread_mutex_init(&f->vc.vdev.lock, NULL);
    f->vc.vdev.mem = &f->mem;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    pthread_mutex_destroy(&f->vc.vdev.lock);
    close(f->pipe[0]);
    close(f->pipe[1]);
    free(f->ram);
    free(f);
    return 0;
}

static void output_reaches_the_terminal(void **state)
{
    struct fixture *f = *state;
    enable(f);
    memcpy(f->ram + DATA_GPA, "hel", 3);
    memcpy(f->ram + DATA_GPA + 0x100, "lo\r\n", 4);
    set_desc(f, VIRTIO_CONSOLE_TXQ, 0, DATA_GPA, 3, F_NEXT, 1);
    set_desc(f, VIRTIO_CONSOLE_TXQ, 1, DATA_GPA + 0x100, 4, 0, 0);
    publish(f, VIRTIO_CONSOLE_TXQ, 0);
    memcpy(f->ram + DATA_GPA + 0x200, "!", 1);
    set_desc(f, VIRTIO_CONSOLE_TXQ, 2, DATA_GPA + 0x200, 1, 0, 0);
    publish(f, VIRTIO_CONSOLE_TXQ, 2);
    notify(f, VIRTIO_CONSOLE_TXQ);
    char buf[16] = {0};
    assert_int_equal(read(f->pipe[0], buf, sizeof(buf)), 8);
    assert_string_equal(buf, "hello\r\n!");
    assert_int_equal(used_idx(f, VIRTIO_CONSOLE_TXQ), 2);
    uint32_t id, len;
    used_elem(f, VIRTIO_CONSOLE_TXQ, 0, &id, &len);
    assert_int_equal(id, 0);
    assert_int_equal(len, 0);
}

static void input_fills_receive_buffers_with_backpressure(void **state)
{
    struct fixture *f = *state;
    const uint8_t in[] = "abcdefghij";
    /* Before the driver is ready nothing is taken: kiln keeps it pending. */
    assert_int_equal(virtio_console_receive(&f->vc, in, 10), 0);
    enable(f);
    assert_int_equal(virtio_console_receive(&f->vc, in, 10), 0); /* no buffers yet */
    for (uint16_t i = 0; i < 2; i++) {
        set_desc(f, VIRTIO_CONSOLE_RXQ, i, DATA_GPA + 0x100 * i, 4, F_WRITE, 0);
        publish(f, VIRTIO_CONSOLE_RXQ, i);
    }
    notify(f, VIRTIO_CONSOLE_RXQ);
    assert_int_equal(f->rx_ready_calls, 1); /* new buffers: kiln feeds pending input */
    assert_int_equal(virtio_console_receive(&f->vc, in, 10), 8);
    assert_memory_equal(f->ram + DATA_GPA, "abcd", 4);
    assert_memory_equal(f->ram + DATA_GPA + 0x100, "efgh", 4);
    uint32_t id, len;
    used_elem(f, VIRTIO_CONSOLE_RXQ, 1, &id, &len);
    assert_int_equal(id, 1);
    assert_int_equal(len, 4);
    assert_int_equal(virtio_console_receive(&f->vc, in + 8, 2), 0);
    /* A buffer with a readable segment first: only its writable part is filled. */
    set_desc(f, VIRTIO_CONSOLE_RXQ, 2, DATA_GPA + 0x300, 8, F_NEXT, 3);
    set_desc(f, VIRTIO_CONSOLE_RXQ, 3, DATA_GPA + 0x400, 8, F_WRITE, 0);
    publish(f, VIRTIO_CONSOLE_RXQ, 2);
    assert_int_equal(virtio_console_receive(&f->vc, in + 8, 2), 2);
    assert_memory_equal(f->ram + DATA_GPA + 0x400, "ij", 2);
}

static void malformed_chain_needs_reset(void **state)
{
    struct fixture *f = *state;
    enable(f);
    set_desc(f, VIRTIO_CONSOLE_TXQ, 0, RAM_SIZE - 2, 8, 0, 0); /* runs off the end of RAM */
    publish(f, VIRTIO_CONSOLE_TXQ, 0);
    notify(f, VIRTIO_CONSOLE_TXQ);
    assert_true(f->vc.vdev.state.status & VIRTIO_STATUS_NEEDS_RESET);
    char buf[4];
    assert_int_equal(read(f->pipe[0], buf, sizeof(buf)), -1);
    assert_int_equal(errno, EAGAIN);
}

static void config_and_emergency_write(void **state)
{
    struct fixture *f = *state;
    f->vc.cols = 132;
    f->vc.rows = 43;
    uint8_t cfg[12];
    f->vc.vdev.ops->config_read(&f->vc.vdev, 0, cfg, sizeof(cfg));
    assert_int_equal(cfg[0] | cfg[1] << 8, 132);
    assert_int_equal(cfg[2] | cfg[3] << 8, 43);
    assert_int_equal(cfg[4], 1);
    assert_true(f->vc.vdev.host_features & 1ULL << 2); /* EMERG_WRITE offered */
    const uint8_t c[4] = {'Z', 0, 0, 0};
    f->vc.vdev.ops->config_write(&f->vc.vdev, 8, c, 4); /* not negotiated: ignored */
    char buf[4];
    assert_int_equal(read(f->pipe[0], buf, sizeof(buf)), -1);
    f->vc.vdev.state.driver_features = 1ULL << 2;
    f->vc.vdev.ops->config_write(&f->vc.vdev, 8, c, 4);
    assert_int_equal(read(f->pipe[0], buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], 'Z');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(output_reaches_the_terminal, setup, teardown),
        cmocka_unit_test_setup_teardown(input_fills_receive_buffers_with_backpressure, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(malformed_chain_needs_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(config_and_emergency_write, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
