/*
 * virtio-blk request handling against fake rings in malloc'd guest memory, on a real image
 * file, through both I/O engines: good requests, then what a hostile driver can send.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem/guest_mem.h"
#include "virtio/blk.h"
#include "virtio/virtio.h"
#include "vmm/event_loop.h"

#define RAM_SIZE (8u << 20)
#define QSIZE 128
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000
#define HEAP_GPA 0x10000
#define IMG_SIZE (1u << 20)
#define SECTORS (IMG_SIZE / 512)

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define T_WRITE_ZEROES 13
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2
#define F_RO 5
#define F_FLUSH 9
#define F_DISCARD 13
#define F_WRITE_ZEROES 14

#define D_NEXT 1
#define D_WRITE 2

struct params {
    const char *engine;
    const char *dir; /* where the image lives: /tmp (a disk file system) or /dev/shm */
    bool direct;
    bool readonly;
    bool write_through; /* the driver does not negotiate FLUSH */
};

struct fx {
    const struct params *p;
    uint8_t *ram;
    struct guest_mem mem;
    struct event_loop loop;
    struct virtio_blk *blk;
    struct virtio_device *vdev;
    char path[256];
    int fd; /* our own view of the image */
    uint64_t heap;
    uint16_t next_desc;
    uint16_t avail_idx;
};

struct seg {
    uint64_t gpa;
    uint32_t len;
    bool write;
};

static uint8_t pattern(uint64_t off)
{
    return (uint8_t)(off * 7 + off / 512 + 1);
}

static void make_image(struct fx *f)
{
    snprintf(f->path, sizeof(f->path), "%s/kiln-test-blk-XXXXXX", f->p->dir);
    int fd = mkstemp(f->path);
    assert_true(fd >= 0);
    uint8_t *buf = malloc(IMG_SIZE);
    for (uint64_t i = 0; i < IMG_SIZE; i++)
        buf[i] = pattern(i);
    assert_int_equal(pwrite(fd, buf, IMG_SIZE, 0), IMG_SIZE);
    free(buf);
    f->fd = fd;
}

static void queue_setup(struct fx *f)
{
    struct virtq *vq = &f->vdev->queues[0];
    memset(f->ram + DESC_GPA, 0, HEAP_GPA - DESC_GPA);
    vq->state.size = QSIZE;
    vq->state.desc_addr = DESC_GPA;
    vq->state.avail_addr = AVAIL_GPA;
    vq->state.used_addr = USED_GPA;
    assert_int_equal(virtq_enable(vq, &f->mem, false), 0);
    f->vdev->state.queue_enable[0] = 1;
    f->next_desc = 0;
    f->avail_idx = 0;
}

static int fx_open(void **state, const struct params *p, struct fx **out)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->p = p;
    f->ram = aligned_alloc(4096, RAM_SIZE);
    memset(f->ram, 0, RAM_SIZE);
    assert_int_equal(guest_mem_add_region(&f->mem, 0, RAM_SIZE, f->ram), 0);
    assert_int_equal(event_loop_init(&f->loop), 0);
    make_image(f);
    struct disk_config cfg = {.readonly = p->readonly, .cache = p->direct};
    snprintf(cfg.path, sizeof(cfg.path), "%s", f->path);
    snprintf(cfg.id, sizeof(cfg.id), "kiln-serial-1");
    setenv("KILN_BLK_ENGINE", p->engine, 1);
    int ret = virtio_blk_new(&cfg, &f->loop, &f->blk);
    if (ret < 0) {
        *out = f;
        return ret;
    }
    assert_string_equal(virtio_blk_engine_name(f->blk), p->engine);
    f->vdev = virtio_blk_vdev(f->blk);
    assert_int_equal(virtio_pci_init(f->vdev, &f->mem, &f->loop, 0), 0);
    f->vdev->state.driver_features = f->vdev->host_features | 1ULL << VIRTIO_F_VERSION_1;
    if (p->write_through)
        f->vdev->state.driver_features &= ~(1ULL << F_FLUSH);
    f->vdev->state.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                            VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
    queue_setup(f);
    f->heap = HEAP_GPA;
    *out = f;
    (void)state;
    return 0;
}

static int setup(void **state)
{
    struct fx *f;
    if (fx_open(state, *state, &f) < 0)
        return -1;
    *state = f;
    return 0;
}

