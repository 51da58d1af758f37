/*
 * `kiln run --api-sock PATH` and `--config-file FILE`: the VM is configured through the
 * API (or a file) and booted on the main thread when InstanceStart arrives. The API runs
 * on the HTTP server's thread; a start request is handed to the main thread and the
 * request waits for its outcome, so a client learns why a start failed and may retry.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "api/api.h"
#include "api/api_server.h"
#include "api/fc_config.h"
#include "cli/exit_codes.h"
#include "cli/run_vm.h"
#include "jail/jail.h"
#include "migrate/migrate.h"
#include "snapshot/snapshot.h"
#include "util.h"
#include "vmm/vm.h"

#define START_ERR_MAX 512

struct control {
    struct api api;
    struct api_server *server;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;
    const struct vm_spec *start_spec; /* a start the API asked for, until start_done */
    bool start_done;
    int start_result;
    char start_err[START_ERR_MAX];
    bool started_by_api;
    struct vm *vm; /* the running VM, NULL before boot and once it stopped */
    bool booting;  /* control_boot is building the VM and has not booted it yet */
    bool booted;
    int wake_fd; /* eventfd: a start request is waiting for the main thread */
    /* PUT /snapshot/load: a start from a snapshot instead of a kernel (with start_spec). */
    struct {
        const char *state_path; /* NULL: a plain InstanceStart */
        const char *mem_path;
        bool resume;
    } load;
    /* --jail: InstanceStart builds the VM on the main thread, which serves the API until
     * then; the API thread starts once the jail is entered (see run_controlled). */
    const struct jail *jail;
    struct jailed_boot {
        struct vm_spec spec;
        struct vm_config cfg;
        char cmdline[VM_SPEC_CMDLINE_MAX];
        struct run_prepared prepared;
        bool ready; /* built and jailed: run it */
        int fatal;  /* entering the jail failed half-way: exit with this status */
    } *jailed;
    struct migration migration; /* PUT /migrate: this VM sent elsewhere */
    int incoming_fd;            /* --incoming: listening before the API answers */
};

/* ---- API operations (API thread) ---- */

/* Hands a start (boot or snapshot load) to the main thread and waits for its outcome. */
static int control_request_start(struct control *ctl, const struct vm_spec *spec, char *err,
                                 size_t errlen)
{
    pthread_mutex_lock(&ctl->lock);
    ctl->start_spec = spec;
    ctl->start_done = false;
    uint64_t one = 1;
    if (write(ctl->wake_fd, &one, sizeof(one)) < 0) {
        /* cannot fail: the counter is far from overflowing */
    }
    while (!ctl->start_done)
        pthread_cond_wait(&ctl->cond, &ctl->lock);
    int ret = ctl->start_result;
    snprintf(err, errlen, "%s", ctl->start_err);
    ctl->start_spec = NULL;
    ctl->load.state_path = NULL;
    pthread_mutex_unlock(&ctl->lock);
    return ret;
}

/*
 * --jail: runs on the main thread (inside api_server_run_once). Everything the VM opens is
 * opened now, as root, then the process enters the jail; the guest boots after the reply.
 */
static int control_prepare_jailed(struct control *ctl, const struct vm_spec *spec, char *err,
                                  size_t errlen)
{
    struct jailed_boot *jb = ctl->jailed;
    vm_spec_copy(&jb->spec, spec);
    bool dropped_pci_off;
    if (vm_spec_boot_config(&jb->spec, &jb->cfg, jb->cmdline, sizeof(jb->cmdline),
                            &dropped_pci_off) < 0) {
        snprintf(err, errlen, "boot_args: too long with the root device added");
        return -EINVAL;
    }
    if (dropped_pci_off)
        log_info("boot_args: dropped \"pci=off\": kiln's virtio devices are on PCI");
    if (jail_rewrite_paths(ctl->jail, &jb->cfg, err, errlen) < 0)
        return -EINVAL;
    log_capture_begin(err, errlen);
    int status = run_prepare(&jb->cfg, ctl->jail, &jb->prepared);
    log_capture_end();
    if (status == KILN_EXIT_OK) {
        jb->ready = true;
        return 0;
    }
    if (!err[0])
        snprintf(err, errlen, "the VM could not be started");
    if (status == KILN_EXIT_JAIL)
        jb->fatal = status;
    return -EINVAL;
}

