/* OpenBLAS, loaded on first use (core/lazylib.h): only training and the larger products need
 * it. ws__blas() returns the resolved functions, loading the library on the first call; a
 * missing OpenBLAS is fatal there (the engine has no other matrix product), with a message
 * saying what to install. */
#ifndef WS_NN_BLAS_LIB_H
#define WS_NN_BLAS_LIB_H

#include <cblas.h>

#include "core/lazylib.h"

#define WS_BLAS_FUNCTIONS(X) X(cblas_sgemm) X(cblas_sgemv) X(openblas_set_num_threads)

typedef struct ws__blas_api {
    WS_BLAS_FUNCTIONS(WS_LAZYLIB_SLOT)
} ws__blas_api;

/* The loaded functions; never NULL (exits with a message when OpenBLAS cannot be loaded). The
 * first call sets OpenBLAS to one thread: the engine's pool splits the products itself. */
const ws__blas_api *ws__blas(void);

#endif
