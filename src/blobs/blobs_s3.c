/* The S3-compatible blobs backend (cluster): path-style requests (ENDPOINT/BUCKET/KEY) over
 * libcurl, signed with our own AWS Signature Version 4 (s3_sign.h). One curl easy handle
 * per call, so the handle is thread-safe. Objects larger than the part size go up as a
 * multipart upload (parts of part_size bytes, at most S3_PARTS_MAX, aborted on any failure so
 * no parts are left behind). Responses are capped: objects by the caller's limit, listings
 * and error bodies by S3_META_MAX, response headers by S3_HDR_MAX. */
#include "core/curl_lib.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "blobs/blobs.h"
#include "blobs/s3_sign.h"
#include "core/hex.h"
#include "core/mem.h"

#define S3_META_MAX (4u << 20) /* a listing page or an error document */
#define S3_URL_MAX 4096
#define S3_AUTH_MAX 1024
#define S3_HDR_MAX 256         /* the one response header we keep (ETag) */
#define S3_PARTS_MAX 10000     /* S3's limit on the parts of one upload */
#define S3_PART_MIN (5u << 20) /* S3's smallest part (all but the last) */
#define S3_PART_DEFAULT (8u << 20)
#define S3_UPLOAD_ID_MAX 1024

/* ---- signing ---------------------------------------------------------------------------- */

void ws_s3_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned mdl = 0;
    EVP_Digest(data, len, md, &mdl, EVP_sha256(), NULL);
    ws_hex_encode(md, 32, out);
}

static void hmac(const void *key, size_t kl, const char *msg, unsigned char out[32])
{
    unsigned ol = 0;
    HMAC(EVP_sha256(), key, (int)kl, (const unsigned char *)msg, strlen(msg), out, &ol);
}

int ws_s3_uri_encode(const char *s, int keep_slash, char *out, size_t out_size)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned c = *p;
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
        if (n + (keep ? 1 : 3) >= out_size)
            return -1;
        if (keep) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = digits[c >> 4];
            out[n++] = digits[c & 15];
        }
    }
    if (n >= out_size)
        return -1;
    out[n] = '\0';
    return (int)n;
}

static int cmp_header(const void *a, const void *b)
{
    return strcmp(((const ws_s3_header *)a)->name, ((const ws_s3_header *)b)->name);
}

int ws_s3_sign(const char *method, const char *canonical_uri, const char *canonical_query,
               const ws_s3_header *headers, size_t n_headers, const char *payload_sha256,
               const char *amz_date, const char *region, const char *access_key, const char *secret_key,
               char *out, size_t out_size)
{
    if (!method || !canonical_uri || !headers || !payload_sha256 || !amz_date || strlen(amz_date) != 16 ||
        !region || !access_key || !secret_key || n_headers == 0 || n_headers > 16)
        return -1;
    ws_s3_header h[16];
    memcpy(h, headers, n_headers * sizeof *h);
    qsort(h, n_headers, sizeof *h, cmp_header);
    ws_buf creq = WS_BUF_INIT, signed_names = WS_BUF_INIT, sts = WS_BUF_INIT;
    ws_buf_printf(&creq, "%s\n%s\n%s\n", method, canonical_uri, canonical_query ? canonical_query : "");
    for (size_t i = 0; i < n_headers; i++) {
        ws_buf_printf(&creq, "%s:%s\n", h[i].name, h[i].value);
        ws_buf_printf(&signed_names, "%s%s", i ? ";" : "", h[i].name);
    }
    ws_buf_printf(&creq, "\n%s\n%s", signed_names.data, payload_sha256);
    char creq_hash[65];
    ws_s3_sha256_hex(creq.data, creq.len, creq_hash);
    char date[9];
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    ws_buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/s3/aws4_request\n%s", amz_date, date, region, creq_hash);
    /* the signing key: HMAC chain over date, region, service, "aws4_request" */
    size_t skl = strlen(secret_key);
    char *k0 = ws_xmalloc(skl + 5);
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret_key, skl + 1);
    unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
    hmac(k0, skl + 4, date, k1);
    hmac(k1, 32, region, k2);
    hmac(k2, 32, "s3", k3);
    hmac(k3, 32, "aws4_request", k4);
    hmac(k4, 32, sts.data, sig);
    char sig_hex[65];
    ws_hex_encode(sig, 32, sig_hex);
    int n = snprintf(out, out_size,
                     "AWS4-HMAC-SHA256 Credential=%s/%s/%s/s3/aws4_request, SignedHeaders=%s, Signature=%s",
                     access_key, date, region, signed_names.data, sig_hex);
    free(k0);
    ws_buf_free(&creq);
    ws_buf_free(&signed_names);
    ws_buf_free(&sts);
    return n < 0 || (size_t)n >= out_size ? -1 : 0;
}

