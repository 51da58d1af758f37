/* `kiln stop NAME`: an ACPI power-button press through the API, then force after a timeout. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/vm_process.h"
#include "cli/vm_ref.h"
#include "util.h"

#define STOP_DEFAULT_TIMEOUT_S 30
#define STOP_TERM_GRACE_MS 5000 /* SIGTERM makes kiln run stop the VM; give it that long */

static const char stop_usage[] =
    "Usage: kiln stop [--timeout SECS] NAME\n"
    "\n"
    "Stop the VM NAME gracefully: press its ACPI power button through the API (a paused VM\n"
    "is resumed first) and wait up to SECS (default 30) for the guest to power off. If it\n"
    "does not, or the API refuses the button (the reason is shown), force it: SIGTERM to\n"
    "the VM process, then SIGKILL after 5 s. Says which happened.\n"
    "\n"
    "  -t, --timeout SECS   how long the guest may take to shut down (0: force at once)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Exit status: 0 stopped (either way); 2 bad usage; 7 no such VM; 8 not running or busy.\n";

/* Asks the guest to shut down. Returns 0 when the request was accepted. */
static int press_power_button(const struct vm_ref *ref)
{
    struct api_client *api = vm_ref_api(ref, 5000);
    if (!api)
        return -EIO;
    char err[512] = "";
    json_t *info = NULL;
    int ret = api_call(api, "GET", "/", NULL, &info, err, sizeof(err));
    const char *state = json_string_value(json_object_get(info, "state"));
    if (ret == 0 && state && strcmp(state, "Paused") == 0) {
        json_t *body = json_pack("{s:s}", "state", "Resumed");
        ret = api_call(api, "PATCH", "/vm", body, NULL, err, sizeof(err));
        json_decref(body);
    }
    json_decref(info);
    if (ret == 0) {
        json_t *body = json_pack("{s:s}", "action_type", "PowerButton");
        ret = api_call(api, "PUT", "/actions", body, NULL, err, sizeof(err));
        json_decref(body);
    }
    api_client_close(api);
    if (ret < 0)
        log_warn("VM '%s': graceful shutdown unavailable: %s", ref->name, err);
    return ret;
}

/* SIGTERM, then SIGKILL. Returns which signal ended it. */
static int force_stop(const struct vm_process *p)
{
    if (vm_process_signal(p, SIGTERM) == 0 && vm_process_wait(p, STOP_TERM_GRACE_MS))
        return SIGTERM;
    vm_process_signal(p, SIGKILL);
    vm_process_wait(p, 10000);
    return SIGKILL;
}

static int stop_vm(struct vm_ref *ref, int timeout_s)
{
    struct vm_process p;
    int rc = vm_ref_open_process(ref, &p);
    if (rc != KILN_EXIT_OK)
        return rc;
    bool asked = timeout_s > 0 && press_power_button(ref) == 0;
    if (asked && vm_process_wait(&p, timeout_s * 1000)) {
        printf("VM '%s' shut down gracefully\n", ref->name);
    } else {
        if (asked)
            printf("VM '%s' did not shut down within %d s; forcing it\n", ref->name, timeout_s);
        int sig = force_stop(&p);
        printf("VM '%s' stopped by force (%s)\n", ref->name,
               sig == SIGTERM ? "SIGTERM" : "SIGKILL");
    }
    vm_process_close(&p);
    vm_runtime_clean(ref->dir);
    return KILN_EXIT_OK;
}

int cmd_stop(int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'}, {0}};
    int timeout_s = STOP_DEFAULT_TIMEOUT_S;
    optind = 0;
    opterr = 0;
    for (int opt; (opt = getopt_long(argc, argv, "+t:h", opts, NULL)) != -1;) {
        uint64_t v;
        if (opt == 't' && parse_uint(optarg, 0, 86400, &v) == 0) {
            timeout_s = (int)v;
            continue;
        }
        if (opt == 't')
            log_error("--timeout '%s': expected seconds from 0 to 86400", optarg);
        fputs(stop_usage, opt == 'h' ? stdout : stderr);
        return opt == 'h' ? KILN_EXIT_OK : KILN_EXIT_USAGE;
    }
    struct vm_ref ref;
    int rc = vm_ref_open_operand(argc, argv, stop_usage, &ref);
    if (rc == KILN_EXIT_OK)
        rc = stop_vm(&ref, timeout_s);
    vm_ref_close(&ref);
    return rc;
}
