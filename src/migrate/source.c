/*
 * The source side of a live migration: pre-copy passes while the guest runs, then a short
 * pause for the last dirty pages and the state, then the hand-over handshake
 * (END -> LOADED -> GO -> RESUMED; docs/migration.md).
 */
#include "migrate/migrate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "le.h"
#include "mem/dirty.h"
#include "migrate/pages.h"
#include "snapshot/snapshot.h"
#include "util.h"
#include "vmm/vm.h"

#define MIGRATE_IO_TIMEOUT_MS 30000 /* a destination silent this long is gone */
#define MIGRATE_CONNECT_TIMEOUT_MS 5000 /* PUT /migrate waits for the connection */
#define MIGRATE_MAX_PASSES 30       /* a guest dirtying faster than the link never converges */
#define MIGRATE_MIN_FINAL_PAGES 256 /* always small enough to send while paused */
#define MIGRATE_TARGET_DOWNTIME_NS 50000000ULL
#define MIGRATE_REPORT_WAIT_NS 5000000000ULL /* for a client to read the final figures */

const char *migrate_state_name(enum migrate_state s)
{
    static const char *const names[] = {"none", "active", "completed", "failed", "cancelled"};
    return s < ARRAY_SIZE(names) ? names[s] : "unknown";
}

void migration_init(struct migration *m)
{
    memset(m, 0, sizeof(*m));
    m->fd = -1;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
}

void migration_destroy(struct migration *m)
{
    migration_stop(m);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
}

/* One pass's worth of state shared by the steps below. */
struct sender {
    struct migration *m;
    struct vm *vm;
    struct page_sender pages;
    uint64_t *dirty[GUEST_MEM_MAX_REGIONS];
    bool was_paused; /* paused by its user before the migration: stays paused on failure */
    unsigned frozen; /* virtio devices frozen for the final stage */
    bool committed;  /* GO was sent: the destination may run the VM, this one must not */
    unsigned boots;  /* vm->boots at the start */
    uint64_t pause_ns;
};

static void publish_pages(struct page_sender *ps, void *opaque)
{
    struct migration *m = opaque;
    pthread_mutex_lock(&m->lock);
    m->progress.pages_sent = ps->pages;
    m->progress.zero_pages = ps->zero_pages;
    m->progress.bytes_sent = ps->bytes;
    uint64_t done = ps->pages - m->pass_base;
    m->progress.dirty_pages = done < m->pass_pages ? m->pass_pages - done : 0;
    m->progress.elapsed_ns = monotonic_ns() - m->start_ns;
    pthread_mutex_unlock(&m->lock);
}

static void set_error(struct migration *m, const char *fmt, const char *detail)
{
    pthread_mutex_lock(&m->lock);
    if (!m->progress.error[0])
        snprintf(m->progress.error, sizeof(m->progress.error), fmt, detail);
    pthread_mutex_unlock(&m->lock);
}

static int send_simple(struct sender *s, uint16_t type, const void *p, size_t len)
{
    struct iovec iov = {(void *)p, len};
    int ret = migrate_send_record(s->m->fd, type, &iov, len ? 1 : 0);
    if (ret == 0)
        s->pages.bytes += MIGRATE_RECORD_HEADER + len;
    return ret;
}

