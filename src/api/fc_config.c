#include "api/fc_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/vm_spec.h"
#include "arch/x86/layout.h"
#include "cli/device_options.h"
#include "cli/run_options.h"
#include "util.h"

/* Largest guest kiln takes: 16 TiB, far past any host; the real check is at start. */
#define FC_MAX_MEM_MIB (16ULL << 20)

json_t *fc_parse_object(const char *body, size_t len, char *err, size_t errlen)
{
    if (len > FC_MAX_BODY) {
        invalid(err, errlen, "request body of %zu bytes is larger than %d", len, FC_MAX_BODY);
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        invalid(err, errlen, "malformed JSON: %s (line %d, column %d)", jerr.text, jerr.line,
             jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        invalid(err, errlen, "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* ---- schema checks: every key known, every value of its type ---- */

enum field_type { F_STRING, F_BOOL, F_UINT, F_OBJECT, F_ARRAY, F_ANY };

struct field {
    const char *name;
    enum field_type type;
    bool required;
};

static const char *type_name(enum field_type t)
{
    static const char *const names[] = {"a string", "a boolean", "a non-negative integer",
                                        "an object", "an array", "a value"};
    return names[t];
}

static bool type_matches(json_t *v, enum field_type t)
{
    switch (t) {
    case F_STRING:
        return json_is_string(v);
    case F_BOOL:
        return json_is_boolean(v);
    case F_UINT:
        return json_is_integer(v) && json_integer_value(v) >= 0;
    case F_OBJECT:
        return json_is_object(v);
    case F_ARRAY:
        return json_is_array(v);
    case F_ANY:
        return true;
    }
    return false;
}

/*
 * Rejects what Firecracker rejects: unknown fields, wrong types, missing required fields.
 * A null value counts as absent (Firecracker's optional fields take null).
 */
static int check_object(json_t *obj, const char *what, const struct field *fields, size_t n,
                        char *err, size_t errlen)
{
    if (!json_is_object(obj))
        return invalid(err, errlen, "%s: expected a JSON object", what);
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        size_t i;
        for (i = 0; i < n; i++)
            if (strcmp(key, fields[i].name) == 0)
                break;
        if (i == n)
            return invalid(err, errlen, "%s: unknown field '%.64s'", what, key);
        if (!json_is_null(value) && !type_matches(value, fields[i].type))
            return invalid(err, errlen, "%s: '%s' must be %s", what, key,
                        type_name(fields[i].type));
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(obj, fields[i].name);
        if (fields[i].required && (!v || json_is_null(v)))
            return invalid(err, errlen, "%s: '%s' is required", what, fields[i].name);
    }
    return 0;
}

/* The value of an optional field, or NULL when absent or null. */
static json_t *opt(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v) ? v : NULL;
}

static const char *opt_string(json_t *obj, const char *key)
{
    json_t *v = opt(obj, key);
    return v ? json_string_value(v) : NULL;
}

/* Strings must be plain text: no NUL inside (jansson allows "\u0000"). */
static int check_text(json_t *obj, const char *key, const char *what, size_t max, char *err,
                      size_t errlen)
{
    json_t *v = opt(obj, key);
    if (!v)
        return 0;
    if (strlen(json_string_value(v)) != json_string_length(v))
        return invalid(err, errlen, "%s: '%s' contains a NUL character", what, key);
    if (json_string_length(v) >= max)
        return invalid(err, errlen, "%s: '%s' is longer than %zu bytes", what, key, max - 1);
    return 0;
}

/* A field Firecracker has that kiln does not implement: only its neutral value passes. */
static int unsupported_unless(json_t *obj, const char *key, const char *neutral,
                              const char *what, const char *why, char *err, size_t errlen)
{
    json_t *v = opt(obj, key);
    if (!v)
        return 0;
    if (neutral && json_is_string(v) && strcmp(json_string_value(v), neutral) == 0)
        return 0;
    if (json_is_false(v))
        return 0;
    return invalid(err, errlen, "%s: '%s' is not supported by kiln (%s)", what, key, why);
}

/* Firecracker's ids: 1-64 characters from [A-Za-z0-9_]. */
static int check_id(const char *id, const char *what, char *err, size_t errlen)
{
    size_t len = strlen(id);
    if (len == 0 || len > VM_SPEC_ID_MAX)
        return invalid(err, errlen, "%s: ids have 1 to %d characters", what, VM_SPEC_ID_MAX);
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return invalid(err, errlen, "%s: id '%.64s' may only contain A-Z, a-z, 0-9 and _", what,
                        id);
    }
    return 0;
}

static int check_path_id(const char *path_id, const char *body_id, const char *what, char *err,
                         size_t errlen)
{
    if (path_id && strcmp(path_id, body_id) != 0)
        return invalid(err, errlen, "%s: the id in the path does not match the id in the body",
                    what);
    return check_id(body_id, what, err, errlen);
}

/* ---- PUT /boot-source ---- */

int fc_put_boot_source(struct vm_spec *spec, json_t *body, char *err, size_t errlen)
{
    static const struct field fields[] = {
        {"kernel_image_path", F_STRING, true},
        {"initrd_path", F_STRING, false},
        {"boot_args", F_STRING, false},
        {"kiln_kernel_format", F_STRING, false}, /* extension: raw micro-guests */
    };
    const char *what = "boot-source";
    int ret = check_object(body, what, fields, ARRAY_SIZE(fields), err, errlen);
    ret = ret ?: check_text(body, "kernel_image_path", what, VM_SPEC_PATH_MAX, err, errlen);
    ret = ret ?: check_text(body, "initrd_path", what, VM_SPEC_PATH_MAX, err, errlen);
    ret = ret ?: check_text(body, "boot_args", what, VM_SPEC_CMDLINE_MAX, err, errlen);
    ret = ret ?: check_text(body, "kiln_kernel_format", what, 16, err, errlen);
    if (ret < 0)
        return ret;
    const char *kernel = opt_string(body, "kernel_image_path");
    if (!kernel[0])
        return invalid(err, errlen, "%s: 'kernel_image_path' is empty", what);
    enum kernel_format format = KERNEL_FORMAT_AUTO;
    const char *fmt = opt_string(body, "kiln_kernel_format");
    if (fmt && kernel_format_parse(fmt, &format) < 0)
        return invalid(err, errlen, "%s: 'kiln_kernel_format' must be auto, bzimage, elf or raw",
                    what);
    const char *initrd = opt_string(body, "initrd_path");
    const char *args = opt_string(body, "boot_args");
    /* Firecracker's default command line when boot_args is absent; kiln's is equivalent. */
    vm_spec_set_string(spec, &spec->cfg.kernel_path, kernel);
    vm_spec_set_string(spec, &spec->cfg.initrd_path, initrd && initrd[0] ? initrd : NULL);
    vm_spec_set_string(spec, &spec->cfg.cmdline, args ? args : VM_DEFAULT_CMDLINE);
    spec->cfg.kernel_format = format;
    return 0;
}

/* ---- PUT/PATCH /machine-config ---- */

int fc_put_machine_config(struct vm_spec *spec, json_t *body, bool patch, char *err,
                          size_t errlen)
{
    static const struct field fields[] = {
        {"vcpu_count", F_UINT, true},     {"mem_size_mib", F_UINT, true},
        {"smt", F_BOOL, false},           {"track_dirty_pages", F_BOOL, false},
        {"cpu_template", F_ANY, false},   {"huge_pages", F_STRING, false},
    };
    struct field checked[ARRAY_SIZE(fields)];
    memcpy(checked, fields, sizeof(fields));
    for (size_t i = 0; patch && i < ARRAY_SIZE(checked); i++)
        checked[i].required = false;
    const char *what = "machine-config";
    int ret = check_object(body, what, checked, ARRAY_SIZE(checked), err, errlen);
    ret = ret ?: unsupported_unless(body, "smt", NULL, what,
                                    "each vCPU is presented as a core of its own", err, errlen);
    ret = ret ?: unsupported_unless(body, "cpu_template", "None", what,
                                    "the guest sees the host's CPUID as KVM reports it", err,
                                    errlen);
    ret = ret ?: unsupported_unless(body, "huge_pages", "None", what,
                                    "guest memory uses normal pages", err, errlen);
    if (ret < 0)
        return ret;
    json_t *cpus = opt(body, "vcpu_count"), *mem = opt(body, "mem_size_mib");
    if (cpus && (json_integer_value(cpus) < 1 || json_integer_value(cpus) > VM_MAX_CPUS))
        return invalid(err, errlen, "%s: 'vcpu_count' must be from 1 to %d", what, VM_MAX_CPUS);
    uint64_t min_mib = X86_MIN_MEMORY >> 20;
    if (mem && ((uint64_t)json_integer_value(mem) < min_mib ||
                (uint64_t)json_integer_value(mem) > FC_MAX_MEM_MIB))
        return invalid(err, errlen, "%s: 'mem_size_mib' must be from %llu to %llu", what,
                    (unsigned long long)min_mib, (unsigned long long)FC_MAX_MEM_MIB);
    json_t *track = opt(body, "track_dirty_pages");
    if (track)
        spec->track_dirty_pages = json_is_true(track);
    if (cpus)
        spec->cfg.cpus = (unsigned)json_integer_value(cpus);
    if (mem)
        spec->cfg.memory = (uint64_t)json_integer_value(mem) << 20;
    return 0;
}

/* ---- PUT /drives/{drive_id} ---- */

static int drive_fields(json_t *body, char *err, size_t errlen)
{
    static const struct field fields[] = {
        {"drive_id", F_STRING, true},     {"path_on_host", F_STRING, true},
        {"is_root_device", F_BOOL, true}, {"is_read_only", F_BOOL, false},
        {"cache_type", F_STRING, false},  {"io_engine", F_STRING, false},
        {"partuuid", F_STRING, false},    {"rate_limiter", F_ANY, false},
        {"socket", F_STRING, false},
    };
    const char *what = "drive";
    int ret = check_object(body, what, fields, ARRAY_SIZE(fields), err, errlen);
    ret = ret ?: check_text(body, "drive_id", what, VM_SPEC_ID_MAX + 1, err, errlen);
    ret = ret ?: check_text(body, "path_on_host", what, sizeof(((struct disk_config *)0)->path),
                            err, errlen);
    ret = ret ?: unsupported_unless(body, "partuuid", NULL, what,
                                    "the root device is named /dev/vda", err, errlen);
    ret = ret ?: unsupported_unless(body, "rate_limiter", NULL, what, "no rate limiting", err,
                                    errlen);
    ret = ret ?: unsupported_unless(body, "socket", NULL, what, "no vhost-user", err, errlen);
    return ret;
}

static int drive_cache(json_t *body, enum disk_cache *cache, char *err, size_t errlen)
{
    const char *c = opt_string(body, "cache_type");
    const char *io = opt_string(body, "io_engine");
    /*
     * Firecracker's "Unsafe" ignores guest flushes; kiln always honours them, which is at
     * least as safe, so both map to kiln's host-page-cache mode.
     */
    if (c && strcmp(c, "Unsafe") != 0 && strcmp(c, "Writeback") != 0)
        return invalid(err, errlen, "drive: 'cache_type' must be Unsafe or Writeback");
    /* kiln's disk I/O is always asynchronous (io_uring or a thread pool). */
    if (io && strcmp(io, "Sync") != 0 && strcmp(io, "Async") != 0)
        return invalid(err, errlen, "drive: 'io_engine' must be Sync or Async");
    *cache = DISK_CACHE_WRITEBACK;
    return 0;
}

int fc_put_drive(struct vm_spec *spec, const char *path_id, json_t *body, char *err,
                 size_t errlen)
{
    int ret = drive_fields(body, err, errlen);
    if (ret < 0)
        return ret;
    const char *id = opt_string(body, "drive_id");
    ret = check_path_id(path_id, id, "drive", err, errlen);
    if (ret < 0)
        return ret;
    struct disk_config disk = {0};
    ret = drive_cache(body, &disk.cache, err, errlen);
    if (ret < 0)
        return ret;
    const char *path = opt_string(body, "path_on_host");
    if (!path[0])
        return invalid(err, errlen, "drive %s: 'path_on_host' is empty", id);
    snprintf(disk.path, sizeof(disk.path), "%s", path);
    disk.readonly = json_is_true(opt(body, "is_read_only"));
    /* Firecracker reports the drive_id as the disk's serial (virtio-blk GET_ID, 20 bytes). */
    snprintf(disk.id, sizeof(disk.id), "%.20s", id);
    bool root = json_is_true(opt(body, "is_root_device"));

    unsigned slot;
    for (slot = 0; slot < spec->cfg.ndisks; slot++)
        if (strcmp(spec->drive_ids[slot], id) == 0)
            break;
    if (slot == spec->cfg.ndisks && slot >= VM_MAX_DISKS)
        return invalid(err, errlen, "drive %s: at most %d drives", id, VM_MAX_DISKS);
    for (unsigned i = 0; root && i < spec->cfg.ndisks; i++)
        if (i != slot && spec->drive_is_root[i])
            return invalid(err, errlen, "drive %s: drive %s is already the root device", id,
                        spec->drive_ids[i]);
    spec->cfg.disks[slot] = disk;
    spec->drive_is_root[slot] = root;
    snprintf(spec->drive_ids[slot], sizeof(spec->drive_ids[slot]), "%s", id);
    if (slot == spec->cfg.ndisks)
        spec->cfg.ndisks++;
    return 0;
}

/* ---- PUT /network-interfaces/{iface_id} ---- */

/* kiln extension: "kiln_user_net": {"hostfwd": ["tcp::2222-:22", ...]} */
static int user_net(json_t *user, struct net_config *net, char *err, size_t errlen)
{
    static const struct field fields[] = {{"hostfwd", F_ARRAY, false}};
    int ret = check_object(user, "kiln_user_net", fields, ARRAY_SIZE(fields), err, errlen);
    if (ret < 0)
        return ret;
    net->backend = NET_USER;
    json_t *rules = opt(user, "hostfwd"), *rule;
    size_t i;
    if (rules && json_array_size(rules) > VM_MAX_HOSTFWD)
        return invalid(err, errlen, "kiln_user_net: at most %d hostfwd rules", VM_MAX_HOSTFWD);
    json_array_foreach(rules, i, rule)
    {
        if (!json_is_string(rule) ||
            parse_hostfwd(json_string_value(rule), &net->hostfwd[net->nhostfwd]) < 0)
            return invalid(err, errlen,
                        "kiln_user_net: hostfwd rules are strings such as "
                        "\"tcp::2222-:22\" (host port to guest port)");
        net->nhostfwd++;
    }
    return 0;
}

static int net_fields(json_t *body, char *err, size_t errlen)
{
    static const struct field fields[] = {
        {"iface_id", F_STRING, true},        {"host_dev_name", F_STRING, false},
        {"guest_mac", F_STRING, false},      {"rx_rate_limiter", F_ANY, false},
        {"tx_rate_limiter", F_ANY, false},   {"kiln_user_net", F_OBJECT, false},
    };
    const char *what = "network-interface";
    int ret = check_object(body, what, fields, ARRAY_SIZE(fields), err, errlen);
    ret = ret ?: check_text(body, "iface_id", what, VM_SPEC_ID_MAX + 1, err, errlen);
    ret = ret ?: check_text(body, "host_dev_name", what, 64, err, errlen);
    ret = ret ?: check_text(body, "guest_mac", what, 32, err, errlen);
    ret = ret ?: unsupported_unless(body, "rx_rate_limiter", NULL, what, "no rate limiting",
                                    err, errlen);
    ret = ret ?: unsupported_unless(body, "tx_rate_limiter", NULL, what, "no rate limiting",
                                    err, errlen);
    return ret;
}

int fc_put_network_interface(struct vm_spec *spec, const char *path_id, json_t *body, char *err,
                             size_t errlen)
{
    int ret = net_fields(body, err, errlen);
    if (ret < 0)
        return ret;
    const char *id = opt_string(body, "iface_id");
    ret = check_path_id(path_id, id, "network-interface", err, errlen);
    if (ret < 0)
        return ret;
    struct net_config net = {0};
    const char *tap = opt_string(body, "host_dev_name");
    json_t *user = opt(body, "kiln_user_net");
    if (!tap == !user)
        return invalid(err, errlen,
                    "network-interface %s: give either 'host_dev_name' (a tap device) or "
                    "'kiln_user_net' (user-mode networking)",
                    id);
    if (tap) {
        if (!tap[0] || strlen(tap) >= sizeof(net.ifname))
            return invalid(err, errlen, "network-interface %s: interface names have 1 to 15 bytes",
                        id);
        net.backend = NET_TAP;
        snprintf(net.ifname, sizeof(net.ifname), "%s", tap);
    } else if ((ret = user_net(user, &net, err, errlen)) < 0) {
        return ret;
    }
    const char *mac = opt_string(body, "guest_mac");
    if (mac && parse_mac(mac, net.mac) < 0)
        return invalid(err, errlen,
                    "network-interface %s: malformed guest_mac '%.32s' (expected "
                    "06:00:ac:10:00:02, not multicast)",
                    id, mac);
    net.has_mac = mac != NULL;

    unsigned slot;
    for (slot = 0; slot < spec->cfg.nnets; slot++)
        if (strcmp(spec->iface_ids[slot], id) == 0)
            break;
    if (slot == spec->cfg.nnets && slot >= VM_MAX_NETS)
        return invalid(err, errlen, "network-interface %s: at most %d interfaces", id, VM_MAX_NETS);
    spec->cfg.nets[slot] = net;
    snprintf(spec->iface_ids[slot], sizeof(spec->iface_ids[slot]), "%s", id);
    if (slot == spec->cfg.nnets)
        spec->cfg.nnets++;
    return 0;
}

/* ---- PUT /vsock, PUT /entropy ---- */

int fc_put_vsock(struct vm_spec *spec, json_t *body, char *err, size_t errlen)
{
    static const struct field fields[] = {
        {"guest_cid", F_UINT, true},
        {"uds_path", F_STRING, true},
        {"vsock_id", F_STRING, false}, /* deprecated in Firecracker; ignored */
    };
    const char *what = "vsock";
    int ret = check_object(body, what, fields, ARRAY_SIZE(fields), err, errlen);
    ret = ret ?: check_text(body, "uds_path", what, 91, err, errlen);
    ret = ret ?: check_text(body, "vsock_id", what, VM_SPEC_ID_MAX + 1, err, errlen);
    if (ret < 0)
        return ret;
    json_int_t cid = json_integer_value(opt(body, "guest_cid"));
    /* 0-2 are reserved (hypervisor, local, host); as --vsock. */
    if (cid < 3 || cid > 0xfffffffeLL)
        return invalid(err, errlen, "vsock: 'guest_cid' must be from 3 to 4294967294");
    const char *uds = opt_string(body, "uds_path");
    if (!uds[0])
        return invalid(err, errlen, "vsock: 'uds_path' is empty");
    struct vsock_config *v = &spec->cfg.vsock;
    *v = (struct vsock_config){.enabled = true, .guest_cid = (uint32_t)cid};
    snprintf(v->uds_path, sizeof(v->uds_path), "%s", uds);
    return 0;
}

int fc_put_entropy(struct vm_spec *spec, json_t *body, char *err, size_t errlen)
{
    static const struct field fields[] = {{"rate_limiter", F_ANY, false}};
    int ret = check_object(body, "entropy", fields, ARRAY_SIZE(fields), err, errlen);
    ret = ret ?: unsupported_unless(body, "rate_limiter", NULL, "entropy", "no rate limiting",
                                    err, errlen);
    if (ret < 0)
        return ret;
    spec->cfg.rng = true;
    return 0;
}

/* ---- config files ---- */

static int apply_array(struct vm_spec *spec, json_t *arr, const char *what,
                       int (*put)(struct vm_spec *, const char *, json_t *, char *, size_t),
                       char *err, size_t errlen)
{
    if (!arr)
        return 0;
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item)
    {
        int ret = put(spec, NULL, item, err, errlen);
        if (ret < 0)
            return ret;
    }
    (void)what;
    return 0;
}

