/* HTTP/1.1 request head parser, chunked body decoder and small helpers (see http_parser.h). */
#include "server/http_parser.h"

#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/hex.h"

/* RFC 9110 tchar: the characters of methods and header names. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Finds the end of the line starting at p: returns the position of the terminator and sets
 * *next after it; NULL with *next = NULL if incomplete, NULL with *next = p on a bare CR. */
static const char *line_end(const char *p, const char *end, const char **next)
{
    for (const char *q = p; q < end; q++) {
        if (*q == '\n') {
            *next = q + 1;
            return q;
        }
        if (*q == '\r') {
            if (q + 1 == end) {
                *next = NULL;
                return NULL;
            }
            if (q[1] != '\n') {
                *next = p;
                return NULL;
            }
            *next = q + 2;
            return q;
        }
    }
    *next = NULL;
    return NULL;
}

static int parse_request_line(const char *p, const char *eol, ws_http_request *req)
{
    const char *q = p;
    while (q < eol && is_tchar((unsigned char)*q))
        q++;
    if (q == p || q >= eol || *q != ' ')
        return -1;
    req->method = (ws_http_slice){p, (size_t)(q - p)};
    p = ++q;
    while (q < eol && (unsigned char)*q > 0x20 && (unsigned char)*q < 0x7f)
        q++;
    if (q == p || q >= eol || *q != ' ')
        return -1;
    req->target = (ws_http_slice){p, (size_t)(q - p)};
    q++;
    if (eol - q != 8 || memcmp(q, "HTTP/1.", 7) != 0 || (q[7] != '0' && q[7] != '1'))
        return -1;
    req->minor_version = q[7] - '0';
    const char *qm = memchr(req->target.p, '?', req->target.len);
    if (qm) {
        req->path = (ws_http_slice){req->target.p, (size_t)(qm - req->target.p)};
        req->query = (ws_http_slice){qm + 1, req->target.len - req->path.len - 1};
    } else {
        req->path = req->target;
        req->query = (ws_http_slice){req->target.p + req->target.len, 0};
    }
    return 0;
}

static int parse_header_line(const char *p, const char *eol, ws_http_header *h)
{
    const char *q = p;
    while (q < eol && is_tchar((unsigned char)*q))
        q++;
    if (q == p || q >= eol || *q != ':')
        return -1; /* also rejects obsolete folding (a line starting with a space) */
    h->name = (ws_http_slice){p, (size_t)(q - p)};
    q++;
    while (q < eol && (*q == ' ' || *q == '\t'))
        q++;
    const char *v = q, *vend = eol;
    for (const char *r = v; r < eol; r++) {
        unsigned char c = (unsigned char)*r;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -1;
    }
    while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
        vend--;
    h->value = (ws_http_slice){v, (size_t)(vend - v)};
    return 0;
}

int ws_http_parse_request(const char *buf, size_t len, ws_http_request *req)
{
    const char *p = buf, *end = buf + len, *next;
    req->num_headers = 0;
    /* RFC 9112 2.2: ignore at least one empty line before the request line. */
    while (p < end && (*p == '\r' || *p == '\n')) {
        if (*p == '\r' && p + 1 < end && p[1] != '\n')
            return -1;
        p++;
    }
    if (p == end)
        return -2;
    const char *eol = line_end(p, end, &next);
    if (!eol)
        return next ? -1 : -2;
    if (parse_request_line(p, eol, req) != 0)
        return -1;
    p = next;
    for (;;) {
        eol = line_end(p, end, &next);
        if (!eol)
            return next ? -1 : -2;
        if (eol == p)
            return (int)(next - buf);
        if (req->num_headers == WS_HTTP_MAX_HEADERS)
            return -1;
        if (parse_header_line(p, eol, &req->headers[req->num_headers]) != 0)
            return -1;
        req->num_headers++;
        p = next;
    }
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

bool ws_http_slice_ieq(ws_http_slice s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s.p[i]) != lower((unsigned char)lit[i]))
            return false;
    return true;
}

const ws_http_slice *ws_http_find_header(const ws_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->num_headers; i++)
        if (ws_http_slice_ieq(req->headers[i].name, name))
            return &req->headers[i].value;
    return NULL;
}

