/* The store's analytics events and the transactional outbox (see store.h). */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/base64.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/trace.h"
#include "store/store_int.h"

/* ------------------------------------------------------------------ events and outbox */

int ws_store_event_append(ws_store *s, const char *user_id, const char *event_type, const char *data_json,
                          int64_t *id_out, ws_error *err)
{
    int rc;
    if ((rc = ws__store_check_text(err, "user id", user_id, WS_STORE_ID_MAX, false)) < 0 ||
        (rc = ws__store_check_text(err, "event type", event_type, TYPE_MAX, true)) < 0 ||
        (rc = ws__store_check_json(err, "event data", data_json)) < 0)
        return rc;
    ws_arena *a = ws_arena_new(1024);
    int64_t now = ws_store_now_ms();
    ws_dbp p[] = {DBP_S(user_id), DBP_S(event_type), DBP_S(data_json), DBP_I(now)};
    ws_dbres r = {0};
    ws_buf b = WS_BUF_INIT;
    if ((rc = ws__store_tx_begin(s, err)) < 0)
        goto out;
    rc = ws__store_query(s, s->db, a,
                         "INSERT INTO analytics_events (user_id, event_type, event_data, created_at)"
                         " VALUES ($1, $2, $3, $4) RETURNING event_id",
                         p, NP(p), &r, err);
    if (rc == WS_ENOENT)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    int64_t id = rc == 0 && r.nrows ? ws__store_cell_i64(&r, 0, 0) : 0;
    if (rc == 0) {
        ws__store_analytics_payload(&b, id, user_id, event_type, data_json, now);
        rc = ws__store_outbox_insert(s, a, "analytics-events", user_id, b.data, err);
    }
    rc = ws__store_tx_end(s, rc, err);
    if (rc == 0 && id_out)
        *id_out = id;
out:
    ws_buf_free(&b);
    ws_arena_free(a);
    return rc;
}

int ws_store_event_count(ws_store *s, const char *user_id, int64_t *count, ws_error *err)
{
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(user_id)};
    ws_dbres r = {0};
    int rc = ws__store_read_query(s, a, "SELECT COUNT(*) FROM analytics_events WHERE user_id = $1", p, NP(p),
                                  &r, err);
    *count = rc == 0 && r.nrows ? ws__store_cell_i64(&r, 0, 0) : 0;
    ws_arena_free(a);
    return rc;
}

int ws_store_outbox_put(ws_store *s, const char *topic, const char *key, const char *payload_json,
                        ws_error *err)
{
    int rc;
    if ((rc = ws__store_check_text(err, "topic", topic, TYPE_MAX, true)) < 0 ||
        (rc = ws__store_check_text(err, "message key", key, CLIENT_MAX, false)) < 0)
        return rc;
    if (!payload_json)
        return ws_error_set(err, WS_EINVAL, "payload is required");
    if ((rc = ws__store_check_json(err, "payload", payload_json)) < 0)
        return rc;
    ws_arena *a = ws_arena_new(256);
    rc = ws__store_outbox_insert(s, a, topic, key, payload_json, err);
    ws_arena_free(a);
    return rc;
}

int ws_store_outbox_fetch(ws_store *s, ws_arena *a, int limit, ws_outbox_msg **items, size_t *n,
                          ws_error *err)
{
    int rc;
    *items = NULL;
    *n = 0;
    if ((rc = ws__store_check_limit(err, &limit)) < 0)
        return rc;
    ws_dbp p[] = {DBP_I(limit)};
    ws_dbres r = {0};
    rc = ws__store_query(s, s->db, a,
                         "SELECT " OUTBOX_COLS " FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
                         p, NP(p), &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows) {
        *items = ws_arena_calloc(a, (size_t)r.nrows * sizeof **items);
        for (int i = 0; i < r.nrows; i++) {
            ws_outbox_msg *m = &(*items)[i];
            m->id = ws__store_cell_i64(&r, i, 0);
            m->topic = ws__store_cell(&r, i, 1);
            m->key = ws__store_cell(&r, i, 2);
            m->payload = ws__store_cell(&r, i, 3);
            m->created_at = ws__store_cell_i64(&r, i, 4);
        }
    }
    *n = (size_t)r.nrows;
    return 0;
}

int ws_store_outbox_mark_published(ws_store *s, const int64_t *ids, size_t n, ws_error *err)
{
    if (n == 0)
        return 0;
    ws_arena *a = ws_arena_new(256);
    int64_t now = ws_store_now_ms();
    int rc = ws__store_tx_begin(s, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        ws_dbp p[] = {DBP_I(ids[i]), DBP_I(now)};
        rc = ws__store_query(s, s->db, a, "UPDATE outbox SET published_at = $2 WHERE id = $1", p, NP(p), NULL,
                             err);
    }
    rc = ws__store_tx_end(s, rc, err);
    ws_arena_free(a);
    return rc;
}
