/* `kiln kill NAME`: end the VM process at once (SIGKILL); the guest gets no say. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/vm_process.h"
#include "cli/vm_ref.h"
#include "util.h"

static const char kill_usage[] =
    "Usage: kiln kill NAME\n"
    "\n"
    "Kill the VM NAME's process at once with SIGKILL, like pulling the power cord: the\n"
    "guest does not shut down and unwritten disk data may be lost. See 'kiln stop'.\n"
    "\n"
    "Exit status: 0 killed; 2 bad usage; 7 no such VM; 8 not running or busy.\n";

int vm_kill_locked(struct vm_ref *ref)
{
    struct vm_process p;
    int rc = vm_ref_open_process(ref, &p);
    if (rc != KILN_EXIT_OK)
        return rc;
    vm_process_signal(&p, SIGKILL);
    bool gone = vm_process_wait(&p, 10000);
    vm_process_close(&p);
    if (!gone) {
        log_error("VM '%s': process %d survived SIGKILL for 10 s", ref->name, (int)p.pid);
        return KILN_EXIT_VM_FAILED;
    }
    vm_runtime_clean(ref->dir);
    return KILN_EXIT_OK;
}

int cmd_kill(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    optind = 0;
    opterr = 0;
    for (int opt; (opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1;) {
        fputs(kill_usage, opt == 'h' ? stdout : stderr);
        return opt == 'h' ? KILN_EXIT_OK : KILN_EXIT_USAGE;
    }
    struct vm_ref ref;
    int rc = vm_ref_open_operand(argc, argv, kill_usage, &ref);
    if (rc == KILN_EXIT_OK) {
        rc = vm_kill_locked(&ref);
        if (rc == KILN_EXIT_OK)
            printf("killed VM '%s'\n", ref.name);
    }
    vm_ref_close(&ref);
    return rc;
}
