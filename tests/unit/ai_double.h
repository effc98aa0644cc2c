/* TEST DOUBLE — used only by the server tests, never by the product: a small, real,
 * deterministic implementation of the ws_ai interface ("counting AI"). Training reads the
 * export with the chat reader and keeps the persona's own messages; generate answers with
 * one of them, picked by a hash of the message and context (never an echo), and counts
 * every call so tests can prove that a reply-cache hit never reaches the AI. Thread-safe. */
#ifndef WS_TESTS_AI_DOUBLE_H
#define WS_TESTS_AI_DOUBLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ai/ai.h"
#include "chat/chat.h"
#include "core/mem.h"

#define CAI_MAX_USERS 64
#define CAI_MAX_LINES 256

typedef struct cai_user {
    char user_id[48];
    char version[32];
    char *lines[CAI_MAX_LINES];
    size_t n_lines;
    bool used;
} cai_user;

typedef struct counting_ai {
    ws_ai base;
    pthread_mutex_t mu;
    cai_user users[CAI_MAX_USERS];
    _Atomic int generate_calls, train_calls, forget_calls, reload_calls;
    int train_delay_ms; /* sleep while "training", in steps that honour cancel */
    int versions;
} counting_ai;

static cai_user *cai_find(counting_ai *c, const char *uid)
{
    for (int i = 0; i < CAI_MAX_USERS; i++)
        if (c->users[i].used && !strcmp(c->users[i].user_id, uid))
            return &c->users[i];
    return NULL;
}

static void cai_drop(cai_user *u)
{
    for (size_t i = 0; i < u->n_lines; i++)
        free(u->lines[i]);
    memset(u, 0, sizeof *u);
}

