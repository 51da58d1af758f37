#include "cli/vm_definition.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/state_dir.h"
#include "util.h"

static json_t *fail(char *err, size_t errlen, json_t *partial, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static json_t *fail(char *err, size_t errlen, json_t *partial, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    json_decref(partial);
    return NULL;
}

/* realpath() of an existing file that this user can access with `mode` (R_OK / W_OK). */
static int absolute_existing(const char *path, int mode, char out[PATH_MAX])
{
    if (!realpath(path, out))
        return -errno;
    return access(out, mode) < 0 ? -errno : 0;
}

static const char *kernel_format_name(enum kernel_format f)
{
    switch (f) {
    case KERNEL_FORMAT_BZIMAGE:
        return "bzimage";
    case KERNEL_FORMAT_ELF:
        return "elf";
    case KERNEL_FORMAT_RAW:
        return "raw";
    default:
        return NULL;
    }
}

static json_t *boot_source(const struct vm_config *cfg, char *err, size_t errlen)
{
    char path[PATH_MAX];
    json_t *boot = json_object();
    int ret = absolute_existing(cfg->kernel_path, R_OK, path);
    if (ret < 0)
        return fail(err, errlen, boot, "kernel '%s': %s", cfg->kernel_path, strerror(-ret));
    json_object_set_new(boot, "kernel_image_path", json_string(path));
    if (cfg->initrd_path) {
        ret = absolute_existing(cfg->initrd_path, R_OK, path);
        if (ret < 0)
            return fail(err, errlen, boot, "initrd '%s': %s", cfg->initrd_path, strerror(-ret));
        json_object_set_new(boot, "initrd_path", json_string(path));
    }
    json_object_set_new(boot, "boot_args", json_string(cfg->cmdline));
    const char *fmt = kernel_format_name(cfg->kernel_format);
    if (fmt) /* kiln extension; absent means "auto" */
        json_object_set_new(boot, "kiln_kernel_format", json_string(fmt));
    return boot;
}

static json_t *drives(const struct vm_config *cfg, char *err, size_t errlen)
{
    json_t *list = json_array();
    for (unsigned i = 0; i < cfg->ndisks; i++) {
        const struct disk_config *d = &cfg->disks[i];
        char path[PATH_MAX], id[32];
        int ret = absolute_existing(d->path, d->readonly ? R_OK : R_OK | W_OK, path);
        if (ret < 0)
            return fail(err, errlen, list, "disk '%s': %s", d->path, strerror(-ret));
        /* Firecracker's drive_id names the drive; kiln's id= (the guest-visible serial) is it. */
        if (d->id[0] && vm_name_check(d->id) < 0) /* it becomes a segment of the API's URL */
            return fail(err, errlen, list,
                        "disk '%s': id '%s': use A-Z a-z 0-9 _ . - (not starting with . or -)",
                        d->path, d->id);
        if (d->id[0])
            snprintf(id, sizeof(id), "%s", d->id);
        else
            snprintf(id, sizeof(id), "disk%u", i);
        /* Firecracker's cache_type has no O_DIRECT mode, so the API cannot express it. */
        if (d->cache == DISK_CACHE_NONE)
            return fail(err, errlen, list,
                        "disk '%s': cache=none is only available to 'kiln run', not through "
                        "the API that 'kiln start' uses",
                        d->path);
        json_array_append_new(list,
                              json_pack("{s:s, s:s, s:b, s:b}", "drive_id", id, "path_on_host",
                                        path, "is_root_device", 0, "is_read_only", d->readonly));
    }
    return list;
}

static json_t *hostfwd_list(const struct net_config *n)
{
    json_t *list = json_array();
    for (unsigned i = 0; i < n->nhostfwd; i++) {
        const struct net_hostfwd *f = &n->hostfwd[i];
        char addr[16] = "", rule[64];
        if (f->host_addr)
            snprintf(addr, sizeof(addr), "%u.%u.%u.%u", f->host_addr >> 24,
                     (f->host_addr >> 16) & 255, (f->host_addr >> 8) & 255, f->host_addr & 255);
        snprintf(rule, sizeof(rule), "%s:%s:%u-:%u", f->udp ? "udp" : "tcp", addr, f->host_port,
                 f->guest_port);
        json_array_append_new(list, json_string(rule));
    }
    return list;
}

static json_t *network_interfaces(const struct vm_config *cfg)
{
    json_t *list = json_array();
    for (unsigned i = 0; i < cfg->nnets; i++) {
        const struct net_config *n = &cfg->nets[i];
        char id[16];
        snprintf(id, sizeof(id), "eth%u", i);
        json_t *nic = json_pack("{s:s}", "iface_id", id);
        if (n->backend == NET_TAP)
            json_object_set_new(nic, "host_dev_name", json_string(n->ifname));
        else /* kiln extension: user-mode networking instead of a tap device */
            json_object_set_new(nic, "kiln_user_net",
                                json_pack("{s:o}", "hostfwd", hostfwd_list(n)));
        if (n->has_mac) {
            char mac[18];
            const uint8_t *m = n->mac;
            snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
                     m[4], m[5]);
            json_object_set_new(nic, "guest_mac", json_string(mac));
        }
        json_array_append_new(list, nic);
    }
    return list;
}

