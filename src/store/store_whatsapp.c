/* The store's WhatsApp tables (store_whatsapp.h), written once against the driver interface
 * like store.c: the webhook inbox, links and modes, the message log with dedupe and
 * status ranks, and drafts. */
#include "store/store_whatsapp.h"

#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define NP(arr) ((int)(sizeof(arr) / sizeof((arr)[0])))
#define DRAFT_COLS                                                                                           \
    "d.draft_id, d.user_id, d.phone_number_id, d.contact_phone, d.contact_user_id, d.in_wamid, m.body,"      \
    " d.mode, d.status, d.reply, d.confidence, d.reason, d.error_code, d.error_message, d.out_wamid,"        \
    " d.attempts, d.next_attempt_at, d.created_at, d.updated_at"
#define DRAFT_FROM " FROM wa_drafts d LEFT JOIN wa_messages m ON m.wamid = d.in_wamid"
#define LINK_COLS "phone_number_id, user_id, token_blob, default_mode, created_at, updated_at"

static int check_id(const char *what, const char *v, ws_error *err)
{
    if (!v || !*v)
        return ws_error_set(err, WS_EINVAL, "%s is required", what);
    if (strlen(v) > 256)
        return ws_error_set(err, WS_ETOOBIG, "%s is longer than 256 bytes", what);
    return 0;
}

/* ---- inbox ---------------------------------------------------------------------------- */

int ws_store_wa_inbox_put(ws_store *s, const char *body, size_t len, int64_t *id, ws_error *err)
{
    if (len > WS_WA_INBOX_BODY_MAX)
        return ws_error_set(err, WS_ETOOBIG, "webhook body over %u bytes", WS_WA_INBOX_BODY_MAX);
    if (memchr(body, '\0', len))
        return ws_error_set(err, WS_EINVAL, "webhook body holds a NUL byte");
    ws_arena *a = ws_arena_new(1024);
    char *copy = ws_arena_strndup(a, body, len);
    ws_dbp p[] = {DBP_S(copy), DBP_I(ws_store_now_ms())};
    ws_dbres r = {0};
    int rc = ws__store_query(s, ws__store_db(s), a,
                             "INSERT INTO wa_inbox (body, received_at) VALUES ($1, $2) RETURNING id", p,
                             NP(p), &r, err);
    if (rc == 0 && id)
        *id = r.nrows ? ws__store_cell_i64(&r, 0, 0) : 0;
    ws_arena_free(a);
    return rc;
}

int ws_store_wa_inbox_put_many(ws_store *s, const char *const *bodies, const size_t *lens, size_t n,
                               ws_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if (lens[i] > WS_WA_INBOX_BODY_MAX)
            return ws_error_set(err, WS_ETOOBIG, "webhook body %zu over %u bytes", i, WS_WA_INBOX_BODY_MAX);
        if (memchr(bodies[i], '\0', lens[i]))
            return ws_error_set(err, WS_EINVAL, "webhook body %zu holds a NUL byte", i);
    }
    ws_arena *a = ws_arena_new(4096);
    int64_t now = ws_store_now_ms();
    int rc = ws__store_tx_begin(s, err);
    if (rc == 0) {
        for (size_t i = 0; rc == 0 && i < n; i++) {
            ws_dbp p[] = {DBP_S(ws_arena_strndup(a, bodies[i], lens[i])), DBP_I(now)};
            rc = ws__store_query(s, ws__store_db(s), a,
                                 "INSERT INTO wa_inbox (body, received_at) VALUES ($1, $2)", p, NP(p), NULL,
                                 err);
        }
        rc = ws__store_tx_end(s, rc, err);
    }
    ws_arena_free(a);
    return rc;
}

