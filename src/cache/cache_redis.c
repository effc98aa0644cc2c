/* The Redis cache (hiredis, blocking API): one connection per handle, calls serialised by
 * a mutex, connect and command timeouts, one reconnect attempt when the connection broke.
 * Rate limiting is one Lua script (INCR, PEXPIRE on the first hit, PTTL), so the check
 * and the count are atomic across every server sharing the Redis. */
#include "cache/redis_lib.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_int.h"
#include "core/mem.h"

typedef struct rcache {
    ws_cache base;
    pthread_mutex_t mu;
    redisContext *ctx;
    char host[256];
    int port;
    int db;
    char password[256];
} rcache;

#define TIMEOUT_MS 2000
#define SCAN_COUNT "500"

/* KEYS[1] = counter key, ARGV[1] = window in ms. Returns {count, ms left in the window}. */
static const char rate_script[] =
    "local c = redis.call('INCR', KEYS[1])\n"
    "if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end\n"
    "local t = redis.call('PTTL', KEYS[1])\n"
    "if t < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); t = tonumber(ARGV[1]) end\n"
    "return {c, t}\n";

static int ctx_err(rcache *r, ws_error *err, const char *what)
{
    return ws_error_set(err, WS_EIO, "redis %s:%d: %s: %s", r->host, r->port, what,
                        r->ctx && r->ctx->err ? r->ctx->errstr : "no connection");
}

static int connect_ctx(rcache *r, ws_error *err)
{
    struct timeval tv = {TIMEOUT_MS / 1000, (TIMEOUT_MS % 1000) * 1000};
    if (r->ctx)
        ws__redis.redisFree(r->ctx);
    r->ctx = ws__redis.redisConnectWithTimeout(r->host, r->port, tv);
    if (!r->ctx || r->ctx->err)
        return ctx_err(r, err, "connect");
    ws__redis.redisSetTimeout(r->ctx, tv);
    redisReply *rep = NULL;
    if (r->password[0]) {
        rep = ws__redis.redisCommand(r->ctx, "AUTH %s", r->password);
        bool ok = rep && rep->type != REDIS_REPLY_ERROR;
        ws__redis.freeReplyObject(rep);
        if (!ok)
            return ws_error_set(err, WS_EPERM, "redis %s:%d: AUTH failed", r->host, r->port);
    }
    if (r->db) {
        rep = ws__redis.redisCommand(r->ctx, "SELECT %d", r->db);
        bool ok = rep && rep->type != REDIS_REPLY_ERROR;
        ws__redis.freeReplyObject(rep);
        if (!ok)
            return ws_error_set(err, WS_EIO, "redis %s:%d: SELECT %d failed", r->host, r->port, r->db);
    }
    return 0;
}

/* Runs one command (argv form, binary safe); reconnects once if the connection is broken.
 * *out is the reply (free it); an error reply becomes WS_EIO. */
static int command(rcache *r, int argc, const char **argv, const size_t *lens, redisReply **out,
                   ws_error *err)
{
    *out = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!r->ctx || r->ctx->err) {
            int rc = connect_ctx(r, err);
            if (rc < 0)
                return rc;
        }
        redisReply *rep = ws__redis.redisCommandArgv(r->ctx, argc, argv, lens);
        if (!rep) {
            if (attempt == 0)
                continue; /* the connection broke (server restarted?): reconnect once */
            return ctx_err(r, err, argv[0]);
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            ws_error_set(err, WS_EIO, "redis: %s: %.*s", argv[0], (int)rep->len, rep->str);
            ws__redis.freeReplyObject(rep);
            return WS_EIO;
        }
        *out = rep;
        return 0;
    }
    return ctx_err(r, err, argv[0]);
}

