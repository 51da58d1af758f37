/* kiln: a virtual machine monitor for Linux/KVM. main() only dispatches subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "util.h"

static const char kiln_usage[] =
    "Usage: kiln COMMAND [OPTIONS]\n"
    "\n"
    "kiln runs Linux virtual machines on KVM.\n"
    "\n"
    "Commands:\n"
    "  run        boot a VM in the foreground, console on this terminal\n"
    "  create     define a named VM (the options of 'run')\n"
    "  start      boot a defined VM in the background\n"
    "  ls         list the defined VMs and their state\n"
    "  info       show one VM: definition, state, files\n"
    "  console    attach to a running VM's serial console (Ctrl-] detaches)\n"
    "  pause      pause a running VM\n"
    "  resume     resume a paused VM\n"
    "  stop       shut a VM down gracefully (ACPI power button), then force\n"
    "  kill       kill a VM's process at once\n"
    "  rm         delete a VM's definition and files\n"
    "  snapshot   save a running VM's state and memory into a directory\n"
    "  restore    continue a saved VM in the background (also as a clone)\n"
    "  migrate    move a running VM, live, to another kiln ('kiln receive' there)\n"
    "  receive    start a defined VM as the destination of a live migration\n"
    "  help       show this help (or 'kiln COMMAND --help')\n"
    "  version    print kiln's version\n"
    "\n"
    "Named VMs live in the state directory: $KILN_STATE_DIR, or /var/lib/kiln for root,\n"
    "or $XDG_STATE_HOME/kiln, or ~/.local/state/kiln; one directory per VM.\n"
    "\n"
    "Exit status (each command's --help says which apply):\n"
    "  0  success\n"
    "  1  the VM failed, or its API refused a request (the fault message is shown)\n"
    "  2  bad command line, VM name or option value\n"
    "  3  the kernel or initrd could not be used\n"
    "  4  KVM is unavailable\n"
    "  5  the host cannot provide the resources (memory, threads, state directory)\n"
    "  6  a device could not be set up (disk, tap, port, socket)\n"
    "  7  no VM of that name\n"
    "  8  the VM is in the wrong state: exists already, running, not running, or\n"
    "     another kiln command is working on it\n"
    "  9  'kiln run --jail' could not set up the jail\n"
    "\n"
    "Run 'kiln COMMAND --help' for a command's options.\n";

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
};

static const struct command commands[] = {
    {"run", cmd_run},       {"create", cmd_create}, {"start", cmd_start},
    {"ls", cmd_ls},         {"info", cmd_info},     {"console", cmd_console},
    {"pause", cmd_pause},   {"resume", cmd_resume}, {"stop", cmd_stop},
    {"kill", cmd_kill},     {"rm", cmd_rm},         {"snapshot", cmd_snapshot},
    {"restore", cmd_restore}, {"migrate", cmd_migrate}, {"receive", cmd_receive},
};

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        fputs(kiln_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? KILN_EXIT_USAGE : KILN_EXIT_OK;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("kiln %s\n", KILN_VERSION);
        return KILN_EXIT_OK;
    }
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    log_error("unknown command '%s' (see 'kiln --help')", argv[1]);
    return KILN_EXIT_USAGE;
}
