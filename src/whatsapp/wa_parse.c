/* The parser of WhatsApp Cloud API webhook bodies (whatsapp.h): walks entry[] x changes[]
 * and flattens every messages[] and statuses[] item into ws_wa_message / ws_wa_status,
 * copying what it keeps into the caller's arena. */
#include "whatsapp/whatsapp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"

static const char *const type_names[] = {
    [WS_WA_MSG_TEXT] = "text",
    [WS_WA_MSG_REACTION] = "reaction",
    [WS_WA_MSG_INTERACTIVE] = "interactive",
    [WS_WA_MSG_BUTTON] = "button",
    [WS_WA_MSG_IMAGE] = "image",
    [WS_WA_MSG_AUDIO] = "audio",
    [WS_WA_MSG_VIDEO] = "video",
    [WS_WA_MSG_DOCUMENT] = "document",
    [WS_WA_MSG_STICKER] = "sticker",
    [WS_WA_MSG_LOCATION] = "location",
    [WS_WA_MSG_CONTACTS] = "contacts",
    [WS_WA_MSG_SYSTEM] = "system",
    [WS_WA_MSG_UNSUPPORTED] = "unsupported",
};

const char *ws_wa_msg_type_name(ws_wa_msg_type t)
{
    return (unsigned)t <= WS_WA_MSG_UNSUPPORTED ? type_names[t] : "unsupported";
}

bool ws_wa_msg_is_media(ws_wa_msg_type t)
{
    return t >= WS_WA_MSG_IMAGE && t <= WS_WA_MSG_STICKER;
}

static const char *const status_names[] = {NULL, "sent", "delivered", "read", "failed"};

const char *ws_wa_status_name(ws_wa_status_kind k)
{
    return k >= WS_WA_STATUS_SENT && k <= WS_WA_STATUS_FAILED ? status_names[k] : "unknown";
}

int ws_wa_status_parse(const char *name, ws_wa_status_kind *out)
{
    for (int k = WS_WA_STATUS_SENT; name && k <= WS_WA_STATUS_FAILED; k++) {
        if (!strcmp(name, status_names[k])) {
            *out = (ws_wa_status_kind)k;
            return 0;
        }
    }
    return WS_EINVAL;
}

/* ---- small accessors ---------------------------------------------------------------- */

typedef struct pctx {
    ws_arena *a;
    ws_error *err;
    int rc;
} pctx;

/* A string field copied into the arena (NULL when absent, not a string or empty); an id
 * over WS_WA_ID_MAX sets WS_ETOOBIG. */
static const char *id_of(pctx *c, const ws_json *o, const char *key)
{
    const ws_json *v = ws_json_get(o, key);
    if (!v || v->type != WS_JSON_STRING || v->len == 0)
        return NULL;
    if (v->len > WS_WA_ID_MAX || memchr(v->str, '\0', v->len)) {
        if (!c->rc)
            c->rc = ws_error_set(c->err, WS_ETOOBIG, "%s is longer than %d bytes or holds NUL", key,
                                 WS_WA_ID_MAX);
        return NULL;
    }
    return ws_arena_strndup(c->a, v->str, v->len);
}

/* A text field copied into the arena, cut to WS_WA_TEXT_MAX bytes at a character boundary;
 * embedded NULs end it. NULL when absent or not a string. */
static const char *text_of(pctx *c, const ws_json *o, const char *key)
{
    const ws_json *v = ws_json_get(o, key);
    if (!v || v->type != WS_JSON_STRING)
        return NULL;
    size_t n = strnlen(v->str, v->len);
    if (n > WS_WA_TEXT_MAX) {
        n = WS_WA_TEXT_MAX;
        while (n > 0 && ((unsigned char)v->str[n] & 0xc0) == 0x80)
            n--;
    }
    return ws_arena_strndup(c->a, v->str, n);
}