static void fx_close(struct fx *f)
{
    if (f->vdev) {
        pthread_mutex_lock(&f->vdev->lock);
        f->vdev->ops->reset(f->vdev);
        pthread_mutex_unlock(&f->vdev->lock);
        virtio_pci_destroy(f->vdev);
        f->vdev->ops->destroy(f->vdev);
    }
    event_loop_destroy(&f->loop);
    close(f->fd);
    unlink(f->path);
    free(f->ram);
    free(f);
}

static int teardown(void **state)
{
    fx_close(*state);
    return 0;
}

/* ---- the driver's side ---- */

static uint64_t galloc(struct fx *f, uint64_t len, uint64_t align)
{
    f->heap = (f->heap + align - 1) & ~(align - 1);
    uint64_t gpa = f->heap;
    f->heap += len;
    assert_true(f->heap <= RAM_SIZE);
    return gpa;
}

static void put_desc(struct fx *f, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    uint8_t *d = f->ram + DESC_GPA + 16u * i;
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

static uint16_t chain(struct fx *f, const struct seg *segs, unsigned n)
{
    uint16_t head = f->next_desc;
    for (unsigned i = 0; i < n; i++) {
        uint16_t idx = (uint16_t)((head + i) % QSIZE);
        uint16_t flags = (i + 1 < n ? D_NEXT : 0) | (segs[i].write ? D_WRITE : 0);
        put_desc(f, idx, segs[i].gpa, segs[i].len, flags, (uint16_t)((idx + 1) % QSIZE));
    }
    f->next_desc = (uint16_t)((head + n) % QSIZE);
    return head;
}

static void publish(struct fx *f, uint16_t head)
{
    uint16_t slot = f->avail_idx % QSIZE;
    memcpy(f->ram + AVAIL_GPA + 4 + 2 * slot, &head, 2);
    f->avail_idx++;
    __atomic_store_n((uint16_t *)(f->ram + AVAIL_GPA + 2), f->avail_idx, __ATOMIC_RELEASE);
}

static void kick(struct fx *f)
{
    pthread_mutex_lock(&f->vdev->lock);
    if (virtio_is_active(f->vdev))
        f->vdev->ops->queue_notify(f->vdev, 0);
    pthread_mutex_unlock(&f->vdev->lock);
}

static uint16_t used_idx(struct fx *f)
{
    return __atomic_load_n((uint16_t *)(f->ram + USED_GPA + 2), __ATOMIC_ACQUIRE);
}

static void used_elem(struct fx *f, uint16_t i, uint32_t *id, uint32_t *len)
{
    uint8_t *e = f->ram + USED_GPA + 4 + 8 * (i % QSIZE);
    memcpy(id, e, 4);
    memcpy(len, e + 4, 4);
}

static bool wait_used(struct fx *f, uint16_t want)
{
    for (int i = 0; i < 400; i++) {
        if (used_idx(f) == want)
            return true;
        event_loop_run_once(&f->loop, 25);
    }
    return used_idx(f) == want;
}

static bool needs_reset(struct fx *f)
{
    return f->vdev->state.status & VIRTIO_STATUS_NEEDS_RESET;
}

static uint64_t header(struct fx *f, uint32_t type, uint64_t sector)
{
    uint64_t gpa = galloc(f, 16, 16);
    memcpy(f->ram + gpa, &type, 4);
    memset(f->ram + gpa + 4, 0, 4);
    memcpy(f->ram + gpa + 8, &sector, 8);
    return gpa;
}

/*
 * One request: header, then `data` segments, then a status byte; runs it to completion and
 * returns the status (0xee if none came). `used_len` gets the used length.
 */
static int request(struct fx *f, uint32_t type, uint64_t sector, const struct seg *data, unsigned n,
                   uint32_t *used_len)
{
    struct seg segs[8];
    assert_true(n + 2 <= 8);
    segs[0] = (struct seg){header(f, type, sector), 16, false};
    if (n)
        memcpy(segs + 1, data, n * sizeof(*data));
    uint64_t status = galloc(f, 1, 1);
    f->ram[status] = 0xee;
    segs[n + 1] = (struct seg){status, 1, true};
    uint16_t before = used_idx(f);
    uint16_t head = chain(f, segs, n + 2);
    publish(f, head);
    kick(f);
    assert_true(wait_used(f, (uint16_t)(before + 1)));
    uint32_t id, len;
    used_elem(f, before, &id, &len);
    assert_int_equal(id, head);
    if (used_len)
        *used_len = len;
    return f->ram[status];
}

static struct seg buf(struct fx *f, uint32_t len, bool write)
{
    return (struct seg){galloc(f, len, 4096), len, write};
}

static void host_read(struct fx *f, uint64_t off, void *out, size_t len)
{
    assert_int_equal(pread(f->fd, out, len, (off_t)off), (ssize_t)len);
}

static bool is_pattern(const uint8_t *p, uint64_t off, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != pattern(off + i))
            return false;
    return true;
}

