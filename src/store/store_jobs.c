/* The store's training jobs: create (with its outbox message), get, update with state checks,
 * list, stats and claim by a worker (see store.h). */
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

/* ------------------------------------------------------------------ training jobs */

static const char *const job_status_names[] = {"queued", "running", "completed", "failed", "cancelled"};

const char *ws_job_status_name(ws_job_status st)
{
    return (unsigned)st < 5 ? job_status_names[st] : "unknown";
}

int ws_job_status_parse(const char *name, ws_job_status *out)
{
    for (int i = 0; name && i < 5; i++)
        if (!strcmp(name, job_status_names[i])) {
            *out = (ws_job_status)i;
            return 0;
        }
    return WS_EINVAL;
}

static bool job_final(ws_job_status st)
{
    return st == WS_JOB_COMPLETED || st == WS_JOB_FAILED || st == WS_JOB_CANCELLED;
}

static void fill_job(const ws_dbres *r, int i, ws_job *j)
{
    j->id = ws__store_cell(r, i, 0);
    j->user_id = ws__store_cell(r, i, 1);
    ws_job_status st = WS_JOB_QUEUED;
    ws_job_status_parse(ws__store_cell(r, i, 2), &st);
    j->status = st;
    j->progress = ws__store_cell_dbl(r, i, 3);
    j->samples_processed = ws__store_cell_i64(r, i, 4);
    j->params_json = ws__store_cell(r, i, 5);
    j->metrics_json = ws__store_cell(r, i, 6);
    j->error_message = ws__store_cell(r, i, 7);
    j->data_path = ws__store_cell(r, i, 8);
    j->worker_id = ws__store_cell(r, i, 9);
    j->created_at = ws__store_cell_i64(r, i, 10);
    j->started_at = ws__store_cell_i64(r, i, 11);
    j->completed_at = ws__store_cell_i64(r, i, 12);
    j->updated_at = ws__store_cell_i64(r, i, 13);
}

/* The outbox payload announcing a job: {"type":type, <the job's fields>}. */
static char *job_payload(const char *type, const ws_dbres *r, int row)
{
    ws_buf b = WS_BUF_INIT;
    ws_buf_puts(&b, "{\"type\":");
    ws_json_put_cstr(&b, type);
    ws_buf_puts(&b, ",\"job\":");
    ws__store_put_row(&b, r, row, ws__store_job_fields, NP(ws__store_job_fields));
    ws_buf_putc(&b, '}');
    return ws_buf_take(&b);
}

int ws_store_job_create(ws_store *s, ws_arena *a, const char *user_id, const char *data_path,
                        const char *params_json, ws_job *out, ws_error *err)
{
    int rc;
    if ((rc = ws__store_check_text(err, "user id", user_id, WS_STORE_ID_MAX, true)) < 0 ||
        (rc = ws__store_check_text(err, "data path", data_path, PATH_MAX_LEN, false)) < 0 ||
        (rc = ws__store_check_json(err, "job parameters", params_json)) < 0)
        return rc;
    char id[WS_STORE_ID_MAX + 1];
    if (ws_store_new_id("job_", id, sizeof id) < 0)
        return ws_error_set(err, WS_EIO, "no random bytes for an id");
    int64_t now = ws_store_now_ms();
    ws_dbp p[] = {DBP_S(id), DBP_S(user_id), DBP_S(params_json), DBP_S(data_path), DBP_I(now)};
    ws_dbres r = {0};
    char *payload = NULL;
    if ((rc = ws__store_tx_begin(s, err)) < 0)
        return rc;
    rc = ws__store_query(s, s->db, a,
                         "INSERT INTO training_jobs (job_id, user_id, status, progress, samples_processed,"
                         " params, s3_data_path, created_at, updated_at, seq)"
                         " VALUES ($1, $2, 'queued', 0, 0, $3, $4, $5, $5,"
                         " (SELECT COALESCE(MAX(seq), 0) + 1 FROM training_jobs)) RETURNING " JOB_COLS,
                         p, NP(p), &r, err);
    if (rc == WS_ENOENT)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    if (rc == 0 && r.nrows != 1)
        rc = ws_error_set(err, WS_EINTERNAL, "job insert returned %d rows", r.nrows);
    if (rc == 0) {
        payload = job_payload("training.requested", &r, 0);
        rc = ws__store_outbox_insert(s, a, "training-jobs", user_id, payload, err);
    }
    rc = ws__store_tx_end(s, rc, err);
    free(payload);
    if (rc == 0 && out)
        fill_job(&r, 0, out);
    return rc;
}

