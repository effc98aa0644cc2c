/* The store's users: create, look up, touch, (de)activate and erase (see store.h). */
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

/* ------------------------------------------------------------------ users */

static void fill_user(const ws_dbres *r, int i, ws_user *u)
{
    u->id = ws__store_cell(r, i, 0);
    u->name = ws__store_cell(r, i, 1);
    u->phone = ws__store_cell(r, i, 2);
    u->model_version = ws__store_cell(r, i, 3);
    u->tier = ws__store_cell(r, i, 4);
    u->created_at = ws__store_cell_i64(r, i, 5);
    u->last_active = ws__store_cell_i64(r, i, 6);
    u->is_active = ws__store_cell_bool(r, i, 7);
}

int ws_store_user_create(ws_store *s, ws_arena *a, const char *name, const char *phone, const char *tier,
                         ws_user *out, ws_error *err)
{
    int rc;
    if ((rc = ws__store_check_text(err, "user name", name, WS_STORE_NAME_MAX, true)) < 0 ||
        (rc = ws__store_check_text(err, "phone number", phone, PHONE_MAX, false)) < 0 ||
        (rc = ws__store_check_text(err, "subscription tier", tier, TIER_MAX, false)) < 0)
        return rc;
    char id[WS_STORE_ID_MAX + 1];
    if (ws_store_new_id("usr_", id, sizeof id) < 0)
        return ws_error_set(err, WS_EIO, "no random bytes for an id");
    int64_t now = ws_store_now_ms();
    ws_dbp p[] = {DBP_S(id), DBP_S(name), DBP_S(phone), DBP_S(tier ? tier : "free"), DBP_I(now)};
    ws_dbres r = {0};
    rc = ws__store_query(s, s->db, a,
                         "INSERT INTO users (user_id, name, phone_number, subscription_tier, created_at,"
                         " is_active) VALUES ($1, $2, $3, $4, $5, TRUE) RETURNING " USER_COLS,
                         p, NP(p), &r, err);
    if (rc == WS_ECONFLICT)
        return ws_error_set(err, WS_ECONFLICT, "a user with that name or phone number exists");
    if (rc < 0)
        return rc;
    if (out && r.nrows == 1)
        fill_user(&r, 0, out);
    return 0;
}

static int user_get_where(ws_store *s, ws_arena *a, const char *sql, const char *arg, ws_user *out,
                          ws_error *err)
{
    if (!arg)
        return ws_error_set(err, WS_EINVAL, "no user given");
    ws_dbp p[] = {DBP_S(arg)};
    ws_dbres r = {0};
    int rc = ws__store_query(s, s->db, a, sql, p, NP(p), &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows == 0)
        return ws_error_set(err, WS_ENOENT, "no such user");
    fill_user(&r, 0, out);
    return 0;
}

int ws_store_user_get(ws_store *s, ws_arena *a, const char *user_id, ws_user *out, ws_error *err)
{
    return user_get_where(s, a, "SELECT " USER_COLS " FROM users WHERE user_id = $1", user_id, out, err);
}

int ws_store_user_get_by_name(ws_store *s, ws_arena *a, const char *name, ws_user *out, ws_error *err)
{
    return user_get_where(s, a, "SELECT " USER_COLS " FROM users WHERE name = $1", name, out, err);
}

int ws_store_user_touch(ws_store *s, const char *user_id, ws_error *err)
{
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(user_id), DBP_I(ws_store_now_ms())};
    ws_dbres r = {0};
    int rc = ws__store_query(s, s->db, a,
                             "UPDATE users SET last_active = $2 WHERE user_id = $1"
                             " RETURNING user_id",
                             p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    ws_arena_free(a);
    return rc;
}

int ws_store_user_set_active(ws_store *s, const char *user_id, bool active, ws_error *err)
{
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(user_id)};
    ws_dbres r = {0};
    int rc =
        ws__store_query(s, s->db, a,
                        active ? "UPDATE users SET is_active = TRUE WHERE user_id = $1 RETURNING user_id"
                               : "UPDATE users SET is_active = FALSE WHERE user_id = $1 RETURNING user_id",
                        p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    ws_arena_free(a);
    return rc;
}

int ws_store_user_delete(ws_store *s, const char *user_id, ws_error *err)
{
    static const char *const deletes[] = {
        "DELETE FROM api_keys WHERE user_id = $1",
        "DELETE FROM models WHERE user_id = $1",
        "DELETE FROM conversations WHERE user_id = $1",
        "DELETE FROM training_jobs WHERE user_id = $1",
        "DELETE FROM analytics_events WHERE user_id = $1",
        "DELETE FROM audit_log WHERE user_id = $1",
        "DELETE FROM outbox WHERE msg_key = $1 AND published_at IS NULL",
        "DELETE FROM users WHERE user_id = $1",
    };
    if (!user_id)
        return ws_error_set(err, WS_EINVAL, "no user given");
    ws_arena *a = ws_arena_new(1024);
    ws_dbp p[] = {DBP_S(user_id)};
    ws_dbres r = {0};
    int rc = ws__store_tx_begin(s, err);
    if (rc < 0)
        goto out;
    rc = ws__store_query(s, s->db, a, "SELECT 1 FROM users WHERE user_id = $1", p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    for (size_t i = 0; rc == 0 && i < sizeof deletes / sizeof deletes[0]; i++)
        rc = ws__store_query(s, s->db, a, deletes[i], p, NP(p), NULL, err);
    if (rc == 0) {
        ws_buf b = WS_BUF_INIT;
        ws_buf_puts(&b, "{\"type\":\"user.deleted\",\"user_id\":");
        ws_json_put_cstr(&b, user_id);
        ws_buf_printf(&b, ",\"deleted_at\":%" PRId64 "}", ws_store_now_ms());
        rc = ws__store_outbox_insert(s, a, "user-events", user_id, b.data, err);
        ws_buf_free(&b);
    }
    rc = ws__store_tx_end(s, rc, err);
out:
    ws_arena_free(a);
    return rc;
}
