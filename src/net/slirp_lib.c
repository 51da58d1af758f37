#include "net/slirp_lib.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "util.h"

/* The soname of libslirp 4.x (Debian: libslirp0); the -dev package's headers match it. */
#define SLIRP_SONAME "libslirp.so.0"

static void *slirp_lib_symbol(void *handle, const char *name)
{
    void *sym = dlsym(handle, name);
    if (!sym)
        log_error("--net user: %s has no symbol %s", SLIRP_SONAME, name);
    return sym;
}

/* Assigns one entry point; a function pointer from dlsym's void * is what POSIX promises. */
#define SLIRP_LIB_RESOLVE(lib, field, name)                                                        \
    ((lib)->field = (__typeof__((lib)->field))slirp_lib_symbol((lib)->handle, name))

int slirp_lib_load(struct slirp_lib *lib)
{
    memset(lib, 0, sizeof(*lib));
    /* NODELETE: glib cannot be unloaded safely once it has run (thread-local destructors,
     * its own atexit handlers), so dlclose only drops the reference. */
    lib->handle = dlopen(SLIRP_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!lib->handle) {
        log_error("--net user needs libslirp (Debian package libslirp0): %s", dlerror());
        return -ENOENT;
    }
    bool ok = SLIRP_LIB_RESOLVE(lib, new_instance, "slirp_new") &&
              SLIRP_LIB_RESOLVE(lib, cleanup, "slirp_cleanup") &&
              SLIRP_LIB_RESOLVE(lib, input, "slirp_input") &&
              SLIRP_LIB_RESOLVE(lib, add_hostfwd, "slirp_add_hostfwd") &&
              SLIRP_LIB_RESOLVE(lib, pollfds_fill, "slirp_pollfds_fill") &&
              SLIRP_LIB_RESOLVE(lib, pollfds_poll, "slirp_pollfds_poll") &&
              SLIRP_LIB_RESOLVE(lib, handle_timer, "slirp_handle_timer");
    int ret = ok ? 0 : -ENOENT;
    if (ret < 0)
        slirp_lib_unload(lib);
    return ret;
}

void slirp_lib_unload(struct slirp_lib *lib)
{
    if (lib->handle)
        dlclose(lib->handle);
    memset(lib, 0, sizeof(*lib));
}