int ws_store_job_get(ws_store *s, ws_arena *a, const char *job_id, ws_job *out, ws_error *err)
{
    if (!job_id)
        return ws_error_set(err, WS_EINVAL, "no job given");
    ws_dbp p[] = {DBP_S(job_id)};
    ws_dbres r = {0};
    int rc = ws__store_query(s, s->db, a, "SELECT " JOB_COLS " FROM training_jobs WHERE job_id = $1", p,
                             NP(p), &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows == 0)
        return ws_error_set(err, WS_ENOENT, "no such job");
    fill_job(&r, 0, out);
    return 0;
}

int ws_store_job_update(ws_store *s, const char *job_id, const ws_job_update *u, ws_error *err)
{
    int rc;
    if (!job_id || !u)
        return ws_error_set(err, WS_EINVAL, "no job given");
    if (u->status != -1 && (u->status < 0 || u->status > WS_JOB_CANCELLED))
        return ws_error_set(err, WS_EINVAL, "bad job status %d", u->status);
    if ((rc = ws__store_check_json(err, "metrics", u->metrics_json)) < 0 ||
        (rc = ws__store_check_text(err, "error message", u->error_message, WS_STORE_TEXT_MAX, false)) < 0)
        return rc;
    ws_arena *a = ws_arena_new(4096);
    ws_dbres cur = {0}, r = {0};
    char *payload = NULL;
    ws_dbp pid[] = {DBP_S(job_id)};
    if ((rc = ws__store_tx_begin(s, err)) < 0)
        goto out;
    rc = ws__store_query(s, s->db, a,
                         s->drv->is_pg ? "SELECT status FROM training_jobs WHERE job_id = $1 FOR UPDATE"
                                       : "SELECT status FROM training_jobs WHERE job_id = $1",
                         pid, NP(pid), &cur, err);
    if (rc == 0 && cur.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such job");
    ws_job_status old = WS_JOB_QUEUED;
    if (rc == 0)
        ws_job_status_parse(ws__store_cell(&cur, 0, 0), &old);
    int status = u->status;
    if (rc == 0 && status != -1 && job_final(old)) {
        if ((ws_job_status)status != old)
            rc = ws_error_set(err, WS_ECONFLICT, "job is already %s", ws_job_status_name(old));
        status = -1;
    }
    bool finishing = rc == 0 && status != -1 && job_final((ws_job_status)status);
    double progress = u->progress;
    if (progress > 1.0)
        progress = 1.0;
    if (finishing && status == WS_JOB_COMPLETED && progress < 0)
        progress = 1.0;
    int64_t now = ws_store_now_ms();
    ws_dbp p[] = {
        DBP_S(job_id),
        status != -1 ? DBP_S(ws_job_status_name((ws_job_status)status)) : DBP_NULL,
        progress >= 0 ? DBP_D(progress) : DBP_NULL,
        u->samples_processed >= 0 ? DBP_I(u->samples_processed) : DBP_NULL,
        DBP_S(u->metrics_json),
        DBP_S(u->error_message),
        finishing ? DBP_I(now) : DBP_NULL,
        DBP_I(now),
    };
    if (rc == 0)
        rc = ws__store_query(s, s->db, a,
                             "UPDATE training_jobs SET status = COALESCE($2, status),"
                             " progress = COALESCE($3, progress),"
                             " samples_processed = COALESCE($4, samples_processed),"
                             " metrics = COALESCE($5, metrics), error_message = COALESCE($6, error_message),"
                             " completed_at = COALESCE($7, completed_at), updated_at = $8"
                             " WHERE job_id = $1 RETURNING " JOB_COLS,
                             p, NP(p), &r, err);
    if (rc == 0 && finishing) {
        char type[32];
        snprintf(type, sizeof type, "training.%s", ws_job_status_name((ws_job_status)status));
        payload = job_payload(type, &r, 0);
        rc = ws__store_outbox_insert(s, a, "training-events", ws__store_cell(&r, 0, 1), payload, err);
    }
    rc = ws__store_tx_end(s, rc, err);
out:
    free(payload);
    ws_arena_free(a);
    return rc;
}

int ws_store_job_list(ws_store *s, ws_arena *a, const char *user_id, int limit, ws_job **items, size_t *n,
                      ws_error *err)
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
                              "SELECT " JOB_COLS " FROM training_jobs WHERE user_id = $1"
                              " ORDER BY created_at DESC, seq DESC LIMIT $2",
                              p, NP(p), &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows) {
        *items = ws_arena_calloc(a, (size_t)r.nrows * sizeof **items);
        for (int i = 0; i < r.nrows; i++)
            fill_job(&r, i, &(*items)[i]);
    }
    *n = (size_t)r.nrows;
    return 0;
}