/* ---- requests --------------------------------------------------------------------------- */

typedef struct s3_blobs {
    ws_blobs base;
    char *endpoint; /* "http://host:port" (no trailing slash) */
    char *host;     /* "host:port" as sent in Host */
    char *bucket, *region, *access_key, *secret_key;
    long timeout_ms;
    size_t part_size; /* objects above it go up in parts of this size */
} s3_blobs;

typedef struct s3_resp {
    long status;
    ws_buf body;
    bool too_big;
    char etag[S3_HDR_MAX]; /* the ETag response header, "" when none (or longer than the cap) */
} s3_resp;

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    s3_resp *r = arg;
    size_t len = size * n;
    if (len > 5 && !strncasecmp(p, "etag:", 5)) {
        const char *v = p + 5, *e = p + len;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
            e--;
        if ((size_t)(e - v) < sizeof r->etag)
            snprintf(r->etag, sizeof r->etag, "%.*s", (int)(e - v), v);
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    s3_resp *r = arg;
    size_t len = size * n;
    if (ws_buf_append(&r->body, p, len) != 0) {
        r->too_big = true;
        return 0; /* aborts the transfer */
    }
    return len;
}

/* The S3 error code of an error document (<Code>...</Code>), for messages. */
static void error_code(const ws_buf *body, char *out, size_t n)
{
    const char *a = body->data ? strstr(body->data, "<Code>") : NULL;
    const char *b = a ? strstr(a, "</Code>") : NULL;
    if (a && b && b - a - 6 < 80)
        snprintf(out, n, "%.*s", (int)(b - a - 6), a + 6);
    else
        snprintf(out, n, "no error code");
}

/* One signed request. key NULL = the bucket itself; query: canonical ("" or sorted k=v&...);
 * range (may be NULL): a Range header value ("bytes=0-23"; not signed, as SigV4 allows).
 * The response body goes to resp->body, capped at max bytes. */