static void redis_close(ws_cache *c)
{
    rcache *r = (rcache *)c;
    if (r->ctx)
        ws__redis.redisFree(r->ctx);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static int redis_ping(ws_cache *c, ws_error *err)
{
    rcache *r = (rcache *)c;
    const char *argv[] = {"PING"};
    redisReply *rep;
    pthread_mutex_lock(&r->mu);
    int rc = command(r, 1, argv, NULL, &rep, err);
    pthread_mutex_unlock(&r->mu);
    ws__redis.freeReplyObject(rep);
    return rc;
}

static int redis_get(ws_cache *c, const char *key, size_t klen, ws_buf *out, ws_error *err)
{
    rcache *r = (rcache *)c;
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, klen};
    redisReply *rep;
    pthread_mutex_lock(&r->mu);
    int rc = command(r, 2, argv, lens, &rep, err);
    pthread_mutex_unlock(&r->mu);
    if (rc == 0) {
        if (rep->type == REDIS_REPLY_STRING)
            rc = rep->len > WS_CACHE_VALUE_MAX ? WS_ETOOBIG : ws_buf_append(out, rep->str, rep->len);
        else
            rc = WS_ENOENT;
    }
    ws__redis.freeReplyObject(rep);
    return rc;
}

static int redis_set(ws_cache *c, const char *key, size_t klen, const void *val, size_t len, int64_t ttl_ms,
                     ws_error *err)
{
    rcache *r = (rcache *)c;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
    const char *argv[] = {"SET", key, val, "PX", ttl};
    size_t lens[] = {3, klen, len, 2, strlen(ttl)};
    redisReply *rep;
    pthread_mutex_lock(&r->mu);
    int rc = command(r, ttl_ms > 0 ? 5 : 3, argv, lens, &rep, err);
    pthread_mutex_unlock(&r->mu);
    ws__redis.freeReplyObject(rep);
    return rc;
}

static int redis_del(ws_cache *c, const char *key, size_t klen, int *deleted, ws_error *err)
{
    rcache *r = (rcache *)c;
    const char *argv[] = {"DEL", key};
    size_t lens[] = {3, klen};
    redisReply *rep;
    pthread_mutex_lock(&r->mu);
    int rc = command(r, 2, argv, lens, &rep, err);
    pthread_mutex_unlock(&r->mu);
    if (rc == 0)
        *deleted = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
    ws__redis.freeReplyObject(rep);
    return rc;
}

/* SCAN MATCH pattern for keys starting with prefix: glob characters escaped, then '*'. */
static char *prefix_pattern(const char *prefix, size_t plen, size_t *out_len)
{
    char *p = ws_xmalloc(plen * 2 + 2);
    size_t o = 0;
    for (size_t i = 0; i < plen; i++) {
        if (strchr("*?[]\\^-", prefix[i]))
            p[o++] = '\\';
        p[o++] = prefix[i];
    }
    p[o++] = '*';
    p[o] = '\0';
    *out_len = o;
    return p;
}

static int redis_del_prefix(ws_cache *c, const char *prefix, size_t plen, int64_t *deleted, ws_error *err)
{
    rcache *r = (rcache *)c;
    size_t patlen;
    char *pat = prefix_pattern(prefix, plen, &patlen);
    char cursor[32] = "0";
    int rc = 0;
    int64_t n = 0;
    pthread_mutex_lock(&r->mu);
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pat, "COUNT", SCAN_COUNT};
        size_t lens[] = {4, strlen(cursor), 5, patlen, 5, strlen(SCAN_COUNT)};
        redisReply *rep;
        if ((rc = command(r, 6, argv, lens, &rep, err)) < 0)
            break;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_ARRAY) {
            ws__redis.freeReplyObject(rep);
            rc = ws_error_set(err, WS_EIO, "redis: unexpected SCAN reply");
            break;
        }
        snprintf(cursor, sizeof cursor, "%.*s", (int)rep->element[0]->len, rep->element[0]->str);
        redisReply *keys = rep->element[1];
        if (keys->elements) {
            size_t k = keys->elements;
            const char **dargv = ws_xmalloc((k + 1) * sizeof *dargv);
            size_t *dlens = ws_xmalloc((k + 1) * sizeof *dlens);
            dargv[0] = "UNLINK";
            dlens[0] = 6;
            for (size_t i = 0; i < k; i++) {
                dargv[i + 1] = keys->element[i]->str;
                dlens[i + 1] = keys->element[i]->len;
            }
            redisReply *drep;
            rc = command(r, (int)(k + 1), dargv, dlens, &drep, err);
            if (rc == 0 && drep->type == REDIS_REPLY_INTEGER)
                n += drep->integer;
            ws__redis.freeReplyObject(drep);
            free(dargv);
            free(dlens);
        }
        ws__redis.freeReplyObject(rep);
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    pthread_mutex_unlock(&r->mu);
    free(pat);
    *deleted = n;
    return rc;
}

