/*
 * libslirp, loaded at run time: only `--net user` needs it, and linking it (with glib,
 * pcre2 and libm behind it) would cost every VM about 1 MiB of resident memory.
 */
#ifndef KILN_NET_SLIRP_LIB_H
#define KILN_NET_SLIRP_LIB_H

#include <libslirp.h>

/* The libslirp entry points kiln calls, resolved from the shared library. */
struct slirp_lib {
    void *handle;
    __typeof__(&slirp_new) new_instance;
    __typeof__(&slirp_cleanup) cleanup;
    __typeof__(&slirp_input) input;
    __typeof__(&slirp_add_hostfwd) add_hostfwd;
    __typeof__(&slirp_pollfds_fill) pollfds_fill;
    __typeof__(&slirp_pollfds_poll) pollfds_poll;
    __typeof__(&slirp_handle_timer) handle_timer;
};

/* Loads libslirp and resolves every entry point; on failure logs why (library missing,
 * symbol missing) and returns -ENOENT. */
int slirp_lib_load(struct slirp_lib *lib);

void slirp_lib_unload(struct slirp_lib *lib);

#endif
