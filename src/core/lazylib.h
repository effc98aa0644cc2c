/* Shared libraries loaded on first use: the roles that need PostgreSQL, Redis, S3 or BLAS pay for
 * loading those libraries (and their dozens of dependencies) when they first use them, so that
 * `parse`, `reply` and `version` start in a few milliseconds.
 *
 * A library is described by a table: a struct with one typed function pointer per symbol (made with
 * WS_LAZYLIB_SLOT from the library's own header, so every call is type-checked) and the matching list
 * of names (WS_LAZYLIB_NAME). ws_lazylib_load fills the table once, thread-safely; later calls return
 * at once. Libraries are never unloaded. Ownership: the ws_lazylib and its table are static objects
 * of the module that owns the library. */
#ifndef WS_CORE_LAZYLIB_H
#define WS_CORE_LAZYLIB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "core/error.h"

#define WS_LAZYLIB_SLOT(fn) __typeof__(&fn) fn;
#define WS_LAZYLIB_NAME(fn) #fn,

typedef struct ws_lazylib {
    const char *soname;       /* the file dlopen loads, e.g. "libpq.so.5" */
    const char *package;      /* what to install when it is missing, for the message */
    const char *const *names; /* the symbols, in the order of the table's slots */
    size_t n_names;
    void *table;       /* struct of n_names function pointers */
    size_t table_size; /* sizeof the struct, checked against n_names */
    /* state, zero-initialised */
    pthread_mutex_t lock;
    atomic_int state; /* 0 not tried, 1 loaded, <0 the WS_E* code of the failure */
    char message[256];
} ws_lazylib;

#define WS_LAZYLIB_INIT(soname_, package_, names_, table_)                                                   \
    {                                                                                                        \
        .soname = (soname_), .package = (package_), .names = (names_),                                       \
        .n_names = sizeof(names_) / sizeof(names_)[0], .table = &(table_), .table_size = sizeof(table_),     \
        .lock = PTHREAD_MUTEX_INITIALIZER                                                                    \
    }

/* Loads the library and resolves every name into the table. 0, or WS_EUNSUPPORTED with a message
 * naming the library and the package to install (a failure is remembered: it is not retried). */
int ws_lazylib_load(ws_lazylib *lib, ws_error *err);

#endif
