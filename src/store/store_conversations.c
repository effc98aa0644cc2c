/* The store's conversations: keyset cursors, single and batched inserts (multi-row statements
 * with their analytics events), count and list (see store.h). */
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

/* ------------------------------------------------------------------ conversations */

int ws_store_cursor_encode(int64_t created_at, int64_t id, char *out, size_t out_size)
{
    char raw[48];
    int n = snprintf(raw, sizeof raw, "%" PRId64 ".%" PRId64, created_at, id);
    if (created_at < 0 || id < 0 || n <= 0)
        return WS_EINVAL;
    size_t need = 3 + ((size_t)n * 4 + 2) / 3 + 1;
    if (out_size < need)
        return WS_EINVAL;
    memcpy(out, "c1.", 3);
    ws_base64url_encode(raw, (size_t)n, out + 3);
    return 0;
}

/* Parses a non-negative decimal int64 of digits only; false on empty/overflow/junk. */
static bool parse_u63(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 19 || (n > 1 && s[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return false;
    *out = (int64_t)v;
    return true;
}

int ws_store_cursor_decode(const char *s, size_t len, int64_t *created_at, int64_t *id)
{
    if (!s || len < 4 || len > WS_STORE_CURSOR_MAX || memcmp(s, "c1.", 3))
        return WS_EINVAL;
    const char *p = s + 3;
    size_t n = len - 3;
    unsigned char raw_bytes[WS_STORE_CURSOR_MAX];
    long decoded = ws_base64url_decode(p, n, raw_bytes, sizeof raw_bytes);
    if (decoded < 0)
        return WS_EINVAL;
    const char *raw = (const char *)raw_bytes;
    size_t o = (size_t)decoded;
    const char *dot = memchr(raw, '.', o);
    if (!dot)
        return WS_EINVAL;
    size_t l1 = (size_t)(dot - raw);
    if (!parse_u63(raw, l1, created_at) || !parse_u63(dot + 1, o - l1 - 1, id))
        return WS_EINVAL;
    return 0;
}

static void fill_conv(const ws_dbres *r, int i, ws_conversation *c)
{
    c->id = ws__store_cell_i64(r, i, 0);
    c->user_id = ws__store_cell(r, i, 1);
    c->message = ws__store_cell(r, i, 2);
    c->response = ws__store_cell(r, i, 3);
    c->confidence = ws__store_cell_dbl(r, i, 4);
    c->processing_ms = (int)ws__store_cell_i64(r, i, 5);
    c->model_version = ws__store_cell(r, i, 6);
    c->created_at = ws__store_cell_i64(r, i, 7);
}

/* The checks every conversation row passes before it is written. */
static int conv_validate(const ws_conversation *c, ws_error *err)
{
    int rc;
    if ((rc = ws__store_check_text(err, "user id", c->user_id, WS_STORE_ID_MAX, true)) < 0 ||
        (rc = ws__store_check_text(err, "message", c->message, WS_STORE_TEXT_MAX, false)) < 0 ||
        (rc = ws__store_check_text(err, "response", c->response, WS_STORE_TEXT_MAX, false)) < 0 ||
        (rc = ws__store_check_text(err, "model version", c->model_version, VERSION_MAX, false)) < 0)
        return rc;
    if (!c->message || !c->response)
        return ws_error_set(err, WS_EINVAL, "message and response are required");
    if (c->created_at < 0 || c->processing_ms < 0)
        return ws_error_set(err, WS_EINVAL, "negative time");
    return 0;
}

int ws_store_conv_insert(ws_store *s, const ws_conversation *c, int64_t *id_out, ws_error *err)
{
    int rc;
    if ((rc = conv_validate(c, err)) < 0)
        return rc;
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(c->user_id),       DBP_S(c->message),
                  DBP_S(c->response),      DBP_D(c->confidence),
                  DBP_I(c->processing_ms), DBP_I(c->created_at ? c->created_at : ws_store_now_ms()),
                  DBP_S(c->model_version)};
    ws_dbres r = {0};
    rc = ws__store_query(s, s->db, a,
                         "INSERT INTO conversations (user_id, message, response, confidence,"
                         " processing_time_ms, created_at, model_version) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                         " RETURNING conversation_id",
                         p, NP(p), &r, err);
    if (rc == WS_ENOENT)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    if (rc == 0 && id_out)
        *id_out = r.nrows ? ws__store_cell_i64(&r, 0, 0) : 0;
    ws_arena_free(a);
    return rc;
}

/* ---- batch insert */

/* Rows per multi-row statement: 64 * 7 parameters stays far below SQLite's and PostgreSQL's
 * limits on parameters per statement. */
#define BATCH_CHUNK 64
/* Distinct user ids looked up per statement. */
#define BATCH_USERS 256

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

/* Appends "($k+1, ..., $k+w)" to sql. */
static void put_placeholders(ws_buf *sql, int k, int w)
{
    ws_buf_putc(sql, '(');
    for (int j = 0; j < w; j++) {
        ws_buf_puts(sql, j ? ", $" : "$");
        ws_buf_put_i64(sql, k + j + 1);
    }
    ws_buf_putc(sql, ')');
}

/* Looks up (and, on PostgreSQL, locks against deletion until the commit) the users of the
 * batch; rows of a user that does not exist get status WS_ENOENT. */
static int batch_mark_missing_users(ws_store *s, ws_arena *a, ws_conv_batch_row *rows, size_t n,
                                    ws_error *err)
{
    const char **ids = ws_arena_alloc(a, n * sizeof *ids);
    bool *found = ws_arena_calloc(a, n * sizeof *found);
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < nd && strcmp(ids[k], rows[i].conv.user_id))
            k++;
        if (k == nd)
            ids[nd++] = rows[i].conv.user_id;
    }
    ws_buf sql = WS_BUF_INIT;
    int rc = 0;
    for (size_t at = 0; rc == 0 && at < nd; at += BATCH_USERS) {
        int m = (int)(nd - at < BATCH_USERS ? nd - at : BATCH_USERS);
        ws_dbp *p = ws_arena_alloc(a, (size_t)m * sizeof *p);
        ws_buf_reset(&sql);
        ws_buf_puts(&sql, "SELECT user_id FROM users WHERE user_id IN ");
        put_placeholders(&sql, 0, m);
        if (s->drv->is_pg)
            ws_buf_puts(&sql, " FOR KEY SHARE");
        for (int j = 0; j < m; j++)
            p[j] = DBP_S(ids[at + (size_t)j]);
        ws_dbres r = {0};
        rc = ws__store_query(s, s->db, a, sql.data, p, m, &r, err);
        for (int row = 0; rc == 0 && row < r.nrows; row++) {
            const char *id = ws__store_cell(&r, row, 0);
            for (int j = 0; id && j < m; j++)
                if (!strcmp(id, ids[at + (size_t)j]))
                    found[at + (size_t)j] = true;
        }
    }
    ws_buf_free(&sql);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t k = 0;
        while (strcmp(ids[k], rows[i].conv.user_id))
            k++;
        if (!found[k])
            rows[i].status = WS_ENOENT;
    }
    return rc;
}

