/* A thread-safe pool of store handles (one database connection each) for worker threads:
 * handles are opened lazily up to a maximum, handed out one per thread at a time, and
 * waited for with a timeout when all are busy. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "store/store.h"

struct ws_store_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *url, *replica_url;
    int timeout_ms;
    struct ws_fault *fault;
    int max, open; /* handles allowed / existing (idle + in use) */
    ws_store **idle;
    int nidle;
};

int ws_store_pool_new(const ws_store_config *cfg, int max, ws_store_pool **out, ws_error *err)
{
    *out = NULL;
    if (!cfg || !cfg->url || max < 1)
        return ws_error_set(err, WS_EINVAL, "store pool: needs a URL and max >= 1");
    ws_store_pool *p = ws_xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->url = ws_xstrdup(cfg->url);
    p->replica_url = cfg->replica_url ? ws_xstrdup(cfg->replica_url) : NULL;
    p->timeout_ms = cfg->timeout_ms;
    p->fault = cfg->fault;
    p->max = max;
    p->idle = ws_xcalloc((size_t)max, sizeof *p->idle);
    *out = p;
    return 0;
}

void ws_store_pool_free(ws_store_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nidle; i++)
        ws_store_close(p->idle[i]);
    free(p->idle);
    free(p->url);
    free(p->replica_url);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int ws_store_pool_acquire(ws_store_pool *p, int timeout_ms, ws_store **out, ws_error *err)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    *out = NULL;
    pthread_mutex_lock(&p->mu);
    while (p->nidle == 0 && p->open >= p->max) {
        int w = timeout_ms > 0 ? pthread_cond_timedwait(&p->cv, &p->mu, &deadline)
                               : pthread_cond_wait(&p->cv, &p->mu);
        if (w == ETIMEDOUT && p->nidle == 0 && p->open >= p->max) {
            pthread_mutex_unlock(&p->mu);
            return ws_error_set(err, WS_EAGAIN, "store pool: all %d connections busy", p->max);
        }
    }
    if (p->nidle > 0) {
        *out = p->idle[--p->nidle];
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    p->open++; /* reserve the slot, then connect without holding the lock */
    pthread_mutex_unlock(&p->mu);
    ws_store_config cfg = {
        .url = p->url, .replica_url = p->replica_url, .timeout_ms = p->timeout_ms, .fault = p->fault};
    int rc = ws_store_open(&cfg, out, err);
    if (rc < 0) {
        pthread_mutex_lock(&p->mu);
        p->open--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return rc;
}

void ws_store_pool_release(ws_store_pool *p, ws_store *s, bool broken)
{
    if (!s)
        return;
    pthread_mutex_lock(&p->mu);
    if (broken) {
        p->open--;
        pthread_mutex_unlock(&p->mu);
        ws_store_close(s);
        pthread_mutex_lock(&p->mu);
    } else {
        p->idle[p->nidle++] = s;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
