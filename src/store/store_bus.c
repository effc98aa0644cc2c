/* The store's calls for the bus (store_bus.h): outbox relay leadership and the workers'
 * compare-and-set job transitions, written against the driver interface like store.c. */
#include "store/store_bus.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "store/store_int.h"

#define NP(arr) ((int)(sizeof(arr) / sizeof((arr)[0])))
#define WORKER_ID_MAX 128
/* the relay's advisory lock key: "wsob" */
#define RELAY_LOCK_KEY "2004050530"

static int check_ids(const char *job_id, const char *worker_id, ws_error *err)
{
    if (!job_id || !*job_id || strlen(job_id) > WS_STORE_ID_MAX)
        return ws_error_set(err, WS_EINVAL, "bad job id");
    if (!worker_id || !*worker_id || strlen(worker_id) > WORKER_ID_MAX)
        return ws_error_set(err, WS_EINVAL, "bad worker id");
    return 0;
}

int ws_store_outbox_try_lead(ws_store *s, bool *leader, ws_error *err)
{
    *leader = false;
    if (!ws__store_driver(s)->is_pg) {
        *leader = true;
        return 0;
    }
    ws_arena *a = ws_arena_new(256);
    ws_dbres r = {0};
    int rc = ws__store_query(s, ws__store_db(s), a, "SELECT pg_try_advisory_lock(" RELAY_LOCK_KEY ")", NULL,
                             0, &r, err);
    if (rc == 0 && r.nrows == 1 && ws__store_cell(&r, 0, 0))
        *leader = ws__store_cell(&r, 0, 0)[0] == 't' || ws__store_cell(&r, 0, 0)[0] == '1';
    ws_arena_free(a);
    return rc;
}

int ws_store_outbox_mark_many(ws_store *s, const int64_t *ids, size_t n, ws_error *err)
{
    enum { CHUNK = 100 };
    if (n == 0)
        return 0;
    ws_arena *a = ws_arena_new(4096);
    ws_dbp p[CHUNK + 1];
    int rc = ws__store_tx_begin(s, err);
    for (size_t at = 0; rc == 0 && at < n; at += CHUNK) {
        size_t k = n - at < CHUNK ? n - at : CHUNK;
        ws_buf sql = WS_BUF_INIT;
        ws_buf_puts(&sql, "UPDATE outbox SET published_at = $1 WHERE id IN (");
        p[0] = DBP_I(ws_store_now_ms());
        for (size_t i = 0; i < k; i++) {
            ws_buf_printf(&sql, "%s$%zu", i ? "," : "", i + 2);
            p[i + 1] = DBP_I(ids[at + i]);
        }
        ws_buf_putc(&sql, ')');
        rc = ws__store_query(s, ws__store_db(s), a, sql.data, p, (int)k + 1, NULL, err);
        ws_buf_free(&sql);
    }
    rc = ws__store_tx_end(s, rc, err);
    ws_arena_free(a);
    return rc;
}

int ws_store_job_take(ws_store *s, ws_arena *a, const char *job_id, const char *worker_id, int64_t lease_ms,
                      ws_job *out, ws_error *err)
{
    int rc;
    if ((rc = check_ids(job_id, worker_id, err)))
        return rc;
    int64_t now = ws_store_now_ms();
    ws_dbp p[] = {DBP_S(job_id), DBP_S(worker_id), DBP_I(now), DBP_I(now - (lease_ms > 0 ? lease_ms : 0))};
    ws_dbres r = {0};
    rc = ws__store_query(s, ws__store_db(s), a,
                         "UPDATE training_jobs SET status = 'running', worker_id = $2,"
                         " started_at = COALESCE(started_at, $3), updated_at = $3"
                         " WHERE job_id = $1 AND (status = 'queued' OR (status = 'running' AND"
                         " (worker_id = $2 OR worker_id IS NULL OR updated_at < $4))) RETURNING job_id",
                         p, NP(p), &r, err);
    if (rc)
        return rc;
    int got = ws_store_job_get(s, a, job_id, out, err);
    if (got)
        return got;
    if (r.nrows == 1)
        return 0;
    if (out->status == WS_JOB_RUNNING || out->status == WS_JOB_QUEUED)
        return ws_error_set(err, WS_EAGAIN, "job %s is held by another worker", job_id);
    return ws_error_set(err, WS_ECONFLICT, "job %s is already %s", job_id, ws_job_status_name(out->status));
}

