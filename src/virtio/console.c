#include "virtio/console.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "console/console.h"
#include "util.h"
#include "vmm/vm.h"

#define CONSOLE_QUEUE_SIZE 128

/* Feature bits (§5.3.3). */
#define VIRTIO_CONSOLE_F_SIZE 0
#define VIRTIO_CONSOLE_F_EMERG_WRITE 2

/* struct virtio_console_config, §5.3.4: cols, rows, max_nr_ports, emerg_wr. */
#define CONFIG_COLS 0
#define CONFIG_ROWS 2
#define CONFIG_MAX_NR_PORTS 4
#define CONFIG_EMERG_WR 8
#define CONFIG_SIZE 12

static void vcon_config_read(struct virtio_device *vdev, uint32_t offset, uint8_t *data,
                             uint32_t len)
{
    struct virtio_console *vc = vdev->opaque;
    uint8_t cfg[CONFIG_SIZE] = {0};
    cfg[CONFIG_COLS] = (uint8_t)vc->cols;
    cfg[CONFIG_COLS + 1] = (uint8_t)(vc->cols >> 8);
    cfg[CONFIG_ROWS] = (uint8_t)vc->rows;
    cfg[CONFIG_ROWS + 1] = (uint8_t)(vc->rows >> 8);
    cfg[CONFIG_MAX_NR_PORTS] = 1;    /* only meaningful with MULTIPORT, which is not offered */
    memcpy(data, cfg + offset, len); /* the transport checked offset + len */
}

/* §5.3.4: a byte written to emerg_wr goes out at once, even before the queues work. */
static void vcon_config_write(struct virtio_device *vdev, uint32_t offset, const uint8_t *data,
                              uint32_t len)
{
    struct virtio_console *vc = vdev->opaque;
    if (offset == CONFIG_EMERG_WR && virtio_has_feature(vdev, VIRTIO_CONSOLE_F_EMERG_WRITE))
        console_output(vc->con, data, 1);
    (void)len;
}

/* Guest output: every readable segment of every chain, in order, to the terminal and log. */
static void vcon_transmit(struct virtio_console *vc)
{
    struct virtio_device *vdev = &vc->vdev;
    struct virtq *vq = &vdev->queues[VIRTIO_CONSOLE_TXQ];
    struct virtq_elem *elem = &vc->elem;
    bool pushed = false;
    do {
        virtq_disable_notify(vq);
        int ret;
        while ((ret = virtq_pop(vq, vdev->mem, elem)) == 1) {
            for (unsigned i = 0; i < elem->out_num; i++)
                console_output(vc->con, elem->iov[i].iov_base, elem->iov[i].iov_len);
            virtq_push(vq, elem->head, 0);
            pushed = true;
        }
        if (ret < 0) {
            virtio_set_needs_reset(vdev, "malformed transmit descriptor chain");
            break;
        }
    } while (virtq_enable_notify(vq));
    if (pushed)
        virtio_queue_interrupt(vdev, VIRTIO_CONSOLE_TXQ);
}

static void vcon_queue_notify(struct virtio_device *vdev, unsigned q)
{
    struct virtio_console *vc = vdev->opaque;
    if (q == VIRTIO_CONSOLE_TXQ)
        vcon_transmit(vc);
    else if (q == VIRTIO_CONSOLE_RXQ && vc->rx_ready)
        vc->rx_ready(vc->rx_ready_opaque); /* held-back input is fed from the VM's loop */
}

/* Copies input into receive buffers while both last; returns the bytes delivered. */
static size_t vcon_fill(struct virtio_console *vc, const uint8_t *buf, size_t len)
{
    struct virtio_device *vdev = &vc->vdev;
    struct virtq *vq = &vdev->queues[VIRTIO_CONSOLE_RXQ];
    struct virtq_elem *elem = &vc->elem;
    size_t done = 0;
    while (done < len) {
        int ret = virtq_pop(vq, vdev->mem, elem);
        /* Out of buffers: ask for a kick when more come (rx_ready then resumes input). */
        if (ret == 0 && virtq_enable_notify(vq))
            ret = virtq_pop(vq, vdev->mem, elem);
        if (ret < 0)
            virtio_set_needs_reset(vdev, "malformed receive descriptor chain");
        if (ret != 1)
            break;
        size_t n = iov_from_buf(elem->iov + elem->out_num, elem->in_num, 0, buf + done, len - done);
        virtq_written(vq, elem);
        virtq_push(vq, elem->head, (uint32_t)n); /* a buffer with no room goes back empty */
        done += n;
    }
    if (done)
        virtio_queue_interrupt(vdev, VIRTIO_CONSOLE_RXQ);
    return done;
}

size_t virtio_console_receive(void *opaque, const uint8_t *buf, size_t len)
{
    struct virtio_console *vc = opaque;
    struct virtio_device *vdev = &vc->vdev;
    size_t done = 0;
    pthread_mutex_lock(&vdev->lock);
    /* While frozen for a snapshot, input waits (the thaw kick asks for it again). */
    if (virtio_is_active(vdev) && vdev->queues[VIRTIO_CONSOLE_RXQ].state.ready && !vdev->frozen)
        done = vcon_fill(vc, buf, len);
    pthread_mutex_unlock(&vdev->lock);
    return done;
}

/* DRIVER_OK: input that waited for the driver may go in now. */
static int vcon_activate(struct virtio_device *vdev)
{
    struct virtio_console *vc = vdev->opaque;
    if (vc->rx_ready)
        vc->rx_ready(vc->rx_ready_opaque);
    return 0;
}

/* Snapshots: output and input are handled synchronously, so nothing is ever in flight. */
static bool vcon_idle(struct virtio_device *vdev)
{
    (void)vdev;
    return true;
}

static const struct virtio_device_ops vcon_ops = {
    .name = "console",
    .device_id = 3,
    .num_queues = 2,
    .queue_size = CONSOLE_QUEUE_SIZE,
    .config_size = CONFIG_SIZE,
    .config_read = vcon_config_read,
    .config_write = vcon_config_write,
    .activate = vcon_activate,
    .queue_notify = vcon_queue_notify,
    .idle = vcon_idle,
};

void virtio_console_init(struct virtio_console *vc, struct console *con)
{
    memset(vc, 0, sizeof(*vc));
    vc->vdev.ops = &vcon_ops;
    vc->vdev.opaque = vc;
    vc->con = con;
    vc->vdev.host_features = 1ULL << VIRTIO_CONSOLE_F_EMERG_WRITE;
    struct winsize ws;
    if (con->is_tty && ioctl(con->out_fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row) {
        vc->cols = ws.ws_col;
        vc->rows = ws.ws_row;
        vc->vdev.host_features |= 1ULL << VIRTIO_CONSOLE_F_SIZE;
    }
}

static void vcon_rx_ready(void *opaque)
{
    vm_console_rx_ready(opaque);
}

int virtio_console_create(struct vm *vm)
{
    struct virtio_console *vc = malloc(sizeof(*vc));
    if (!vc)
        return -ENOMEM;
    virtio_console_init(vc, &vm->console);
    vc->rx_ready = vcon_rx_ready;
    vc->rx_ready_opaque = vm;
    int ret = vm_add_virtio(vm, &vc->vdev);
    if (ret < 0) {
        log_error("virtio-console: %s", strerror(-ret));
        free(vc);
        return ret;
    }
    vm->console_receive = virtio_console_receive;
    vm->console_receive_opaque = vc;
    return 0;
}