/* Unix seconds: Meta sends them as a decimal string ("1603059201"); a number is accepted. */
static int64_t ts_of(const ws_json *o)
{
    const ws_json *v = ws_json_get(o, "timestamp");
    if (!v)
        return 0;
    if (v->type == WS_JSON_NUMBER)
        return isfinite(v->number) && v->number > 0 && v->number < 1e15 ? (int64_t)v->number : 0;
    if (v->type != WS_JSON_STRING || v->len == 0 || v->len > 15)
        return 0;
    int64_t t = 0;
    for (size_t i = 0; i < v->len; i++) {
        if (v->str[i] < '0' || v->str[i] > '9')
            return 0;
        t = t * 10 + (v->str[i] - '0');
    }
    return t;
}

static int code_of(const ws_json *errors)
{
    const ws_json *e0 = ws_json_at(errors, 0);
    double d;
    if (e0 && ws_json_get_num(e0, "code", &d) && isfinite(d) && d > -1e9 && d < 1e9)
        return (int)d;
    return 0;
}

static size_t count_of(const ws_json *arr)
{
    return arr && arr->type == WS_JSON_ARRAY ? arr->len : 0;
}

/* ---- messages ------------------------------------------------------------------------ */

static ws_wa_msg_type type_of(const char *name)
{
    for (int t = 0; name && t < WS_WA_MSG_UNSUPPORTED; t++)
        if (!strcmp(name, type_names[t]))
            return (ws_wa_msg_type)t;
    return WS_WA_MSG_UNSUPPORTED;
}

static void parse_interactive(pctx *c, const ws_json *in, ws_wa_message *m)
{
    static const char *const kinds[] = {"button_reply", "list_reply", "nfm_reply"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        const ws_json *r = ws_json_get(in, kinds[i]);
        if (!r)
            continue;
        m->ref_id = id_of(c, r, "id");
        m->text = text_of(c, r, "title");
        if (!m->text)
            m->text = text_of(c, r, "body");
        return;
    }
}

static void parse_location(pctx *c, const ws_json *loc, ws_wa_message *m)
{
    double lat = 0, lon = 0;
    bool has = ws_json_get_num(loc, "latitude", &lat) && ws_json_get_num(loc, "longitude", &lon);
    const char *name = text_of(c, loc, "name"), *addr = text_of(c, loc, "address");
    ws_buf b = WS_BUF_INIT;
    if (name)
        ws_buf_puts(&b, name);
    if (addr)
        ws_buf_printf(&b, "%s%s", b.len ? ", " : "", addr);
    if (has)
        ws_buf_printf(&b, "%s(%.6f, %.6f)", b.len ? " " : "", lat, lon);
    if (b.len)
        m->text = ws_arena_strndup(c->a, b.data, b.len > WS_WA_TEXT_MAX ? WS_WA_TEXT_MAX : b.len);
    ws_buf_free(&b);
}

static void parse_contacts(pctx *c, const ws_json *arr, ws_wa_message *m)
{
    ws_buf b = WS_BUF_INIT;
    for (size_t i = 0; i < count_of(arr) && b.len < WS_WA_TEXT_MAX; i++) {
        const ws_json *name = ws_json_get(ws_json_at(arr, i), "name");
        const char *fn = name ? text_of(c, name, "formatted_name") : NULL;
        if (fn)
            ws_buf_printf(&b, "%s%s", b.len ? ", " : "", fn);
    }
    if (b.len)
        m->text = ws_arena_strndup(c->a, b.data, b.len > WS_WA_TEXT_MAX ? WS_WA_TEXT_MAX : b.len);
    ws_buf_free(&b);
}