static bool all_zero(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return false;
    return true;
}

/* ---- good requests ---- */

static void test_config(void **state)
{
    struct fx *f = *state;
    uint8_t cfg[60];
    f->vdev->ops->config_read(f->vdev, 0, cfg, sizeof(cfg));
    uint64_t capacity;
    uint32_t size_max, seg_max, blk_size, max_discard;
    memcpy(&capacity, cfg, 8);
    memcpy(&size_max, cfg + 8, 4);
    memcpy(&seg_max, cfg + 12, 4);
    memcpy(&blk_size, cfg + 20, 4);
    memcpy(&max_discard, cfg + 36, 4);
    assert_int_equal(capacity, SECTORS);
    assert_true(seg_max >= 2 && seg_max <= 254);
    assert_true(size_max >= 4096);
    assert_int_equal(blk_size, 512);
    assert_true(max_discard > 0);
    assert_true(f->vdev->host_features >> F_FLUSH & 1);
    assert_int_equal(f->vdev->host_features >> F_RO & 1, f->p->readonly);
    assert_int_equal(f->vdev->host_features >> F_DISCARD & 1, !f->p->readonly);
}

static void test_read(void **state)
{
    struct fx *f = *state;
    struct seg d = buf(f, 1024, true);
    uint32_t len;
    assert_int_equal(request(f, T_IN, 3, &d, 1, &len), S_OK);
    assert_int_equal(len, 1025);
    assert_true(is_pattern(f->ram + d.gpa, 3 * 512, 1024));
    /* The very last sector, through three uneven segments. */
    struct seg parts[3] = {buf(f, 100, true), buf(f, 300, true), buf(f, 112, true)};
    assert_int_equal(request(f, T_IN, SECTORS - 1, parts, 3, &len), S_OK);
    assert_int_equal(len, 513);
    assert_true(is_pattern(f->ram + parts[0].gpa, IMG_SIZE - 512, 100));
    assert_true(is_pattern(f->ram + parts[1].gpa, IMG_SIZE - 412, 300));
    assert_true(is_pattern(f->ram + parts[2].gpa, IMG_SIZE - 112, 112));
    assert_false(needs_reset(f));
}

static void test_write_flush(void **state)
{
    struct fx *f = *state;
    struct seg parts[2] = {buf(f, 1000, false), buf(f, 3096, false)};
    memset(f->ram + parts[0].gpa, 0x5a, 1000);
    memset(f->ram + parts[1].gpa, 0xa5, 3096);
    uint32_t len;
    assert_int_equal(request(f, T_OUT, 16, parts, 2, &len), S_OK);
    assert_int_equal(len, 1);
    assert_int_equal(request(f, T_FLUSH, 0, NULL, 0, NULL), S_OK);
    uint8_t got[4096];
    host_read(f, 16 * 512, got, sizeof(got));
    for (int i = 0; i < 4096; i++)
        assert_int_equal(got[i], i < 1000 ? 0x5a : 0xa5);
    /* Untouched neighbours. */
    host_read(f, 15 * 512, got, 512);
    assert_true(is_pattern(got, 15 * 512, 512));
}

static void test_get_id(void **state)
{
    struct fx *f = *state;
    struct seg d = buf(f, 20, true);
    memset(f->ram + d.gpa, 0xff, 20);
    uint32_t len;
    assert_int_equal(request(f, T_GET_ID, 0, &d, 1, &len), S_OK);
    assert_int_equal(len, 21);
    assert_memory_equal(f->ram + d.gpa, "kiln-serial-1\0\0\0\0\0\0\0", 20);
    /* A short buffer gets what fits. */
    struct seg small = buf(f, 4, true);
    assert_int_equal(request(f, T_GET_ID, 0, &small, 1, &len), S_OK);
    assert_memory_equal(f->ram + small.gpa, "kiln", 4);
}