static int redis_rate_check(ws_cache *c, const char *key, size_t klen, int64_t limit, int window_s,
                            ws_rate_result *out, ws_error *err)
{
    rcache *r = (rcache *)c;
    char win[24];
    snprintf(win, sizeof win, "%lld", (long long)window_s * 1000);
    const char *argv[] = {"EVAL", rate_script, "1", key, win};
    size_t lens[] = {4, sizeof rate_script - 1, 1, klen, strlen(win)};
    redisReply *rep;
    pthread_mutex_lock(&r->mu);
    int rc = command(r, 5, argv, lens, &rep, err);
    pthread_mutex_unlock(&r->mu);
    if (rc == 0) {
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
            rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[1]->type == REDIS_REPLY_INTEGER) {
            out->count = rep->element[0]->integer;
            out->retry_after_s = (int)((rep->element[1]->integer + 999) / 1000);
        } else {
            rc = ws_error_set(err, WS_EIO, "redis: unexpected rate-limit reply");
        }
    }
    ws__redis.freeReplyObject(rep);
    return rc;
}

static const ws_cache_ops redis_ops = {
    .name = "redis",
    .close = redis_close,
    .ping = redis_ping,
    .get = redis_get,
    .set = redis_set,
    .del = redis_del,
    .del_prefix = redis_del_prefix,
    .rate_check = redis_rate_check,
};

/* redis://[[user]:password@]host[:port][/db] */
static int parse_url(rcache *r, const char *url, ws_error *err)
{
    const char *p = url + strlen("redis://");
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        size_t n = (size_t)(at - pw);
        if (n >= sizeof r->password)
            return ws_error_set(err, WS_EINVAL, "cache: Redis password too long");
        memcpy(r->password, pw, n);
        r->password[n] = '\0';
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof r->host)
        return ws_error_set(err, WS_EINVAL, "cache: bad Redis host in '%s'", url);
    memcpy(r->host, p, hl);
    r->host[hl] = '\0';
    p += hl;
    r->port = 6379;
    if (*p == ':') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v < 1 || v > 65535 || (*end && *end != '/'))
            return ws_error_set(err, WS_EINVAL, "cache: bad Redis port in '%s'", url);
        r->port = (int)v;
        p = end;
    }
    if (*p == '/' && p[1]) {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end || v < 0 || v > 1000)
            return ws_error_set(err, WS_EINVAL, "cache: bad Redis database in '%s'", url);
        r->db = (int)v;
    }
    return 0;
}

int ws_cache_redis_open(const char *url, ws_cache **out, ws_error *err)
{
    int rc = ws__redis_load(err);
    if (rc < 0)
        return rc;
    rcache *r = ws_xcalloc(1, sizeof *r);
    r->base.ops = &redis_ops;
    pthread_mutex_init(&r->mu, NULL);
    rc = parse_url(r, url, err);
    if (rc == 0)
        rc = connect_ctx(r, err);
    if (rc < 0) {
        redis_close(&r->base);
        return rc;
    }
    *out = &r->base;
    return 0;
}
