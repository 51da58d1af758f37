/*
 * `kiln receive --listen tcp:ADDR:PORT NAME`: run the defined VM NAME in the background as
 * the destination of a live migration: a daemonized `kiln run --incoming ... --api-sock ...`
 * with NAME's runtime files, waiting for `kiln migrate` (docs/migration.md).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/vm_launch.h"
#include "cli/vm_ref.h"
#include "util.h"

#define RECEIVE_API_WAIT_MS 10000

static const char receive_usage[] =
    "Usage: kiln receive --listen tcp:ADDR:PORT NAME\n"
    "\n"
    "Start the defined VM NAME in the background as the destination of a live migration:\n"
    "its process listens on ADDR:PORT (an IPv4 address, [IPv6] or localhost) for one VM\n"
    "sent by 'kiln migrate', checks all of it, and runs it from where the source stopped.\n"
    "Returns once the process listens; 'kiln ls' shows NAME as running meanwhile. If the\n"
    "source cancels or fails before the hand-over, the process exits without running the\n"
    "guest (kiln.log says why). Memory size and vCPUs come from the source; the devices\n"
    "(disks, NICs, vsock, rng, console) are NAME's, as defined: the source's.\n"
    "\n"
    "Exit status: 0 listening; 1 the process failed to start (kiln.log tells why); 2 bad\n"
    "usage; 6 the address cannot be listened on; 7 no such VM; 8 NAME is running or busy.\n";

int cmd_receive(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'}, {"listen", required_argument, NULL, 'l'}, {0}};
    const char *listen = NULL;
    optind = 0;
    opterr = 0;
    for (int opt; (opt = getopt_long(argc, argv, "+hl:", opts, NULL)) != -1;) {
        if (opt == 'l') {
            listen = optarg;
            continue;
        }
        fputs(receive_usage, opt == 'h' ? stdout : stderr);
        return opt == 'h' ? KILN_EXIT_OK : KILN_EXIT_USAGE;
    }
    if (!listen || strncmp(listen, "tcp:", 4) != 0 || optind != argc - 1) {
        fputs(receive_usage, stderr);
        return KILN_EXIT_USAGE;
    }
    struct vm_ref ref = {.lock_fd = -1};
    int rc = vm_ref_open(argv[optind], true, &ref);
    if (rc == KILN_EXIT_OK)
        rc = vm_ref_lock(&ref);
    if (rc == KILN_EXIT_OK) {
        rc = vm_launch_continuing(&ref, "--incoming", listen, RECEIVE_API_WAIT_MS);
        if (rc > 0) {
            log_error("VM '%s' could not wait for a migration on %s", ref.name, listen + 4);
            vm_ref_print_log_tail(&ref);
        } else {
            printf("VM '%s' waits for a migration on %s (pid %d)\n", ref.name, listen + 4, -rc);
            rc = KILN_EXIT_OK;
        }
    }
    vm_ref_close(&ref);
    return rc;
}