static int s3_request_range(s3_blobs *s, const char *method, const char *key, const char *query,
                            const void *body, size_t body_len, const char *range, size_t max, s3_resp *resp,
                            ws_error *err)
{
    char path[S3_URL_MAX], enc[S3_URL_MAX], url[S3_URL_MAX], auth[S3_AUTH_MAX];
    snprintf(path, sizeof path, "/%s%s%s", s->bucket, key ? "/" : "", key ? key : "");
    if (ws_s3_uri_encode(path, 1, enc, sizeof enc) < 0 ||
        snprintf(url, sizeof url, "%s%s%s%s", s->endpoint, enc, query && *query ? "?" : "",
                 query ? query : "") >= (int)sizeof url)
        return ws_error_set(err, WS_EINVAL, "s3: URL too long for %s", key ? key : s->bucket);
    char payload_hash[65], amz_date[17];
    ws_s3_sha256_hex(body ? body : "", body ? body_len : 0, payload_hash);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
    ws_s3_header hs[] = {{"host", s->host}, {"x-amz-content-sha256", payload_hash}, {"x-amz-date", amz_date}};
    if (ws_s3_sign(method, enc, query ? query : "", hs, 3, payload_hash, amz_date, s->region, s->access_key,
                   s->secret_key, auth, sizeof auth) < 0)
        return ws_error_set(err, WS_EINVAL, "s3: cannot sign the request");
    CURL *c = ws_curl.curl_easy_init();
    if (!c)
        return ws_error_set(err, WS_EIO, "s3: curl_easy_init failed");
    struct curl_slist *hl = NULL;
    char line[S3_AUTH_MAX + 64];
    snprintf(line, sizeof line, "Host: %s", s->host);
    hl = ws_curl.curl_slist_append(hl, line);
    snprintf(line, sizeof line, "x-amz-content-sha256: %s", payload_hash);
    hl = ws_curl.curl_slist_append(hl, line);
    snprintf(line, sizeof line, "x-amz-date: %s", amz_date);
    hl = ws_curl.curl_slist_append(hl, line);
    snprintf(line, sizeof line, "Authorization: %s", auth);
    hl = ws_curl.curl_slist_append(hl, line);
    if (range) {
        snprintf(line, sizeof line, "Range: %s", range);
        hl = ws_curl.curl_slist_append(hl, line);
    }
    hl = ws_curl.curl_slist_append(hl, "Expect:");
    hl = ws_curl.curl_slist_append(hl, "Content-Type:");
    resp->status = 0;
    resp->too_big = false;
    resp->etag[0] = '\0';
    resp->body.limit = max;
    ws_curl.curl_easy_setopt(c, CURLOPT_URL, url);
    ws_curl.curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    ws_curl.curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    ws_curl.curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    ws_curl.curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms < 10000 ? s->timeout_ms : 10000L);
    ws_curl.curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    ws_curl.curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    ws_curl.curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    ws_curl.curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    ws_curl.curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    if (!strcmp(method, "HEAD")) {
        ws_curl.curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(method, "PUT") || !strcmp(method, "POST")) {
        ws_curl.curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        ws_curl.curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
        ws_curl.curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
    } else if (strcmp(method, "GET") != 0) {
        ws_curl.curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode cc = ws_curl.curl_easy_perform(c);
    ws_curl.curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    ws_curl.curl_easy_cleanup(c);
    ws_curl.curl_slist_free_all(hl);
    if (resp->too_big)
        return ws_error_set(err, WS_ETOOBIG, "s3: %s is larger than %zu bytes", key ? key : s->bucket, max);
    if (cc != CURLE_OK)
        return ws_error_set(err, WS_EIO, "s3: %s %s: %s", method, url, ws_curl.curl_easy_strerror(cc));
    return 0;
}

static int s3_request(s3_blobs *s, const char *method, const char *key, const char *query, const void *body,
                      size_t body_len, size_t max, s3_resp *resp, ws_error *err)
{
    return s3_request_range(s, method, key, query, body, body_len, NULL, max, resp, err);
}

static int status_error(s3_blobs *s, const char *what, const char *key, const s3_resp *r, ws_error *err)
{
    char code[96];
    error_code(&r->body, code, sizeof code);
    if (r->status == 404 && strcmp(code, "NoSuchUpload") != 0)
        return ws_error_set(err, WS_ENOENT, "s3: no object %s in bucket %s", key ? key : "", s->bucket);
    /* SignatureDoesNotMatch / InvalidAccessKeyId / AccessDenied (a HEAD's 403 has no body) */
    if (r->status == 403)
        return ws_error_set(err, WS_EPERM,
                            "s3: %s %s: the server refused our credentials (HTTP 403, %s): check "
                            "WS_S3_ACCESS_KEY and WS_S3_SECRET_KEY",
                            what, key ? key : s->bucket, code);
    return ws_error_set(err, WS_EIO, "s3: %s %s: HTTP %ld (%s)", what, key ? key : s->bucket, r->status,
                        code);
}

static int next_element(const char **p, const char *tag, char *out, size_t out_size);

/* Abandons a multipart upload (its parts are freed); failures are only logged by the server. */
static void multipart_abort(s3_blobs *s, const char *key, const char *enc_id)
{
    char query[S3_UPLOAD_ID_MAX * 3 + 16];
    snprintf(query, sizeof query, "uploadId=%s", enc_id);
    s3_resp r = {0};
    ws_error ignored = {0};
    s3_request(s, "DELETE", key, query, NULL, 0, S3_META_MAX, &r, &ignored);
    ws_buf_free(&r.body);
}

