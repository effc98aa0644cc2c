/* The store's audit log: append and list (see store.h). */
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

/* ------------------------------------------------------------------ audit log */

int ws_store_audit_append(ws_store *s, const ws_audit_entry *e, ws_error *err)
{
    int rc;
    if ((rc = ws__store_check_text(err, "actor", e->actor, ACTOR_MAX, true)) < 0 ||
        (rc = ws__store_check_text(err, "user id", e->user_id, WS_STORE_ID_MAX, false)) < 0 ||
        (rc = ws__store_check_text(err, "action", e->action, TYPE_MAX, true)) < 0 ||
        (rc = ws__store_check_text(err, "resource", e->resource, RESOURCE_MAX, true)) < 0 ||
        (rc = ws__store_check_text(err, "detail", e->detail, WS_STORE_TEXT_MAX, false)) < 0)
        return rc;
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(e->actor),    DBP_S(e->user_id), DBP_S(e->action),
                  DBP_S(e->resource), DBP_S(e->detail),  DBP_I(ws_store_now_ms())};
    rc = ws__store_query(s, s->db, a,
                         "INSERT INTO audit_log (actor, user_id, action, resource, detail, created_at)"
                         " VALUES ($1, $2, $3, $4, $5, $6)",
                         p, NP(p), NULL, err);
    ws_arena_free(a);
    return rc;
}

int ws_store_audit_list(ws_store *s, ws_arena *a, const char *user_id, int limit, ws_audit_entry **items,
                        size_t *n, ws_error *err)
{
    int rc;
    *items = NULL;
    *n = 0;
    if (!user_id)
        return ws_error_set(err, WS_EINVAL, "no user given");
    if ((rc = ws__store_check_limit(err, &limit)) < 0)
        return rc;
    ws_dbp p[] = {DBP_S(user_id), DBP_I(limit)};
    ws_dbres r = {0};
    rc = ws__store_read_query(s, a,
                              "SELECT " AUDIT_COLS " FROM audit_log WHERE user_id = $1"
                              " ORDER BY created_at DESC, id DESC LIMIT $2",
                              p, NP(p), &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows) {
        *items = ws_arena_calloc(a, (size_t)r.nrows * sizeof **items);
        for (int i = 0; i < r.nrows; i++) {
            ws_audit_entry *e = &(*items)[i];
            e->id = ws__store_cell_i64(&r, i, 0);
            e->actor = ws__store_cell(&r, i, 1);
            e->user_id = ws__store_cell(&r, i, 2);
            e->action = ws__store_cell(&r, i, 3);
            e->resource = ws__store_cell(&r, i, 4);
            e->detail = ws__store_cell(&r, i, 5);
            e->created_at = ws__store_cell_i64(&r, i, 6);
        }
    }
    *n = (size_t)r.nrows;
    return 0;
}