static int send_setup(struct sender *s)
{
    const struct guest_mem *mem = &s->vm->mem;
    uint8_t hdr[MIGRATE_HEADER_SIZE], setup[12 + 16 * GUEST_MEM_MAX_REGIONS];
    migrate_header_put(hdr);
    struct iovec iov = {hdr, sizeof(hdr)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (sendmsg(s->m->fd, &msg, MSG_NOSIGNAL) != (ssize_t)sizeof(hdr))
        return -EPIPE;
    s->pages.bytes += sizeof(hdr);
    put_le64(setup, mem->ram_size);
    put_le32(setup + 8, mem->nregions);
    for (unsigned i = 0; i < mem->nregions; i++) {
        put_le64(setup + 12 + 16 * i, mem->regions[i].gpa);
        put_le64(setup + 20 + 16 * i, mem->regions[i].size);
    }
    return send_simple(s, MIGRATE_SETUP, setup, 12 + 16 * mem->nregions);
}

static int send_pass(struct sender *s, unsigned pass, uint64_t pages)
{
    uint8_t p[12];
    put_le32(p, pass);
    put_le64(p + 4, pages);
    pthread_mutex_lock(&s->m->lock);
    s->m->progress.pass = pass;
    s->m->progress.dirty_pages = pages;
    s->m->pass_pages = pages;
    s->m->pass_base = s->pages.pages;
    pthread_mutex_unlock(&s->m->lock);
    return send_simple(s, MIGRATE_PASS, p, sizeof(p));
}

/* Logging starts with the VM paused for a moment (vm_dirty_log_start's rule). */
static int start_logging(struct sender *s)
{
    int ret = s->was_paused ? 0 : vm_pause(s->vm);
    if (ret < 0)
        return ret;
    pthread_mutex_lock(&s->vm->run_lock);
    ret = vm_dirty_log_start(s->vm);
    s->vm->snapshot_base.valid = false; /* the log now belongs to the migration */
    pthread_mutex_unlock(&s->vm->run_lock);
    if (!s->was_paused)
        vm_resume(s->vm);
    return ret;
}

static int collect(struct sender *s)
{
    for (unsigned i = 0; i < s->vm->mem.nregions; i++) {
        int ret = vm_dirty_log_collect(s->vm, i, s->dirty[i]);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static void clear_bitmaps(struct sender *s)
{
    for (unsigned i = 0; i < s->vm->mem.nregions; i++)
        memset(s->dirty[i], 0, guest_dirty_words(s->vm->mem.regions[i].size) * 8);
}

/* Pages the link can send within the downtime we aim for, at the rate seen so far. */
static uint64_t final_budget(struct sender *s)
{
    uint64_t ns = monotonic_ns() - s->m->start_ns;
    /* bytes sent so far x target / time taken, in doubles: no overflow, no truncation */
    double bytes = ns ? (double)s->pages.bytes * MIGRATE_TARGET_DOWNTIME_NS / (double)ns : 0;
    uint64_t pages = (uint64_t)(bytes / MIGRATE_PAGE_SIZE);
    return pages > MIGRATE_MIN_FINAL_PAGES ? pages : MIGRATE_MIN_FINAL_PAGES;
}

/* A reset rebuilds RAM behind the log's back, and a stopping VM cannot be handed over. */
static int guest_changed(struct sender *s)
{
    if (atomic_load(&s->vm->stop_reason) != VM_STOP_NONE) {
        set_error(s->m, "%s", "the VM is stopping");
        return -ESHUTDOWN;
    }
    if (s->vm->boots != s->boots) {
        set_error(s->m, "%s", "the guest rebooted during the migration; try again");
        return -ESTALE;
    }
    return 0;
}

/* Pass 1 sends everything; later passes what the guest (or a device) wrote meanwhile. */
static int precopy(struct sender *s)
{
    for (unsigned i = 0; i < s->vm->mem.nregions; i++)
        memset(s->dirty[i], 0xff, guest_dirty_words(s->vm->mem.regions[i].size) * 8);
    uint64_t ram_pages = s->vm->mem.ram_size / MIGRATE_PAGE_SIZE;
    int ret = 0;
    for (unsigned pass = 1; ret == 0; pass++) {
        /* The all-ones first bitmap may run past a region's end: pages_send stops there. */
        uint64_t n = pass == 1 ? ram_pages : pages_count(&s->vm->mem, s->dirty);
        if (pass > 1 && (n <= final_budget(s) || pass > MIGRATE_MAX_PASSES)) {
            pthread_mutex_lock(&s->m->lock);
            s->m->progress.dirty_pages = n;
            pthread_mutex_unlock(&s->m->lock);
            return 0; /* what is left goes while the VM is paused */
        }
        ret = send_pass(s, pass, n) ?: pages_send(&s->pages, s->dirty);
        if (ret == 0) {
            clear_bitmaps(s);
            ret = collect(s);
        }
        if (ret == 0)
            ret = guest_changed(s);
    }
    return ret;
}

/* Reads the destination's next record; its ERROR becomes our error message. */
static int expect(struct sender *s, uint16_t want, const char *what)
{
    uint8_t hdr[MIGRATE_RECORD_HEADER];
    char err[MIGRATE_MAX_ERROR + 1] = "";
    struct migrate_record_header h;
    int ret = migrate_recv_all(s->m->fd, hdr, sizeof(hdr));
    if (ret == 0 && (ret = migrate_record_header_parse(hdr, &h, err, sizeof(err))) == 0 &&
        h.type == MIGRATE_ERROR) {
        ret = migrate_recv_all(s->m->fd, err, h.len);
        err[ret == 0 ? h.len : 0] = '\0';
        set_error(s->m, "the destination refused the VM: %s", err);
        return -EPROTO;
    }
    if (ret == 0 && (h.type != want || h.len != 0)) {
        snprintf(err, sizeof(err), "record type %u instead of %s", h.type, what);
        ret = -EPROTO;
    }
    if (ret < 0)
        set_error(s->m, "waiting for the destination's %s", err[0] ? err : what);
    return ret;
}

/* Paused: the last dirty pages, then the state; the destination checks and loads it. */
static int final_stage(struct sender *s)
{
    char err[256] = "";
    s->pause_ns = monotonic_ns();
    int ret = vm_pause(s->vm);
    pthread_mutex_lock(&s->m->lock);
    s->m->progress.paused_here = ret == 0;
    pthread_mutex_unlock(&s->m->lock);
    if (ret == 0 && (ret = snapshot_freeze(s->vm, &s->frozen, err, sizeof(err))) < 0)
        set_error(s->m, "%s", err);
    uint64_t n = 0;
    if (ret == 0 && (ret = guest_changed(s) ?: collect(s)) == 0) {
        n = pages_count(&s->vm->mem, s->dirty);
        ret = send_pass(s, s->m->progress.pass + 1, n) ?: pages_send(&s->pages, s->dirty);
    }
    uint8_t *state = NULL;
    size_t len = 0;
    if (ret == 0 && (ret = snapshot_capture(s->vm, &state, &len, err, sizeof(err))) < 0)
        set_error(s->m, "reading the VM's state: %s", err);
    if (ret == 0)
        ret = send_simple(s, MIGRATE_STATE, state, len) ?: send_simple(s, MIGRATE_END, NULL, 0);
    free(state);
    publish_pages(&s->pages, s->m);
    uint64_t sent_ns = monotonic_ns();
    ret = ret ?: expect(s, MIGRATE_LOADED, "confirmation that it loaded the VM");
    if (ret == 0)
        log_verbose("migration: paused; %llu pages and the state sent in %.1f ms, loaded "
                    "there %.1f ms later",
                    (unsigned long long)n, (double)(sent_ns - s->pause_ns) / 1e6,
                    (double)(monotonic_ns() - sent_ns) / 1e6);
    return ret;
}

/* GO is the point of no return: from then on the destination may be running the VM. */
static int hand_over(struct sender *s)
{
    if (atomic_load(&s->m->cancel))
        return -ECANCELED;
    int ret = send_simple(s, MIGRATE_GO, NULL, 0);
    if (ret < 0)
        return ret;
    s->committed = true;
    ret = expect(s, MIGRATE_RESUMED, "confirmation that the VM runs there");
    pthread_mutex_lock(&s->m->lock);
    s->m->progress.downtime_ns = monotonic_ns() - s->pause_ns;
    pthread_mutex_unlock(&s->m->lock);
    return ret;
}

/* Before the hand-over the VM goes on here as it was; after it, it stays paused. */
static void undo(struct sender *s, int ret)
{
    snapshot_thaw(s->vm, s->frozen);
    s->frozen = 0;
    if (!s->committed && !s->was_paused)
        vm_resume(s->vm);
    struct migration *m = s->m;
    const char *why = ret == -ECANCELED ? "cancelled"
                      : ret == -EPIPE   ? "the destination closed the connection"
                      : ret == -EAGAIN  ? "the destination stopped answering"
                                        : strerror(-ret);
    set_error(m, "%s", why);
    pthread_mutex_lock(&m->lock);
    if (s->committed)
        snprintf(m->progress.error, sizeof(m->progress.error),
                 "the destination took the VM but did not confirm that it runs (%s): the VM "
                 "is left paused here; check the destination before resuming it", why);
    m->progress.state = ret == -ECANCELED && !s->committed ? MIGRATE_CANCELLED : MIGRATE_FAILED;
    m->progress.elapsed_ns = monotonic_ns() - m->start_ns;
    pthread_mutex_unlock(&m->lock);
}

/* Success: wait a little for a client to read the figures, then end this process. */
static void finish(struct sender *s)
{
    struct migration *m = s->m;
    pthread_mutex_lock(&m->lock);
    m->progress.state = MIGRATE_COMPLETED;
    m->progress.elapsed_ns = monotonic_ns() - m->start_ns;
    uint64_t deadline = monotonic_ns() + MIGRATE_REPORT_WAIT_NS;
    while (!m->reported && !atomic_load(&m->cancel) && monotonic_ns() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&m->cond, &m->lock, &ts);
    }
    pthread_mutex_unlock(&m->lock);
    log_info("migration: the VM now runs at %s; exiting", m->progress.destination);
    vm_request_stop(s->vm, VM_STOP_QUIT);
}

static int sender_run(struct sender *s)
{
    for (unsigned i = 0; i < s->vm->mem.nregions; i++)
        if (!(s->dirty[i] = calloc(guest_dirty_words(s->vm->mem.regions[i].size), 8)))
            return -ENOMEM;
    int ret = start_logging(s);
    if (ret < 0)
        set_error(s->m, "starting dirty-page logging: %s", strerror(-ret));
    return ret ?: send_setup(s) ?: precopy(s) ?: final_stage(s) ?: hand_over(s);
}

static void *migration_thread(void *opaque)
{
    struct migration *m = opaque;
    prctl(PR_SET_NAME, "kiln-migrate");
    struct sender s = {.m = m, .vm = m->vm, .was_paused = vm_is_paused(m->vm),
                       .boots = m->vm->boots};
    s.pages = (struct page_sender){.fd = m->fd, .mem = &m->vm->mem, .cancel = &m->cancel,
                                   .progress = publish_pages, .opaque = m};
    int ret = sender_run(&s);
    for (unsigned i = 0; i < GUEST_MEM_MAX_REGIONS; i++)
        free(s.dirty[i]);
    shutdown(m->fd, SHUT_RDWR);
    if (ret == 0)
        finish(&s);
    else
        undo(&s, atomic_load(&m->cancel) ? -ECANCELED : ret);
    pthread_mutex_lock(&m->lock);
    if (ret == 0)
        log_info("migration completed: %.3f s, %llu bytes, %u passes, downtime %.1f ms",
                 (double)m->progress.elapsed_ns / 1e9, (unsigned long long)m->progress.bytes_sent,
                 m->progress.pass, (double)m->progress.downtime_ns / 1e6);
    else
        log_error("migration to %s failed: %s", m->progress.destination, m->progress.error);
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

int migration_start(struct migration *m, struct vm *vm, const char *destination, char *err,
                    size_t errlen)
{
    if (migration_active(m)) {
        snprintf(err, errlen, "a migration is under way already");
        return -EBUSY;
    }
    migration_stop(m); /* the previous, finished one */
    struct migrate_addr addr;
    int ret = migrate_addr_parse(destination, &addr, err, errlen);
    if (ret < 0)
        return ret;
    int fd = migrate_connect(&addr, MIGRATE_CONNECT_TIMEOUT_MS);
    if (fd >= 0 && (ret = migrate_set_timeout(fd, MIGRATE_IO_TIMEOUT_MS)) < 0) {
        close(fd);
        fd = ret;
    }
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", destination, strerror(-fd));
        return fd;
    }
    pthread_mutex_lock(&m->lock);
    m->vm = vm;
    m->fd = fd;
    atomic_store(&m->cancel, false);
    m->reported = false;
    m->start_ns = monotonic_ns();
    m->progress = (struct migrate_progress){.state = MIGRATE_ACTIVE,
                                            .ram_pages = vm->mem.ram_size / MIGRATE_PAGE_SIZE};
    snprintf(m->progress.destination, sizeof(m->progress.destination), "%s", destination);
    pthread_mutex_unlock(&m->lock);
    ret = -pthread_create(&m->thread, NULL, migration_thread, m);
    if (ret < 0) {
        close(fd);
        m->fd = -1;
        m->progress.state = MIGRATE_FAILED;
        snprintf(err, errlen, "cannot start the migration thread: %s", strerror(-ret));
        return ret;
    }
    m->thread_started = true;
    return 0;
}

void migration_cancel(struct migration *m)
{
    pthread_mutex_lock(&m->lock);
    atomic_store(&m->cancel, true);
    /* Wakes a send or receive blocked on the socket; the thread then undoes its work. */
    if (m->progress.state == MIGRATE_ACTIVE && m->fd >= 0)
        shutdown(m->fd, SHUT_RDWR);
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

void migration_stop(struct migration *m)
{
    if (!m->thread_started)
        return;
    migration_cancel(m);
    pthread_join(m->thread, NULL);
    m->thread_started = false;
    close(m->fd);
    m->fd = -1;
}

void migration_progress(struct migration *m, struct migrate_progress *out)
{
    pthread_mutex_lock(&m->lock);
    if (m->progress.state == MIGRATE_ACTIVE)
        m->progress.elapsed_ns = monotonic_ns() - m->start_ns;
    *out = m->progress;
    if (m->progress.state != MIGRATE_ACTIVE && m->progress.state != MIGRATE_NONE) {
        m->reported = true;
        pthread_cond_broadcast(&m->cond);
    }
    pthread_mutex_unlock(&m->lock);
}

bool migration_active(struct migration *m)
{
    pthread_mutex_lock(&m->lock);
    bool active = m->progress.state == MIGRATE_ACTIVE;
    pthread_mutex_unlock(&m->lock);
    return active;
}
