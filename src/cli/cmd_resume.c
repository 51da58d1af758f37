/* `kiln resume NAME`: the counterpart of `kiln pause` (cmd_pause.c holds the shared code). */
#include <stdbool.h>

#include "cli/commands.h"

int cmd_resume(int argc, char **argv)
{
    return vm_pause_or_resume(argc, argv, false);
}
