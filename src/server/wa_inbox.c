/* The WhatsApp inbox committer: webhook requests on pool threads hand their raw body here
 * and wait; one thread commits every body that is waiting in ONE store transaction and wakes
 * them, so concurrent notifications share a commit instead of queueing for the database's
 * write lock one by one (the 200 still comes only after the body is durable). */
#include "server/wa_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "store/store_whatsapp.h"

#define BATCH_MAX 256

typedef struct wa_pending {
    struct wa_pending *next;
    const char *body; /* borrowed from the waiting request */
    size_t len;
    int rc;
    bool done;
} wa_pending;

static int store_direct(ws_server *s, const char *body, size_t len, ws_error *err)
{
    ws_store *st = ws_srv_store_get(s);
    int rc = ws_store_wa_inbox_put(st, body, len, NULL, err);
    ws_srv_store_put(s, st);
    return rc;
}

int ws_wa_inbox_submit(ws_server *s, const char *body, size_t len, ws_error *err)
{
    ws_wa_state *wa = s->wa;
    if (len > WS_WA_INBOX_BODY_MAX || memchr(body, '\0', len))
        return store_direct(s, body, len, err); /* its own error, not the batch's */
    wa_pending p = {.body = body, .len = len};
    pthread_mutex_lock(&wa->in_mu);
    if (!wa->committer_on || wa->in_stop) {
        pthread_mutex_unlock(&wa->in_mu);
        return store_direct(s, body, len, err);
    }
    if (wa->in_tail)
        wa->in_tail->next = &p;
    else
        wa->in_head = &p;
    wa->in_tail = &p;
    wa->in_len++;
    pthread_cond_signal(&wa->in_cv);
    while (!p.done)
        pthread_cond_wait(&wa->in_done_cv, &wa->in_mu);
    pthread_mutex_unlock(&wa->in_mu);
    if (p.rc)
        ws_error_set(err, p.rc, "the notification could not be stored");
    return p.rc;
}

/* Commits one batch (the list from head, n items) and marks it done. */
static void commit_batch(ws_server *s, wa_pending *head, size_t n)
{
    ws_wa_state *wa = s->wa;
    const char *bodies[BATCH_MAX];
    size_t lens[BATCH_MAX], k = 0;
    for (wa_pending *p = head; p && k < n; p = p->next, k++) {
        bodies[k] = p->body;
        lens[k] = p->len;
    }
    ws_error err = {0};
    pthread_mutex_lock(&wa->write_mu);
    int rc = ws_store_wa_inbox_put_many(wa->commit_st, bodies, lens, k, &err);
    pthread_mutex_unlock(&wa->write_mu);
    if (rc)
        fprintf(stderr, "whatstyle serve: whatsapp: storing %zu notifications: %s\n", k, err.msg);
    pthread_mutex_lock(&wa->in_mu);
    k = 0;
    for (wa_pending *p = head, *next; p && k < n; p = next, k++) {
        next = p->next;
        p->rc = rc;
        p->done = true; /* p lives on its waiter's stack: not touched after this */
    }
    pthread_cond_broadcast(&wa->in_done_cv);
    pthread_mutex_unlock(&wa->in_mu);
    if (rc == 0)
        ws_wa_srv_wake(s);
}

static void *committer_main(void *arg)
{
    ws_server *s = arg;
    ws_wa_state *wa = s->wa;
    pthread_mutex_lock(&wa->in_mu);
    for (;;) {
        while (!wa->in_head && !wa->in_stop)
            pthread_cond_wait(&wa->in_cv, &wa->in_mu);
        if (!wa->in_head)
            break;
        /* take up to BATCH_MAX from the front */
        wa_pending *head = wa->in_head, *p = head;
        size_t n = 1;
        while (p->next && n < BATCH_MAX) {
            p = p->next;
            n++;
        }
        wa->in_head = p->next;
        if (!wa->in_head)
            wa->in_tail = NULL;
        wa->in_len -= n;
        pthread_mutex_unlock(&wa->in_mu);
        commit_batch(s, head, n);
        pthread_mutex_lock(&wa->in_mu);
    }
    pthread_mutex_unlock(&wa->in_mu);
    return NULL;
}

int ws_wa_inbox_start(ws_server *s, ws_error *err)
{
    ws_wa_state *wa = s->wa;
    ws_store_config sc = {.url = s->store_url};
    int rc = ws_store_open(&sc, &wa->commit_st, err);
    if (rc == 0)
        rc = ws_store_wa_defer_checkpoints(wa->commit_st, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&wa->in_mu);
    wa->committer_on = pthread_create(&wa->committer, NULL, committer_main, s) == 0;
    pthread_mutex_unlock(&wa->in_mu);
    return wa->committer_on ? 0 : ws_error_set(err, WS_EIO, "cannot start the WhatsApp inbox thread");
}

void ws_wa_inbox_stop(ws_server *s)
{
    ws_wa_state *wa = s->wa;
    if (!wa)
        return;
    pthread_mutex_lock(&wa->in_mu);
    bool on = wa->committer_on;
    wa->in_stop = true;
    pthread_cond_signal(&wa->in_cv);
    pthread_mutex_unlock(&wa->in_mu);
    if (on)
        pthread_join(wa->committer, NULL); /* it drains what is queued first */
    pthread_mutex_lock(&wa->in_mu);
    wa->committer_on = false;
    pthread_mutex_unlock(&wa->in_mu);
}
