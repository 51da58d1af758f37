#include "net/slirp_lib.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "dynlib.h"
#include "util.h"

/* The soname of libslirp 4.x (Debian: libslirp0); the -dev package's headers match it. */
#define SLIRP_SONAME "libslirp.so.0"

int slirp_lib_load(struct slirp_lib *lib)
{
    memset(lib, 0, sizeof(*lib));
    const struct dynlib_symbol syms[] = {
        {"slirp_new", (void **)&lib->new_instance},
        {"slirp_cleanup", (void **)&lib->cleanup},
        {"slirp_input", (void **)&lib->input},
        {"slirp_add_hostfwd", (void **)&lib->add_hostfwd},
        {"slirp_pollfds_fill", (void **)&lib->pollfds_fill},
        {"slirp_pollfds_poll", (void **)&lib->pollfds_poll},
        {"slirp_handle_timer", (void **)&lib->handle_timer},
    };
    char err[256];
    lib->handle = dynlib_load(SLIRP_SONAME, syms, ARRAY_SIZE(syms), err, sizeof(err));
    if (!lib->handle) {
        log_error("--net user needs libslirp (Debian package libslirp0): %s", err);
        return -ENOENT;
    }
    return 0;
}

void slirp_lib_unload(struct slirp_lib *lib)
{
    if (lib->handle)
        dlclose(lib->handle);
    memset(lib, 0, sizeof(*lib));
}