int fc_config_apply(struct vm_spec *out, json_t *root, char *err, size_t errlen)
{
    static const struct field fields[] = {
        {"boot-source", F_OBJECT, true},
        {"machine-config", F_OBJECT, false},
        {"drives", F_ARRAY, false},
        {"network-interfaces", F_ARRAY, false},
        {"vsock", F_OBJECT, false},
        {"entropy", F_OBJECT, false},
        /* Firecracker sections kiln has no counterpart for: accepted only when null. */
        {"logger", F_ANY, false},
        {"metrics", F_ANY, false},
        {"mmds-config", F_ANY, false},
        {"balloon", F_ANY, false},
        {"cpu-config", F_ANY, false},
    };
    const char *what = "config file";
    int ret = check_object(root, what, fields, ARRAY_SIZE(fields), err, errlen);
    static const char *const absent[] = {"logger", "metrics", "mmds-config", "balloon",
                                         "cpu-config"};
    for (size_t i = 0; ret == 0 && i < ARRAY_SIZE(absent); i++)
        if (opt(root, absent[i]))
            ret = invalid(err, errlen, "config file: '%s' is not supported by kiln", absent[i]);
    if (ret < 0)
        return ret;
    /* Build on a copy so that a file rejected halfway leaves `out` untouched. */
    struct vm_spec *spec = malloc(sizeof(*spec));
    if (!spec)
        return invalid(err, errlen, "out of memory");
    vm_spec_copy(spec, out);
    json_t *machine = opt(root, "machine-config"), *vsock = opt(root, "vsock"),
           *entropy = opt(root, "entropy");
    ret = fc_put_boot_source(spec, opt(root, "boot-source"), err, errlen);
    ret = ret ?: machine ? fc_put_machine_config(spec, machine, false, err, errlen) : 0;
    ret = ret ?: apply_array(spec, opt(root, "drives"), "drives", fc_put_drive, err, errlen);
    ret = ret ?: apply_array(spec, opt(root, "network-interfaces"), "network-interfaces",
                             fc_put_network_interface, err, errlen);
    ret = ret ?: vsock ? fc_put_vsock(spec, vsock, err, errlen) : 0;
    ret = ret ?: entropy ? fc_put_entropy(spec, entropy, err, errlen) : 0;
    if (ret == 0)
        vm_spec_copy(out, spec);
    free(spec);
    return ret;
}