int ws_store_wa_inbox_take(ws_store *s, ws_arena *a, int limit, ws_wa_inbox_item **items, size_t *n,
                           ws_error *err)
{
    *items = NULL;
    *n = 0;
    ws_dbp p[] = {DBP_I(limit < 1 ? 1 : limit)};
    ws_dbres r = {0};
    int rc = ws__store_tx_begin(s, err);
    if (rc)
        return rc;
    rc = ws__store_query(s, ws__store_db(s), a,
                         "SELECT id, body, attempts FROM wa_inbox ORDER BY id LIMIT $1", p, NP(p), &r, err);
    if (rc == 0 && r.nrows) {
        ws_dbp p2[] = {DBP_I(ws__store_cell_i64(&r, r.nrows - 1, 0))};
        rc = ws__store_query(s, ws__store_db(s), a,
                             "UPDATE wa_inbox SET attempts = attempts + 1 WHERE id <= $1", p2, NP(p2), NULL,
                             err);
    }
    rc = ws__store_tx_end(s, rc, err);
    if (rc || !r.nrows)
        return rc;
    *items = ws_arena_calloc(a, (size_t)r.nrows * sizeof **items);
    for (int i = 0; i < r.nrows; i++) {
        ws_wa_inbox_item *it = &(*items)[i];
        it->id = ws__store_cell_i64(&r, i, 0);
        it->body = ws__store_cell(&r, i, 1) ? ws__store_cell(&r, i, 1) : "";
        it->len = strlen(it->body);
        it->attempts = (int)ws__store_cell_i64(&r, i, 2) + 1;
    }
    *n = (size_t)r.nrows;
    return 0;
}

int ws_store_wa_inbox_process(ws_store *s, ws_arena *a, int limit, ws_wa_inbox_fn fn, void *arg, size_t *n,
                              ws_error *err)
{
    if (n)
        *n = 0;
    ws_dbp p[] = {DBP_I(limit < 1 ? 1 : limit)};
    ws_dbres r = {0};
    int rc = ws__store_tx_begin(s, err);
    if (rc)
        return rc;
    rc = ws__store_query(s, ws__store_db(s), a,
                         "SELECT id, body, attempts FROM wa_inbox ORDER BY id LIMIT $1", p, NP(p), &r, err);
    for (int i = 0; rc == 0 && i < r.nrows; i++) {
        ws_wa_inbox_item it = {.id = ws__store_cell_i64(&r, i, 0),
                               .body = ws__store_cell(&r, i, 1) ? ws__store_cell(&r, i, 1) : "",
                               .attempts = (int)ws__store_cell_i64(&r, i, 2)};
        it.len = strlen(it.body);
        rc = fn(arg, s, &it, err);
        ws_dbp pd[] = {DBP_I(it.id)};
        if (rc == 0)
            rc = ws__store_query(s, ws__store_db(s), a, "DELETE FROM wa_inbox WHERE id = $1", pd, NP(pd),
                                 NULL, err);
    }
    rc = ws__store_tx_end(s, rc, err);
    if (rc == 0 && n)
        *n = (size_t)r.nrows;
    for (int i = 0; rc != 0 && i < r.nrows; i++) {
        ws_dbp pa[] = {DBP_I(ws__store_cell_i64(&r, i, 0))};
        ws__store_query(s, ws__store_db(s), a, "UPDATE wa_inbox SET attempts = attempts + 1 WHERE id = $1",
                        pa, NP(pa), NULL, NULL);
    }
    return rc;
}

static int sqlite_pragma(ws_store *s, const char *sql, ws_error *err)
{
    if (strcmp(ws_store_backend(s), "sqlite") != 0)
        return 0;
    ws_arena *a = ws_arena_new(256);
    ws_dbres r = {0};
    int rc = ws__store_query(s, ws__store_db(s), a, sql, NULL, 0, &r, err);
    ws_arena_free(a);
    return rc;
}

int ws_store_wa_defer_checkpoints(ws_store *s, ws_error *err)
{
    return sqlite_pragma(s, "PRAGMA wal_autocheckpoint = 0", err);
}

int ws_store_wa_checkpoint(ws_store *s, ws_error *err)
{
    return sqlite_pragma(s, "PRAGMA wal_checkpoint(PASSIVE)", err);
}

int ws_store_wa_inbox_done(ws_store *s, int64_t id, ws_error *err)
{
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_I(id)};
    int rc =
        ws__store_query(s, ws__store_db(s), a, "DELETE FROM wa_inbox WHERE id = $1", p, NP(p), NULL, err);
    ws_arena_free(a);
    return rc;
}

