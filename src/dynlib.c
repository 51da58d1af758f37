#include "dynlib.h"

#include <dlfcn.h>
#include <stdio.h>

void *dynlib_load(const char *soname, const struct dynlib_symbol *syms, size_t nsyms, char *err,
                  size_t errlen)
{
    void *handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!handle) {
        snprintf(err, errlen, "%s", dlerror());
        return NULL;
    }
    for (size_t i = 0; i < nsyms; i++) {
        *syms[i].slot = dlsym(handle, syms[i].name);
        if (!*syms[i].slot) {
            snprintf(err, errlen, "%s has no symbol %s", soname, syms[i].name);
            dlclose(handle);
            return NULL;
        }
    }
    return handle;
}
