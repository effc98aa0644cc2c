/* Fork-join pool behind ws_parallel_for (see parallel.h). */
#include "nn/parallel.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#define SPIN_ROUNDS 2000    /* sched_yield rounds before sleeping on the condition variable */
#define CHUNKS_PER_THREAD 4 /* so a thread the machine holds back leaves little for the others to wait on */

static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER; /* one fork-join at a time */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER, done_cv = PTHREAD_COND_INITIALIZER;
static pthread_t workers[WS_MAX_THREADS];
static int n_threads; /* including the caller */
static int n_workers; /* started */
static atomic_uint generation;
static atomic_int remaining;
static atomic_bool quit;
static ws_par_fn job_fn;
static void *job_ctx;
static size_t job_n;
static int job_chunks;
static atomic_int next_chunk;
static unsigned start_generation[WS_MAX_THREADS]; /* what each worker has already seen */
static _Thread_local bool in_pool;

static void chunk_range(size_t n, int chunks, int c, size_t *lo, size_t *hi)
{
    *lo = n * (size_t)c / (size_t)chunks;
    *hi = n * (size_t)(c + 1) / (size_t)chunks;
}

/* takes chunks of the current job until none is left */
static void run_chunks(void)
{
    int c;
    while ((c = atomic_fetch_add_explicit(&next_chunk, 1, memory_order_relaxed)) < job_chunks) {
        size_t lo, hi;
        chunk_range(job_n, job_chunks, c, &lo, &hi);
        if (lo < hi)
            job_fn(job_ctx, lo, hi, c);
    }
}

static void *worker_main(void *arg)
{
    int id = (int)(size_t)arg;
    /* not the generation at the time this thread runs: the caller may already have posted
     * the first job by then */
    unsigned seen = start_generation[id];
    in_pool = true;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen && !atomic_load(&quit)) {
            if (++spins < SPIN_ROUNDS) {
                sched_yield();
                continue;
            }
            pthread_mutex_lock(&lock);
            while (atomic_load(&generation) == seen && !atomic_load(&quit))
                pthread_cond_wait(&wake, &lock);
            pthread_mutex_unlock(&lock);
        }
        if (atomic_load(&quit))
            return NULL;
        seen = g;
        run_chunks();
        if (atomic_fetch_sub_explicit(&remaining, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&lock);
            pthread_cond_signal(&done_cv);
            pthread_mutex_unlock(&lock);
        }
    }
}

static void stop_workers(void)
{
    atomic_store(&quit, true);
    pthread_mutex_lock(&lock);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n_workers; i++)
        pthread_join(workers[i], NULL);
    n_workers = 0;
    atomic_store(&quit, false);
}

static void ensure_started(void)
{
    if (n_threads == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c < 1 ? 1 : c > WS_MAX_THREADS ? WS_MAX_THREADS : (int)c;
    }
    while (n_workers < n_threads - 1) {
        start_generation[n_workers + 1] = atomic_load(&generation);
        if (pthread_create(&workers[n_workers], NULL, worker_main, (void *)(size_t)(n_workers + 1)))
            break;
        n_workers++;
    }
    if (n_workers < n_threads - 1)
        n_threads = n_workers + 1; /* could not start them all: use what we have */
}

void ws_parallel_set_threads(int n)
{
    pthread_mutex_lock(&busy);
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c < 1 ? 1 : (int)c;
    }
    if (n > WS_MAX_THREADS)
        n = WS_MAX_THREADS;
    stop_workers();
    n_threads = n;
    pthread_mutex_unlock(&busy);
}

int ws_parallel_threads(void)
{
    pthread_mutex_lock(&busy);
    ensure_started();
    int n = n_threads;
    pthread_mutex_unlock(&busy);
    return n;
}

void ws_parallel_for(size_t n, size_t min_chunk, ws_par_fn fn, void *ctx)
{
    if (n == 0)
        return;
    if (in_pool || n < 2 * (min_chunk ? min_chunk : 1) || pthread_mutex_trylock(&busy)) {
        fn(ctx, 0, n, 0);
        return;
    }
    ensure_started();
    if (n_threads <= 1) {
        pthread_mutex_unlock(&busy);
        fn(ctx, 0, n, 0);
        return;
    }
    /* chunks: several per thread, none under min_chunk (but at least one per thread) */
    size_t per = min_chunk ? min_chunk : 1, most = (size_t)n_threads * CHUNKS_PER_THREAD;
    size_t chunks = n / per;
    chunks = chunks > most ? most : chunks;
    chunks = chunks > WS_MAX_THREADS ? WS_MAX_THREADS : chunks;
    chunks = chunks < (size_t)n_threads ? (size_t)n_threads : chunks;
    job_fn = fn;
    job_ctx = ctx;
    job_n = n;
    job_chunks = (int)chunks;
    atomic_store(&next_chunk, 0);
    atomic_store(&remaining, n_threads - 1);
    pthread_mutex_lock(&lock);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    in_pool = true;
    run_chunks();
    in_pool = false;
    int spins = 0;
    while (atomic_load_explicit(&remaining, memory_order_acquire) > 0) {
        if (++spins < SPIN_ROUNDS) {
            sched_yield();
            continue;
        }
        pthread_mutex_lock(&lock);
        while (atomic_load(&remaining) > 0)
            pthread_cond_wait(&done_cv, &lock);
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_unlock(&busy);
}