bool ws_http_list_has(ws_http_slice s, const char *token)
{
    const char *p = s.p, *end = s.p + s.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *q = p;
        while (q < end && *q != ',')
            q++;
        const char *e = q;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > p && ws_http_slice_ieq((ws_http_slice){p, (size_t)(e - p)}, token))
            return true;
        p = q;
    }
    return false;
}

int64_t ws_http_parse_uint(ws_http_slice s)
{
    if (s.len == 0 || s.len > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return -1;
        v = v * 10 + (s.p[i] - '0');
    }
    return v;
}

enum {
    CH_SIZE,
    CH_EXT,
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER_START,
    CH_TRAILER_LINE,
    CH_TRAILER_LF,
    CH_END_LF
};

int ws_http_decode_chunked(ws_http_chunked *d, const char *src, size_t n, ws_buf *out, size_t *consumed)
{
    size_t i = 0;
    *consumed = 0;
    while (i < n) {
        char c = src[i];
        switch (d->state) {
        case CH_SIZE: {
            int h = ws_hex_digit(c);
            if (h >= 0) {
                if (++d->size_digits > 15)
                    return -1;
                d->remaining = d->remaining * 16 + (uint64_t)h;
                i++;
                break;
            }
            if (d->size_digits == 0)
                return -1;
            if (c == ';' || c == ' ' || c == '\t')
                d->state = CH_EXT;
            else if (c == '\r')
                d->state = CH_SIZE_LF;
            else if (c == '\n')
                d->state = d->remaining ? CH_DATA : CH_TRAILER_START;
            else
                return -1;
            i++;
            break;
        }
        case CH_EXT:
            if (c == '\r')
                d->state = CH_SIZE_LF;
            else if (c == '\n')
                d->state = d->remaining ? CH_DATA : CH_TRAILER_START;
            else if ((unsigned char)c < 0x20 && c != '\t')
                return -1;
            i++;
            break;
        case CH_SIZE_LF:
            if (c != '\n')
                return -1;
            d->state = d->remaining ? CH_DATA : CH_TRAILER_START;
            i++;
            break;
        case CH_DATA: {
            size_t take = n - i;
            if (take > d->remaining)
                take = (size_t)d->remaining;
            if (ws_buf_append(out, src + i, take) != 0)
                return WS_ETOOBIG;
            i += take;
            d->remaining -= take;
            if (d->remaining == 0)
                d->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (c == '\r')
                d->state = CH_DATA_LF;
            else if (c == '\n') {
                d->state = CH_SIZE;
                d->size_digits = 0;
            } else
                return -1;
            i++;
            break;
        case CH_DATA_LF:
            if (c != '\n')
                return -1;
            d->state = CH_SIZE;
            d->size_digits = 0;
            i++;
            break;
        case CH_TRAILER_START:
            if (c == '\r')
                d->state = CH_END_LF;
            else if (c == '\n') {
                *consumed = i + 1;
                return 1;
            } else
                d->state = CH_TRAILER_LINE;
            i++;
            break;
        case CH_TRAILER_LINE:
            if (c == '\r')
                d->state = CH_TRAILER_LF;
            else if (c == '\n')
                d->state = CH_TRAILER_START;
            i++;
            break;
        case CH_TRAILER_LF:
            if (c != '\n')
                return -1;
            d->state = CH_TRAILER_START;
            i++;
            break;
        case CH_END_LF:
            if (c != '\n')
                return -1;
            *consumed = i + 1;
            return 1;
        default: return -1;
        }
    }
    *consumed = n;
    return 0;
}

long ws_http_url_decode(const char *s, size_t n, char *out, size_t out_size, bool form)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = ws_hex_digit(s[i + 1]), l = ws_hex_digit(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (char)(h * 16 + l);
            if (c == '\0')
                return -1;
            i += 2;
        } else if (c == '+' && form) {
            c = ' ';
        }
        if (o + 1 >= out_size)
            return -1;
        out[o++] = c;
    }
    if (out_size == 0)
        return -1;
    out[o] = '\0';
    return (long)o;
}

bool ws_http_query_get(ws_http_slice query, const char *name, ws_http_slice *value)
{
    size_t nlen = strlen(name);
    const char *p = query.p, *end = query.p + query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;
        if ((size_t)(ke - p) == nlen && memcmp(p, name, nlen) == 0) {
            value->p = eq ? eq + 1 : pe;
            value->len = (size_t)(pe - value->p);
            return true;
        }
        p = amp ? amp + 1 : end;
    }
    return false;
}

const char *ws_http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