static void test_header_split(void **state)
{
    struct fx *f = *state;
    /* The header may span descriptors: 5 + 11 bytes. */
    uint64_t h = header(f, T_IN, 2);
    struct seg d = buf(f, 512, true);
    uint64_t status = galloc(f, 1, 1);
    struct seg segs[4] = {{h, 5, false}, {h + 5, 11, false}, d, {status, 1, true}};
    uint16_t head = chain(f, segs, 4);
    publish(f, head);
    kick(f);
    assert_true(wait_used(f, 1));
    assert_int_equal(f->ram[status], S_OK);
    assert_true(is_pattern(f->ram + d.gpa, 1024, 512));
}

static void test_discard_write_zeroes(void **state)
{
    struct fx *f = *state;
    uint8_t got[8192];
    for (uint32_t flags = 0; flags < 2; flags++) {
        uint64_t sector = 64 + 32 * flags;
        struct seg s = buf(f, 16, false);
        uint32_t n = 16;
        memcpy(f->ram + s.gpa, &sector, 8);
        memcpy(f->ram + s.gpa + 8, &n, 4);
        memcpy(f->ram + s.gpa + 12, &flags, 4);
        assert_int_equal(request(f, T_WRITE_ZEROES, 0, &s, 1, NULL), S_OK);
        host_read(f, sector * 512, got, sizeof(got));
        assert_true(all_zero(got, sizeof(got)));
        host_read(f, (sector + 16) * 512, got, 512);
        assert_true(is_pattern(got, (sector + 16) * 512, 512));
    }
    /* Discard is a hint: only the status is promised. */
    struct seg s = buf(f, 16, false);
    uint64_t sector = 200;
    uint32_t n = 8, flags = 0;
    memcpy(f->ram + s.gpa, &sector, 8);
    memcpy(f->ram + s.gpa + 8, &n, 4);
    memcpy(f->ram + s.gpa + 12, &flags, 4);
    assert_int_equal(request(f, T_DISCARD, 0, &s, 1, NULL), S_OK);
    host_read(f, 199 * 512, got, 512);
    assert_true(is_pattern(got, 199 * 512, 512));
}

/* Many requests in flight; more than the device has slots, so it must stall and resume. */
static void test_many_in_flight(void **state)
{
    struct fx *f = *state;
    const unsigned nbuf = 8, total = 300;
    uint16_t heads[8];
    uint64_t data[8], status[8];
    for (unsigned i = 0; i < nbuf; i++) {
        data[i] = galloc(f, 4096, 4096);
        status[i] = galloc(f, 1, 1);
        struct seg segs[3] = {
            {header(f, T_IN, 8 * i), 16, false}, {data[i], 4096, true}, {status[i], 1, true}};
        heads[i] = chain(f, segs, 3);
    }
    /* A driver may not reuse a head in flight; a hostile one does, and must not hurt us. */
    unsigned published = 0;
    while (published < total) {
        for (unsigned k = 0; k < QSIZE && published < total; k++, published++)
            publish(f, heads[published % nbuf]);
        kick(f); /* no completions processed in between */
    }
    assert_true(wait_used(f, (uint16_t)total));
    for (unsigned i = 0; i < nbuf; i++) {
        assert_int_equal(f->ram[status[i]], S_OK);
        assert_true(is_pattern(f->ram + data[i], 8 * i * 512, 4096));
    }
    assert_int_equal(virtio_blk_busy(f->blk), 0);
    assert_false(needs_reset(f));
}

/*
 * A reset with I/O in flight: it returns only when the engine is done with guest memory,
 * and nothing reaches the rings afterwards. (Page-cache hits may complete before the reset,
 * during the kick itself; those are answered normally.)
 */
