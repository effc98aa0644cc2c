/* OpenBLAS's functions, resolved on first use (see blas_lib.h). */
#include "nn/blas_lib.h"

#include <stdio.h>
#include <stdlib.h>

static ws__blas_api blas;
static const char *const blas_names[] = {WS_BLAS_FUNCTIONS(WS_LAZYLIB_NAME)};
static ws_lazylib blas_lib = WS_LAZYLIB_INIT(WS_SONAME_OPENBLAS, "libopenblas0", blas_names, blas);

const char *ws_nn_blas_coretype(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SKYLAKEX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "HASWELL";
    return NULL;
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void)
{
    ws_error err = {0};
    if (ws_lazylib_load(&blas_lib, &err) < 0) {
        fprintf(stderr, "whatstyle: %s\n", err.msg);
        exit(1);
    }
    blas.openblas_set_num_threads(1);
}

const ws__blas_api *ws__blas(void)
{
    pthread_once(&blas_once, blas_init);
    return &blas;
}
