/*
 * `kiln restore DIR [NAME]`: continue the VM saved in DIR (by `kiln snapshot` or the API)
 * as the named VM NAME, in the background like `kiln start`: a daemonized
 * `kiln run --restore DIR --api-sock ...` with NAME's runtime files. NAME defaults to the
 * name `kiln snapshot` recorded; a NAME not defined yet gets the snapshot's copy of the
 * definition, so one snapshot can be restored into several clones.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/vm_launch.h"
#include "cli/vm_ref.h"
#include "snapshot/snapshot.h"
#include "util.h"

#define RESTORE_API_WAIT_MS 30000 /* from launch until the restored VM's API answers */
#define SNAPSHOT_NAME_FILE "vm-name"

static const char restore_usage[] =
    "Usage: kiln restore DIR [NAME]\n"
    "\n"
    "Continue the VM saved in DIR (DIR/state, DIR/memory; see 'kiln snapshot') in the\n"
    "background as the VM NAME, exactly where it was saved. NAME defaults to the VM the\n"
    "snapshot was taken of; a new NAME is defined from the snapshot, so one snapshot can\n"
    "run as several independent clones. The VM gets the devices of NAME's definition\n"
    "(disks, NICs, vsock, rng, console): the saved VM's, unless NAME was defined\n"
    "otherwise. The snapshot's files must stay while it runs.\n"
    "\n"
    "Exit status: 0 restored; 1 the VM failed to start (kiln.log tells why); 2 bad usage;\n"
    "3 the snapshot is damaged or not a kiln snapshot; 5 no resources; 8 NAME is running\n"
    "or busy.\n";

/* The name `kiln snapshot` recorded in DIR. */
static int recorded_name(const char *dir, char *name, size_t len)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/%s", dir, SNAPSHOT_NAME_FILE);
    FILE *f = fopen(path, "r");
    if (!f) {
        log_error("%s: no VM name recorded in the snapshot; give one: kiln restore DIR NAME",
                  dir);
        return KILN_EXIT_USAGE;
    }
    size_t n = fread(name, 1, len - 1, f);
    fclose(f);
    name[n] = '\0';
    return KILN_EXIT_OK;
}

/* A NAME that is not defined yet gets the snapshot's definition. */
static int define_from_snapshot(const struct vm_ref *ref, const char *dir)
{
    if (vm_ref_defined(ref))
        return KILN_EXIT_OK;
    char src[PATH_MAX + 16], dst[STATE_PATH_MAX];
    snprintf(src, sizeof(src), "%s/%s", dir, VM_FILE_CONFIG);
    uint8_t *text;
    size_t len;
    int ret = read_file(src, &text, &len, 1 << 20);
    if (ret < 0) {
        log_error("VM '%s' is not defined and the snapshot has no definition (%s: %s)",
                  ref->name, src, strerror(-ret));
        return KILN_EXIT_NO_SUCH_VM;
    }
    ret = state_dir_ensure(ref->state_dir);
    if (ret == 0 && mkdir(ref->dir, 0700) < 0 && errno != EEXIST)
        ret = -errno;
    if (ret == 0)
        ret = vm_ref_path(ref, VM_FILE_CONFIG, dst, sizeof(dst));
    if (ret == 0)
        ret = write_file_atomic(dst, text, len);
    free(text);
    if (ret < 0) {
        log_error("cannot define VM '%s': %s", ref->name, strerror(-ret));
        return KILN_EXIT_RESOURCES;
    }
    return KILN_EXIT_OK;
}

static int restore_vm(const struct vm_ref *ref, const char *dir)
{
    int rc = vm_launch_continuing(ref, "--restore", dir, RESTORE_API_WAIT_MS);
    if (rc > 0) {
        log_error("VM '%s' could not be restored from %s", ref->name, dir);
        vm_ref_print_log_tail(ref);
        return rc;
    }
    printf("restored VM '%s' from %s (pid %d)\n", ref->name, dir, -rc);
    return KILN_EXIT_OK;
}

int cmd_restore(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    optind = 0;
    opterr = 0;
    for (int opt; (opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1;) {
        fputs(restore_usage, opt == 'h' ? stdout : stderr);
        return opt == 'h' ? KILN_EXIT_OK : KILN_EXIT_USAGE;
    }
    if (optind != argc - 1 && optind != argc - 2) {
        fputs(restore_usage, stderr);
        return KILN_EXIT_USAGE;
    }
    char dir[PATH_MAX], name[VM_NAME_MAX + 2];
    if (!realpath(argv[optind], dir)) {
        log_error("snapshot '%s': %s", argv[optind], strerror(errno));
        return KILN_EXIT_BAD_IMAGE;
    }
    int rc = KILN_EXIT_OK;
    if (optind == argc - 2)
        snprintf(name, sizeof(name), "%s", argv[optind + 1]);
    else
        rc = recorded_name(dir, name, sizeof(name));
    struct vm_ref ref = {.lock_fd = -1};
    if (rc == KILN_EXIT_OK)
        rc = vm_ref_open(name, false, &ref);
    if (rc == KILN_EXIT_OK)
        rc = define_from_snapshot(&ref, dir);
    if (rc == KILN_EXIT_OK)
        rc = vm_ref_lock(&ref);
    if (rc == KILN_EXIT_OK)
        rc = restore_vm(&ref, dir);
    vm_ref_close(&ref);
    return rc;
}
