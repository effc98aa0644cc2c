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

/* OpenBLAS (DYNAMIC_ARCH) picks its kernels from the CPU model it knows: on a newer one (this
 * project's build machine, an Intel family 6 model 207) it falls back to the SSE3 "Prescott"
 * kernels, 2x slower for the prompts and training here. This names the kernels the CPU's
 * features support ("SKYLAKEX", "HASWELL"; NULL: let OpenBLAS choose), for the program to put
 * in OPENBLAS_CORETYPE before the library loads (the CLI does, cli/opts.h; the library itself
 * sets no environment). */
const char *ws_nn_blas_coretype(void);

#endif
