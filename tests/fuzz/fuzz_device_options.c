/*
 * The --disk, --net and --vsock value parsers and the MAC parser (cli/device_options.c)
 * on one value each; the first byte picks the parser. Successes must leave terminated
 * strings and values in range; failures must say why.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/device_options.h"
#include "vmm/vm_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *arg = malloc(size);
    memcpy(arg, data + 1, size - 1);
    arg[size - 1] = 0;
    char err[256] = "";
    int ret = 0;
    switch (data[0] & 3) {
    case 0: {
        struct disk_config d;
        memset(&d, 0, sizeof(d));
        ret = parse_disk_option(arg, &d, err, sizeof(err));
        if (ret == 0 && (!memchr(d.path, 0, sizeof(d.path)) || !memchr(d.id, 0, sizeof(d.id)) ||
                         !d.path[0]))
            abort();
        break;
    }
    case 1: {
        static struct net_config n;
        memset(&n, 0, sizeof(n));
        ret = parse_net_option(arg, &n, err, sizeof(err));
        if (ret == 0 && (n.nhostfwd > VM_MAX_HOSTFWD || !memchr(n.ifname, 0, sizeof(n.ifname))))
            abort();
        break;
    }
    case 2: {
        struct vsock_config v;
        memset(&v, 0, sizeof(v));
        ret = parse_vsock_option(arg, &v, err, sizeof(err));
        if (ret == 0 && (!memchr(v.uds_path, 0, sizeof(v.uds_path)) || v.guest_cid < 3))
            abort();
        break;
    }
    default: {
        uint8_t mac[6];
        ret = parse_mac(arg, mac);
        if (ret < 0)
            strcpy(err, "bad MAC"); /* parse_mac gives no reason; its callers do */
        break;
    }
    }
    if (ret < 0 && !err[0])
        abort();
    free(arg);
    return 0;
}