static json_t *vsock(const struct vm_config *cfg, char *err, size_t errlen)
{
    const struct vsock_config *v = &cfg->vsock;
    char path[PATH_MAX];
    /* The VMM creates the socket: make its directory absolute, the name stays. */
    const char *slash = strrchr(v->uds_path, '/');
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - v->uds_path) : 1,
             slash ? (slash == v->uds_path ? "/" : v->uds_path) : ".");
    if (!realpath(dir, path))
        return fail(err, errlen, NULL, "--vsock uds=%s: directory: %s", v->uds_path,
                    strerror(errno));
    char full[PATH_MAX + 128];
    int n = snprintf(full, sizeof(full), "%s/%s", strcmp(path, "/") ? path : "",
                     slash ? slash + 1 : v->uds_path);
    if (n < 0 || (size_t)n >= sizeof(v->uds_path))
        return fail(err, errlen, NULL, "--vsock uds=%s: absolute path too long for a socket",
                    v->uds_path);
    return json_pack("{s:I, s:s}", "guest_cid", (json_int_t)v->guest_cid, "uds_path", full);
}

static json_t *machine_config(const struct vm_config *cfg, char *err, size_t errlen)
{
    if (cfg->memory % MiB)
        return fail(err, errlen, NULL, "--memory: must be a whole number of MiB");
    return json_pack("{s:i, s:I}", "vcpu_count", (int)cfg->cpus, "mem_size_mib",
                     (json_int_t)(cfg->memory / MiB));
}

/* Process-level settings that go on `kiln run`'s command line, not through the API. */
static json_t *kiln_extras(const struct vm_config *cfg)
{
    json_t *extra = json_object();
    if (cfg->no_reboot)
        json_object_set_new(extra, "no_reboot", json_true());
    if (cfg->console == CONSOLE_VIRTIO)
        json_object_set_new(extra, "console", json_string("virtio"));
    return extra;
}

/*
 * --jail: `kiln start` runs the VM jailed (kiln run --jail with --api-sock). The limits
 * (--jail-cgroup, --jail-rlimit) are not stored yet: refused rather than dropped.
 */
static int jail_extra(const struct vm_config *cfg, json_t *extra, char *err, size_t errlen)
{
    const struct jail_config *j = &cfg->jail;
    if (!j->dir)
        return 0;
    if (j->cgroup.enabled || j->rlimit.nofile != JAIL_DEFAULT_NOFILE || j->rlimit.fsize ||
        j->rlimit.nproc) {
        fail(err, errlen, NULL,
             "--jail-cgroup and --jail-rlimit are not stored in definitions yet (use 'kiln "
             "run --jail')");
        return -EINVAL;
    }
    char dir[PATH_MAX];
    if (!realpath(j->dir, dir)) {
        fail(err, errlen, NULL, "--jail %s: %s", j->dir, strerror(errno));
        return -EINVAL;
    }
    json_t *jail = json_pack("{s:s, s:i, s:i}", "dir", dir, "uid", (json_int_t)j->uid, "gid",
                             (json_int_t)j->gid);
    if (jail && j->netns)
        json_object_set_new(jail, "netns", json_string(j->netns));
    json_object_set_new(extra, "jail", jail);
    return 0;
}

json_t *vm_definition_from_config(const struct vm_config *cfg, char *err, size_t errlen)
{
    if (!cfg->kernel_path)
        return fail(err, errlen, NULL, "--kernel is required");
    if (cfg->console_log || cfg->console_sock || cfg->api_sock || cfg->instance_id)
        return fail(err, errlen, NULL,
                    "--console-log, --console-sock, --api-sock and --id are set by 'kiln start' "
                    "(files in the VM's directory, the VM's name)");
    if (cfg->config_file)
        return fail(err, errlen, NULL,
                    "--config-file: options define the VM; a Firecracker config file can be "
                    "booted with 'kiln run --config-file'");
    json_t *def = json_object();
    json_t *part;
    if (!(part = boot_source(cfg, err, errlen)))
        goto failed;
    json_object_set_new(def, "boot-source", part);
    if (!(part = machine_config(cfg, err, errlen)))
        goto failed;
    json_object_set_new(def, "machine-config", part);
    if (!(part = drives(cfg, err, errlen)))
        goto failed;
    json_object_set_new(def, "drives", part);
    json_object_set_new(def, "network-interfaces", network_interfaces(cfg));
    if (cfg->vsock.enabled) {
        if (!(part = vsock(cfg, err, errlen)))
            goto failed;
        json_object_set_new(def, "vsock", part);
    }
    if (cfg->rng)
        json_object_set_new(def, "entropy", json_object());
    part = kiln_extras(cfg);
    if (jail_extra(cfg, part, err, errlen) < 0) {
        json_decref(part);
        goto failed;
    }
    if (json_object_size(part))
        json_object_set_new(def, "kiln", part);
    else
        json_decref(part);
    return def;
failed:
    json_decref(def);
    return NULL;
}

