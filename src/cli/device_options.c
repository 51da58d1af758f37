#include "cli/device_options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/*
 * Splits "a,b=c,..." in place-free fashion: calls `fn` for each comma-separated item with
 * the item's text (not NUL-terminated) and length.
 */
typedef int (*item_fn)(const char *item, size_t len, void *ctx, char *err, size_t errlen);

static int for_each_item(const char *arg, item_fn fn, void *ctx, char *err, size_t errlen)
{
    const char *p = arg;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int ret = fn(p, len, ctx, err, errlen);
        if (ret < 0)
            return ret;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* "key=value" items: copies the value into `out` if the item's key is `key`. */
static bool item_value(const char *item, size_t len, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key);
    if (len <= klen || strncmp(item, key, klen) != 0 || item[klen] != '=')
        return false;
    size_t vlen = len - klen - 1;
    if (vlen >= outlen)
        vlen = outlen - 1;
    memcpy(out, item + klen + 1, vlen);
    out[vlen] = '\0';
    return true;
}

static bool item_is(const char *item, size_t len, const char *word)
{
    return strlen(word) == len && strncmp(item, word, len) == 0;
}

/* ---- --disk ---- */

static int disk_item(const char *item, size_t len, void *ctx, char *err, size_t errlen)
{
    struct disk_config *disk = ctx;
    char value[64];
    if (!disk->path[0]) {
        if (len == 0)
            return invalid(err, errlen, "--disk: expected PATH[,ro][,id=NAME][,cache=none|writeback]");
        if (len >= sizeof(disk->path))
            return invalid(err, errlen, "--disk: path is too long");
        memcpy(disk->path, item, len);
        disk->path[len] = '\0';
        return 0;
    }
    if (item_is(item, len, "ro") || item_is(item, len, "readonly")) {
        disk->readonly = true;
        return 0;
    }
    if (item_value(item, len, "id", value, sizeof(value))) {
        if (strlen(value) > sizeof(disk->id) - 1)
            return invalid(err, errlen, "--disk %s: id '%s' is longer than 20 bytes", disk->path,
                        value);
        snprintf(disk->id, sizeof(disk->id), "%s", value);
        return 0;
    }
    if (item_value(item, len, "cache", value, sizeof(value))) {
        if (strcmp(value, "none") == 0)
            disk->cache = DISK_CACHE_NONE;
        else if (strcmp(value, "writeback") == 0)
            disk->cache = DISK_CACHE_WRITEBACK;
        else
            return invalid(err, errlen, "--disk %s: cache must be none or writeback, not '%s'",
                        disk->path, value);
        return 0;
    }
    return invalid(err, errlen, "--disk %s: unknown setting '%.*s'", disk->path, (int)len, item);
}

int parse_disk_option(const char *arg, struct disk_config *disk, char *err, size_t errlen)
{
    memset(disk, 0, sizeof(*disk));
    disk->cache = DISK_CACHE_WRITEBACK;
    return for_each_item(arg, disk_item, disk, err, errlen);
}

/* ---- --net ---- */

int parse_mac(const char *text, uint8_t mac[6])
{
    unsigned b[6];
    char tail;
    if (strlen(text) != 17 || sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
                                     &b[4], &b[5], &tail) != 6)
        return -EINVAL;
    for (int i = 0; i < 6; i++) {
        if (text[i * 3] == '+' || text[i * 3] == '-' || text[i * 3 + 1] == ':')
            return -EINVAL;
        mac[i] = (uint8_t)b[i];
    }
    if (mac[0] & 1)
        return -EINVAL; /* a multicast address cannot be a NIC's */
    return 0;
}