static int count_where(ws_store *s, const char *sql, const ws_dbp *p, int np, int64_t *n, ws_error *err)
{
    ws_arena *a = ws_arena_new(256);
    ws_dbres r = {0};
    int rc = ws__store_query(s, ws__store_db(s), a, sql, p, np, &r, err);
    *n = rc == 0 && r.nrows ? ws__store_cell_i64(&r, 0, 0) : 0;
    ws_arena_free(a);
    return rc;
}

int ws_store_wa_inbox_count(ws_store *s, int64_t *n, ws_error *err)
{
    return count_where(s, "SELECT COUNT(*) FROM wa_inbox", NULL, 0, n, err);
}

/* ---- links and modes ------------------------------------------------------------------ */

static const char *const mode_names[] = {"off", "draft", "auto"};

const char *ws_wa_mode_name(ws_wa_mode m)
{
    return (unsigned)m <= WS_WA_MODE_AUTO ? mode_names[m] : "off";
}

int ws_wa_mode_parse(const char *name, ws_wa_mode *out)
{
    for (int i = 0; name && i <= WS_WA_MODE_AUTO; i++) {
        if (!strcmp(name, mode_names[i])) {
            *out = (ws_wa_mode)i;
            return 0;
        }
    }
    return WS_EINVAL;
}

static void fill_link(const ws_dbres *r, int i, ws_wa_link *l)
{
    l->phone_number_id = ws__store_cell(r, i, 0);
    l->user_id = ws__store_cell(r, i, 1);
    l->token_blob = ws__store_cell(r, i, 2);
    if (ws_wa_mode_parse(ws__store_cell(r, i, 3), &l->default_mode) != 0)
        l->default_mode = WS_WA_MODE_OFF;
    l->created_at = ws__store_cell_i64(r, i, 4);
    l->updated_at = ws__store_cell_i64(r, i, 5);
}

int ws_store_wa_link_put(ws_store *s, const ws_wa_link *l, ws_error *err)
{
    int rc = check_id("phone_number_id", l->phone_number_id, err);
    if (rc || (rc = check_id("user_id", l->user_id, err)) ||
        (rc = check_id("token", l->token_blob ? "t" : NULL, err)))
        return rc;
    ws_arena *a = ws_arena_new(1024);
    int64_t now = ws_store_now_ms();
    ws_dbp p[] = {DBP_S(l->phone_number_id), DBP_S(l->user_id), DBP_S(l->token_blob),
                  DBP_S(ws_wa_mode_name(l->default_mode)), DBP_I(now)};
    ws_dbres r = {0};
    rc = ws__store_query(s, ws__store_db(s), a,
                         "INSERT INTO wa_links (" LINK_COLS ") VALUES ($1, $2, $3, $4, $5, $5)"
                         " ON CONFLICT (phone_number_id) DO UPDATE SET token_blob = excluded.token_blob,"
                         " default_mode = excluded.default_mode, updated_at = excluded.updated_at"
                         " WHERE wa_links.user_id = excluded.user_id RETURNING phone_number_id",
                         p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ECONFLICT, "that number is linked to another account");
    ws_arena_free(a);
    return rc;
}

int ws_store_wa_link_get(ws_store *s, ws_arena *a, const char *phone_number_id, ws_wa_link *out,
                         ws_error *err)
{
    ws_dbp p[] = {DBP_S(phone_number_id)};
    ws_dbres r = {0};
    int rc =
        ws__store_query(s, ws__store_db(s), a,
                        "SELECT " LINK_COLS " FROM wa_links WHERE phone_number_id = $1", p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "number not linked");
    if (rc == 0)
        fill_link(&r, 0, out);
    return rc;
}