int fc_config_load_file(struct vm_spec *spec, const char *path, char *err, size_t errlen)
{
    uint8_t *data;
    size_t size;
    int ret = read_file(path, &data, &size, FC_MAX_CONFIG_FILE);
    if (ret == -EFBIG)
        return invalid(err, errlen, "config file '%s': larger than %d bytes", path,
                    FC_MAX_CONFIG_FILE);
    if (ret < 0)
        return invalid(err, errlen, "config file '%s': %s", path, strerror(-ret));
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    free(data);
    if (!root)
        return invalid(err, errlen, "config file '%s': malformed JSON: %s (line %d)", path,
                    jerr.text, jerr.line);
    char why[256];
    ret = fc_config_apply(spec, root, why, sizeof(why));
    json_decref(root);
    if (ret < 0)
        return invalid(err, errlen, "config file '%s': %s", path, why);
    return 0;
}

/* ---- GET: the configuration back in Firecracker's schema ---- */

json_t *fc_machine_config_json(const struct vm_spec *spec)
{
    return json_pack("{s:I, s:I, s:b, s:b, s:s}", "vcpu_count", (json_int_t)spec->cfg.cpus,
                     "mem_size_mib", (json_int_t)(spec->cfg.memory >> 20), "smt", 0,
                     "track_dirty_pages", spec->track_dirty_pages, "huge_pages", "None");
}

