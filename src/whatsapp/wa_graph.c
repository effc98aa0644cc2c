/* The Graph API client of the WhatsApp channel (wa_graph.h): JSON requests with a bearer
 * token over libcurl, answers parsed for messages[0].id or error.code / error.message. */
#include "whatsapp/wa_graph.h"

#include "core/curl_lib.h"
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/utf8.h"

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    ws_buf *b = arg;
    size_t len = size * n;
    if (b->len + len <= WS_WA_GRAPH_RESPONSE_MAX)
        ws_buf_append(b, p, len);
    return len;
}

static bool id_ok(const char *s, size_t max)
{
    size_t n = s ? strnlen(s, max + 1) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == '/' || s[i] == '"' || s[i] == '\\' || s[i] == '?' ||
            s[i] == '#' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static void parse_answer(const ws_buf *body, ws_wa_send_result *res)
{
    ws_json_doc *doc = NULL;
    if (!body->len || body->len >= WS_WA_GRAPH_RESPONSE_MAX ||
        ws_json_parse(body->data, body->len, &doc, NULL))
        return;
    const ws_json *root = ws_json_root(doc);
    const ws_json *e = ws_json_get(root, "error");
    double code;
    if (e) {
        if (ws_json_get_num(e, "code", &code) && code > -1e9 && code < 1e9)
            res->error_code = (int)code;
        const char *m = ws_json_get_str(e, "message");
        snprintf(res->error_message, sizeof res->error_message, "%s", m ? m : "Graph API error");
    }
    const char *id = ws_json_get_str(ws_json_at(ws_json_get(root, "messages"), 0), "id");
    if (id && strlen(id) < sizeof res->wamid)
        snprintf(res->wamid, sizeof res->wamid, "%s", id);
    ws_json_doc_free(doc);
}

/* POSTs body to {base}/{version}/{number}/messages with the token. */
static int post(const ws_wa_graph *g, const char *number, const char *token, const ws_buf *body,
                ws_wa_send_result *res, ws_error *err)
{
    memset(res, 0, sizeof *res);
    int rc = ws_curl_load(err);
    if (rc < 0)
        return rc;
    ws_buf url = WS_BUF_INIT, auth = WS_BUF_INIT, answer = WS_BUF_INIT;
    struct curl_slist *hdrs = NULL;
    CURL *c = ws_curl.curl_easy_init();
    if (!c) {
        rc = ws_error_set(err, WS_EIO, "cannot create a curl handle");
        goto out;
    }
    ws_buf_printf(&url, "%s/%s/%s/messages", g->base_url, g->version, number);
    ws_buf_printf(&auth, "Authorization: Bearer %s", token);
    hdrs = ws_curl.curl_slist_append(hdrs, auth.data);
    hdrs = ws_curl.curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = ws_curl.curl_slist_append(hdrs, "Expect:");
    ws_curl.curl_easy_setopt(c, CURLOPT_URL, url.data);
    ws_curl.curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    ws_curl.curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data);
    ws_curl.curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body->len);
    ws_curl.curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    ws_curl.curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
    ws_curl.curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(g->timeout_ms > 0 ? g->timeout_ms : 15000));
    ws_curl.curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    ws_curl.curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode cc = ws_curl.curl_easy_perform(c);
    if (cc != CURLE_OK) {
        snprintf(res->error_message, sizeof res->error_message, "%s", ws_curl.curl_easy_strerror(cc));
        rc = ws_error_set(err, WS_EIO, "Graph API unreachable: %s", ws_curl.curl_easy_strerror(cc));
        goto out;
    }
    long status = 0;
    ws_curl.curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    res->http_status = (int)status;
    parse_answer(&answer, res);
    if (status >= 300 && !res->error_message[0])
        snprintf(res->error_message, sizeof res->error_message, "HTTP %ld", status);
out:
    ws_curl.curl_slist_free_all(hdrs);
    if (c)
        ws_curl.curl_easy_cleanup(c);
    ws_buf_free(&url);
    ws_buf_free(&auth);
    ws_buf_free(&answer);
    return rc;
}

static int check_common(const ws_wa_graph *g, const char *number, const char *token, ws_error *err)
{
    if (!g->base_url || !g->version || !id_ok(number, 64) || !id_ok(token, 4096))
        return ws_error_set(err, WS_EINVAL, "Graph API call without a base URL, version, number or token");
    return 0;
}

int ws_wa_graph_send_text(const ws_wa_graph *g, const char *phone_number_id, const char *token,
                          const char *to_phone, const char *to_user_id, const char *text,
                          const char *reply_to, ws_wa_send_result *res, ws_error *err)
{
    memset(res, 0, sizeof *res);
    int rc = check_common(g, phone_number_id, token, err);
    if (rc)
        return rc;
    if (!text || !*text || ws_utf8_count(text, strlen(text)) > WS_WA_REPLY_MAX)
        return ws_error_set(err, WS_EINVAL, "a reply must have 1..%d characters", WS_WA_REPLY_MAX);
    if (!to_phone && !to_user_id)
        return ws_error_set(err, WS_EINVAL, "no recipient");
    ws_buf b = WS_BUF_INIT;
    ws_buf_puts(&b, "{\"messaging_product\":\"whatsapp\",\"recipient_type\":\"individual\",");
    ws_buf_puts(&b, to_phone ? "\"to\":" : "\"recipient\":");
    ws_json_put_cstr(&b, to_phone ? to_phone : to_user_id);
    if (reply_to) {
        ws_buf_puts(&b, ",\"context\":{\"message_id\":");
        ws_json_put_cstr(&b, reply_to);
        ws_buf_putc(&b, '}');
    }
    ws_buf_puts(&b, ",\"type\":\"text\",\"text\":{\"preview_url\":false,\"body\":");
    ws_json_put_cstr(&b, text);
    ws_buf_puts(&b, "}}");
    rc = post(g, phone_number_id, token, &b, res, err);
    ws_buf_free(&b);
    return rc;
}

int ws_wa_graph_mark_read(const ws_wa_graph *g, const char *phone_number_id, const char *token,
                          const char *wamid, ws_wa_send_result *res, ws_error *err)
{
    memset(res, 0, sizeof *res);
    int rc = check_common(g, phone_number_id, token, err);
    if (rc)
        return rc;
    ws_buf b = WS_BUF_INIT;
    ws_buf_puts(&b, "{\"messaging_product\":\"whatsapp\",\"status\":\"read\",\"message_id\":");
    ws_json_put_cstr(&b, wamid);
    ws_buf_putc(&b, '}');
    rc = post(g, phone_number_id, token, &b, res, err);
    ws_buf_free(&b);
    return rc;
}

ws_wa_send_outcome ws_wa_graph_classify(const ws_wa_send_result *r)
{
    if (r->http_status >= 200 && r->http_status < 300 && !r->error_code)
        return WS_WA_SEND_OK;
    switch (r->error_code) {
    case 130429: /* throughput reached */
    case 131056: /* pair rate limit: too many messages to one recipient */
    case 4:      /* application request limit */
    case 80007:  /* WhatsApp Business Account rate limit */
    case 131016: /* service unavailable */
    case 2: /* temporary API error */ return WS_WA_SEND_RETRY;
    default: break;
    }
    if (r->http_status == 0 || r->http_status == 429 || r->http_status >= 500)
        return WS_WA_SEND_RETRY;
    return WS_WA_SEND_FAILED;
}
