/* `kiln ls`: every defined VM with its state, from the API for those that run. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/vm_definition.h"
#include "cli/vm_ref.h"
#include "cli/vm_table.h"
#include "util.h"

static const char ls_usage[] =
    "Usage: kiln ls [--json]\n"
    "\n"
    "List the defined VMs: NAME STATE PID VCPUS MEMORY UPTIME. STATE is stopped, running,\n"
    "paused, starting (process up, not booted yet) or unresponsive (process up, API\n"
    "silent). A VM whose process died is shown stopped and its leftovers are cleaned.\n"
    "\n"
    "  --json       a JSON array of {name, state, pid, vcpus, mem_size_mib, started_at,\n"
    "               uptime_s}; pid, started_at and uptime_s are null when stopped\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 listed; 2 bad usage; 5 the state directory cannot be read.\n";

/* Fills one row; false for an entry that is no VM (a stray file, a half-made create). */
static bool vm_row_load(const char *state_dir, const char *name, struct vm_row *row,
                        int64_t *started_at)
{
    struct vm_ref ref;
    if (vm_ref_init(&ref, state_dir, name) < 0 || !vm_ref_defined(&ref))
        return false;
    json_t *def = vm_ref_definition(&ref);
    struct vm_definition_summary sum = {0};
    vm_definition_summarize(def, &sum);
    json_decref(def);
    struct vm_runtime rt;
    bool running = vm_runtime_probe(ref.dir, &rt, false) == 1;
    snprintf(row->name, sizeof(row->name), "%s", ref.name);
    row->state = vm_live_state(&ref, running);
    row->pid = running ? rt.pid : 0;
    row->vcpus = sum.vcpus;
    row->mem_mib = sum.mem_mib;
    *started_at = running ? rt.started_at : -1;
    row->uptime_s = running ? (int64_t)time(NULL) - rt.started_at : -1;
    if (running && row->uptime_s < 0)
        row->uptime_s = 0;
    return true;
}

static json_t *row_json(const struct vm_row *r, int64_t started_at)
{
    return json_pack("{s:s, s:s, s:o, s:i, s:I, s:o, s:o}", "name", r->name, "state", r->state,
                     "pid", r->pid ? json_integer(r->pid) : json_null(), "vcpus", (int)r->vcpus,
                     "mem_size_mib", (json_int_t)r->mem_mib, "started_at",
                     started_at >= 0 ? json_integer(started_at) : json_null(), "uptime_s",
                     r->uptime_s >= 0 ? json_integer(r->uptime_s) : json_null());
}

static int list_vms(const char *state_dir, bool as_json)
{
    struct dirent **entries = NULL;
    int n = scandir(state_dir, &entries, NULL, alphasort);
    if (n < 0 && errno != ENOENT) {
        log_error("cannot read the state directory %s: %s", state_dir, strerror(errno));
        return KILN_EXIT_RESOURCES;
    }
    struct vm_row *rows = calloc(n > 0 ? (size_t)n : 1, sizeof(*rows));
    json_t *list = json_array();
    size_t count = 0;
    for (int i = 0; i < n; i++) {
        int64_t started_at;
        if (rows && vm_row_load(state_dir, entries[i]->d_name, &rows[count], &started_at)) {
            json_array_append_new(list, row_json(&rows[count], started_at));
            count++;
        }
        free(entries[i]);
    }
    free(entries);
    if (as_json) {
        char *text = json_dumps(list, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(text ? text : "[]");
        free(text);
    } else {
        vm_table_print(stdout, rows, count);
    }
    json_decref(list);
    free(rows);
    return rows || n <= 0 ? KILN_EXIT_OK : KILN_EXIT_RESOURCES;
}

int cmd_ls(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
    bool as_json = false;
    optind = 0;
    opterr = 0;
    for (int opt; (opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1;) {
        if (opt == 'j') {
            as_json = true;
            continue;
        }
        fputs(ls_usage, opt == 'h' ? stdout : stderr);
        return opt == 'h' ? KILN_EXIT_OK : KILN_EXIT_USAGE;
    }
    if (optind != argc) {
        fputs(ls_usage, stderr);
        return KILN_EXIT_USAGE;
    }
    char state_dir[STATE_PATH_MAX];
    int rc = vm_state_dir(state_dir, sizeof(state_dir));
    return rc == KILN_EXIT_OK ? list_vms(state_dir, as_json) : rc;
}
