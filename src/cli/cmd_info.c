/* `kiln info NAME`: the definition and, while it runs, what the VM's API says. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/vm_ref.h"
#include "cli/vm_table.h"
#include "util.h"

static const char info_usage[] =
    "Usage: kiln info [--json] NAME\n"
    "\n"
    "Show the VM NAME: state, pid, uptime, its files, its definition (config.json) and,\n"
    "while it runs, the API's instance info (GET /) and configuration (GET /vm/config).\n"
    "\n"
    "  --json       one JSON object: name, state, pid, started_at, uptime_s, directory,\n"
    "               files, definition, instance, vm_config (null where unknown)\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 shown; 1 its definition is unreadable; 2 bad usage; 7 no such VM.\n";

static json_t *api_get(const struct vm_ref *ref, const char *path)
{
    struct api_client *api = vm_ref_api(ref, 2000);
    json_t *reply = NULL;
    char err[512] = "";
    if (api && api_call(api, "GET", path, NULL, &reply, err, sizeof(err)) < 0)
        log_warn("VM '%s': %s", ref->name, err);
    api_client_close(api);
    return reply ? reply : json_null();
}

/* The VM's files that exist, by role. */
static json_t *vm_files(const struct vm_ref *ref)
{
    static const char *const names[] = {VM_FILE_CONFIG,      VM_FILE_RUNTIME,
                                        VM_FILE_API_SOCK,    VM_FILE_CONSOLE_SOCK,
                                        VM_FILE_CONSOLE_LOG, VM_FILE_KILN_LOG};
    json_t *files = json_object();
    char path[STATE_PATH_MAX];
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (vm_ref_path(ref, names[i], path, sizeof(path)) == 0 && access(path, F_OK) == 0)
            json_object_set_new(files, names[i], json_string(path));
    return files;
}

static json_t *info_json(const struct vm_ref *ref, json_t *def)
{
    struct vm_runtime rt;
    bool running = vm_runtime_probe(ref->dir, &rt, false) == 1;
    int64_t uptime = running ? (int64_t)time(NULL) - rt.started_at : -1;
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:s, s:o, s:O, s:o, s:o}", "name", ref->name,
                     "state", vm_live_state(ref, running), "pid",
                     running ? json_integer(rt.pid) : json_null(), "started_at",
                     running ? json_integer(rt.started_at) : json_null(), "uptime_s",
                     running ? json_integer(uptime < 0 ? 0 : uptime) : json_null(), "directory",
                     ref->dir, "files", vm_files(ref), "definition", def, "instance",
                     running ? api_get(ref, "/") : json_null(), "vm_config",
                     running ? api_get(ref, "/vm/config") : json_null());
}

static void print_text(const json_t *info)
{
    char uptime[32];
    json_t *up = json_object_get(info, "uptime_s");
    format_uptime(json_is_integer(up) ? json_integer_value(up) : -1, uptime, sizeof(uptime));
    json_t *pid = json_object_get(info, "pid");
    printf("name:       %s\n", json_string_value(json_object_get(info, "name")));
    printf("state:      %s\n", json_string_value(json_object_get(info, "state")));
    if (json_is_integer(pid))
        printf("pid:        %lld\n", (long long)json_integer_value(pid));
    printf("uptime:     %s\n", uptime);
    printf("directory:  %s\n", json_string_value(json_object_get(info, "directory")));
    const char *key;
    json_t *value;
    json_object_foreach(json_object_get(info, "files"), key, value)
        printf("  %-13s %s\n", key, json_string_value(value));
    static const char *const sections[][2] = {{"definition", "definition (config.json)"},
                                              {"instance", "instance (GET /)"},
                                              {"vm_config", "live configuration (GET /vm/config)"}};
    for (size_t i = 0; i < ARRAY_SIZE(sections); i++) {
        json_t *part = json_object_get(info, sections[i][0]);
        if (json_is_null(part))
            continue;
        char *text = json_dumps(part, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s:\n%s\n", sections[i][1], text ? text : "?");
        free(text);
    }
}

int cmd_info(int argc, char **argv)
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
        fputs(info_usage, opt == 'h' ? stdout : stderr);
        return opt == 'h' ? KILN_EXIT_OK : KILN_EXIT_USAGE;
    }
    if (optind != argc - 1) {
        fputs(info_usage, stderr);
        return KILN_EXIT_USAGE;
    }
    struct vm_ref ref;
    int rc = vm_ref_open(argv[optind], true, &ref);
    if (rc != KILN_EXIT_OK)
        return rc;
    json_t *def = vm_ref_definition(&ref);
    if (!def)
        return KILN_EXIT_VM_FAILED;
    json_t *info = info_json(&ref, def);
    json_decref(def);
    if (as_json) {
        char *text = json_dumps(info, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(text ? text : "{}");
        free(text);
    } else {
        print_text(info);
    }
    json_decref(info);
    return KILN_EXIT_OK;
}
