/* The environment a benchmark sets up before the engine loads its libraries, as the CLI does
 * (cli/opts.h ws_cli_process_setup): OpenBLAS's kernels named from the CPU's features. */
#ifndef WS_BENCH_ENV_H
#define WS_BENCH_ENV_H

#include <stdlib.h>

#include "nn/blas_lib.h"

static inline void ws_bench_blas_kernels(void)
{
    const char *core = ws_nn_blas_coretype();
    if (core)
        setenv("OPENBLAS_CORETYPE", core, 0); /* the user's choice, if any, stays */
}

#endif