/* The type-specific part of a message object. */
static void parse_body(pctx *c, const ws_json *msg, ws_wa_message *m)
{
    const ws_json *part = ws_json_get(msg, m->type_name);
    switch (m->type) {
    case WS_WA_MSG_TEXT: m->text = part ? text_of(c, part, "body") : NULL; break;
    case WS_WA_MSG_REACTION:
        if (part) {
            m->ref_id = id_of(c, part, "message_id");
            m->text = text_of(c, part, "emoji"); /* absent: the reaction was removed */
        }
        break;
    case WS_WA_MSG_INTERACTIVE:
        if (part)
            parse_interactive(c, part, m);
        break;
    case WS_WA_MSG_BUTTON:
        if (part) {
            m->ref_id = id_of(c, part, "payload");
            m->text = text_of(c, part, "text");
        }
        break;
    case WS_WA_MSG_LOCATION:
        if (part)
            parse_location(c, part, m);
        break;
    case WS_WA_MSG_CONTACTS: parse_contacts(c, part, m); break;
    case WS_WA_MSG_SYSTEM: m->text = part ? text_of(c, part, "body") : NULL; break;
    case WS_WA_MSG_UNSUPPORTED: m->error_code = code_of(ws_json_get(msg, "errors")); break;
    default:
        if (ws_wa_msg_is_media(m->type) && part) {
            m->media_id = id_of(c, part, "id");
            m->mime_type = id_of(c, part, "mime_type");
            m->text = text_of(c, part, "caption");
        }
        break;
    }
}

/* The sender's profile name from value.contacts[], matched by wa_id or user_id. */
static const char *profile_name(pctx *c, const ws_json *contacts, const ws_wa_message *m)
{
    for (size_t i = 0; i < count_of(contacts); i++) {
        const ws_json *ct = ws_json_at(contacts, i);
        const char *wa = ws_json_get_str(ct, "wa_id"), *uid = ws_json_get_str(ct, "user_id");
        bool match = (m->from && wa && !strcmp(wa, m->from)) ||
                     (m->from_user_id && uid && !strcmp(uid, m->from_user_id)) || count_of(contacts) == 1;
        const ws_json *prof = ws_json_get(ct, "profile");
        if (match && prof)
            return text_of(c, prof, "name");
    }
    return NULL;
}

static bool parse_message(pctx *c, const ws_json *msg, const char *pnid, const ws_json *contacts,
                          ws_wa_message *m)
{
    memset(m, 0, sizeof *m);
    m->phone_number_id = pnid;
    m->wamid = id_of(c, msg, "id");
    m->from = id_of(c, msg, "from");
    m->from_user_id = id_of(c, msg, "from_user_id");
    if (!m->wamid || (!m->from && !m->from_user_id))
        return false;
    const char *tn = ws_json_get_str(msg, "type");
    m->type = type_of(tn);
    m->type_name = m->type == WS_WA_MSG_UNSUPPORTED && tn && strlen(tn) <= 32
                       ? ws_arena_strndup(c->a, tn, strlen(tn))
                       : ws_wa_msg_type_name(m->type);
    m->timestamp = ts_of(msg);
    const ws_json *ctxo = ws_json_get(msg, "context");
    if (ctxo)
        m->context_id = id_of(c, ctxo, "id");
    parse_body(c, msg, m);
    m->profile_name = profile_name(c, contacts, m);
    return true;
}

/* ---- statuses ------------------------------------------------------------------------ */

static bool parse_status(pctx *c, const ws_json *st, const char *pnid, ws_wa_status *s)
{
    memset(s, 0, sizeof *s);
    s->phone_number_id = pnid;
    s->wamid = id_of(c, st, "id");
    s->recipient_id = id_of(c, st, "recipient_id");
    s->recipient_user_id = id_of(c, st, "recipient_user_id");
    if (!s->wamid || ws_wa_status_parse(ws_json_get_str(st, "status"), &s->status) != 0)
        return false;
    s->timestamp = ts_of(st);
    if (s->status == WS_WA_STATUS_FAILED) {
        const ws_json *errs = ws_json_get(st, "errors");
        s->error_code = code_of(errs);
        const ws_json *e0 = ws_json_at(errs, 0);
        s->error_title = e0 ? text_of(c, e0, "title") : NULL;
        if (e0 && !s->error_title)
            s->error_title = text_of(c, e0, "message");
    }
    return true;
}

