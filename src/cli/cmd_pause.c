/* `kiln pause NAME`: stop the VM's vCPUs (PATCH /vm); its memory and devices stay. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/vm_ref.h"
#include "util.h"

static const char pause_usage[] =
    "Usage: kiln pause NAME\n"
    "\n"
    "Pause the running VM NAME: its vCPUs stop until 'kiln resume NAME'.\n"
    "\n"
    "Exit status: 0 paused; 1 the API refused (its fault message is shown); 2 bad usage;\n"
    "7 no such VM; 8 not running or busy.\n";

static const char resume_usage[] =
    "Usage: kiln resume NAME\n"
    "\n"
    "Resume the paused VM NAME.\n"
    "\n"
    "Exit status: 0 resumed; 1 the API refused (its fault message is shown); 2 bad usage;\n"
    "7 no such VM; 8 not running or busy.\n";

static int patch_vm_state(const struct vm_ref *ref, const char *state)
{
    struct vm_runtime rt;
    if (vm_runtime_probe(ref->dir, &rt, true) != 1) {
        log_error("VM '%s' is not running", ref->name);
        return KILN_EXIT_VM_STATE;
    }
    struct api_client *api = vm_ref_api(ref, 5000);
    if (!api)
        return KILN_EXIT_VM_FAILED;
    char err[512] = "";
    json_t *body = json_pack("{s:s}", "state", state);
    int ret = api_call(api, "PATCH", "/vm", body, NULL, err, sizeof(err));
    json_decref(body);
    api_client_close(api);
    if (ret < 0) {
        log_error("VM '%s': %s", ref->name, err);
        return KILN_EXIT_VM_FAILED;
    }
    return KILN_EXIT_OK;
}

int vm_pause_or_resume(int argc, char **argv, bool pause)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    const char *usage = pause ? pause_usage : resume_usage;
    optind = 0;
    opterr = 0;
    for (int opt; (opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1;) {
        fputs(usage, opt == 'h' ? stdout : stderr);
        return opt == 'h' ? KILN_EXIT_OK : KILN_EXIT_USAGE;
    }
    struct vm_ref ref;
    int rc = vm_ref_open_operand(argc, argv, usage, &ref);
    if (rc == KILN_EXIT_OK)
        rc = patch_vm_state(&ref, pause ? "Paused" : "Resumed");
    if (rc == KILN_EXIT_OK)
        printf("%s VM '%s'\n", pause ? "paused" : "resumed", ref.name);
    vm_ref_close(&ref);
    return rc;
}

int cmd_pause(int argc, char **argv)
{
    return vm_pause_or_resume(argc, argv, true);
}