static int control_start(void *opaque, const struct vm_spec *spec, char *err, size_t errlen)
{
    struct control *ctl = opaque;
    if (ctl->jailed)
        return control_prepare_jailed(ctl, spec, err, errlen);
    return control_request_start(opaque, spec, err, errlen);
}

/* The API thread waits in control_request_start, so the paths stay valid meanwhile. */
static int control_snapshot_load(void *opaque, const char *state_path, const char *mem_path,
                                 bool resume, char *err, size_t errlen)
{
    struct control *ctl = opaque;
    if (ctl->jailed) {
        snprintf(err, errlen, "snapshot/load: not supported with --jail yet");
        return -ENOTSUP;
    }
    pthread_mutex_lock(&ctl->lock);
    ctl->load.state_path = state_path;
    ctl->load.mem_path = mem_path;
    ctl->load.resume = resume;
    pthread_mutex_unlock(&ctl->lock);
    return control_request_start(ctl, &ctl->api.spec, err, errlen);
}

/* Runs under ctl->lock so that the VM cannot be torn down while its memory is written. */
static int control_snapshot_create(void *opaque, bool diff, const char *state_path,
                                   const char *mem_path, char *err, size_t errlen)
{
    struct control *ctl = opaque;
    if (migration_active(&ctl->migration)) {
        snprintf(err, errlen, "snapshot/create: a migration is under way");
        return -EBUSY;
    }
    pthread_mutex_lock(&ctl->lock);
    int ret = -ESRCH;
    uint64_t t0 = monotonic_ns();
    if (ctl->vm)
        ret = snapshot_create(ctl->vm, diff ? SNAPSHOT_DIFF : SNAPSHOT_FULL, state_path,
                              mem_path, err, errlen);
    else
        snprintf(err, errlen, "snapshot/create: the VM is not running");
    pthread_mutex_unlock(&ctl->lock);
    if (ret == 0)
        log_verbose("snapshot written to '%s' and '%s' in %.1f ms", state_path, mem_path,
                    (double)(monotonic_ns() - t0) / 1e6);
    return ret;
}

static int control_with_vm(struct control *ctl, int (*fn)(struct vm *), const char *what,
                           char *err, size_t errlen)
{
    /* A migration pauses and resumes the VM itself. */
    if (migration_active(&ctl->migration)) {
        snprintf(err, errlen, "%s: a migration is under way (PUT /migrate/cancel stops it)", what);
        return -EBUSY;
    }
    pthread_mutex_lock(&ctl->lock);
    /* A config-file VM is "Running" for the API while it still boots: wait for that. */
    while (!ctl->vm && ctl->booting)
        pthread_cond_wait(&ctl->cond, &ctl->lock);
    int ret = ctl->vm ? fn(ctl->vm) : -ESRCH;
    pthread_mutex_unlock(&ctl->lock);
    if (ret < 0)
        snprintf(err, errlen, "%s: the VM is %s", what,
                 ret == -ESRCH ? "not running" : "shutting down");
    return ret;
}

static int control_pause(void *opaque, char *err, size_t errlen)
{
    return control_with_vm(opaque, vm_pause, "pause", err, errlen);
}

static int control_resume(void *opaque, char *err, size_t errlen)
{
    return control_with_vm(opaque, vm_resume, "resume", err, errlen);
}

static int control_ctrl_alt_del(void *opaque, char *err, size_t errlen)
{
    int ret = control_with_vm(opaque, vm_send_ctrl_alt_del, "SendCtrlAltDel", err, errlen);
    if (ret == -ENODEV)
        snprintf(err, errlen,
                 "SendCtrlAltDel: the guest has not enabled its PS/2 keyboard (no i8042/atkbd "
                 "driver bound), so nothing would receive the keys");
    else if (ret == -EBUSY)
        snprintf(err, errlen, "SendCtrlAltDel: the keyboard buffer is full; try again");
    return ret;
}

static int power_button_press(struct vm *vm)
{
    vm_power_button(vm);
    return 0;
}

