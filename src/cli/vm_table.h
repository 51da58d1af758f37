/* What `kiln ls` prints: one row per VM, formatted as an aligned table. */
#ifndef KILN_VM_TABLE_H
#define KILN_VM_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/state_dir.h"

struct vm_row {
    char name[VM_NAME_MAX + 1];
    const char *state; /* "stopped", "running", "paused", "starting", "unresponsive" */
    int pid;           /* 0 when not running */
    unsigned vcpus;
    unsigned long long mem_mib;
    int64_t uptime_s; /* < 0 when not running */
};

/* "45s", "12m03s", "5h07m", "3d02h"; "-" for a negative value. */
void format_uptime(int64_t seconds, char *buf, size_t len);

/* "512M", "2G" (whole GiB), "-" for 0. */
void format_mem_mib(unsigned long long mib, char *buf, size_t len);

/* Prints the header and rows, columns sized to their widest cell, separated by 2 spaces. */
void vm_table_print(FILE *out, const struct vm_row *rows, size_t n);

#endif