static void test_reset_in_flight(void **state)
{
    struct fx *f = *state;
    uint64_t status[16];
    for (unsigned i = 0; i < 16; i++) {
        status[i] = galloc(f, 1, 1);
        f->ram[status[i]] = 0xee;
        struct seg segs[3] = {{header(f, T_IN, 64 * i), 16, false},
                              {galloc(f, 32768, 4096), 32768, true},
                              {status[i], 1, true}};
        publish(f, chain(f, segs, 3));
    }
    kick(f);
    pthread_mutex_lock(&f->vdev->lock);
    f->vdev->ops->reset(f->vdev);
    pthread_mutex_unlock(&f->vdev->lock);
    assert_int_equal(virtio_blk_busy(f->blk), 0);
    uint16_t used = used_idx(f);
    uint8_t seen[16];
    unsigned answered = 0;
    for (unsigned i = 0; i < 16; i++) {
        seen[i] = f->ram[status[i]];
        assert_true(seen[i] == S_OK || seen[i] == 0xee);
        answered += seen[i] == S_OK;
    }
    assert_int_equal(used, answered);
    print_message("%u of 16 answered before the reset\n", answered);
    /* Whatever the engine finished meanwhile must not reach the (old) rings. */
    for (int i = 0; i < 10; i++)
        event_loop_run_once(&f->loop, 10);
    assert_int_equal(used_idx(f), used);
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(f->ram[status[i]], seen[i]);
    queue_setup(f);
    struct seg d = buf(f, 512, true);
    assert_int_equal(request(f, T_IN, 5, &d, 1, NULL), S_OK);
    assert_true(is_pattern(f->ram + d.gpa, 5 * 512, 512));
}

/* ---- hostile requests ---- */

static void test_bad_ranges(void **state)
{
    struct fx *f = *state;
    struct seg d = buf(f, 1024, true);
    uint64_t bad[] = {SECTORS,        SECTORS - 1, UINT64_MAX,
                      UINT64_MAX - 1, 1ULL << 55,  (UINT64_MAX >> 9) + 1};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(request(f, T_IN, bad[i], &d, 1, NULL), S_IOERR);
    struct seg one = buf(f, 512, true);
    assert_int_equal(request(f, T_IN, SECTORS - 1, &one, 1, NULL), S_OK);
    /* Not a whole number of sectors. */
    struct seg odd = buf(f, 100, true);
    assert_int_equal(request(f, T_IN, 0, &odd, 1, NULL), S_IOERR);
    assert_false(needs_reset(f));
}

static void test_wrong_direction(void **state)
{
    struct fx *f = *state;
    /* A read whose data buffer is device-readable: nowhere to put the data. */
    struct seg ro = buf(f, 512, false);
    memset(f->ram + ro.gpa, 0x77, 512);
    assert_int_equal(request(f, T_IN, 0, &ro, 1, NULL), S_IOERR);
    assert_int_equal(f->ram[ro.gpa], 0x77);
    /* A write whose data is device-writable. */
    struct seg wr = buf(f, 512, true);
    assert_int_equal(request(f, T_OUT, 0, &wr, 1, NULL), S_IOERR);
    uint8_t got[512];
    host_read(f, 0, got, 512);
    assert_true(is_pattern(got, 0, 512));
    /* get-id with no room for the id. */
    assert_int_equal(request(f, T_GET_ID, 0, NULL, 0, NULL), S_IOERR);
    /* Unknown request types. */
    assert_int_equal(request(f, 99, 0, NULL, 0, NULL), S_UNSUPP);
    assert_int_equal(request(f, 14 /* secure erase */, 0, NULL, 0, NULL), S_UNSUPP);
    assert_false(needs_reset(f));
}

static void test_bad_discard(void **state)
{
    struct fx *f = *state;
    struct {
        uint32_t type;
        uint64_t sector;
        uint32_t n, flags;
        unsigned nseg;
        int want;
    } cases[] = {
        {T_DISCARD, 0, 8, 1, 1, S_UNSUPP},      /* unmap on a discard */
        {T_WRITE_ZEROES, 0, 8, 4, 1, S_UNSUPP}, /* reserved flag */
        {T_DISCARD, 0, 8, 0, 2, S_IOERR},       /* more segments than max_discard_seg */
        {T_DISCARD, SECTORS - 4, 8, 0, 1, S_IOERR},
        {T_WRITE_ZEROES, UINT64_MAX, 1, 0, 1, S_IOERR},
        {T_WRITE_ZEROES, 0, UINT32_MAX, 0, 1, S_IOERR},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct seg s = buf(f, 32, false);
        for (unsigned k = 0; k < 2; k++) {
            memcpy(f->ram + s.gpa + 16 * k, &cases[i].sector, 8);
            memcpy(f->ram + s.gpa + 16 * k + 8, &cases[i].n, 4);
            memcpy(f->ram + s.gpa + 16 * k + 12, &cases[i].flags, 4);
        }
        s.len = 16 * cases[i].nseg;
        assert_int_equal(request(f, cases[i].type, 0, &s, 1, NULL), cases[i].want);
    }
    /* A truncated segment. */
    struct seg s = buf(f, 8, false);
    assert_int_equal(request(f, T_DISCARD, 0, &s, 1, NULL), S_IOERR);
    uint8_t got[4096];
    host_read(f, 0, got, sizeof(got));
    assert_true(is_pattern(got, 0, sizeof(got)));
    assert_false(needs_reset(f));
}

