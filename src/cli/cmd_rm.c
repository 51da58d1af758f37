/* `kiln rm NAME`: delete a VM's definition and files (not its disk images). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/vm_ref.h"
#include "util.h"

static const char rm_usage[] =
    "Usage: kiln rm [--force] NAME\n"
    "\n"
    "Delete the VM NAME: its definition, logs and runtime files. The disk images it uses\n"
    "are not touched. A running VM is refused unless --force, which kills it first.\n"
    "\n"
    "  -f, --force  kill the VM first if it runs\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 deleted; 2 bad usage; 5 a file could not be removed; 7 no such VM;\n"
    "8 running (without --force) or busy.\n";

/* Removes every file of a directory kiln made (flat: no subdirectories), then it. */
static int remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int ret = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) < 0 && ret == 0)
            ret = -errno;
    }
    closedir(d);
    if (ret == 0 && rmdir(dir) < 0)
        ret = -errno;
    return ret;
}

static int rm_vm(struct vm_ref *ref, bool force)
{
    struct vm_runtime rt;
    if (vm_runtime_probe(ref->dir, &rt, true) == 1) {
        if (!force) {
            log_error("VM '%s' is running (pid %d): stop it first, or use --force", ref->name,
                      (int)rt.pid);
            return KILN_EXIT_VM_STATE;
        }
        int rc = vm_kill_locked(ref);
        if (rc != KILN_EXIT_OK)
            return rc;
    }
    /* A hidden name first: the VM vanishes at once, even if a file resists removal. */
    char doomed[STATE_PATH_MAX];
    int n =
        snprintf(doomed, sizeof(doomed), "%s/.rm.%s.%d", ref->state_dir, ref->name, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof(doomed) || rename(ref->dir, doomed) < 0) {
        log_error("cannot delete VM '%s': %s", ref->name, strerror(errno));
        return KILN_EXIT_RESOURCES;
    }
    int ret = remove_flat_dir(doomed);
    if (ret < 0)
        log_warn("VM '%s' deleted, but %s remains: %s", ref->name, doomed, strerror(-ret));
    return KILN_EXIT_OK;
}

int cmd_rm(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {0}};
    bool force = false;
    optind = 0;
    opterr = 0;
    for (int opt; (opt = getopt_long(argc, argv, "+fh", opts, NULL)) != -1;) {
        if (opt == 'f') {
            force = true;
            continue;
        }
        fputs(rm_usage, opt == 'h' ? stdout : stderr);
        return opt == 'h' ? KILN_EXIT_OK : KILN_EXIT_USAGE;
    }
    struct vm_ref ref;
    int rc = vm_ref_open_operand(argc, argv, rm_usage, &ref);
    if (rc == KILN_EXIT_OK)
        rc = rm_vm(&ref, force);
    if (rc == KILN_EXIT_OK)
        printf("deleted VM '%s'\n", ref.name);
    vm_ref_close(&ref);
    return rc;
}