/* Uploads the parts of data and appends each <Part> to done (the completion document). */
static int multipart_parts(s3_blobs *s, const char *key, const char *enc_id, const unsigned char *data,
                           size_t len, ws_buf *done, ws_error *err)
{
    char query[S3_UPLOAD_ID_MAX * 3 + 48];
    int rc = 0;
    size_t nparts = (len + s->part_size - 1) / s->part_size;
    for (size_t i = 0; rc == 0 && i < nparts; i++) {
        size_t off = i * s->part_size, n = len - off < s->part_size ? len - off : s->part_size;
        snprintf(query, sizeof query, "partNumber=%zu&uploadId=%s", i + 1, enc_id);
        s3_resp r = {0};
        rc = s3_request(s, "PUT", key, query, data + off, n, S3_META_MAX, &r, err);
        if (rc == 0 && r.status != 200)
            rc = status_error(s, "upload part", key, &r, err);
        if (rc == 0 && !r.etag[0])
            rc = ws_error_set(err, WS_EIO, "s3: upload part of %s: the server sent no ETag", key);
        if (rc == 0)
            ws_buf_printf(done, "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>", i + 1, r.etag);
        ws_buf_free(&r.body);
    }
    return rc;
}

/* A multipart upload: create, parts, complete; aborted when any step fails. */
static int multipart_put(s3_blobs *s, const char *key, const void *data, size_t len, ws_error *err)
{
    if ((len + s->part_size - 1) / s->part_size > S3_PARTS_MAX)
        return ws_error_set(err, WS_ETOOBIG, "s3: %s needs more than %d parts of %zu bytes", key,
                            S3_PARTS_MAX, s->part_size);
    s3_resp r = {0};
    char id[S3_UPLOAD_ID_MAX + 1] = "", enc_id[S3_UPLOAD_ID_MAX * 3 + 1];
    ws_buf done = WS_BUF_INIT;
    int rc = s3_request(s, "POST", key, "uploads=", NULL, 0, S3_META_MAX, &r, err);
    if (rc == 0 && r.status != 200)
        rc = status_error(s, "create multipart upload", key, &r, err);
    const char *p = r.body.data ? r.body.data : "";
    if (rc == 0 && (next_element(&p, "UploadId", id, sizeof id) <= 0 || !id[0] ||
                    ws_s3_uri_encode(id, 0, enc_id, sizeof enc_id) < 0))
        rc = ws_error_set(err, WS_EIO, "s3: create multipart upload of %s: no usable UploadId", key);
    ws_buf_free(&r.body);
    if (rc < 0)
        goto out;
    ws_buf_printf(&done, "<CompleteMultipartUpload>");
    rc = multipart_parts(s, key, enc_id, data, len, &done, err);
    ws_buf_printf(&done, "</CompleteMultipartUpload>");
    char query[sizeof enc_id + 16];
    snprintf(query, sizeof query, "uploadId=%s", enc_id);
    if (rc == 0)
        rc = s3_request(s, "POST", key, query, done.data, done.len, S3_META_MAX, &r, err);
    /* a completion can fail inside a 200 answer: its body is then an <Error> document */
    if (rc == 0 && (r.status != 200 || (r.body.data && strstr(r.body.data, "<Error>"))))
        rc = status_error(s, "complete multipart upload", key, &r, err);
    ws_buf_free(&r.body);
    if (rc < 0)
        multipart_abort(s, key, enc_id);
out:
    ws_buf_free(&done);
    return rc;
}

static int s3_put(ws_blobs *b, const char *key, const void *data, size_t len, ws_error *err)
{
    s3_blobs *s = (s3_blobs *)b;
    if (len > s->part_size)
        return multipart_put(s, key, data, len, err);
    s3_resp r = {0};
    int rc = s3_request(s, "PUT", key, "", data, len, S3_META_MAX, &r, err);
    if (rc == 0 && (r.status < 200 || r.status > 299))
        rc = status_error(s, "PUT", key, &r, err);
    ws_buf_free(&r.body);
    return rc;
}

