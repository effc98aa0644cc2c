/* Loading a shared library on first use and resolving its functions (see lazylib.h). */
#include "core/lazylib.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef void (*ws__any_fn)(void);
_Static_assert(sizeof(void *) == sizeof(ws__any_fn), "dlsym results must fit a function pointer");

static int load_locked(ws_lazylib *lib)
{
    if (lib->table_size != lib->n_names * sizeof(ws__any_fn)) {
        snprintf(lib->message, sizeof lib->message, "%s: function table does not match its names",
                 lib->soname);
        return WS_EINTERNAL;
    }
    void *handle = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(lib->message, sizeof lib->message, "cannot load %s (install %s): %s", lib->soname,
                 lib->package, dlerror());
        return WS_EUNSUPPORTED;
    }
    for (size_t i = 0; i < lib->n_names; i++) {
        void *sym = dlsym(handle, lib->names[i]);
        if (!sym) {
            snprintf(lib->message, sizeof lib->message, "%s has no function %s (a newer %s is needed)",
                     lib->soname, lib->names[i], lib->package);
            return WS_EUNSUPPORTED; /* the handle stays open: harmless, never retried */
        }
        /* POSIX: a data pointer from dlsym converts to a function pointer of the same size */
        memcpy((char *)lib->table + i * sizeof(ws__any_fn), &sym, sizeof sym);
    }
    return 1;
}

int ws_lazylib_load(ws_lazylib *lib, ws_error *err)
{
    int state = atomic_load_explicit(&lib->state, memory_order_acquire);
    if (state == 0) {
        pthread_mutex_lock(&lib->lock);
        state = atomic_load_explicit(&lib->state, memory_order_relaxed);
        if (state == 0) {
            state = load_locked(lib);
            atomic_store_explicit(&lib->state, state, memory_order_release);
        }
        pthread_mutex_unlock(&lib->lock);
    }
    if (state == 1)
        return 0;
    return ws_error_set(err, state, "%s", lib->message);
}