static int parse_port(const char *s, uint16_t *port)
{
    uint64_t v;
    if (parse_uint(s, 1, 65535, &v) < 0)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

/* hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT (QEMU's syntax) */
int parse_hostfwd(const char *text, struct net_hostfwd *fwd)
{
    char buf[96];
    if (strlen(text) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, text);
    char *proto = buf, *colon = strchr(buf, ':');
    if (!colon)
        return -EINVAL;
    *colon = '\0';
    if (strcmp(proto, "tcp") == 0 || *proto == '\0')
        fwd->udp = false;
    else if (strcmp(proto, "udp") == 0)
        fwd->udp = true;
    else
        return -EINVAL;
    char *haddr = colon + 1, *hport = strchr(haddr, ':');
    if (!hport)
        return -EINVAL;
    *hport++ = '\0';
    char *dash = strchr(hport, '-');
    if (!dash)
        return -EINVAL;
    *dash = '\0';
    char *gport = strrchr(dash + 1, ':');
    if (!gport || gport != dash + 1 + strcspn(dash + 1, ":"))
        return -EINVAL; /* the guest address, if any, is the slirp default: only ":PORT" */
    gport++;
    struct in_addr a = {0};
    if (*haddr && inet_pton(AF_INET, haddr, &a) != 1)
        return -EINVAL;
    fwd->host_addr = ntohl(a.s_addr);
    if (parse_port(hport, &fwd->host_port) < 0 || parse_port(gport, &fwd->guest_port) < 0)
        return -EINVAL;
    return 0;
}

static int net_item(const char *item, size_t len, void *ctx, char *err, size_t errlen)
{
    struct net_config *net = ctx;
    char value[96];
    if (item_value(item, len, "mac", value, sizeof(value))) {
        if (parse_mac(value, net->mac) < 0)
            return invalid(err, errlen,
                        "--net: malformed MAC address '%s' (expected "
                        "52:54:00:12:34:56, not multicast)",
                        value);
        net->has_mac = true;
        return 0;
    }
    if (net->backend == NET_USER && item_value(item, len, "hostfwd", value, sizeof(value))) {
        if (net->nhostfwd >= VM_MAX_HOSTFWD)
            return invalid(err, errlen, "--net user: at most %d hostfwd rules", VM_MAX_HOSTFWD);
        if (parse_hostfwd(value, &net->hostfwd[net->nhostfwd]) < 0)
            return invalid(err, errlen,
                        "--net user: malformed hostfwd '%s' (expected "
                        "tcp::HOSTPORT-:GUESTPORT)",
                        value);
        net->nhostfwd++;
        return 0;
    }
    return invalid(err, errlen, "--net: unknown setting '%.*s'", (int)len, item);
}

int parse_net_option(const char *arg, struct net_config *net, char *err, size_t errlen)
{
    memset(net, 0, sizeof(*net));
    const char *comma = strchr(arg, ',');
    size_t len = comma ? (size_t)(comma - arg) : strlen(arg);
    char value[64];
    if (item_is(arg, len, "user")) {
        net->backend = NET_USER;
    } else if (item_value(arg, len, "tap", value, sizeof(value))) {
        if (value[0] == '\0' || strlen(value) >= sizeof(net->ifname))
            return invalid(err, errlen, "--net tap=%s: interface names have 1 to 15 bytes", value);
        net->backend = NET_TAP;
        snprintf(net->ifname, sizeof(net->ifname), "%s", value);
    } else {
        return invalid(err, errlen,
                    "--net '%s': expected tap=IFNAME[,mac=MAC] or "
                    "user[,mac=MAC][,hostfwd=tcp::HOSTPORT-:GUESTPORT]",
                    arg);
    }
    return comma ? for_each_item(comma + 1, net_item, net, err, errlen) : 0;
}

/* ---- --vsock ---- */

static int vsock_item(const char *item, size_t len, void *ctx, char *err, size_t errlen)
{
    struct vsock_config *v = ctx;
    char value[108];
    if (item_value(item, len, "cid", value, sizeof(value))) {
        uint64_t cid;
        /* 0-2 are reserved (hypervisor, local, host); the field is 32 bits for now. */
        if (parse_uint(value, 3, 0xfffffffe, &cid) < 0)
            return invalid(err, errlen, "--vsock: cid must be a number from 3 to 4294967294");
        v->guest_cid = (uint32_t)cid;
        return 0;
    }
    if (item_value(item, len, "uds", value, sizeof(value))) {
        /* Leave room for the "_PORT" suffix of guest-initiated connections. */
        if (len - 4 > 90 || value[0] == '\0')
            return invalid(err, errlen, "--vsock: uds path must have 1 to 90 bytes");
        snprintf(v->uds_path, sizeof(v->uds_path), "%s", value);
        return 0;
    }
    return invalid(err, errlen, "--vsock: unknown setting '%.*s' (expected cid=N,uds=PATH)", (int)len,
                item);
}

int parse_vsock_option(const char *arg, struct vsock_config *vsock, char *err, size_t errlen)
{
    memset(vsock, 0, sizeof(*vsock));
    int ret = for_each_item(arg, vsock_item, vsock, err, errlen);
    if (ret < 0)
        return ret;
    if (!vsock->guest_cid || !vsock->uds_path[0])
        return invalid(err, errlen, "--vsock: both cid=N and uds=PATH are required");
    vsock->enabled = true;
    return 0;
}
