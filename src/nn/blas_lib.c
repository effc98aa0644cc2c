/* OpenBLAS's functions, resolved on first use (see blas_lib.h). */
#include "nn/blas_lib.h"

#include <stdio.h>
#include <stdlib.h>

static ws__blas_api blas;
static const char *const blas_names[] = {WS_BLAS_FUNCTIONS(WS_LAZYLIB_NAME)};
static ws_lazylib blas_lib = WS_LAZYLIB_INIT(WS_SONAME_OPENBLAS, "libopenblas0", blas_names, blas);

/* OpenBLAS (DYNAMIC_ARCH) picks its kernels from the CPU model it knows: on a newer one (this
 * project's build machine, an Intel family 6 model 207) it falls back to the SSE3 "Prescott"
 * kernels, 2x slower for the prompts and training here. Unless the user chose, name the
 * kernels the CPU's features support before the library loads (it reads the variable then). */
static void blas_pick_kernels(void)
{
    if (getenv("OPENBLAS_CORETYPE"))
        return;
    __builtin_cpu_init();
    const char *core = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        core = "SKYLAKEX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        core = "HASWELL";
    if (core)
        setenv("OPENBLAS_CORETYPE", core, 0);
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void)
{
    ws_error err = {0};
    blas_pick_kernels();
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