int ws_store_job_progress_as(ws_store *s, const char *job_id, const char *worker_id, double progress,
                             int64_t samples, ws_error *err)
{
    int rc;
    if ((rc = check_ids(job_id, worker_id, err)))
        return rc;
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(job_id), DBP_S(worker_id),
                  DBP_D(progress < 0   ? 0
                        : progress > 1 ? 1
                                       : progress),
                  DBP_I(samples < 0 ? 0 : samples), DBP_I(ws_store_now_ms())};
    ws_dbres r = {0};
    rc = ws__store_query(s, ws__store_db(s), a,
                         "UPDATE training_jobs SET progress = $3, samples_processed = $4, updated_at = $5"
                         " WHERE job_id = $1 AND worker_id = $2 AND status = 'running' RETURNING job_id",
                         p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ECONFLICT, "job %s is no longer held by this worker", job_id);
    ws_arena_free(a);
    return rc;
}

/* {"type":"training.<status>","job":{...}}: the job's fields for the consumers of
 * training-events (metrics_json is known to be a JSON value: it was parsed before). */
static char *finish_payload(const ws_job *j)
{
    ws_buf b = WS_BUF_INIT;
    ws_buf_printf(&b, "{\"type\":\"training.%s\",\"job\":{\"job_id\":", ws_job_status_name(j->status));
    ws_json_put_cstr(&b, j->id);
    ws_buf_puts(&b, ",\"user_id\":");
    ws_json_put_cstr(&b, j->user_id);
    ws_buf_printf(&b, ",\"status\":\"%s\",\"progress\":", ws_job_status_name(j->status));
    ws_json_put_num(&b, j->progress);
    ws_buf_printf(&b, ",\"samples_processed\":%lld,\"metrics\":", (long long)j->samples_processed);
    ws_buf_puts(&b, j->metrics_json ? j->metrics_json : "null");
    ws_buf_puts(&b, ",\"error_message\":");
    ws_json_put_cstr(&b, j->error_message);
    ws_buf_puts(&b, ",\"worker_id\":");
    ws_json_put_cstr(&b, j->worker_id);
    ws_buf_printf(&b, ",\"completed_at\":%lld}}", (long long)j->completed_at);
    return ws_buf_take(&b);
}

int ws_store_job_finish_as(ws_store *s, const char *job_id, const char *worker_id, ws_job_status status,
                           int64_t samples, const char *metrics_json, const char *error_message,
                           ws_error *err)
{
    int rc;
    if ((rc = check_ids(job_id, worker_id, err)))
        return rc;
    if (status != WS_JOB_COMPLETED && status != WS_JOB_FAILED)
        return ws_error_set(err, WS_EINVAL, "a worker finishes a job as completed or failed");
    if (metrics_json) {
        ws_json_doc *d = NULL;
        if (strlen(metrics_json) > WS_STORE_JSON_MAX ||
            ws_json_parse(metrics_json, strlen(metrics_json), &d, NULL))
            return ws_error_set(err, WS_EINVAL, "metrics are not JSON");
        ws_json_doc_free(d);
    }
    if (error_message && strlen(error_message) > WS_STORE_TEXT_MAX)
        return ws_error_set(err, WS_ETOOBIG, "error message too long");
    ws_arena *a = ws_arena_new(4096);
    char *payload = NULL;
    int64_t now = ws_store_now_ms();
    ws_dbp p[] = {DBP_S(job_id),
                  DBP_S(worker_id),
                  DBP_S(ws_job_status_name(status)),
                  DBP_I(samples < 0 ? 0 : samples),
                  DBP_S(metrics_json),
                  DBP_S(error_message),
                  DBP_I(now),
                  status == WS_JOB_COMPLETED ? DBP_D(1.0) : DBP_NULL};
    ws_dbres r = {0};
    ws_job j;
    if ((rc = ws__store_tx_begin(s, err)))
        goto out;
    /* the compare-and-set: only the holder moves running to a final state, once */
    rc = ws__store_query(
        s, ws__store_db(s), a,
        "UPDATE training_jobs SET status = $3, progress = COALESCE($8, progress),"
        " samples_processed = CASE WHEN $4 > 0 THEN $4 ELSE samples_processed END,"
        " metrics = COALESCE($5, metrics), error_message = $6, completed_at = $7, updated_at = $7"
        " WHERE job_id = $1 AND worker_id = $2 AND status = 'running' RETURNING job_id",
        p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ECONFLICT, "job %s is not running for this worker", job_id);
    if (rc == 0)
        rc = ws_store_job_get(s, a, job_id, &j, err);
    if (rc == 0) {
        payload = finish_payload(&j);
        ws_dbp op[] = {DBP_S("training-events"), DBP_S(j.user_id), DBP_S(payload), DBP_I(now)};
        rc = ws__store_query(
            s, ws__store_db(s), a,
            "INSERT INTO outbox (topic, msg_key, payload, created_at) VALUES ($1, $2, $3, $4)", op, NP(op),
            NULL, err);
    }
    rc = ws__store_tx_end(s, rc, err);
out:
    free(payload);
    ws_arena_free(a);
    return rc;
}