/* Runs one multi-row INSERT ... RETURNING <id> for m rows of w parameters each (p), and
 * puts the new ids, in the order of the rows, into ids. Identity values are handed out in
 * the order of the VALUES list, so the sorted ids match the rows whatever order RETURNING
 * uses. */
/* The text of a multi-row insert, built once per store handle (the writer runs the same
 * few thousand-placeholder statements batch after batch). */
static const char *insert_sql(ws_store *s, const char *head, const char *id_col, int w, int m)
{
    const size_t n_memo = sizeof s->memo / sizeof *s->memo;
    for (size_t i = 0; i < n_memo; i++) {
        struct sql_memo *e = &s->memo[i];
        if (e->sql && e->head == head && e->id_col == id_col && e->w == w && e->m == m)
            return e->sql;
    }
    ws_buf sql = WS_BUF_INIT;
    ws_buf_puts(&sql, head);
    for (int j = 0; j < m; j++) {
        if (j)
            ws_buf_puts(&sql, ", ");
        put_placeholders(&sql, j * w, w);
    }
    if (id_col) {
        ws_buf_puts(&sql, " RETURNING ");
        ws_buf_puts(&sql, id_col);
    }
    struct sql_memo *e = &s->memo[s->memo_next];
    s->memo_next = (int)(((size_t)s->memo_next + 1) % n_memo);
    free(e->sql);
    *e = (struct sql_memo){.head = head, .id_col = id_col, .w = w, .m = m, .sql = ws_buf_take(&sql)};
    return e->sql;
}

static int insert_rows(ws_store *s, ws_arena *a, const char *head, const char *id_col, int w, const ws_dbp *p,
                       int m, int64_t *ids, ws_error *err)
{
    ws_dbres r = {0};
    int rc =
        ws__store_query(s, s->db, a, insert_sql(s, head, id_col, w, m), p, m * w, id_col ? &r : NULL, err);
    if (rc < 0 || !id_col)
        return rc;
    if (r.nrows != m)
        return ws_error_set(err, WS_EIO, "batch insert returned %d ids for %d rows", r.nrows, m);
    for (int j = 0; j < m; j++)
        ids[j] = ws__store_cell_i64(&r, j, 0);
    qsort(ids, (size_t)m, sizeof *ids, cmp_i64);
    return 0;
}