/* kiln extension: the ACPI power button, a graceful shutdown request (vm_power_button). */
static int control_power_button(void *opaque, char *err, size_t errlen)
{
    return control_with_vm(opaque, power_button_press, "PowerButton", err, errlen);
}

/* The migration runs on its own thread; control_finished stops it before the VM goes. */
static int control_migrate_start(void *opaque, const char *destination, char *err,
                                 size_t errlen)
{
    struct control *ctl = opaque;
    pthread_mutex_lock(&ctl->lock);
    int ret = -ESRCH;
    if (ctl->vm)
        ret = migration_start(&ctl->migration, ctl->vm, destination, err, errlen);
    else
        snprintf(err, errlen, "migrate: the VM is not running");
    pthread_mutex_unlock(&ctl->lock);
    return ret;
}

static int control_migrate_cancel(void *opaque, char *err, size_t errlen)
{
    struct control *ctl = opaque;
    if (!migration_active(&ctl->migration)) {
        snprintf(err, errlen, "migrate/cancel: no migration is under way");
        return -EINVAL;
    }
    migration_cancel(&ctl->migration);
    return 0;
}

static void control_migrate_status(void *opaque, struct migrate_progress *out)
{
    migration_progress(&((struct control *)opaque)->migration, out);
}

static const struct api_ops control_ops = {
    .start = control_start,
    .pause = control_pause,
    .resume = control_resume,
    .ctrl_alt_del = control_ctrl_alt_del,
    .power_button = control_power_button,
    .snapshot_create = control_snapshot_create,
    .snapshot_load = control_snapshot_load,
    .migrate_start = control_migrate_start,
    .migrate_cancel = control_migrate_cancel,
    .migrate_status = control_migrate_status,
};

/* ---- the VM's life (main thread) ---- */

static void control_booted(struct vm *vm, void *opaque)
{
    struct control *ctl = opaque;
    pthread_mutex_lock(&ctl->lock);
    bool first = !ctl->booted;
    ctl->vm = vm;
    ctl->booted = true;
    ctl->booting = false;
    if (first && ctl->started_by_api) {
        ctl->start_result = 0;
        ctl->start_done = true;
    }
    pthread_cond_broadcast(&ctl->cond);
    pthread_mutex_unlock(&ctl->lock);
    if (first)
        log_capture_end();
}

static void control_finished(struct vm *vm, void *opaque)
{
    struct control *ctl = opaque;
    pthread_mutex_lock(&ctl->lock);
    ctl->vm = NULL;
    pthread_mutex_unlock(&ctl->lock);
    migration_stop(&ctl->migration); /* it may still hold the VM */
    (void)vm;
}

static void control_set_booting(struct control *ctl, bool booting)
{
    pthread_mutex_lock(&ctl->lock);
    ctl->booting = booting;
    pthread_cond_broadcast(&ctl->cond);
    pthread_mutex_unlock(&ctl->lock);
}

/* Boots from `spec` and runs the VM to its end. Returns the exit status. */
static int control_boot(struct control *ctl, const struct vm_spec *spec)
{
    struct vm_spec *own = malloc(sizeof(*own));
    char *cmdline = malloc(VM_SPEC_CMDLINE_MAX);
    int status = KILN_EXIT_RESOURCES;
    if (!own || !cmdline)
        goto out;
    vm_spec_copy(own, spec);
    struct vm_config cfg;
    bool dropped_pci_off;
    if (vm_spec_boot_config(own, &cfg, cmdline, VM_SPEC_CMDLINE_MAX, &dropped_pci_off) < 0) {
        log_error("boot_args: too long with the root device added");
        status = KILN_EXIT_USAGE;
        goto out;
    }
    if (dropped_pci_off)
        log_info("boot_args: dropped \"pci=off\": kiln's virtio devices are on PCI");
    struct run_hooks hooks = {control_booted, control_finished, ctl};
    control_set_booting(ctl, true);
    status = run_configured(&cfg, &hooks);
    control_set_booting(ctl, false);
out:
    free(own);
    free(cmdline);
    return status;
}