/* Chains the device cannot even answer: the device needs a reset, kiln goes on. */
static void expect_malformed(struct fx *f, const struct seg *segs, unsigned n)
{
    publish(f, chain(f, segs, n));
    kick(f);
    for (int i = 0; i < 5; i++)
        event_loop_run_once(&f->loop, 10);
    assert_true(needs_reset(f));
    assert_int_equal(used_idx(f), 0);
    assert_int_equal(virtio_blk_busy(f->blk), 0);
}

static void test_short_header(void **state)
{
    struct fx *f = *state;
    struct seg segs[3] = {{header(f, T_IN, 0), 8, false}, buf(f, 512, true), buf(f, 1, true)};
    expect_malformed(f, segs, 3);
}

static void test_no_status(void **state)
{
    struct fx *f = *state;
    struct seg segs[2] = {{header(f, T_OUT, 0), 16, false}, buf(f, 512, false)};
    expect_malformed(f, segs, 2);
    uint8_t got[512];
    host_read(f, 0, got, 512);
    assert_true(is_pattern(got, 0, 512));
}

static void test_status_not_last(void **state)
{
    struct fx *f = *state;
    /* A readable descriptor after a writable one breaks the ring rules (§2.7.4.2). */
    struct seg segs[3] = {{header(f, T_IN, 0), 16, false}, buf(f, 1, true), buf(f, 512, false)};
    expect_malformed(f, segs, 3);
}

/* ---- read-only disks ---- */

static void test_readonly(void **state)
{
    struct fx *f = *state;
    struct seg w = buf(f, 512, false);
    memset(f->ram + w.gpa, 0, 512);
    assert_int_equal(request(f, T_OUT, 0, &w, 1, NULL), S_IOERR);
    struct seg s = buf(f, 16, false);
    uint32_t n = 8;
    memcpy(f->ram + s.gpa + 8, &n, 4);
    assert_int_equal(request(f, T_WRITE_ZEROES, 0, &s, 1, NULL), S_IOERR);
    assert_int_equal(request(f, T_DISCARD, 0, &s, 1, NULL), S_IOERR);
    assert_int_equal(request(f, T_FLUSH, 0, NULL, 0, NULL), S_OK);
    uint8_t got[4096];
    host_read(f, 0, got, sizeof(got));
    assert_true(is_pattern(got, 0, sizeof(got)));
    struct seg r = buf(f, 512, true);
    assert_int_equal(request(f, T_IN, 1, &r, 1, NULL), S_OK);
    assert_true(is_pattern(f->ram + r.gpa, 512, 512));
}

/* ---- cache=none: O_DIRECT, with a bounce buffer for what it cannot take ---- */

static void test_direct_misaligned(void **state)
{
    struct fx *f = *state;
    /* Buffers at odd addresses and odd lengths: O_DIRECT would refuse them. */
    uint64_t base = galloc(f, 8192, 4096) + 3;
    struct seg w[2] = {{base, 700, false}, {base + 1000, 324, false}};
    memset(f->ram + base, 0x3c, 700);
    memset(f->ram + base + 1000, 0xc3, 324);
    assert_int_equal(request(f, T_OUT, 40, w, 2, NULL), S_OK);
    assert_int_equal(request(f, T_FLUSH, 0, NULL, 0, NULL), S_OK);
    uint8_t got[1024];
    host_read(f, 40 * 512, got, sizeof(got));
    for (int i = 0; i < 1024; i++)
        assert_int_equal(got[i], i < 700 ? 0x3c : 0xc3);
    struct seg r[2] = {{base + 5000, 24, true}, {base + 6001, 1000, true}};
    assert_int_equal(request(f, T_IN, 2, r, 2, NULL), S_OK);
    assert_true(is_pattern(f->ram + r[0].gpa, 1024, 24));
    assert_true(is_pattern(f->ram + r[1].gpa, 1024 + 24, 1000));
    /* And aligned buffers straight through. */
    struct seg a = buf(f, 4096, true);
    assert_int_equal(request(f, T_IN, 8, &a, 1, NULL), S_OK);
    assert_true(is_pattern(f->ram + a.gpa, 4096, 4096));
}