/* Inserts m rows (see insert_rows). SQLite keeps prepared statements by their text, so
 * there the rows go in pieces of a power-of-two size (64, 32, ..., 1): at most seven
 * statement texts per table, each parsed once per connection. PostgreSQL takes them in one
 * statement (a round trip each). Later statements get later ids, so ids stay in row order. */
static int batch_insert(ws_store *s, ws_arena *a, const char *head, const char *id_col, int w,
                        const ws_dbp *p, int m, int64_t *ids, ws_error *err)
{
    if (s->drv->is_pg)
        return insert_rows(s, a, head, id_col, w, p, m, ids, err);
    for (int at = 0; at < m;) {
        int piece = BATCH_CHUNK;
        while (piece > m - at)
            piece /= 2;
        int rc =
            insert_rows(s, a, head, id_col, w, p + (size_t)at * (size_t)w, piece, ids ? ids + at : NULL, err);
        if (rc < 0)
            return rc;
        at += piece;
    }
    return 0;
}

/* The outbox payload of an analytics event (also written by ws_store_event_append). */
void ws__store_analytics_payload(ws_buf *b, int64_t id, const char *user_id, const char *event_type,
                                 const char *data_json, int64_t now)
{
    ws_buf_puts(b, "{\"type\":\"analytics\",\"event_id\":");
    ws_buf_put_i64(b, id);
    ws_buf_puts(b, ",\"user_id\":");
    ws_json_put_cstr(b, user_id);
    ws_buf_puts(b, ",\"event_type\":");
    ws_json_put_cstr(b, event_type);
    ws_buf_puts(b, ",\"data\":");
    ws_buf_puts(b, data_json ? data_json : "null");
    ws_buf_puts(b, ",\"created_at\":");
    ws_buf_put_i64(b, now);
    ws_buf_putc(b, '}');
}

/* Writes the conversations and events of rows[0..m) (at most BATCH_CHUNK) that are not
 * skipped. */
static int batch_chunk(ws_store *s, ws_arena *a, ws_conv_batch_row *rows, size_t m, int64_t now, size_t *nw,
                       ws_error *err)
{
    ws_conv_batch_row *take[BATCH_CHUNK], *ev[BATCH_CHUNK];
    int nt = 0, ne = 0;
    for (size_t i = 0; i < m; i++) {
        if (rows[i].status != 0)
            continue;
        take[nt++] = &rows[i];
        if (rows[i].event_type)
            ev[ne++] = &rows[i];
    }
    if (nt == 0)
        return 0;
    int64_t ids[BATCH_CHUNK];
    ws_dbp *p = ws_arena_alloc(a, (size_t)nt * 7 * sizeof *p);
    for (int j = 0; j < nt; j++) {
        const ws_conversation *c = &take[j]->conv;
        ws_dbp *r = p + (size_t)j * 7;
        r[0] = DBP_S(c->user_id);
        r[1] = DBP_S(c->message);
        r[2] = DBP_S(c->response);
        r[3] = DBP_D(c->confidence);
        r[4] = DBP_I(c->processing_ms);
        r[5] = DBP_I(c->created_at ? c->created_at : now);
        r[6] = DBP_S(c->model_version);
    }
    int rc = batch_insert(s, a,
                          "INSERT INTO conversations (user_id, message, response, confidence,"
                          " processing_time_ms, created_at, model_version) VALUES ",
                          "conversation_id", 7, p, nt, ids, err);
    if (rc < 0)
        return rc;
    for (int j = 0; j < nt; j++)
        take[j]->id = ids[j];
    *nw += (size_t)nt;
    if (ne == 0)
        return 0;
    p = ws_arena_alloc(a, (size_t)ne * 4 * sizeof *p);
    for (int j = 0; j < ne; j++) {
        ws_dbp *r = p + (size_t)j * 4;
        r[0] = DBP_S(ev[j]->conv.user_id);
        r[1] = DBP_S(ev[j]->event_type);
        r[2] = DBP_S(ev[j]->event_data_json);
        r[3] = DBP_I(now);
    }
    rc = batch_insert(s, a,
                      "INSERT INTO analytics_events (user_id, event_type, event_data, created_at)"
                      " VALUES ",
                      "event_id", 4, p, ne, ids, err);
    if (rc < 0)
        return rc;
    ws_buf b = WS_BUF_INIT;
    p = ws_arena_alloc(a, (size_t)ne * 4 * sizeof *p);
    for (int j = 0; j < ne; j++) {
        ws_buf_reset(&b);
        ws__store_analytics_payload(&b, ids[j], ev[j]->conv.user_id, ev[j]->event_type,
                                    ev[j]->event_data_json, now);
        ws_dbp *r = p + (size_t)j * 4;
        r[0] = DBP_S("analytics-events");
        r[1] = DBP_S(ev[j]->conv.user_id);
        r[2] = DBP_S(ws_arena_strndup(a, b.data, b.len));
        r[3] = DBP_I(now);
    }
    ws_buf_free(&b);
    return batch_insert(s, a, "INSERT INTO outbox (topic, msg_key, payload, created_at) VALUES ", NULL, 4, p,
                        ne, NULL, err);
}