static int s3_get(ws_blobs *b, const char *key, size_t max, ws_buf *out, ws_error *err)
{
    s3_blobs *s = (s3_blobs *)b;
    s3_resp r = {0};
    /* error documents are small; objects may be up to max */
    int rc = s3_request(s, "GET", key, "", NULL, 0, max > S3_META_MAX ? max : S3_META_MAX, &r, err);
    if (rc == 0 && r.status != 200)
        rc = status_error(s, "GET", key, &r, err);
    if (rc == 0 && r.body.len > max)
        rc = ws_error_set(err, WS_ETOOBIG, "s3: %s is larger than %zu bytes", key, max);
    if (rc == 0 && r.body.len && ws_buf_append(out, r.body.data, r.body.len) != 0)
        rc = ws_error_set(err, WS_ETOOBIG, "s3: %s is larger than the buffer's limit", key);
    ws_buf_free(&r.body);
    return rc;
}

static int s3_head(ws_blobs *b, const char *key, size_t n, ws_buf *out, ws_error *err)
{
    s3_blobs *s = (s3_blobs *)b;
    s3_resp r = {0};
    char range[64];
    if (n == 0)
        return 0;
    snprintf(range, sizeof range, "bytes=0-%zu", n - 1);
    /* a server that ignores Range answers 200 with the whole object: the cap then stops it */
    int rc = s3_request_range(s, "GET", key, "", NULL, 0, range, n > S3_META_MAX ? n : S3_META_MAX, &r, err);
    if (rc == WS_ETOOBIG) {
        ws_buf_free(&r.body);
        ws_buf whole = WS_BUF_INIT;
        rc = s3_get(b, key, SIZE_MAX, &whole, err);
        if (rc == 0 && ws_buf_append(out, whole.data, whole.len < n ? whole.len : n) != 0)
            rc = ws_error_set(err, WS_ETOOBIG, "s3: %s is larger than the buffer's limit", key);
        ws_buf_free(&whole);
        return rc;
    }
    if (rc == 0 && r.status == 416) /* an empty object: no byte 0 */
        r.body.len = 0;
    else if (rc == 0 && r.status != 206 && r.status != 200)
        rc = status_error(s, "GET", key, &r, err);
    if (rc == 0 && r.body.len && ws_buf_append(out, r.body.data, r.body.len < n ? r.body.len : n) != 0)
        rc = ws_error_set(err, WS_ETOOBIG, "s3: %s is larger than the buffer's limit", key);
    ws_buf_free(&r.body);
    return rc;
}

static int s3_del(ws_blobs *b, const char *key, ws_error *err)
{
    s3_blobs *s = (s3_blobs *)b;
    s3_resp r = {0};
    int rc = s3_request(s, "DELETE", key, "", NULL, 0, S3_META_MAX, &r, err);
    if (rc == 0 && r.status != 204 && r.status != 200 && r.status != 404)
        rc = status_error(s, "DELETE", key, &r, err);
    ws_buf_free(&r.body);
    return rc;
}

/* The text of the next <tag>...</tag> at or after *p (XML entities decoded) into out;
 * advances *p past it. Returns 1, 0 when there is none, -1 when the text does not fit in
 * out (the element is skipped). */
static int next_element(const char **p, const char *tag, char *out, size_t out_size)
{
    char open[40], close[40];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(*p, open);
    const char *b = a ? strstr(a + strlen(open), close) : NULL;
    if (!a || !b)
        return 0;
    a += strlen(open);
    *p = b + strlen(close);
    size_t n = 0;
    while (a < b && n + 1 < out_size) {
        static const struct {
            const char *ent;
            char ch;
        } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
        bool done = false;
        for (size_t i = 0; i < sizeof ents / sizeof ents[0] && !done; i++) {
            size_t el = strlen(ents[i].ent);
            if ((size_t)(b - a) >= el && !strncmp(a, ents[i].ent, el)) {
                out[n++] = ents[i].ch;
                a += el;
                done = true;
            }
        }
        if (!done)
            out[n++] = *a++;
    }
    out[n] = '\0';
    return a == b ? 1 : -1;
}