/* ---- the image is locked ---- */

static void test_lock(void **state)
{
    struct fx *f = *state; /* holds the image read-write */
    struct event_loop loop;
    assert_int_equal(event_loop_init(&loop), 0);
    struct disk_config cfg = {.readonly = false};
    snprintf(cfg.path, sizeof(cfg.path), "%s", f->path);
    struct virtio_blk *other;
    assert_int_equal(virtio_blk_new(&cfg, &loop, &other), -EBUSY);
    cfg.readonly = true;
    assert_int_equal(virtio_blk_new(&cfg, &loop, &other), -EBUSY);
    event_loop_destroy(&loop);
}

static void test_lock_shared_readonly(void **state)
{
    struct fx *f = *state; /* holds the image read-only */
    struct event_loop loop;
    assert_int_equal(event_loop_init(&loop), 0);
    struct disk_config cfg = {.readonly = true};
    snprintf(cfg.path, sizeof(cfg.path), "%s", f->path);
    struct virtio_blk *other;
    assert_int_equal(virtio_blk_new(&cfg, &loop, &other), 0);
    cfg.readonly = false;
    struct virtio_blk *writer;
    assert_int_equal(virtio_blk_new(&cfg, &loop, &writer), -EBUSY);
    virtio_blk_vdev(other)->ops->destroy(virtio_blk_vdev(other));
    event_loop_destroy(&loop);
}

static const struct params uring = {"io_uring", "/tmp", false, false, false};
static const struct params threads = {"threads", "/tmp", false, false, false};
static const struct params uring_shm = {"io_uring", "/dev/shm", false, false, false};
static const struct params threads_shm = {"threads", "/dev/shm", false, false, false};
static const struct params uring_ro = {"io_uring", "/tmp", false, true, false};
static const struct params threads_ro = {"threads", "/tmp", false, true, false};
static const struct params uring_direct = {"io_uring", "/tmp", true, false, false};
static const struct params threads_direct = {"threads", "/tmp", true, false, false};
static const struct params uring_wt = {"io_uring", "/tmp", false, false, true};
static const struct params threads_wt = {"threads", "/tmp", false, false, true};

#define T(fn, p) cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, (void *)&(p))
#define BOTH(fn, a, b) T(fn, a), T(fn, b)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_config, uring, threads),
        BOTH(test_read, uring, threads),
        BOTH(test_write_flush, uring, threads),
        BOTH(test_get_id, uring, threads),
        BOTH(test_header_split, uring, threads),
        BOTH(test_discard_write_zeroes, uring, threads),
        /* tmpfs has no ZERO_RANGE: the fallbacks run */
        BOTH(test_discard_write_zeroes, uring_shm, threads_shm),
        BOTH(test_many_in_flight, uring, threads),
        BOTH(test_reset_in_flight, uring, threads),
        BOTH(test_bad_ranges, uring, threads),
        BOTH(test_wrong_direction, uring, threads),
        BOTH(test_bad_discard, uring, threads),
        BOTH(test_short_header, uring, threads),
        BOTH(test_no_status, uring, threads),
        BOTH(test_status_not_last, uring, threads),
        BOTH(test_readonly, uring_ro, threads_ro),
        BOTH(test_config, uring_ro, threads_ro),
        BOTH(test_direct_misaligned, uring_direct, threads_direct),
        BOTH(test_read, uring_direct, threads_direct),
        BOTH(test_many_in_flight, uring_direct, threads_direct),
        BOTH(test_reset_in_flight, uring_direct, threads_direct),
        /* without FLUSH every write is stable on completion (RWF_DSYNC, fdatasync) */
        BOTH(test_write_flush, uring_wt, threads_wt),
        BOTH(test_discard_write_zeroes, uring_wt, threads_wt),
        T(test_lock, uring),
        T(test_lock_shared_readonly, uring_ro),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