int ws_store_job_stats(ws_store *s, ws_job_stats *out, ws_error *err)
{
    memset(out, 0, sizeof *out);
    ws_arena *a = ws_arena_new(512);
    ws_dbres r = {0};
    int rc = ws__store_read_query(
        s, a, "SELECT status, COUNT(*), MIN(created_at) FROM training_jobs GROUP BY status", NULL, 0, &r,
        err);
    for (int i = 0; rc == 0 && i < r.nrows; i++) {
        ws_job_status st;
        if (ws_job_status_parse(ws__store_cell(&r, i, 0), &st) != 0)
            continue;
        out->by_status[st] = ws__store_cell_i64(&r, i, 1);
        if (st == WS_JOB_QUEUED)
            out->oldest_queued_ms = ws__store_cell_i64(&r, i, 2);
    }
    ws_arena_free(a);
    return rc;
}

int ws_store_job_claim(ws_store *s, ws_arena *a, const char *worker_id, ws_job *out, ws_error *err)
{
    int rc;
    if ((rc = ws__store_check_text(err, "worker id", worker_id, WORKER_MAX, true)) < 0)
        return rc;
    ws_dbp p[] = {DBP_S(worker_id), DBP_I(ws_store_now_ms())};
    ws_dbres r = {0};
    if ((rc = ws__store_tx_begin(s, err)) < 0)
        return rc;
    rc = ws__store_query(s, s->db, a,
                         s->drv->is_pg
                             ? "UPDATE training_jobs SET status = 'running', worker_id = $1, started_at = $2,"
                               " updated_at = $2 WHERE job_id = (SELECT job_id FROM training_jobs"
                               " WHERE status = 'queued' ORDER BY seq, job_id LIMIT 1"
                               " FOR UPDATE SKIP LOCKED) RETURNING " JOB_COLS
                             : "UPDATE training_jobs SET status = 'running', worker_id = $1, started_at = $2,"
                               " updated_at = $2 WHERE job_id = (SELECT job_id FROM training_jobs"
                               " WHERE status = 'queued' ORDER BY seq, job_id LIMIT 1)"
                               " RETURNING " JOB_COLS,
                         p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = WS_ENOENT; /* nothing queued: not an error worth a message */
    int end = ws__store_tx_end(s, rc == WS_ENOENT ? 0 : rc, err);
    if (rc == 0 && end < 0)
        rc = end;
    if (rc == 0)
        fill_job(&r, 0, out);
    else if (rc == WS_ENOENT)
        ws_error_set(err, WS_ENOENT, "no queued job");
    return rc;
}