static uint64_t cai_hash(const char *s, uint64_t h)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int cai_generate(ws_ai *ai, const char *user_id, const char *message, const ws_ai_turn *context,
                        size_t n_context, ws_ai_reply *out, ws_error *err)
{
    counting_ai *c = (counting_ai *)ai;
    atomic_fetch_add(&c->generate_calls, 1);
    pthread_mutex_lock(&c->mu);
    cai_user *u = cai_find(c, user_id);
    int rc = 0;
    if (!u || u->n_lines == 0) {
        rc = ws_error_set(err, WS_ENOENT, "no model for %s", user_id);
    } else {
        uint64_t h = cai_hash(message, 1469598103934665603ull);
        for (size_t i = 0; i < n_context; i++)
            h = cai_hash(context[i].text, h);
        out->reply = ws_xstrdup(u->lines[h % u->n_lines]);
        out->confidence = 0.5 + (double)(h % 50) / 100.0;
        out->fallback = out->confidence < 0.55;
        out->model_version = ws_xstrdup(u->version);
        out->processing_ms = 1;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cai_train(ws_ai *ai, const ws_ai_train_request *req, ws_ai_progress_fn progress, void *arg,
                     ws_ai_train_result *out, ws_error *err)
{
    counting_ai *c = (counting_ai *)ai;
    atomic_fetch_add(&c->train_calls, 1);
    ws_chat_reader *rd = NULL;
    int rc = ws_chat_open_file(req->export_path, NULL, &rd, err);
    if (rc)
        return rc;
    char *lines[CAI_MAX_LINES];
    size_t n = 0;
    uint64_t samples = 0;
    ws_message m;
    while ((rc = ws_chat_next(rd, &m, err)) == 1) {
        if (m.kind == WS_MSG_TEXT && m.author && !strcmp(m.author, req->persona)) {
            samples++;
            if (n < CAI_MAX_LINES)
                lines[n++] = ws_xstrdup(m.text);
        }
    }
    ws_chat_close(rd);
    if (rc == 0 && n == 0)
        rc = ws_error_set(err, WS_EINVAL, "persona %s has no messages", req->persona);
    for (int step = 0; rc == 0 && step <= 4; step++) {
        if (c->train_delay_ms)
            usleep((useconds_t)c->train_delay_ms * 250);
        if (progress && progress(arg, step / 4.0, "train", samples * (uint64_t)step / 4))
            rc = ws_error_set(err, WS_EAGAIN, "cancelled");
    }
    if (rc) {
        for (size_t i = 0; i < n; i++)
            free(lines[i]);
        return rc;
    }
    pthread_mutex_lock(&c->mu);
    cai_user *u = cai_find(c, req->user_id);
    if (u)
        cai_drop(u);
    for (int i = 0; !u && i < CAI_MAX_USERS; i++)
        if (!c->users[i].used)
            u = &c->users[i];
    u->used = true;
    snprintf(u->user_id, sizeof u->user_id, "%s", req->user_id);
    snprintf(u->version, sizeof u->version, "v%d", ++c->versions);
    memcpy(u->lines, lines, n * sizeof *lines);
    u->n_lines = n;
    out->model_version = ws_xstrdup(u->version);
    out->samples_processed = samples;
    char metrics[64];
    snprintf(metrics, sizeof metrics, "{\"lines\":%zu}", n);
    out->metrics_json = ws_xstrdup(metrics);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static int cai_reload(ws_ai *ai, const char *user_id, ws_error *err)
{
    atomic_fetch_add(&((counting_ai *)ai)->reload_calls, 1);
    return 0;
}

static int cai_profile(ws_ai *ai, const char *user_id, char **json, ws_error *err)
{
    counting_ai *c = (counting_ai *)ai;
    pthread_mutex_lock(&c->mu);
    cai_user *u = cai_find(c, user_id);
    int rc = 0;
    if (!u) {
        rc = ws_error_set(err, WS_ENOENT, "no model");
    } else {
        size_t total = 0;
        for (size_t i = 0; i < u->n_lines; i++)
            total += strlen(u->lines[i]);
        char buf[128];
        snprintf(buf, sizeof buf, "{\"messages\":%zu,\"mean_length\":%.2f}", u->n_lines,
                 u->n_lines ? (double)total / (double)u->n_lines : 0.0);
        *json = ws_xstrdup(buf);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cai_forget(ws_ai *ai, const char *user_id, ws_error *err)
{
    counting_ai *c = (counting_ai *)ai;
    atomic_fetch_add(&c->forget_calls, 1);
    pthread_mutex_lock(&c->mu);
    cai_user *u = cai_find(c, user_id);
    if (u)
        cai_drop(u);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static void cai_destroy(ws_ai *ai)
{
    counting_ai *c = (counting_ai *)ai;
    for (int i = 0; i < CAI_MAX_USERS; i++)
        if (c->users[i].used)
            cai_drop(&c->users[i]);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* The reply as generate gives it, handed out a word at a time (each piece with the spaces
 * before it) like an engine that streams; on_piece returning non-zero stops it (WS_EAGAIN). */
static int cai_generate_stream(ws_ai *ai, const char *user_id, const char *message, const ws_ai_turn *context,
                               size_t n_context, const volatile int *cancel, ws_ai_piece_fn on_piece,
                               void *arg, ws_ai_reply *out, ws_error *err)
{
    int rc = cai_generate(ai, user_id, message, context, n_context, out, err);
    for (const char *p = out->reply; !rc && p && *p;) {
        const char *q = p;
        while (*q == ' ')
            q++;
        while (*q && *q != ' ')
            q++;
        if (on_piece(arg, p, (size_t)(q - p)) || (cancel && *cancel))
            rc = ws_error_set(err, WS_EAGAIN, "the reply was cancelled");
        p = q;
    }
    if (rc)
        ws_ai_reply_clear(out);
    return rc;
}

static const ws_ai_ops cai_ops = {cai_generate, cai_train, cai_reload, cai_profile,        cai_forget,
                                  cai_destroy,  NULL,      NULL,       cai_generate_stream};

static inline counting_ai *counting_ai_new(void)
{
    counting_ai *c = ws_xcalloc(1, sizeof *c);
    c->base.ops = &cai_ops;
    c->base.impl = c;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

#endif
