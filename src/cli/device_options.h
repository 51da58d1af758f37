/* Parsers for the device options of `kiln run` (--disk, --net, --vsock); no side effects. */
#ifndef KILN_DEVICE_OPTIONS_H
#define KILN_DEVICE_OPTIONS_H

#include <stddef.h>

#include "vmm/vm_config.h"

/* Each returns 0 or -EINVAL with a one-line reason (naming the option) in `err`. */
int parse_disk_option(const char *arg, struct disk_config *disk, char *err, size_t errlen);
int parse_net_option(const char *arg, struct net_config *net, char *err, size_t errlen);
int parse_vsock_option(const char *arg, struct vsock_config *vsock, char *err, size_t errlen);
int parse_mac(const char *text, uint8_t mac[6]);
/* One hostfwd rule, "tcp::HOSTPORT-:GUESTPORT" (QEMU's syntax). Returns 0 or -EINVAL. */
int parse_hostfwd(const char *text, struct net_hostfwd *fwd);

#endif
