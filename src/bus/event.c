/* Parsing the training messages of the bus and remembering handled event ids (event.h). */
#include "bus/event.h"

#include <string.h>

#include "bus/bus.h"
#include "core/json.h"

/* Copies an id made of [A-Za-z0-9_-] (1..cap-1 bytes); false otherwise. */
static bool copy_id(const char *v, char *out, size_t cap)
{
    size_t n = v ? strlen(v) : 0;
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-'))
            return false;
    }
    memcpy(out, v, n + 1);
    return true;
}

int ws_bus_job_event_parse(const char *payload, size_t len, ws_bus_job_event *out, ws_error *err)
{
    memset(out, 0, sizeof *out);
    if (!payload || len > WS_BUS_PAYLOAD_MAX)
        return ws_error_set(err, WS_EFORMAT, "event: no payload or too big");
    ws_json_doc *doc = NULL;
    if (ws_json_parse(payload, len, &doc, NULL))
        return ws_error_set(err, WS_EFORMAT, "event: not JSON");
    int rc = 0;
    const ws_json *root = ws_json_root(doc), *job = ws_json_get(root, "job");
    const char *type = ws_json_get_str(root, "type");
    if (!type || strncmp(type, "training.", 9) || strlen(type) > WS_BUS_TYPE_MAX) {
        rc = ws_error_set(err, WS_EFORMAT, "event: not a training event");
        goto out;
    }
    for (const char *p = type; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || *p == '.' || *p == '_')) {
            rc = ws_error_set(err, WS_EFORMAT, "event: bad type");
            goto out;
        }
    strcpy(out->type, type);
    if (!copy_id(ws_json_get_str(job, "job_id"), out->job_id, sizeof out->job_id) ||
        !copy_id(ws_json_get_str(job, "user_id"), out->user_id, sizeof out->user_id)) {
        rc = ws_error_set(err, WS_EFORMAT, "event: missing or bad job or user id");
        goto out;
    }
    double v;
    if (ws_json_get_num(job, "progress", &v) && v >= 0 && v <= 1)
        out->progress = v;
    if (ws_json_get_num(job, "samples_processed", &v) && v >= 0 && v < 9e15)
        out->samples = (int64_t)v;
out:
    ws_json_doc_free(doc);
    if (rc)
        memset(out, 0, sizeof *out);
    return rc;
}

void ws_bus_seen_init(ws_bus_seen *s, size_t cap)
{
    memset(s, 0, sizeof *s);
    s->cap = cap ? cap : 4096;
}

bool ws_bus_seen_check(ws_bus_seen *s, const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0)
        return false;
    if (ws_strset_find(&s->gen[0], id, n) >= 0 || ws_strset_find(&s->gen[1], id, n) >= 0)
        return true;
    if (s->gen[0].count >= s->cap) {
        ws_strset_free(&s->gen[1]);
        s->gen[1] = s->gen[0];
        memset(&s->gen[0], 0, sizeof s->gen[0]);
    }
    ws_strset_add(&s->gen[0], id, n);
    return false;
}

void ws_bus_seen_free(ws_bus_seen *s)
{
    ws_strset_free(&s->gen[0]);
    ws_strset_free(&s->gen[1]);
}
