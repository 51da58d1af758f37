/*
 * `kiln migrate NAME tcp:HOST:PORT`: send the running VM NAME, live, to a kiln waiting with
 * `kiln receive` or `kiln run --incoming` (docs/migration.md), through NAME's API
 * (PUT /migrate, then GET /migrate for progress). Ctrl-C cancels: the VM keeps running here.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/vm_process.h"
#include "cli/vm_ref.h"
#include "util.h"

#define MIGRATE_POLL_US 200000
#define MIGRATE_EXIT_WAIT_MS 15000 /* the source's process ends once the figures are read */

static const char migrate_usage[] =
    "Usage: kiln migrate NAME tcp:HOST:PORT\n"
    "\n"
    "Move the running VM NAME, live, to the kiln listening on HOST:PORT ('kiln receive' or\n"
    "'kiln run --incoming' there; HOST is an IPv4 address, [IPv6] or localhost). Guest RAM\n"
    "is copied while the guest runs, in passes over the pages it writes; then the VM is\n"
    "paused for the last pages and its vCPU and device state. Once the destination runs\n"
    "it, NAME's process here exits. Prints the pass, MiB sent and dirty pages left while it\n"
    "runs, then the total time, bytes sent and downtime (pause here to running there).\n"
    "\n"
    "Ctrl-C (SIGINT or SIGTERM) cancels, as do a lost connection and a destination that\n"
    "refuses or dies: NAME then runs on here as before.\n"
    "\n"
    "Exit status: 0 migrated; 1 failed or cancelled (NAME still runs here; the reason is\n"
    "shown); 2 bad usage; 7 no such VM; 8 not running or busy.\n";

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

/* SIGINT/SIGTERM interrupt the polling instead of killing this process. */
static void catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static uint64_t field(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
}

static double real_field(json_t *o, const char *name)
{
    return json_number_value(json_object_get(o, name));
}

static void show_progress(json_t *p, bool tty)
{
    printf("%spass %llu: %.1f MiB sent, %llu dirty pages left%s", tty ? "\r\033[K" : "",
           (unsigned long long)field(p, "pass"), (double)field(p, "bytes_sent") / (1 << 20),
           (unsigned long long)field(p, "dirty_pages"), tty ? "" : "\n");
    fflush(stdout);
}

static void show_result(const struct vm_ref *ref, json_t *p)
{
    printf("migrated VM '%s' to %s: %.3f s, %.1f MiB sent (%llu bytes; %llu pages, %llu of "
           "them zero), %llu passes, downtime %.1f ms\n",
           ref->name, json_string_value(json_object_get(p, "destination")),
           real_field(p, "elapsed_ms") / 1e3, (double)field(p, "bytes_sent") / (1 << 20),
           (unsigned long long)field(p, "bytes_sent"), (unsigned long long)field(p, "pages_sent"),
           (unsigned long long)field(p, "zero_pages"), (unsigned long long)field(p, "pass"),
           real_field(p, "downtime_ms"));
}

/* Polls GET /migrate until the migration ends; returns its final report (or NULL). */
static json_t *follow(struct api_client *api, const struct vm_ref *ref)
{
    bool tty = isatty(STDOUT_FILENO);
    bool cancelled = false;
    uint64_t shown_pass = 0;
    for (;;) {
        char err[512] = "";
        if (interrupted && !cancelled) {
            cancelled = true;
            json_t *empty = json_object(); /* api_call does not take it over */
            if (api_call(api, "PUT", "/migrate/cancel", empty, NULL, err, sizeof(err)) < 0)
                log_warn("VM '%s': cancel: %s", ref->name, err);
            json_decref(empty);
        }
        json_t *p = NULL;
        if (api_call(api, "GET", "/migrate", NULL, &p, err, sizeof(err)) < 0) {
            log_error("VM '%s': %s", ref->name, err);
            return NULL;
        }
        const char *state = json_string_value(json_object_get(p, "state"));
        if (!state || strcmp(state, "active") != 0) {
            if (tty && shown_pass)
                printf("\n");
            return p;
        }
        if (tty || field(p, "pass") != shown_pass)
            show_progress(p, tty);
        shown_pass = field(p, "pass");
        json_decref(p);
        usleep(MIGRATE_POLL_US);
    }
}

/* The source's process exits by itself once the destination runs the VM. */
static void wait_exit(struct vm_ref *ref)
{
    struct vm_process proc;
    if (vm_ref_open_process(ref, &proc) != KILN_EXIT_OK)
        return;
    if (vm_process_wait(&proc, MIGRATE_EXIT_WAIT_MS))
        vm_runtime_clean(ref->dir);
    else
        log_warn("VM '%s': its process (pid %d) has not exited here yet", ref->name,
                 (int)proc.pid);
    vm_process_close(&proc);
}

static int migrate_vm(struct vm_ref *ref, const char *destination)
{
    struct vm_process proc;
    int rc = vm_ref_open_process(ref, &proc);
    if (rc != KILN_EXIT_OK)
        return rc;
    vm_process_close(&proc);
    struct api_client *api = vm_ref_api(ref, 60000);
    if (!api)
        return KILN_EXIT_VM_FAILED;
    catch_signals();
    char err[512] = "";
    json_t *body = json_pack("{s:s}", "destination", destination);
    int ret = api_call(api, "PUT", "/migrate", body, NULL, err, sizeof(err));
    json_decref(body);
    json_t *report = ret == 0 ? follow(api, ref) : NULL;
    api_client_close(api);
    if (ret < 0)
        log_error("VM '%s': %s", ref->name, err);
    const char *state = json_string_value(json_object_get(report, "state"));
    rc = KILN_EXIT_VM_FAILED;
    if (state && strcmp(state, "completed") == 0) {
        show_result(ref, report);
        wait_exit(ref);
        rc = KILN_EXIT_OK;
    } else if (state && strcmp(state, "cancelled") == 0) {
        log_error("VM '%s': migration cancelled", ref->name);
        log_info("VM '%s' runs on here", ref->name);
    } else if (state) {
        log_error("VM '%s': migration %s: %s", ref->name, state,
                  json_string_value(json_object_get(report, "error")));
        if (strstr(json_string_value(json_object_get(report, "error")) ?: "", "left paused"))
            log_error("VM '%s' is paused here", ref->name);
        else
            log_info("VM '%s' runs on here", ref->name);
    }
    json_decref(report);
    return rc;
}

int cmd_migrate(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    optind = 0;
    opterr = 0;
    for (int opt; (opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1;) {
        fputs(migrate_usage, opt == 'h' ? stdout : stderr);
        return opt == 'h' ? KILN_EXIT_OK : KILN_EXIT_USAGE;
    }
    if (optind != argc - 2 || strncmp(argv[optind + 1], "tcp:", 4) != 0) {
        fputs(migrate_usage, stderr);
        return KILN_EXIT_USAGE;
    }
    struct vm_ref ref = {.lock_fd = -1};
    int rc = vm_ref_open(argv[optind], true, &ref);
    if (rc == KILN_EXIT_OK)
        rc = vm_ref_lock(&ref);
    if (rc == KILN_EXIT_OK)
        rc = migrate_vm(&ref, argv[optind + 1]);
    vm_ref_close(&ref);
    return rc;
}