int ws_store_wa_link_list(ws_store *s, ws_arena *a, const char *user_id, ws_wa_link **items, size_t *n,
                          ws_error *err)
{
    ws_dbp p[] = {DBP_S(user_id)};
    ws_dbres r = {0};
    *items = NULL;
    *n = 0;
    int rc = ws__store_query(s, ws__store_db(s), a,
                             "SELECT " LINK_COLS " FROM wa_links WHERE user_id = $1 ORDER BY created_at", p,
                             NP(p), &r, err);
    if (rc || !r.nrows)
        return rc;
    *items = ws_arena_calloc(a, (size_t)r.nrows * sizeof **items);
    for (int i = 0; i < r.nrows; i++)
        fill_link(&r, i, &(*items)[i]);
    *n = (size_t)r.nrows;
    return 0;
}

int ws_store_wa_link_delete(ws_store *s, const char *user_id, const char *phone_number_id, ws_error *err)
{
    ws_arena *a = ws_arena_new(512);
    ws_dbp p[] = {DBP_S(phone_number_id), DBP_S(user_id)};
    ws_dbres r = {0};
    int rc = ws__store_query(
        s, ws__store_db(s), a,
        "DELETE FROM wa_links WHERE phone_number_id = $1 AND user_id = $2 RETURNING phone_number_id", p,
        NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such linked number");
    ws_arena_free(a);
    return rc;
}

int ws_store_wa_mode_set(ws_store *s, const char *user_id, const char *phone_number_id, const char *contact,
                         ws_wa_mode mode, ws_error *err)
{
    if (contact && check_id("contact", contact, err))
        return err ? err->code : WS_EINVAL;
    ws_arena *a = ws_arena_new(512);
    int64_t now = ws_store_now_ms();
    ws_dbres r = {0};
    int rc;
    if (!contact) {
        ws_dbp p[] = {DBP_S(phone_number_id), DBP_S(user_id), DBP_S(ws_wa_mode_name(mode)), DBP_I(now)};
        rc = ws__store_query(
            s, ws__store_db(s), a,
            "UPDATE wa_links SET default_mode = $3, updated_at = $4 WHERE phone_number_id = $1 AND "
            "user_id = $2"
            " RETURNING phone_number_id",
            p, NP(p), &r, err);
    } else {
        ws_dbp p[] = {DBP_S(phone_number_id), DBP_S(user_id), DBP_S(ws_wa_mode_name(mode)), DBP_I(now),
                      DBP_S(contact)};
        rc = ws__store_query(s, ws__store_db(s), a,
                             "INSERT INTO wa_contacts (phone_number_id, contact, user_id, mode, updated_at)"
                             " SELECT phone_number_id, $5, user_id, $3, $4 FROM wa_links"
                             " WHERE phone_number_id = $1 AND user_id = $2"
                             " ON CONFLICT (phone_number_id, contact) DO UPDATE SET mode = excluded.mode,"
                             " updated_at = excluded.updated_at RETURNING phone_number_id",
                             p, NP(p), &r, err);
    }
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such linked number");
    ws_arena_free(a);
    return rc;
}

int ws_store_wa_mode_for(ws_store *s, const ws_wa_link *l, const char *phone, const char *bsuid,
                         ws_wa_mode *out, ws_error *err)
{
    ws_arena *a = ws_arena_new(512);
    ws_dbp p[] = {DBP_S(l->phone_number_id), DBP_S(phone ? phone : ""), DBP_S(bsuid ? bsuid : "")};
    ws_dbres r = {0};
    int rc = ws__store_query(s, ws__store_db(s), a,
                             "SELECT mode FROM wa_contacts WHERE phone_number_id = $1 AND contact IN ($2, $3)"
                             " ORDER BY updated_at DESC LIMIT 1",
                             p, NP(p), &r, err);
    *out = l->default_mode;
    if (rc == 0 && r.nrows && ws_wa_mode_parse(ws__store_cell(&r, 0, 0), out) != 0)
        *out = WS_WA_MODE_OFF;
    ws_arena_free(a);
    return rc;
}

/* ---- the message log ------------------------------------------------------------------ */

int ws_store_wa_msg_insert(ws_store *s, const ws_wa_msg_row *m, bool *inserted, ws_error *err)
{
    int rc = check_id("wamid", m->wamid, err);
    if (rc || (rc = check_id("phone_number_id", m->phone_number_id, err)))
        return rc;
    ws_arena *a = ws_arena_new(1024);
    int64_t now = ws_store_now_ms();
    ws_dbp p[] = {DBP_S(m->wamid),
                  DBP_S(m->phone_number_id),
                  DBP_S(m->user_id),
                  DBP_S(m->outgoing ? "out" : "in"),
                  DBP_S(m->contact_phone),
                  DBP_S(m->contact_user_id),
                  DBP_S(m->msg_type),
                  DBP_S(m->body),
                  DBP_S(m->media_id),
                  DBP_I(m->sent_at),
                  DBP_S(m->status),
                  DBP_I(m->status_rank),
                  DBP_I(now)};
    ws_dbres r = {0};
    rc = ws__store_query(
        s, ws__store_db(s), a,
        "INSERT INTO wa_messages (wamid, phone_number_id, user_id, direction, contact_phone,"
        " contact_user_id, msg_type, body, media_id, sent_at, status, status_rank, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)"
        /* a status may have come before the send was logged: fill that bare row in */
        " ON CONFLICT (wamid) DO UPDATE SET user_id = excluded.user_id, contact_phone = "
        "excluded.contact_phone,"
        " contact_user_id = excluded.contact_user_id, msg_type = excluded.msg_type, body = excluded.body,"
        " media_id = excluded.media_id, sent_at = excluded.sent_at, updated_at = excluded.updated_at"
        " WHERE excluded.direction = 'out' AND wa_messages.direction = 'out' AND wa_messages.user_id IS NULL"
        " AND wa_messages.body IS NULL RETURNING wamid",
        p, NP(p), &r, err);
    if (inserted)
        *inserted = rc == 0 && r.nrows > 0;
    ws_arena_free(a);
    return rc;
}

int ws_store_wa_status_apply(ws_store *s, const char *wamid, const char *phone_number_id, const char *status,
                             int rank, int error_code, const char *error_title, bool *applied, ws_error *err)
{
    int rc = check_id("wamid", wamid, err);
    if (rc || (rc = check_id("phone_number_id", phone_number_id, err)))
        return rc;
    ws_arena *a = ws_arena_new(1024);
    int64_t now = ws_store_now_ms();
    ws_dbp p[] = {DBP_S(wamid),
                  DBP_S(phone_number_id),
                  DBP_S(status),
                  DBP_I(rank),
                  error_code ? DBP_I(error_code) : DBP_NULL,
                  DBP_S(error_title),
                  DBP_I(now)};
    ws_dbres r = {0};
    rc = ws__store_query(
        s, ws__store_db(s), a,
        "INSERT INTO wa_messages (wamid, phone_number_id, direction, status, status_rank, error_code,"
        " error_title, created_at, updated_at) VALUES ($1, $2, 'out', $3, $4, $5, $6, $7, $7)"
        " ON CONFLICT (wamid) DO UPDATE SET status = excluded.status, status_rank = excluded.status_rank,"
        " error_code = excluded.error_code, error_title = excluded.error_title,"
        " updated_at = excluded.updated_at WHERE wa_messages.status_rank < excluded.status_rank"
        " RETURNING wamid",
        p, NP(p), &r, err);
    if (applied)
        *applied = rc == 0 && r.nrows > 0;
    ws_arena_free(a);
    return rc;
}

int ws_store_wa_msg_status(ws_store *s, ws_arena *a, const char *wamid, const char **status, int *error_code,
                           ws_error *err)
{
    ws_dbp p[] = {DBP_S(wamid)};
    ws_dbres r = {0};
    int rc =
        ws__store_query(s, ws__store_db(s), a, "SELECT status, error_code FROM wa_messages WHERE wamid = $1",
                        p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such message");
    if (rc == 0) {
        *status = ws__store_cell(&r, 0, 0);
        *error_code = (int)ws__store_cell_i64(&r, 0, 1);
    }
    return rc;
}

int ws_store_wa_last_incoming(ws_store *s, const char *phone_number_id, const char *phone, const char *bsuid,
                              int64_t *at_ms, ws_error *err)
{
    ws_dbp p[] = {DBP_S(phone_number_id), DBP_S(phone ? phone : ""), DBP_S(bsuid ? bsuid : "")};
    return count_where(s,
                       "SELECT COALESCE(MAX(sent_at), 0) FROM wa_messages WHERE phone_number_id = $1"
                       " AND direction = 'in' AND (contact_phone = $2 OR contact_user_id = $3)",
                       p, NP(p), at_ms, err);
}

int ws_store_wa_msg_count(ws_store *s, const char *user_id, int64_t *n, ws_error *err)
{
    ws_dbp p[] = {DBP_S(user_id)};
    return count_where(s, "SELECT COUNT(*) FROM wa_messages WHERE user_id = $1", p, NP(p), n, err);
}

/* ---- drafts --------------------------------------------------------------------------- */

static void fill_draft(const ws_dbres *r, int i, ws_wa_draft *d)
{
    memset(d, 0, sizeof *d);
    d->draft_id = ws__store_cell(r, i, 0);
    d->user_id = ws__store_cell(r, i, 1);
    d->phone_number_id = ws__store_cell(r, i, 2);
    d->contact_phone = ws__store_cell(r, i, 3);
    d->contact_user_id = ws__store_cell(r, i, 4);
    d->in_wamid = ws__store_cell(r, i, 5);
    d->in_text = ws__store_cell(r, i, 6);
    if (ws_wa_mode_parse(ws__store_cell(r, i, 7), &d->mode) != 0)
        d->mode = WS_WA_MODE_DRAFT;
    d->status = ws__store_cell(r, i, 8);
    d->reply = ws__store_cell(r, i, 9);
    d->confidence = ws__store_cell(r, i, 10) ? strtod(ws__store_cell(r, i, 10), NULL) : 0.0;
    d->reason = ws__store_cell(r, i, 11);
    d->error_code = (int)ws__store_cell_i64(r, i, 12);
    d->error_message = ws__store_cell(r, i, 13);
    d->out_wamid = ws__store_cell(r, i, 14);
    d->attempts = (int)ws__store_cell_i64(r, i, 15);
    d->next_attempt_at = ws__store_cell_i64(r, i, 16);
    d->created_at = ws__store_cell_i64(r, i, 17);
    d->updated_at = ws__store_cell_i64(r, i, 18);
}

static int drafts_of(const ws_dbres *r, ws_arena *a, ws_wa_draft **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    if (!r->nrows)
        return 0;
    *items = ws_arena_calloc(a, (size_t)r->nrows * sizeof **items);
    for (int i = 0; i < r->nrows; i++)
        fill_draft(r, i, &(*items)[i]);
    *n = (size_t)r->nrows;
    return 0;
}

int ws_store_wa_draft_create(ws_store *s, const ws_wa_draft *d, char draft_id[48], ws_error *err)
{
    int rc = check_id("in_wamid", d->in_wamid, err);
    if (rc)
        return rc;
    if (ws_store_new_id("wad_", draft_id, 48) != 0)
        return ws_error_set(err, WS_EIO, "no random bytes for an id");
    ws_arena *a = ws_arena_new(1024);
    int64_t now = ws_store_now_ms();
    ws_dbp p[] = {DBP_S(draft_id),
                  DBP_S(d->user_id),
                  DBP_S(d->phone_number_id),
                  DBP_S(d->contact_phone),
                  DBP_S(d->contact_user_id),
                  DBP_S(d->in_wamid),
                  DBP_S(ws_wa_mode_name(d->mode)),
                  DBP_I(now)};
    rc = ws__store_query(
        s, ws__store_db(s), a,
        "INSERT INTO wa_drafts (draft_id, user_id, phone_number_id, contact_phone, contact_user_id,"
        " in_wamid, mode, status, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, 'generating', $8, $8)",
        p, NP(p), NULL, err);
    ws_arena_free(a);
    return rc;
}

int ws_store_wa_draft_get(ws_store *s, ws_arena *a, const char *draft_id, ws_wa_draft *out, ws_error *err)
{
    ws_dbp p[] = {DBP_S(draft_id)};
    ws_dbres r = {0};
    int rc = ws__store_query(s, ws__store_db(s), a, "SELECT " DRAFT_COLS DRAFT_FROM " WHERE d.draft_id = $1",
                             p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such draft");
    if (rc == 0)
        fill_draft(&r, 0, out);
    return rc;
}

int ws_store_wa_draft_list(ws_store *s, ws_arena *a, const char *user_id, const char *status, int limit,
                           ws_wa_draft **items, size_t *n, ws_error *err)
{
    ws_dbp p[] = {DBP_S(user_id), DBP_S(status ? status : ""),
                  DBP_I(limit < 1 || limit > WS_STORE_PAGE_MAX ? WS_STORE_PAGE_MAX : limit)};
    ws_dbres r = {0};
    int rc =
        ws__store_query(s, ws__store_db(s), a,
                        "SELECT " DRAFT_COLS DRAFT_FROM " WHERE d.user_id = $1 AND ($2 = '' OR d.status = $2)"
                        " ORDER BY d.created_at DESC, d.draft_id LIMIT $3",
                        p, NP(p), &r, err);
    return rc ? rc : drafts_of(&r, a, items, n);
}

int ws_store_wa_draft_due(ws_store *s, ws_arena *a, const char *status, int64_t now_ms, int limit,
                          ws_wa_draft **items, size_t *n, ws_error *err)
{
    ws_dbp p[] = {DBP_S(status), DBP_I(now_ms), DBP_I(limit < 1 ? 1 : limit)};
    ws_dbres r = {0};
    int rc =
        ws__store_query(s, ws__store_db(s), a,
                        "SELECT " DRAFT_COLS DRAFT_FROM " WHERE d.status = $1 AND d.next_attempt_at <= $2"
                        " ORDER BY d.next_attempt_at, d.created_at LIMIT $3",
                        p, NP(p), &r, err);
    return rc ? rc : drafts_of(&r, a, items, n);
}

int ws_store_wa_draft_update(ws_store *s, const ws_wa_draft *d, const char *from, ws_error *err)
{
    if (d->reply && strlen(d->reply) > WS_STORE_TEXT_MAX)
        return ws_error_set(err, WS_ETOOBIG, "reply is longer than %d bytes", WS_STORE_TEXT_MAX);
    ws_arena *a = ws_arena_new(1024);
    ws_dbp p[] = {
        DBP_S(d->draft_id),        DBP_S(d->status),         DBP_S(d->reply),
        DBP_D(d->confidence),      DBP_S(d->reason),         d->error_code ? DBP_I(d->error_code) : DBP_NULL,
        DBP_S(d->error_message),   DBP_S(d->out_wamid),      DBP_I(d->attempts),
        DBP_I(d->next_attempt_at), DBP_I(ws_store_now_ms()), DBP_S(from ? from : "")};
    ws_dbres r = {0};
    int rc = ws__store_query(
        s, ws__store_db(s), a,
        "UPDATE wa_drafts SET status = $2, reply = $3, confidence = $4, reason = $5, error_code = $6,"
        " error_message = $7, out_wamid = $8, attempts = $9, next_attempt_at = $10, updated_at = $11"
        " WHERE draft_id = $1 AND (($12 = '' AND status NOT IN ('sent', 'discarded')) OR status = $12)"
        " RETURNING draft_id",
        p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ECONFLICT, "the draft is no longer %s", from ? from : "open");
    ws_arena_free(a);
    return rc;
}

int ws_store_wa_draft_fail_sent(ws_store *s, const char *out_wamid, int error_code, const char *error_message,
                                ws_error *err)
{
    ws_arena *a = ws_arena_new(512);
    ws_dbp p[] = {DBP_S(out_wamid), error_code ? DBP_I(error_code) : DBP_NULL, DBP_S(error_message),
                  DBP_I(ws_store_now_ms())};
    int rc = ws__store_query(
        s, ws__store_db(s), a,
        "UPDATE wa_drafts SET status = 'failed', error_code = $2, error_message = $3, updated_at = $4"
        " WHERE out_wamid = $1 AND status = 'sent'",
        p, NP(p), NULL, err);
    ws_arena_free(a);
    return rc;
}
