/* `kiln run` command-line options, parsed into a struct vm_config. */
#ifndef KILN_RUN_OPTIONS_H
#define KILN_RUN_OPTIONS_H

#include <stddef.h>

#include "vmm/vm_config.h"

#define RUN_OPTIONS_HELP 1 /* --help was given; nothing else to do */

/*
 * Parses argv (argv[0] is the command name). Returns 0, RUN_OPTIONS_HELP, or -EINVAL with
 * a one-line reason in `err`. Strings in `cfg` point into argv.
 */
int run_options_parse(int argc, char **argv, struct vm_config *cfg, char *err, size_t errlen);

/* "auto", "bzimage", "elf" (or "pvh"), "raw". Returns 0 or -EINVAL. */
int kernel_format_parse(const char *name, enum kernel_format *out);

/* The --help text. */
extern const char run_options_usage[];

#endif