static const char *kernel_format_name(enum kernel_format f)
{
    static const char *const names[] = {"auto", "bzimage", "elf", "raw"};
    return (unsigned)f < ARRAY_SIZE(names) ? names[f] : "auto";
}

static json_t *boot_source_json(const struct vm_spec *spec)
{
    const struct vm_config *c = &spec->cfg;
    if (!c->kernel_path)
        return json_null();
    json_t *o = json_pack("{s:s, s:s}", "kernel_image_path", c->kernel_path, "boot_args",
                          c->cmdline ? c->cmdline : "");
    if (o && c->initrd_path)
        json_object_set_new(o, "initrd_path", json_string(c->initrd_path));
    if (o && c->kernel_format != KERNEL_FORMAT_AUTO)
        json_object_set_new(o, "kiln_kernel_format",
                            json_string(kernel_format_name(c->kernel_format)));
    return o;
}

static json_t *drives_json(const struct vm_spec *spec)
{
    json_t *arr = json_array();
    for (unsigned i = 0; arr && i < spec->cfg.ndisks; i++) {
        const struct disk_config *d = &spec->cfg.disks[i];
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:b, s:b, s:s, s:s}", "drive_id", spec->drive_ids[i],
                           "path_on_host", d->path, "is_root_device", spec->drive_is_root[i],
                           "is_read_only", d->readonly, "cache_type", "Writeback", "io_engine",
                           "Async"));
    }
    return arr;
}

