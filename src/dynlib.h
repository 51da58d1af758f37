/*
 * Shared libraries loaded at run time. A library only one feature needs (libslirp for
 * `--net user`, libmicrohttpd for `--api-sock`, libcurl for the lifecycle commands) is not
 * linked: each one mapped at start-up costs every VM resident memory (relocations, its own
 * dependencies' initialisers), and the plain `kiln run` must stay small.
 */
#ifndef KILN_DYNLIB_H
#define KILN_DYNLIB_H

#include <stddef.h>

struct dynlib_symbol {
    const char *name;
    void **slot; /* receives the entry point */
};

/*
 * Opens `soname` and resolves every symbol into its slot. Returns the handle, or NULL with
 * the reason (library missing, symbol missing) in `err`. The library is never unloaded:
 * libraries such as glib cannot be, and a second load is then only a reference count.
 */
void *dynlib_load(const char *soname, const struct dynlib_symbol *syms, size_t nsyms, char *err,
                  size_t errlen);

#endif
