/* A small fork-join thread pool for the engine's loops. Threads that wait spin briefly
 * (yielding the core) and then sleep, so the pool never burns a core that OpenBLAS or another
 * process needs (unlike OpenMP's default active wait, which collapses on a busy machine).
 *
 * ws_parallel_for splits [0, n) into contiguous chunks, a few per thread (deterministic: the
 * same n, min_chunk and thread count always give the same chunks, so per-chunk partial results
 * combined in chunk order are reproducible), which the threads take in turn until none is left
 * (so a thread that the machine holds back does not hold up the rest), and returns when all are
 * done.
 * Safe to call from several threads: a caller that finds the pool busy, or a nested call,
 * runs the whole range itself. */
#ifndef WS_NN_PARALLEL_H
#define WS_NN_PARALLEL_H

#include <stddef.h>

#define WS_MAX_THREADS 64

/* fn processes [lo, hi) as chunk number `chunk` (0 <= chunk < WS_MAX_THREADS), on any thread. */
typedef void (*ws_par_fn)(void *ctx, size_t lo, size_t hi, int chunk);

/* Runs fn over [0, n); ranges shorter than 2 * min_chunk run on the caller alone. */
void ws_parallel_for(size_t n, size_t min_chunk, ws_par_fn fn, void *ctx);
/* Threads the pool uses (default: the number of online CPUs, at most WS_MAX_THREADS). Changing it
 * waits for running work and restarts the workers. */
void ws_parallel_set_threads(int n);
int ws_parallel_threads(void);

#endif
