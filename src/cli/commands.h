/* One function per `kiln` subcommand; each returns the process exit status. */
#ifndef KILN_COMMANDS_H
#define KILN_COMMANDS_H

int cmd_run(int argc, char **argv);

#endif