/* ---- the body ------------------------------------------------------------------------ */

/* Counts the updates first so the arrays are allocated once and capped. */
static int count_updates(const ws_json *entries, size_t *nm, size_t *ns)
{
    *nm = *ns = 0;
    for (size_t i = 0; i < count_of(entries); i++) {
        const ws_json *changes = ws_json_get(ws_json_at(entries, i), "changes");
        for (size_t j = 0; j < count_of(changes); j++) {
            const ws_json *val = ws_json_get(ws_json_at(changes, j), "value");
            *nm += count_of(ws_json_get(val, "messages"));
            *ns += count_of(ws_json_get(val, "statuses"));
            if (*nm + *ns > WS_WA_MAX_EVENTS)
                return WS_ETOOBIG;
        }
    }
    return 0;
}

static void parse_value(pctx *c, const ws_json *val, ws_wa_batch *out)
{
    const ws_json *meta = ws_json_get(val, "metadata");
    const char *pnid = meta ? id_of(c, meta, "phone_number_id") : NULL;
    const ws_json *msgs = ws_json_get(val, "messages"), *sts = ws_json_get(val, "statuses");
    const ws_json *contacts = ws_json_get(val, "contacts");
    if (!pnid) {
        out->n_skipped += count_of(msgs) + count_of(sts);
        return;
    }
    for (size_t k = 0; k < count_of(msgs) && !c->rc; k++) {
        if (parse_message(c, ws_json_at(msgs, k), pnid, contacts, &out->messages[out->n_messages]))
            out->n_messages++;
        else
            out->n_skipped++;
    }
    for (size_t k = 0; k < count_of(sts) && !c->rc; k++) {
        if (parse_status(c, ws_json_at(sts, k), pnid, &out->statuses[out->n_statuses]))
            out->n_statuses++;
        else
            out->n_skipped++;
    }
}

int ws_wa_parse(const char *body, size_t len, ws_arena *a, ws_wa_batch *out, ws_error *err)
{
    memset(out, 0, sizeof *out);
    ws_json_doc *doc = NULL;
    pctx c = {a, err, 0};
    int rc = ws_json_parse(body, len, &doc, err);
    if (rc) {
        rc = ws_error_set(err, WS_EFORMAT, "webhook body is not JSON");
        goto out;
    }
    const ws_json *root = ws_json_root(doc);
    const char *object = ws_json_get_str(root, "object");
    const ws_json *entries = ws_json_get(root, "entry");
    if (!object || strcmp(object, "whatsapp_business_account") != 0 || !entries ||
        entries->type != WS_JSON_ARRAY) {
        rc = ws_error_set(err, WS_EFORMAT, "not a WhatsApp Business Account notification");
        goto out;
    }
    size_t nm, ns;
    if (count_updates(entries, &nm, &ns) != 0) {
        rc = ws_error_set(err, WS_ETOOBIG, "more than %d updates in one notification", WS_WA_MAX_EVENTS);
        goto out;
    }
    out->messages = nm ? ws_arena_calloc(a, nm * sizeof *out->messages) : NULL;
    out->statuses = ns ? ws_arena_calloc(a, ns * sizeof *out->statuses) : NULL;
    for (size_t i = 0; i < count_of(entries) && !c.rc; i++) {
        const ws_json *changes = ws_json_get(ws_json_at(entries, i), "changes");
        for (size_t j = 0; j < count_of(changes) && !c.rc; j++) {
            const ws_json *ch = ws_json_at(changes, j);
            const char *field = ws_json_get_str(ch, "field");
            const ws_json *val = ws_json_get(ch, "value");
            if (!val || (field && strcmp(field, "messages") != 0))
                continue;
            parse_value(&c, val, out);
        }
    }
    rc = c.rc;
out:
    ws_json_doc_free(doc);
    if (rc)
        memset(out, 0, sizeof *out);
    return rc;
}
