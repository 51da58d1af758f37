#include "api/vm_spec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

void vm_spec_init(struct vm_spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    spec->cfg = (struct vm_config){
        .kernel_format = KERNEL_FORMAT_AUTO,
        .memory = VM_DEFAULT_MEMORY,
        .cpus = 1,
    };
    vm_spec_set_string(spec, &spec->cfg.cmdline, VM_DEFAULT_CMDLINE);
}

/* The buffer that backs one of the spec's string fields. */
static char *spec_buffer(struct vm_spec *spec, const char **field, size_t *len)
{
    if (field == &spec->cfg.kernel_path) {
        *len = sizeof(spec->kernel_path);
        return spec->kernel_path;
    }
    if (field == &spec->cfg.initrd_path) {
        *len = sizeof(spec->initrd_path);
        return spec->initrd_path;
    }
    if (field == &spec->cfg.cmdline) {
        *len = sizeof(spec->cmdline);
        return spec->cmdline;
    }
    if (field == &spec->cfg.console_log) {
        *len = sizeof(spec->console_log);
        return spec->console_log;
    }
    return NULL;
}

int vm_spec_set_string(struct vm_spec *spec, const char **field, const char *value)
{
    size_t len;
    char *buf = spec_buffer(spec, field, &len);
    if (!buf)
        return -EINVAL;
    if (!value) {
        buf[0] = '\0';
        *field = NULL;
        return 0;
    }
    if (strlen(value) >= len)
        return -ENAMETOOLONG;
    memmove(buf, value, strlen(value) + 1);
    *field = buf;
    return 0;
}

int vm_spec_from_config(struct vm_spec *spec, const struct vm_config *cfg)
{
    vm_spec_init(spec);
    struct vm_config strings = *cfg;
    spec->cfg = *cfg;
    int ret = vm_spec_set_string(spec, &spec->cfg.kernel_path, strings.kernel_path);
    ret = ret ?: vm_spec_set_string(spec, &spec->cfg.initrd_path, strings.initrd_path);
    ret = ret ?: vm_spec_set_string(spec, &spec->cfg.cmdline, strings.cmdline);
    ret = ret ?: vm_spec_set_string(spec, &spec->cfg.console_log, strings.console_log);
    for (unsigned i = 0; i < cfg->ndisks; i++) {
        if (cfg->disks[i].id[0])
            snprintf(spec->drive_ids[i], sizeof(spec->drive_ids[i]), "%s", cfg->disks[i].id);
        else
            snprintf(spec->drive_ids[i], sizeof(spec->drive_ids[i]), "drive%u", i);
    }
    for (unsigned i = 0; i < cfg->nnets; i++)
        snprintf(spec->iface_ids[i], sizeof(spec->iface_ids[i]), "eth%u", i);
    return ret;
}

void vm_spec_copy(struct vm_spec *dst, const struct vm_spec *src)
{
    if (dst == src)
        return;
    memcpy(dst, src, sizeof(*dst));
    /* Re-point the strings at dst's own buffers. */
    dst->cfg.kernel_path = src->cfg.kernel_path ? dst->kernel_path : NULL;
    dst->cfg.initrd_path = src->cfg.initrd_path ? dst->initrd_path : NULL;
    dst->cfg.cmdline = src->cfg.cmdline ? dst->cmdline : NULL;
    dst->cfg.console_log = src->cfg.console_log ? dst->console_log : NULL;
}

/* Appends `word` to a space-separated line. Returns 0 or -E2BIG. */
static int append_word(char *line, size_t len, const char *word, size_t wlen)
{
    size_t used = strlen(line);
    size_t need = used + (used ? 1 : 0) + wlen + 1;
    if (need > len)
        return -E2BIG;
    if (used)
        line[used++] = ' ';
    memcpy(line + used, word, wlen);
    line[used + wlen] = '\0';
    return 0;
}

static bool word_is(const char *word, size_t len, const char *what)
{
    return strlen(what) == len && memcmp(word, what, len) == 0;
}

static int adapt_cmdline(const char *in, bool has_root, bool root_ro, char *out, size_t len,
                         bool *dropped_pci_off)
{
    bool names_root = false;
    out[0] = '\0';
    *dropped_pci_off = false;
    for (const char *p = in ? in : ""; *p;) {
        size_t skip = strspn(p, " \t\n");
        p += skip;
        size_t wlen = strcspn(p, " \t\n");
        if (wlen == 0)
            break;
        if (word_is(p, wlen, "pci=off")) {
            *dropped_pci_off = true;
        } else {
            if (wlen >= 5 && memcmp(p, "root=", 5) == 0)
                names_root = true;
            if (append_word(out, len, p, wlen) < 0)
                return -E2BIG;
        }
        p += wlen;
    }
    if (has_root && !names_root) {
        const char *root = root_ro ? "root=/dev/vda ro" : "root=/dev/vda rw";
        if (append_word(out, len, root, strlen(root)) < 0)
            return -E2BIG;
    }
    return 0;
}

int vm_spec_boot_config(const struct vm_spec *spec, struct vm_config *out, char *cmdline,
                        size_t cmdline_len, bool *dropped_pci_off)
{
    *out = spec->cfg;
    int root = -1;
    for (unsigned i = 0; i < spec->cfg.ndisks; i++)
        if (spec->drive_is_root[i])
            root = (int)i;
    if (root > 0) {
        /* Move the root drive to the front; the others keep their order. */
        struct disk_config disk = spec->cfg.disks[root];
        memmove(&out->disks[1], &out->disks[0], (size_t)root * sizeof(out->disks[0]));
        out->disks[0] = disk;
    }
    bool root_ro = root >= 0 && spec->cfg.disks[root].readonly;
    int ret = adapt_cmdline(spec->cfg.cmdline, root >= 0, root_ro, cmdline, cmdline_len,
                            dropped_pci_off);
    if (ret < 0)
        return ret;
    out->cmdline = cmdline;
    return 0;
}
