/* One function per `kiln` subcommand; each returns the process exit status. */
#ifndef KILN_COMMANDS_H
#define KILN_COMMANDS_H

#include <stdbool.h>

struct vm_ref;

int cmd_run(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_kill(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_console(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_receive(int argc, char **argv);

/* Shared between commands. */
int vm_pause_or_resume(int argc, char **argv, bool pause); /* cmd_pause.c */
int vm_kill_locked(struct vm_ref *ref);                     /* cmd_kill.c; caller holds the lock */

#endif