int ws_s3_parse_list(const char *xml, void (*on_key)(void *arg, const char *key), void *arg, char *next,
                     size_t next_size)
{
    char key[WS_S3_LIST_KEY_MAX + 1], truncated[16] = "";
    const char *p = xml;
    int r;
    while ((r = next_element(&p, "Key", key, sizeof key)) != 0)
        if (r > 0)
            on_key(arg, key);
    p = xml;
    if (next_element(&p, "IsTruncated", truncated, sizeof truncated) <= 0 || strcmp(truncated, "true") != 0)
        return 0;
    p = xml;
    return next_element(&p, "NextContinuationToken", next, next_size) > 0 && next[0] ? 1 : 0;
}

/* collects a page's keys under the prefix, NUL-separated */
typedef struct key_list {
    const char *prefix;
    ws_buf keys;
    size_t n;
} key_list;

static void collect_key(void *arg, const char *key)
{
    key_list *kl = arg;
    if (strncmp(key, kl->prefix, strlen(kl->prefix)) != 0)
        return; /* never outside the prefix, whatever the server says */
    ws_buf_append(&kl->keys, key, strlen(key) + 1);
    kl->n++;
}

/* ListObjectsV2 under prefix, page by page (following continuation tokens); fn is called for
 * each key of a page once the page is read, so it may delete or rewrite that key. */
static int s3_list(ws_blobs *b, const char *prefix, int (*fn)(void *arg, const char *key), void *arg,
                   ws_error *err)
{
    s3_blobs *s = (s3_blobs *)b;
    char token[1024] = "", enc_prefix[2 * WS_BLOB_KEY_MAX], enc_token[3 * sizeof token],
         query[2 * S3_URL_MAX];
    int rc = 0;
    if (ws_s3_uri_encode(prefix, 0, enc_prefix, sizeof enc_prefix) < 0)
        return ws_error_set(err, WS_EINVAL, "s3: prefix too long");
    for (int page = 0; rc == 0 && page < 100000; page++) {
        /* canonical query: keys sorted (continuation-token < list-type < prefix) */
        if (token[0]) {
            if (ws_s3_uri_encode(token, 0, enc_token, sizeof enc_token) < 0)
                return ws_error_set(err, WS_EIO, "s3: continuation token too long");
            if (snprintf(query, sizeof query, "continuation-token=%s&list-type=2%s%.*s", enc_token,
                         enc_prefix[0] ? "&prefix=" : "", (int)strnlen(enc_prefix, sizeof enc_prefix),
                         enc_prefix) >= (int)sizeof query)
                return ws_error_set(err, WS_EIO, "s3: listing query too long");
        } else {
            snprintf(query, sizeof query, "list-type=2%s%s", enc_prefix[0] ? "&prefix=" : "", enc_prefix);
        }
        s3_resp r = {0};
        rc = s3_request(s, "GET", NULL, query, NULL, 0, S3_META_MAX, &r, err);
        if (rc == 0 && r.status != 200)
            rc = status_error(s, "list", prefix, &r, err);
        key_list kl = {.prefix = prefix, .keys = WS_BUF_INIT};
        char next[sizeof token] = "";
        int more = rc == 0
                       ? ws_s3_parse_list(r.body.data ? r.body.data : "", collect_key, &kl, next, sizeof next)
                       : 0;
        ws_buf_free(&r.body);
        const char *k = kl.keys.data;
        for (size_t i = 0; rc == 0 && i < kl.n; i++, k += strlen(k) + 1)
            rc = fn(arg, k);
        ws_buf_free(&kl.keys);
        if (rc < 0 || !more)
            break;
        snprintf(token, sizeof token, "%s", next);
    }
    return rc;
}

typedef struct del_ctx {
    ws_blobs *b;
    size_t count;
    ws_error *err;
} del_ctx;