int ws_store_conv_insert_batch(ws_store *s, ws_conv_batch_row *rows, size_t n, size_t *written, ws_error *err)
{
    int rc = 0;
    size_t nw = 0;
    if (written)
        *written = 0;
    if (n > WS_STORE_BATCH_MAX)
        return ws_error_set(err, WS_ETOOBIG, "a batch holds at most %d rows", WS_STORE_BATCH_MAX);
    for (size_t i = 0; i < n; i++) {
        ws_error e = {0};
        ws_conv_batch_row *r = &rows[i];
        r->id = 0;
        r->status = 0;
        if ((rc = conv_validate(&r->conv, &e)) < 0 ||
            (r->event_type &&
             ((rc = ws__store_check_text(&e, "event type", r->event_type, TYPE_MAX, true)) < 0 ||
              (rc = ws__store_check_json(&e, "event data", r->event_data_json)) < 0)))
            return ws_error_set(err, rc, "row %zu: %s", i, e.msg);
    }
    if (n == 0)
        return 0;
    ws_arena *a = ws_arena_new(16384);
    int64_t now = ws_store_now_ms();
    if ((rc = ws__store_tx_begin(s, err)) < 0)
        goto out;
    rc = batch_mark_missing_users(s, a, rows, n, err);
    for (size_t at = 0; rc == 0 && at < n; at += BATCH_CHUNK)
        rc = batch_chunk(s, a, rows + at, n - at < BATCH_CHUNK ? n - at : BATCH_CHUNK, now, &nw, err);
    rc = ws__store_tx_end(s, rc, err);
out:
    if (rc < 0) {
        nw = 0;
        for (size_t i = 0; i < n; i++)
            rows[i].id = 0;
    }
    if (written)
        *written = nw;
    ws_arena_free(a);
    return rc;
}

int ws_store_conv_count(ws_store *s, const char *user_id, int64_t *count, ws_error *err)
{
    *count = 0;
    if (!user_id)
        return ws_error_set(err, WS_EINVAL, "no user given");
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(user_id)};
    ws_dbres r = {0};
    int rc = ws__store_query(s, s->db, a, "SELECT COUNT(*) FROM conversations WHERE user_id = $1", p, NP(p),
                             &r, err);
    if (rc == 0 && r.nrows)
        *count = ws__store_cell_i64(&r, 0, 0);
    ws_arena_free(a);
    return rc;
}

int ws_store_conv_list(ws_store *s, ws_arena *a, const char *user_id, int limit, const char *cursor,
                       ws_conversation **items, size_t *n, const char **next_cursor, ws_error *err)
{
    int rc;
    *items = NULL;
    *n = 0;
    *next_cursor = NULL;
    if (!user_id)
        return ws_error_set(err, WS_EINVAL, "no user given");
    if ((rc = ws__store_check_limit(err, &limit)) < 0)
        return rc;
    int64_t after_ts = INT64_MAX, after_id = INT64_MAX;
    if (cursor && *cursor &&
        ws_store_cursor_decode(cursor, strnlen(cursor, WS_STORE_CURSOR_MAX + 1), &after_ts, &after_id) < 0)
        return ws_error_set(err, WS_EINVAL, "malformed cursor");
    ws_dbp p[] = {DBP_S(user_id), DBP_I(after_ts), DBP_I(after_id), DBP_I(limit + 1)};
    ws_dbres r = {0};
    rc = ws__store_read_query(s, a,
                              "SELECT " CONV_COLS " FROM conversations WHERE user_id = $1"
                              " AND (created_at, conversation_id) < ($2, $3)"
                              " ORDER BY created_at DESC, conversation_id DESC LIMIT $4",
                              p, NP(p), &r, err);
    if (rc < 0)
        return rc;
    int take = r.nrows > limit ? limit : r.nrows;
    if (take) {
        *items = ws_arena_calloc(a, (size_t)take * sizeof **items);
        for (int i = 0; i < take; i++)
            fill_conv(&r, i, &(*items)[i]);
    }
    *n = (size_t)take;
    if (r.nrows > limit) {
        char *cur = ws_arena_alloc(a, WS_STORE_CURSOR_MAX);
        const ws_conversation *last = &(*items)[take - 1];
        if (ws_store_cursor_encode(last->created_at, last->id, cur, WS_STORE_CURSOR_MAX) == 0)
            *next_cursor = cur;
    }
    return 0;
}
