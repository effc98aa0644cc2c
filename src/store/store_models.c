/* The store's model registry: the current model version of each user (see store.h). */
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

/* ------------------------------------------------------------------ model registry */

int ws_store_model_set_current(ws_store *s, const char *user_id, const char *version,
                               const char *artifact_path, const char *job_id, ws_error *err)
{
    int rc;
    if ((rc = ws__store_check_text(err, "user id", user_id, WS_STORE_ID_MAX, true)) < 0 ||
        (rc = ws__store_check_text(err, "model version", version, VERSION_MAX, true)) < 0 ||
        (rc = ws__store_check_text(err, "artifact path", artifact_path, PATH_MAX_LEN, true)) < 0 ||
        (rc = ws__store_check_text(err, "job id", job_id, WS_STORE_ID_MAX, false)) < 0)
        return rc;
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(user_id), DBP_S(version), DBP_S(artifact_path), DBP_S(job_id),
                  DBP_I(ws_store_now_ms())};
    ws_dbres r = {0};
    if ((rc = ws__store_tx_begin(s, err)) < 0)
        goto out;
    rc = ws__store_query(s, s->db, a,
                         "INSERT INTO models (user_id, version, artifact_path, job_id, created_at)"
                         " VALUES ($1, $2, $3, $4, $5)",
                         p, NP(p), NULL, err);
    if (rc == WS_ENOENT)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    else if (rc == WS_ECONFLICT)
        rc = ws_error_set(err, WS_ECONFLICT, "model version '%s' exists", version);
    if (rc == 0)
        rc = ws__store_query(s, s->db, a,
                             "UPDATE users SET model_version = $2 WHERE user_id = $1"
                             " RETURNING user_id",
                             p, 2, &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    rc = ws__store_tx_end(s, rc, err);
out:
    ws_arena_free(a);
    return rc;
}

int ws_store_model_make_current(ws_store *s, const char *user_id, const char *version, ws_error *err)
{
    int rc;
    if ((rc = ws__store_check_text(err, "user id", user_id, WS_STORE_ID_MAX, true)) < 0 ||
        (rc = ws__store_check_text(err, "model version", version, VERSION_MAX, true)) < 0)
        return rc;
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(user_id), DBP_S(version)};
    ws_dbres r = {0};
    rc = ws__store_query(
        s, s->db, a,
        "UPDATE users SET model_version = $2 WHERE user_id = $1"
        " AND EXISTS (SELECT 1 FROM models WHERE user_id = $1 AND version = $2) RETURNING user_id",
        p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no model version '%s' for that user", version);
    ws_arena_free(a);
    return rc;
}

int ws_store_model_get_current(ws_store *s, ws_arena *a, const char *user_id, ws_model_rec *out,
                               ws_error *err)
{
    if (!user_id)
        return ws_error_set(err, WS_EINVAL, "no user given");
    ws_dbp p[] = {DBP_S(user_id)};
    ws_dbres r = {0};
    int rc = ws__store_query(s, s->db, a,
                             "SELECT m.user_id, m.version, m.artifact_path, m.job_id, m.created_at"
                             " FROM models m JOIN users u ON u.user_id = m.user_id"
                             " AND u.model_version = m.version WHERE u.user_id = $1",
                             p, NP(p), &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows == 0)
        return ws_error_set(err, WS_ENOENT, "no model yet");
    out->user_id = ws__store_cell(&r, 0, 0);
    out->version = ws__store_cell(&r, 0, 1);
    out->artifact_path = ws__store_cell(&r, 0, 2);
    out->job_id = ws__store_cell(&r, 0, 3);
    out->created_at = ws__store_cell_i64(&r, 0, 4);
    return 0;
}