static int del_listed(void *arg, const char *key)
{
    del_ctx *c = arg;
    int rc = s3_del(c->b, key, c->err);
    c->count += rc == 0;
    return rc;
}

static int s3_del_prefix(ws_blobs *b, const char *prefix, size_t *n, ws_error *err)
{
    del_ctx c = {b, 0, err};
    int rc = s3_list(b, prefix, del_listed, &c, err);
    if (n)
        *n = c.count;
    return rc;
}

static void s3_close(ws_blobs *b)
{
    s3_blobs *s = (s3_blobs *)b;
    free(s->endpoint);
    free(s->host);
    free(s->bucket);
    free(s->region);
    if (s->secret_key)
        OPENSSL_cleanse(s->secret_key, strlen(s->secret_key));
    free(s->access_key);
    free(s->secret_key);
    free(s);
}

static const ws_blobs_ops s3_ops = {
    .name = "s3",
    .put = s3_put,
    .get = s3_get,
    .head = s3_head,
    .del = s3_del,
    .del_prefix = s3_del_prefix,
    .list = s3_list,
    .close = s3_close,
};

static bool bucket_name_ok(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '-' || b[i] == '.'))
            return false;
    return true;
}

int ws_blobs_s3_open(const ws_s3_config *cfg, ws_blobs **out, ws_error *err)
{
    *out = NULL;
    if (!cfg->endpoint || (strncmp(cfg->endpoint, "http://", 7) && strncmp(cfg->endpoint, "https://", 8)))
        return ws_error_set(err, WS_EINVAL, "s3: the endpoint must be an http:// or https:// URL");
    if (!cfg->bucket || !bucket_name_ok(cfg->bucket))
        return ws_error_set(err, WS_EINVAL, "s3: bucket name must be 3-63 of [a-z0-9.-]");
    if (!cfg->access_key || !*cfg->access_key || !cfg->secret_key || !*cfg->secret_key)
        return ws_error_set(err, WS_EINVAL,
                            "s3: no credentials (WS_S3_ACCESS_KEY / WS_S3_SECRET_KEY or AWS_ACCESS_KEY_ID / "
                            "AWS_SECRET_ACCESS_KEY)");
    int rc = ws_curl_load(err);
    if (rc < 0)
        return rc;
    s3_blobs *s = ws_xcalloc(1, sizeof *s);
    s->base.ops = &s3_ops;
    s->endpoint = ws_xstrdup(cfg->endpoint);
    size_t el = strlen(s->endpoint);
    while (el > 8 && s->endpoint[el - 1] == '/')
        s->endpoint[--el] = '\0';
    const char *h = strstr(s->endpoint, "://") + 3;
    s->host = ws_xstrdup(h);
    char *slash = strchr(s->host, '/');
    if (slash)
        *slash = '\0';
    s->bucket = ws_xstrdup(cfg->bucket);
    s->region = ws_xstrdup(cfg->region && *cfg->region ? cfg->region : "us-east-1");
    s->access_key = ws_xstrdup(cfg->access_key);
    s->secret_key = ws_xstrdup(cfg->secret_key);
    s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
    s->part_size = cfg->part_size ? cfg->part_size : S3_PART_DEFAULT;
    if (s->part_size < S3_PART_MIN)
        s->part_size = S3_PART_MIN;
    /* the bucket must exist: create it when it does not */
    s3_resp r = {0};
    rc = s3_request(s, "HEAD", NULL, "", NULL, 0, S3_META_MAX, &r, err);
    if (rc == 0 && r.status == 404) {
        ws_buf_reset(&r.body);
        rc = s3_request(s, "PUT", NULL, "", NULL, 0, S3_META_MAX, &r, err);
        if (rc == 0 && r.status != 200 && r.status != 409)
            rc = status_error(s, "create bucket", NULL, &r, err);
    } else if (rc == 0 && r.status != 200) {
        rc = status_error(s, "HEAD bucket", NULL, &r, err);
    }
    ws_buf_free(&r.body);
    if (rc < 0) {
        s3_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}
