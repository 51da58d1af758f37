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
    "  help       show this help (or 'kiln COMMAND --help')\n"
    "  version    print kiln's version\n"
    "\n"
    "Run 'kiln COMMAND --help' for a command's options.\n";

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
};

static const struct command commands[] = {
    {"run", cmd_run},
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
