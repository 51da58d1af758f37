/* `kiln create NAME [OPTIONS]`: store a VM definition, built from `kiln run`'s options. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/run_options.h"
#include "cli/state_dir.h"
#include "cli/vm_definition.h"
#include "cli/vm_ref.h"
#include "util.h"

static const char create_usage[] =
    "Usage: kiln create NAME [OPTIONS]\n"
    "\n"
    "Define a VM called NAME (1-64 of A-Z a-z 0-9 _ . -, not starting with '.' or '-')\n"
    "without starting it; 'kiln start NAME' boots it in the background.\n"
    "\n"
    "OPTIONS are those of 'kiln run' and mean the same (see 'kiln run --help'):\n"
    "--kernel (required), --kernel-format, --initrd, --cmdline, --memory (whole MiB),\n"
    "--cpus, --no-reboot, --disk (not cache=none), --net, --vsock, --rng, --console.\n"
    "Not --console-log, --console-sock, --api-sock, --id: 'kiln start' sets them; not\n"
    "--config-file. Files must exist now; their paths are stored absolute.\n"
    "\n"
    "The definition is STATE/NAME/config.json in Firecracker's config-file schema (with\n"
    "kiln extensions), where STATE is $KILN_STATE_DIR, or /var/lib/kiln for root, or\n"
    "$XDG_STATE_HOME/kiln, or ~/.local/state/kiln.\n"
    "\n"
    "Exit status: 0 created; 2 bad name or option, or a file is missing or unreadable;\n"
    "5 the state directory cannot be written; 8 a VM of that name exists.\n";

/* Writes the definition into a hidden directory, then renames it into place atomically. */
static int store_definition(const struct vm_ref *ref, const char *text)
{
    char tmp[STATE_PATH_MAX], file[STATE_PATH_MAX];
    int n =
        snprintf(tmp, sizeof(tmp), "%s/.create.%s.%d", ref->state_dir, ref->name, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp) ||
        snprintf(file, sizeof(file), "%s/%s", tmp, VM_FILE_CONFIG) >= (int)sizeof(file))
        return -ENAMETOOLONG;
    if (mkdir(tmp, 0700) < 0)
        return -errno;
    int ret = write_file_atomic(file, text, strlen(text));

    /* RENAME_NOREPLACE: of two racing creates of one name, exactly one wins. */
    if (ret == 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, ref->dir, RENAME_NOREPLACE) < 0)
        ret = errno == ENOTEMPTY ? -EEXIST : -errno;
    if (ret < 0) {
        unlink(file);
        rmdir(tmp);
        return ret;
    }
    int dfd = open(ref->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int cmd_create(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        fputs(create_usage, help ? stdout : stderr);
        return help ? KILN_EXIT_OK : KILN_EXIT_USAGE;
    }
    struct vm_ref ref;
    int rc = vm_ref_open(argv[1], false, &ref);
    if (rc != KILN_EXIT_OK)
        return rc;
    struct vm_config cfg;
    char err[512] = "";
    /* run_options_parse wants argv[0] to be the command: NAME stands in for it. */
    int ret = run_options_parse(argc - 1, argv + 1, &cfg, err, sizeof(err));
    if (ret == RUN_OPTIONS_HELP) {
        fputs(create_usage, stdout);
        return KILN_EXIT_OK;
    }
    if (ret < 0) {
        log_error("%s", err);
        return KILN_EXIT_USAGE;
    }
    json_t *def = vm_definition_from_config(&cfg, err, sizeof(err));
    if (!def) {
        log_error("%s", err);
        return KILN_EXIT_USAGE;
    }
    char *text = json_dumps(def, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(def);
    size_t len = text ? strlen(text) : 0;
    char *grown = text ? realloc(text, len + 2) : NULL;
    if (grown) { /* a final newline, as text files have */
        text = grown;
        strcpy(text + len, "\n");
    }
    if (!text) {
        log_error("out of memory");
        return KILN_EXIT_RESOURCES;
    }
    ret = state_dir_ensure(ref.state_dir);
    if (ret == 0)
        ret = store_definition(&ref, text);
    free(text);
    if (ret == -EEXIST) {
        log_error("a VM named '%s' exists already", ref.name);
        return KILN_EXIT_VM_STATE;
    }
    if (ret < 0) {
        log_error("cannot store VM '%s' in %s: %s", ref.name, ref.state_dir, strerror(-ret));
        return KILN_EXIT_RESOURCES;
    }
    printf("created VM '%s'\n", ref.name);
    return KILN_EXIT_OK;
}
