/* The store's API keys: insert, look up by hash, list, revoke, touch (see store.h). */
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

/* ------------------------------------------------------------------ API keys */

static void fill_key(const ws_dbres *r, int i, ws_api_key *k)
{
    k->key_id = ws__store_cell(r, i, 0);
    k->user_id = ws__store_cell(r, i, 1);
    k->client_name = ws__store_cell(r, i, 2);
    k->role = ws__store_cell(r, i, 3);
    k->rate_limit = (int)ws__store_cell_i64(r, i, 4);
    k->is_active = ws__store_cell_bool(r, i, 5);
    k->created_at = ws__store_cell_i64(r, i, 6);
    k->expires_at = ws__store_cell_i64(r, i, 7);
    k->last_used_at = ws__store_cell_i64(r, i, 8);
    k->user_name = ws__store_cell(r, i, 9);
    k->user_is_active = ws__store_cell_bool(r, i, 10);
}

static bool is_hex64(const char *h)
{
    if (!h || strnlen(h, 65) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    return true;
}

int ws_store_key_insert(ws_store *s, const ws_api_key *in, const char *hashed_key, ws_error *err)
{
    int rc;
    if ((rc = ws__store_check_text(err, "key id", in->key_id, KEY_ID_MAX, true)) < 0 ||
        (rc = ws__store_check_text(err, "user id", in->user_id, WS_STORE_ID_MAX, true)) < 0 ||
        (rc = ws__store_check_text(err, "client name", in->client_name, CLIENT_MAX, false)) < 0 ||
        (rc = ws__store_check_text(err, "role", in->role, ROLE_MAX, true)) < 0)
        return rc;
    if (!is_hex64(hashed_key))
        return ws_error_set(err, WS_EINVAL, "key hash must be 64 lowercase hex digits");
    if (strcmp(in->role, "user") && strcmp(in->role, "admin") && strcmp(in->role, "system"))
        return ws_error_set(err, WS_EINVAL, "unknown role '%s'", in->role);
    if (in->rate_limit < 0)
        return ws_error_set(err, WS_EINVAL, "rate limit must not be negative");
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(in->key_id),        DBP_S(hashed_key),
                  DBP_S(in->user_id),       DBP_S(in->client_name),
                  DBP_S(in->role),          DBP_I(in->rate_limit),
                  DBP_I(ws_store_now_ms()), in->expires_at > 0 ? DBP_I(in->expires_at) : DBP_NULL};
    rc = ws__store_query(s, s->db, a,
                         "INSERT INTO api_keys (key_id, hashed_key, user_id, client_name, role, rate_limit,"
                         " is_active, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $8)",
                         p, NP(p), NULL, err);
    if (rc == WS_ENOENT)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    else if (rc == WS_ECONFLICT)
        rc = ws_error_set(err, WS_ECONFLICT, "a key with that id or hash exists");
    ws_arena_free(a);
    return rc;
}

int ws_store_key_get_by_hash(ws_store *s, ws_arena *a, const char *hashed_key, ws_api_key *out, ws_error *err)
{
    if (!is_hex64(hashed_key))
        return ws_error_set(err, WS_EINVAL, "key hash must be 64 lowercase hex digits");
    ws_dbp p[] = {DBP_S(hashed_key)};
    ws_dbres r = {0};
    int rc = ws__store_query(s, s->db, a, "SELECT " KEY_JOIN_COLS KEY_JOIN " WHERE k.hashed_key = $1", p,
                             NP(p), &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows == 0)
        return ws_error_set(err, WS_ENOENT, "no such key");
    fill_key(&r, 0, out);
    return 0;
}

int ws_store_key_list(ws_store *s, ws_arena *a, const char *user_id, ws_api_key **items, size_t *n,
                      ws_error *err)
{
    ws_dbp p[] = {DBP_S(user_id)};
    ws_dbres r = {0};
    *items = NULL;
    *n = 0;
    int rc = user_id
                 ? ws__store_query(s, s->db, a,
                                   "SELECT " KEY_JOIN_COLS KEY_JOIN " WHERE k.user_id = $1"
                                   " ORDER BY k.created_at DESC, k.key_id",
                                   p, NP(p), &r, err)
                 : ws__store_query(s, s->db, a,
                                   "SELECT " KEY_JOIN_COLS KEY_JOIN " ORDER BY k.created_at DESC, k.key_id",
                                   NULL, 0, &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows) {
        *items = ws_arena_calloc(a, (size_t)r.nrows * sizeof **items);
        for (int i = 0; i < r.nrows; i++)
            fill_key(&r, i, &(*items)[i]);
    }
    *n = (size_t)r.nrows;
    return 0;
}

int ws_store_key_revoke(ws_store *s, const char *key_id, const char *user_id, ws_error *err)
{
    if (!key_id)
        return ws_error_set(err, WS_EINVAL, "no key given");
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(key_id), DBP_S(user_id)};
    ws_dbres r = {0};
    int rc = user_id ? ws__store_query(s, s->db, a,
                                       "UPDATE api_keys SET is_active = FALSE WHERE key_id = $1"
                                       " AND user_id = $2 RETURNING key_id",
                                       p, 2, &r, err)
                     : ws__store_query(s, s->db, a,
                                       "UPDATE api_keys SET is_active = FALSE WHERE key_id = $1"
                                       " RETURNING key_id",
                                       p, 1, &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such key '%s'", key_id);
    ws_arena_free(a);
    return rc;
}

int ws_store_key_touch(ws_store *s, const char *key_id, ws_error *err)
{
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(key_id), DBP_I(ws_store_now_ms())};
    int rc = ws__store_query(s, s->db, a, "UPDATE api_keys SET last_used_at = $2 WHERE key_id = $1", p, NP(p),
                             NULL, err);
    ws_arena_free(a);
    return rc;
}