/* PUT /snapshot/load: the configuration comes from the snapshot, not from `spec`. */
static int control_load(struct control *ctl, const struct vm_spec *spec)
{
    struct vm_config cfg = spec->cfg;
    cfg.restore_paused = !ctl->load.resume;
    struct run_hooks hooks = {control_booted, control_finished, ctl};
    control_set_booting(ctl, true);
    int status = restore_and_run(&cfg, ctl->load.state_path, ctl->load.mem_path, &hooks);
    control_set_booting(ctl, false);
    return status;
}

/* `kiln run --restore DIR --api-sock PATH`: the restored VM runs at once. */
static int control_restore(struct control *ctl, struct vm_config *cli)
{
    char state_path[4200], mem_path[4200];
    if (snapshot_dir_paths(cli->restore_dir, state_path, sizeof(state_path), mem_path,
                           sizeof(mem_path)) < 0) {
        log_error("--restore: path too long");
        return KILN_EXIT_USAGE;
    }
    struct run_hooks hooks = {control_booted, control_finished, ctl};
    int status = restore_and_run(cli, state_path, mem_path, &hooks);
    control_set_booting(ctl, false);
    return status;
}

/* `kiln run --incoming ... --api-sock PATH`: the migrated VM runs once it arrived. */
static int control_incoming(struct control *ctl, struct vm_config *cli)
{
    struct run_hooks hooks = {control_booted, control_finished, ctl};
    int status = incoming_and_run(cli, ctl->incoming_fd, &hooks);
    control_set_booting(ctl, false);
    return status;
}

/* An InstanceStart from the API: try it, and tell the waiting request how it went. */
static int control_try_start(struct control *ctl, bool *ran)
{
    pthread_mutex_lock(&ctl->lock);
    const struct vm_spec *spec = ctl->start_spec;
    pthread_mutex_unlock(&ctl->lock);
    if (!spec)
        return 0; /* a stale wake-up */
    /* The requesting API thread holds the spec still (it waits under api->lock). */
    ctl->started_by_api = true;
    log_capture_begin(ctl->start_err, sizeof(ctl->start_err));
    int status = ctl->load.state_path ? control_load(ctl, spec) : control_boot(ctl, spec);
    log_capture_end();
    *ran = ctl->booted;
    if (!ctl->booted) {
        pthread_mutex_lock(&ctl->lock);
        if (!ctl->start_err[0])
            snprintf(ctl->start_err, sizeof(ctl->start_err), "the VM could not be started");
        ctl->start_result = -EINVAL;
        ctl->start_done = true;
        pthread_cond_broadcast(&ctl->cond);
        pthread_mutex_unlock(&ctl->lock);
    }
    return status;
}

/* Answers a start request that will not be served, so the server thread can be stopped. */
static void control_cancel_start(struct control *ctl)
{
    pthread_mutex_lock(&ctl->lock);
    if (ctl->start_spec && !ctl->start_done) {
        snprintf(ctl->start_err, sizeof(ctl->start_err), "kiln is exiting");
        ctl->start_result = -ECANCELED;
        ctl->start_done = true;
        pthread_cond_broadcast(&ctl->cond);
    }
    pthread_mutex_unlock(&ctl->lock);
}

/* --jail: the VM is built and jailed; the API thread starts now, under the jail. */
static int control_run_jailed(struct control *ctl)
{
    struct jailed_boot *jb = ctl->jailed;
    api_server_keep_file(ctl->server); /* outside the jail now; the supervisor removes it */
    control_set_booting(ctl, true);
    if (api_server_spawn(ctl->server) < 0) {
        run_prepared_discard(&jb->prepared);
        return KILN_EXIT_VM_FAILED;
    }
    struct run_hooks hooks = {control_booted, control_finished, ctl};
    int status = run_prepared(&jb->prepared, &hooks);
    control_set_booting(ctl, false);
    return status;
}