void vm_definition_summarize(const json_t *def, struct vm_definition_summary *sum)
{
    json_t *mc = json_object_get(def, "machine-config");
    json_int_t cpus = json_integer_value(json_object_get(mc, "vcpu_count"));
    json_int_t mem = json_integer_value(json_object_get(mc, "mem_size_mib"));
    sum->vcpus = cpus > 0 && cpus <= VM_MAX_CPUS ? (unsigned)cpus : 0;
    sum->mem_mib = mem > 0 ? (unsigned long long)mem : 0;
}

/* ---- back to options ---- */

static int push_arg(struct vm_device_args *a, const char *opt, const char *value)
{
    if (a->argc + 2 > VM_DEVICE_ARGS_MAX)
        return -E2BIG;
    char *o = strdup(opt), *v = value ? strdup(value) : NULL;
    if (!o || (value && !v)) {
        free(o);
        return -ENOMEM;
    }
    a->argv[a->argc++] = o;
    if (v)
        a->argv[a->argc++] = v;
    return 0;
}

/* "disk<i>" is the name drives() makes up for a disk without id=: no serial to give back. */
static bool made_up_drive_id(const char *id, size_t index)
{
    char made[32];
    snprintf(made, sizeof(made), "disk%zu", index);
    return strcmp(id, made) == 0;
}

static int disk_args(const json_t *def, struct vm_device_args *a)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(def, "drives"), i, d) {
        const char *path = json_string_value(json_object_get(d, "path_on_host"));
        const char *id = json_string_value(json_object_get(d, "drive_id"));
        if (!path)
            return -EINVAL;
        char opt[PATH_MAX + 64];
        int n = snprintf(opt, sizeof(opt), "%s%s%s%s", path,
                         json_is_true(json_object_get(d, "is_read_only")) ? ",ro" : "",
                         id && !made_up_drive_id(id, i) ? ",id=" : "",
                         id && !made_up_drive_id(id, i) ? id : "");
        if (n < 0 || (size_t)n >= sizeof(opt))
            return -ENAMETOOLONG;
        int ret = push_arg(a, "--disk", opt);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int net_args(const json_t *def, struct vm_device_args *a)
{
    size_t i, j;
    json_t *nic, *rule;
    json_array_foreach(json_object_get(def, "network-interfaces"), i, nic) {
        char opt[1024];
        size_t len;
        const char *tap = json_string_value(json_object_get(nic, "host_dev_name"));
        json_t *user = json_object_get(nic, "kiln_user_net");
        if (tap)
            len = (size_t)snprintf(opt, sizeof(opt), "tap=%s", tap);
        else if (user)
            len = (size_t)snprintf(opt, sizeof(opt), "user");
        else
            return -EINVAL;
        json_array_foreach(json_object_get(user, "hostfwd"), j, rule)
            if (json_is_string(rule) && len < sizeof(opt))
                len += (size_t)snprintf(opt + len, sizeof(opt) - len, ",hostfwd=%s",
                                        json_string_value(rule));
        const char *mac = json_string_value(json_object_get(nic, "guest_mac"));
        if (mac && len < sizeof(opt))
            len += (size_t)snprintf(opt + len, sizeof(opt) - len, ",mac=%s", mac);
        if (len >= sizeof(opt))
            return -ENAMETOOLONG;
        int ret = push_arg(a, "--net", opt);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int other_device_args(const json_t *def, struct vm_device_args *a)
{
    json_t *vsock = json_object_get(def, "vsock");
    int ret = 0;
    if (vsock) {
        const char *uds = json_string_value(json_object_get(vsock, "uds_path"));
        char opt[PATH_MAX + 64];
        int n = snprintf(opt, sizeof(opt), "cid=%lld,uds=%s",
                         (long long)json_integer_value(json_object_get(vsock, "guest_cid")),
                         uds ? uds : "");
        if (!uds || n < 0 || (size_t)n >= sizeof(opt))
            return -EINVAL;
        ret = push_arg(a, "--vsock", opt);
    }
    if (ret == 0 && json_object_get(def, "entropy"))
        ret = push_arg(a, "--rng", NULL);
    const char *console = json_string_value(json_object_get(json_object_get(def, "kiln"), "console"));
    if (ret == 0 && console && strcmp(console, "virtio") == 0)
        ret = push_arg(a, "--console", "virtio");
    return ret;
}

int vm_definition_device_args(const json_t *def, struct vm_device_args *out, char *err,
                              size_t errlen)
{
    out->argc = 0;
    int ret = disk_args(def, out);
    if (ret == 0)
        ret = net_args(def, out);
    if (ret == 0)
        ret = other_device_args(def, out);
    if (ret < 0) {
        snprintf(err, errlen, "its devices cannot be given back as options (%s)",
                 ret == -E2BIG ? "too many" : strerror(-ret));
        vm_device_args_free(out);
    }
    return ret;
}

void vm_device_args_free(struct vm_device_args *a)
{
    for (unsigned i = 0; i < a->argc; i++)
        free(a->argv[i]);
    a->argc = 0;
}