static json_t *net_json(const struct vm_spec *spec, unsigned i)
{
    const struct net_config *n = &spec->cfg.nets[i];
    json_t *o = json_pack("{s:s}", "iface_id", spec->iface_ids[i]);
    if (!o)
        return NULL;
    if (n->has_mac) {
        char mac[18];
        snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0], n->mac[1],
                 n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
        json_object_set_new(o, "guest_mac", json_string(mac));
    }
    if (n->backend == NET_TAP) {
        json_object_set_new(o, "host_dev_name", json_string(n->ifname));
        return o;
    }
    json_t *rules = json_array();
    for (unsigned r = 0; rules && r < n->nhostfwd; r++) {
        const struct net_hostfwd *f = &n->hostfwd[r];
        char rule[64];
        unsigned a = f->host_addr;
        if (a)
            snprintf(rule, sizeof(rule), "%s:%u.%u.%u.%u:%u-:%u", f->udp ? "udp" : "tcp",
                     a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255, f->host_port,
                     f->guest_port);
        else
            snprintf(rule, sizeof(rule), "%s::%u-:%u", f->udp ? "udp" : "tcp", f->host_port,
                     f->guest_port);
        json_array_append_new(rules, json_string(rule));
    }
    json_object_set_new(o, "kiln_user_net", json_pack("{s:o}", "hostfwd", rules));
    return o;
}

json_t *fc_config_json(const struct vm_spec *spec)
{
    json_t *nets = json_array();
    for (unsigned i = 0; nets && i < spec->cfg.nnets; i++)
        json_array_append_new(nets, net_json(spec, i));
    const struct vsock_config *v = &spec->cfg.vsock;
    json_t *vsock = v->enabled ? json_pack("{s:I, s:s}", "guest_cid", (json_int_t)v->guest_cid,
                                           "uds_path", v->uds_path)
                               : json_null();
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:n, s:n, s:n, s:n}", "boot-source",
                     boot_source_json(spec), "machine-config", fc_machine_config_json(spec),
                     "drives", drives_json(spec), "network-interfaces", nets, "vsock", vsock,
                     "entropy", spec->cfg.rng ? json_object() : json_null(), "balloon",
                     "logger", "metrics", "mmds-config");
}