/* Waits for InstanceStart or a signal. Returns the exit status. */
static int control_wait_and_run(struct control *ctl, int signal_fd)
{
    for (;;) {
        /* With --jail this thread serves the API itself until the VM is built. */
        int api_fd = ctl->jailed ? api_server_poll_fd(ctl->server) : -1;
        int timeout = ctl->jailed ? api_server_timeout_ms(ctl->server) : -1;
        struct pollfd fds[3] = {
            {signal_fd, POLLIN, 0}, {ctl->wake_fd, POLLIN, 0}, {api_fd, POLLIN, 0}};
        if (poll(fds, 3, timeout) < 0) {
            if (errno == EINTR)
                continue;
            control_cancel_start(ctl);
            return KILN_EXIT_VM_FAILED;
        }
        if (fds[0].revents) {
            struct signalfd_siginfo si;
            if (read(signal_fd, &si, sizeof(si)) == sizeof(si))
                log_info("received signal %u before the VM started; exiting", si.ssi_signo);
            control_cancel_start(ctl);
            return KILN_EXIT_OK;
        }
        if (ctl->jailed) {
            api_server_run_once(ctl->server);
            if (ctl->jailed->fatal) {
                api_server_run_once(ctl->server); /* the failed start's reply, if it can */
                return ctl->jailed->fatal;
            }
            if (ctl->jailed->ready)
                return control_run_jailed(ctl);
            continue;
        }
        uint64_t count;
        if (read(ctl->wake_fd, &count, sizeof(count)) < 0)
            continue;
        bool ran = false;
        int status = control_try_start(ctl, &ran);
        if (ran)
            return status;
    }
}

static int control_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    /* Blocked on the main thread, which reads them from the signalfd (the API thread
     * blocks every signal anyway). */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int run_controlled(struct vm_config *cli, const struct jail *jail)
{
    struct control *ctl = calloc(1, sizeof(*ctl));
    if (ctl && jail) {
        ctl->jail = jail;
        ctl->jailed = calloc(1, sizeof(*ctl->jailed));
        if (!ctl->jailed) {
            free(ctl);
            ctl = NULL;
        }
    }
    struct vm_spec *spec = malloc(sizeof(*spec));
    int signal_fd = control_signals();
    int status = KILN_EXIT_RESOURCES;
    if (!ctl || !spec || signal_fd < 0)
        goto out_free;
    ctl->wake_fd = -1;
    migration_init(&ctl->migration);
    pthread_mutex_init(&ctl->lock, NULL);
    pthread_cond_init(&ctl->cond, NULL);
    ctl->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ctl->wake_fd < 0 || vm_spec_from_config(spec, cli) < 0)
        goto out;
    status = KILN_EXIT_USAGE;
    char err[512];
    if (cli->config_file && fc_config_load_file(spec, cli->config_file, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out;
    }
    api_init(&ctl->api, spec, &control_ops, ctl, cli->instance_id);
    /* A config file or a snapshot boots at once: the API sees a started VM at once. */
    if (cli->config_file || cli->restore_dir || cli->incoming) {
        api_set_state(&ctl->api, API_VM_RUNNING);
        ctl->booting = true;
    }
    /* Listening before the API answers: whoever sees the API may send the VM at once. */
    ctl->incoming_fd = cli->incoming ? incoming_listen(cli->incoming) : -1;
    if (cli->incoming && ctl->incoming_fd < 0) {
        status = KILN_EXIT_DEVICE;
        goto out_api;
    }
    /* Jailed, the API thread may only start once the jail is entered (control_run_jailed). */
    if (cli->api_sock && (jail ? api_server_open : api_server_start)(
                             &ctl->server, &ctl->api, cli->api_sock, cli->seccomp) < 0) {
        status = KILN_EXIT_DEVICE;
        goto out_api;
    }
    if (cli->incoming)
        status = control_incoming(ctl, cli);
    else if (cli->restore_dir)
        status = control_restore(ctl, cli);
    else if (cli->config_file)
        status = control_boot(ctl, spec);
    else
        status = control_wait_and_run(ctl, signal_fd);
    api_server_stop(ctl->server);
out_api:
    api_destroy(&ctl->api);
out:
    if (ctl->wake_fd >= 0)
        close(ctl->wake_fd);
    pthread_cond_destroy(&ctl->cond);
    pthread_mutex_destroy(&ctl->lock);
    migration_destroy(&ctl->migration);
out_free:
    if (signal_fd >= 0)
        close(signal_fd);
    free(spec);
    if (ctl)
        free(ctl->jailed);
    free(ctl);
    return status;
}
