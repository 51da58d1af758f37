/*
 * `kiln run`'s option parser (cli/run_options.c, with cli/device_options.c behind --disk,
 * --net and --vsock): the input, split at NUL bytes, is the argument vector. A success must
 * leave a configuration within the documented limits; a failure must say why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/run_options.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* One exactly sized, NUL-terminated copy; argv points into it as a shell's would. */
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    char *argv[MAX_ARGS + 2] = {"run"};
    int argc = 1;
    for (char *p = text; p < text + size && argc <= MAX_ARGS; p += strlen(p) + 1)
        argv[argc++] = p;
    argv[argc] = NULL;
    static struct vm_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    char err[256] = "";
    int ret = run_options_parse(argc, argv, &cfg, err, sizeof(err));
    if (ret < 0 && !err[0])
        abort();
    if (ret == 0) {
        if (cfg.memory < (8u << 20) || cfg.cpus < 1 || cfg.ndisks > VM_MAX_DISKS ||
            cfg.nnets > VM_MAX_NETS) {
            fprintf(stderr, "accepted: memory %llu, cpus %u\n", (unsigned long long)cfg.memory,
                    cfg.cpus);
            abort();
        }
        for (unsigned i = 0; i < cfg.ndisks; i++)
            if (!memchr(cfg.disks[i].path, 0, sizeof(cfg.disks[i].path)) ||
                !memchr(cfg.disks[i].id, 0, sizeof(cfg.disks[i].id)))
                abort();
        if (!memchr(cfg.vsock.uds_path, 0, sizeof(cfg.vsock.uds_path)))
            abort();
    }
    free(text);
    return 0;
}
