/* The in-process cache: a hash table with a doubly-linked LRU list and per-entry expiry
 * (monotonic clock), capped by entry count and by bytes, guarded by one mutex. Expired
 * entries are dropped when touched and by the eviction of least recently used entries.
 * Rate-limit counters are ordinary entries holding a counter. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache_int.h"
#include "core/clock.h"
#include "core/mem.h"
#include "core/strset.h"

typedef struct entry {
    struct entry *hnext;       /* hash chain */
    struct entry *prev, *next; /* LRU list: head = most recent */
    uint64_t hash;
    int64_t expires; /* monotonic ms; 0 = never */
    int64_t counter; /* rate-limit count (value unused) */
    size_t klen, vlen;
    char *key;
    unsigned char *val;
} entry;

typedef struct memcache {
    ws_cache base;
    pthread_mutex_t mu;
    entry **buckets;
    size_t nbuckets, count, bytes;
    size_t max_entries, max_bytes;
    entry *head, *tail;
} memcache;

static size_t entry_bytes(const entry *e)
{
    return sizeof *e + e->klen + e->vlen;
}

static void lru_unlink(memcache *m, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        m->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        m->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(memcache *m, entry *e)
{
    e->prev = NULL;
    e->next = m->head;
    if (m->head)
        m->head->prev = e;
    m->head = e;
    if (!m->tail)
        m->tail = e;
}

static entry **find_slot(memcache *m, const char *key, size_t klen, uint64_t h)
{
    entry **pp = &m->buckets[h & (m->nbuckets - 1)];
    while (*pp && !((*pp)->hash == h && (*pp)->klen == klen && !memcmp((*pp)->key, key, klen)))
        pp = &(*pp)->hnext;
    return pp;
}

static void remove_entry(memcache *m, entry *e)
{
    entry **pp = find_slot(m, e->key, e->klen, e->hash);
    if (*pp == e)
        *pp = e->hnext;
    lru_unlink(m, e);
    m->count--;
    m->bytes -= entry_bytes(e);
    free(e->key);
    free(e->val);
    free(e);
}

/* The live entry for key, or NULL (an expired one is removed on the way). */
static entry *lookup(memcache *m, const char *key, size_t klen, int64_t now)
{
    uint64_t h = ws_hash_fnv1a(key, klen);
    entry *e = *find_slot(m, key, klen, h);
    if (e && e->expires && e->expires <= now) {
        remove_entry(m, e);
        e = NULL;
    }
    return e;
}

static void grow(memcache *m)
{
    size_t nb = m->nbuckets * 2;
    entry **b = ws_xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < m->nbuckets; i++)
        for (entry *e = m->buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

/* Drops least recently used entries until there is room for `extra` more bytes and one
 * more entry. */
static void make_room(memcache *m, size_t extra)
{
    while (m->tail && (m->count + 1 > m->max_entries || m->bytes + extra > m->max_bytes))
        remove_entry(m, m->tail);
}

/* A new entry for key (not present) that will hold vlen bytes of value (set by caller). */
static entry *insert(memcache *m, const char *key, size_t klen, size_t vlen)
{
    entry *e = ws_xcalloc(1, sizeof *e);
    e->hash = ws_hash_fnv1a(key, klen);
    e->key = ws_xmalloc(klen);
    memcpy(e->key, key, klen);
    e->klen = klen;
    e->vlen = vlen;
    make_room(m, entry_bytes(e));
    if (m->count + 1 > m->nbuckets)
        grow(m);
    entry **slot = &m->buckets[e->hash & (m->nbuckets - 1)];
    e->hnext = *slot;
    *slot = e;
    lru_push_front(m, e);
    m->count++;
    m->bytes += entry_bytes(e);
    return e;
}

static void mem_close(ws_cache *c)
{
    memcache *m = (memcache *)c;
    while (m->head)
        remove_entry(m, m->head);
    free(m->buckets);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static int mem_ping(ws_cache *c, ws_error *err)
{
    return 0;
}

static int mem_get(ws_cache *c, const char *key, size_t klen, ws_buf *out, ws_error *err)
{
    memcache *m = (memcache *)c;
    int rc = WS_ENOENT;
    pthread_mutex_lock(&m->mu);
    entry *e = lookup(m, key, klen, ws_now_ms_mono());
    if (e && e->val) {
        lru_unlink(m, e);
        lru_push_front(m, e);
        rc = ws_buf_append(out, e->val, e->vlen);
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int mem_set(ws_cache *c, const char *key, size_t klen, const void *val, size_t len, int64_t ttl_ms,
                   ws_error *err)
{
    memcache *m = (memcache *)c;
    if (sizeof(entry) + klen + len > m->max_bytes)
        return ws_error_set(err, WS_ETOOBIG, "cache: entry larger than the cache");
    unsigned char *copy = ws_xmalloc(len ? len : 1);
    memcpy(copy, val, len);
    pthread_mutex_lock(&m->mu);
    int64_t now = ws_now_ms_mono();
    entry *e = lookup(m, key, klen, now);
    if (e)
        remove_entry(m, e);
    e = insert(m, key, klen, len);
    e->val = copy;
    e->expires = ttl_ms > 0 ? now + ttl_ms : 0;
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int mem_del(ws_cache *c, const char *key, size_t klen, int *deleted, ws_error *err)
{
    memcache *m = (memcache *)c;
    pthread_mutex_lock(&m->mu);
    entry *e = lookup(m, key, klen, ws_now_ms_mono());
    if (e)
        remove_entry(m, e);
    *deleted = e != NULL;
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int mem_del_prefix(ws_cache *c, const char *prefix, size_t plen, int64_t *deleted, ws_error *err)
{
    memcache *m = (memcache *)c;
    int64_t n = 0, now;
    pthread_mutex_lock(&m->mu);
    now = ws_now_ms_mono();
    for (entry *e = m->head, *next; e; e = next) {
        next = e->next;
        if (e->klen >= plen && !memcmp(e->key, prefix, plen)) {
            n += !(e->expires && e->expires <= now);
            remove_entry(m, e);
        }
    }
    pthread_mutex_unlock(&m->mu);
    *deleted = n;
    return 0;
}

static int mem_rate_check(ws_cache *c, const char *key, size_t klen, int64_t limit, int window_s,
                          ws_rate_result *out, ws_error *err)
{
    memcache *m = (memcache *)c;
    pthread_mutex_lock(&m->mu);
    int64_t now = ws_now_ms_mono();
    entry *e = lookup(m, key, klen, now);
    if (!e) {
        e = insert(m, key, klen, 0);
        e->expires = now + (int64_t)window_s * 1000;
    } else {
        lru_unlink(m, e);
        lru_push_front(m, e);
    }
    e->counter++;
    out->count = e->counter;
    out->retry_after_s = (int)((e->expires - now + 999) / 1000);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static const ws_cache_ops memory_ops = {
    .name = "memory",
    .close = mem_close,
    .ping = mem_ping,
    .get = mem_get,
    .set = mem_set,
    .del = mem_del,
    .del_prefix = mem_del_prefix,
    .rate_check = mem_rate_check,
};

/* Reads "name=N" from a query string; false if absent. */
static bool query_size(const char *q, const char *name, size_t *out, ws_error *err, int *rc)
{
    size_t n = strlen(name);
    for (const char *p = q; p && *p;) {
        if (!strncmp(p, name, n) && p[n] == '=') {
            char *end;
            unsigned long long v = strtoull(p + n + 1, &end, 10);
            if (end == p + n + 1 || (*end && *end != '&') || v == 0) {
                *rc = ws_error_set(err, WS_EINVAL, "cache: bad %s", name);
                return false;
            }
            *out = (size_t)v;
            return true;
        }
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return false;
}

int ws_cache_memory_open(const char *url, ws_cache **out, ws_error *err)
{
    int rc = 0;
    size_t max_entries = 100000, max_bytes = 256u << 20;
    const char *q = strchr(url, '?');
    if (q) {
        query_size(q + 1, "max_entries", &max_entries, err, &rc);
        if (rc == 0)
            query_size(q + 1, "max_bytes", &max_bytes, err, &rc);
        if (rc < 0)
            return rc;
    }
    memcache *m = ws_xcalloc(1, sizeof *m);
    m->base.ops = &memory_ops;
    pthread_mutex_init(&m->mu, NULL);
    m->nbuckets = 64;
    m->buckets = ws_xcalloc(m->nbuckets, sizeof *m->buckets);
    m->max_entries = max_entries;
    m->max_bytes = max_bytes;
    *out = &m->base;
    return 0;
}
