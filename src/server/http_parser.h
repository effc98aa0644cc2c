/* HTTP/1.1 request parsing (h2o/picohttpparser-style contract): stateless, allocates nothing,
 * results are {pointer, length} slices into the caller's read buffer.
 *
 * ws_http_parse_request() returns the number of bytes of the request head (request line and
 * headers, up to and including the blank line), -1 when the input is not a valid request
 * head, or -2 when the head is incomplete (read more, then call again with the whole buffer).
 * The caller caps the buffer (431 when a head does not fit).
 *
 * The chunked body decoder keeps a tiny state struct and decodes in place.
 * Thread-safe: no shared state. Fuzzed by fuzz/fuzz_http.c. */
#ifndef WS_SERVER_HTTP_PARSER_H
#define WS_SERVER_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_HTTP_MAX_HEADERS 64

typedef struct ws_http_slice {
    const char *p;
    size_t len;
} ws_http_slice;

typedef struct ws_http_header {
    ws_http_slice name;
    ws_http_slice value; /* leading and trailing spaces/tabs removed */
} ws_http_header;

typedef struct ws_http_request {
    ws_http_slice method;
    ws_http_slice target; /* as sent: path plus optional "?query" */
    ws_http_slice path;   /* target up to '?' */
    ws_http_slice query;  /* after '?', may be empty */
    int minor_version;    /* HTTP/1.x */
    size_t num_headers;
    ws_http_header headers[WS_HTTP_MAX_HEADERS];
} ws_http_request;

/* Parses a request head from buf[0..len). More than WS_HTTP_MAX_HEADERS headers is -1.
 * Obsolete line folding, bare CR and control characters in names or values are -1. */
int ws_http_parse_request(const char *buf, size_t len, ws_http_request *req);

/* Case-insensitive header lookup: the first header called name, or NULL. */
const ws_http_slice *ws_http_find_header(const ws_http_request *req, const char *name);
/* True when s equals the NUL-terminated lit ignoring ASCII case. */
bool ws_http_slice_ieq(ws_http_slice s, const char *lit);
/* True when the comma-separated list s holds token (ignoring case and spaces). */
bool ws_http_list_has(ws_http_slice s, const char *token);
/* Parses a non-negative decimal (no sign, no spaces, at most 18 digits). -1 on bad input. */
int64_t ws_http_parse_uint(ws_http_slice s);

/* Incremental decoder of a chunked body. Zero-initialise, then feed the bytes that follow
 * the head, in as many calls as they arrive; decoded data is appended to out (whose limit
 * caps the body). Returns 0 when it needs more input (*consumed == n), 1 at the end of the
 * body and trailers (*consumed = bytes of src that belonged to the body; the rest is the
 * next pipelined request), -1 on bad framing, WS_ETOOBIG (-6) when out's limit is hit. */
typedef struct ws_http_chunked {
    uint64_t remaining; /* bytes left in the current chunk */
    int state;          /* internal */
    int size_digits;
} ws_http_chunked;

struct ws_buf;
int ws_http_decode_chunked(ws_http_chunked *d, const char *src, size_t n, struct ws_buf *out,
                           size_t *consumed);

/* Percent-decodes s into out (out_size bytes incl. NUL, '+' becomes ' ' when form is set).
 * Returns the decoded length or -1 (bad escape, embedded NUL, or too long). */
long ws_http_url_decode(const char *s, size_t n, char *out, size_t out_size, bool form);
/* Finds the value of query parameter name in query (raw, still percent-encoded).
 * Returns true when present. */
bool ws_http_query_get(ws_http_slice query, const char *name, ws_http_slice *value);

/* Reason phrase for a status code ("OK", "Not Found", ...). Never NULL. */
const char *ws_http_reason(int status);

#endif
