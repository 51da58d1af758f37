/*
 * `kiln run --incoming tcp:ADDR:PORT`: wait for one VM sent by a live migration, check all
 * of it, build it and run it here (docs/migration.md). The guest starts only after the
 * source's GO, so a source that cancels or vanishes before that leaves nothing running
 * here; this process then exits without having run the guest.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "cli/exit_codes.h"
#include "cli/run_vm.h"
#include "migrate/channel.h"
#include "migrate/destination.h"
#include "snapshot/snapshot.h"
#include "util.h"
#include "vmm/vm.h"
#include "vmm/vm_config.h"

#define INCOMING_IO_TIMEOUT_MS 30000

struct incoming {
    int fd;
    const struct run_hooks *outer; /* the API's hooks, or NULL */
    uint64_t start_ns;
    bool handed_over; /* the source said GO and the guest runs here */
};

static int check_incoming_options(const struct vm_config *cfg)
{
    const char *bad = cfg->kernel_path   ? "--kernel"
                      : cfg->initrd_path ? "--initrd"
                      : cfg->config_file ? "--config-file"
                      : cfg->restore_dir ? "--restore"
                                         : NULL;
    if (bad)
        log_error("--incoming: %s cannot be combined with a migration, which brings the "
                  "whole VM",
                  bad);
    return bad ? -EINVAL : 0;
}

/* RAM and swap: the most a sender may ask this host to hold. */
static uint64_t host_memory(void)
{
    struct sysinfo si;
    if (sysinfo(&si) < 0)
        return 1ULL << 40;
    return ((uint64_t)si.totalram + si.totalswap) * si.mem_unit;
}

/* Signals are blocked under the API (run_control.c): a stop request must still end the wait. */
static bool stop_requested(void)
{
    sigset_t pending;
    return sigpending(&pending) == 0 &&
           (sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM) ||
            sigismember(&pending, SIGHUP));
}

int incoming_listen(const char *where)
{
    struct migrate_addr addr;
    char err[256];
    if (migrate_addr_parse(where, &addr, err, sizeof(err)) < 0) {
        log_error("--incoming %s", err);
        return -EINVAL;
    }
    int lfd = migrate_listen(&addr);
    if (lfd < 0)
        log_error("--incoming %s: %s", where, strerror(-lfd));
    else
        log_info("waiting for a migration on %s", where + 4);
    return lfd;
}

/* Accepts one connection on `lfd` (and closes it). Returns it, or -errno (logged). */
static int accept_source(int lfd, const char *where)
{
    int fd = -EINTR;
    while (fd == -EINTR) {
        struct pollfd p = {lfd, POLLIN, 0};
        if (stop_requested())
            break;
        if (poll(&p, 1, 200) <= 0)
            continue;
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            fd = errno == EINTR || errno == ECONNABORTED ? -EINTR : -errno;
    }
    close(lfd);
    if (fd == -EINTR)
        log_info("stopped waiting for a migration");
    else if (fd < 0)
        log_error("--incoming %s: accept: %s", where, strerror(-fd));
    else
        migrate_set_timeout(fd, INCOMING_IO_TIMEOUT_MS);
    return fd;
}

/* First boot: the VM is built and paused. It runs only if the source says GO. */
static void incoming_booted(struct vm *vm, void *opaque)
{
    struct incoming *in = opaque;
    if (in->fd >= 0 && !in->handed_over) {
        int ret = migrate_await_go(in->fd);
        if (ret == 0)
            ret = vm_resume(vm);
        if (ret < 0) {
            log_error("migration: the source did not hand the VM over (%s); not running it",
                      ret == -EPIPE ? "it closed the connection" : strerror(-ret));
            vm_request_stop(vm, VM_STOP_FAILED);
            return;
        }
        in->handed_over = true;
        migrate_send_resumed(in->fd);
        close(in->fd);
        in->fd = -1;
        log_info("migration: the VM runs here, %.3f s after the source connected",
                 (double)(monotonic_ns() - in->start_ns) / 1e9);
    }
    if (in->outer && in->outer->booted)
        in->outer->booted(vm, in->outer->opaque);
}

static void incoming_finished(struct vm *vm, void *opaque)
{
    struct incoming *in = opaque;
    if (in->outer && in->outer->finished)
        in->outer->finished(vm, in->outer->opaque);
}

static int status_for(int ret)
{
    return ret == -EBADMSG  ? KILN_EXIT_BAD_IMAGE
           : ret == -ENOMEM ? KILN_EXIT_RESOURCES
                            : KILN_EXIT_VM_FAILED;
}

/* Everything received: check the state like a snapshot's, then build and run the VM. */
static int run_received(struct vm_config *cfg, struct incoming *in, struct migrate_rx *rx)
{
    struct snapshot *snap = calloc(1, sizeof(*snap));
    char err[512];
    if (!snap)
        return KILN_EXIT_RESOURCES;
    int ret = snapshot_parse(rx->state, rx->state_len, snap, err, sizeof(err));
    if (ret == 0 && (snap->kind != SNAPSHOT_FULL || snap->memory != rx->mem.ram_size)) {
        snprintf(err, sizeof(err), "the state does not describe the RAM that was sent");
        ret = -EBADMSG;
    }
    int status;
    if (ret < 0) {
        log_error("migration: the VM's state: %s", err);
        migrate_send_error(in->fd, err);
        status = status_for(ret);
    } else {
        cfg->memory = snap->memory;
        cfg->cpus = snap->ncpus;
        cfg->restore = snap;
        cfg->restore_paused = true;
        cfg->incoming_mem = &rx->mem;
        struct run_hooks hooks = {incoming_booted, incoming_finished, in};
        log_capture_begin(err, sizeof(err));
        status = run_vm(cfg, NULL, &hooks, NULL);
        log_capture_end();
        if (!in->handed_over && in->fd >= 0)
            migrate_send_error(in->fd, err[0] ? err : "the destination could not build the VM");
        cfg->restore = NULL;
        cfg->incoming_mem = NULL;
    }
    snapshot_free(snap);
    free(snap);
    return status;
}

int incoming_check(const struct vm_config *cfg)
{
    return check_incoming_options(cfg) < 0 ? KILN_EXIT_USAGE : KILN_EXIT_OK;
}

int incoming_and_run(struct vm_config *cfg, int lfd, const struct run_hooks *outer)
{
    if (lfd < 0)
        return KILN_EXIT_DEVICE;
    struct incoming in = {.fd = accept_source(lfd, cfg->incoming), .outer = outer};
    if (in.fd < 0)
        return in.fd == -EINTR ? KILN_EXIT_OK : KILN_EXIT_DEVICE;
    in.start_ns = monotonic_ns();
    struct migrate_rx rx;
    migrate_rx_init(&rx, host_memory());
    char err[512];
    int ret = migrate_receive(in.fd, &rx, err, sizeof(err));
    int status;
    if (ret < 0) {
        log_error("migration: %s", err);
        migrate_send_error(in.fd, err);
        status = status_for(ret);
    } else {
        log_info("migration: received %llu MiB in %.3f s; loading the VM",
                 (unsigned long long)(rx.bytes >> 20),
                 (double)(monotonic_ns() - in.start_ns) / 1e9);
        status = run_received(cfg, &in, &rx);
    }
    if (in.fd >= 0)
        close(in.fd);
    migrate_rx_free(&rx);
    return status;
}
