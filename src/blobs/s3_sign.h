/* AWS Signature Version 4 for S3 requests (header-based authentication) and the listing
 * parser, written for the S3 blobs backend and exposed for its tests and fuzz target (AWS's published example
 * is checked in tests/unit/test_blobs.c). Thread-safe, no allocation beyond the call. */
#ifndef WS_BLOBS_S3_SIGN_H
#define WS_BLOBS_S3_SIGN_H

#include <stddef.h>

typedef struct ws_s3_header {
    const char *name;  /* lowercase */
    const char *value; /* trimmed */
} ws_s3_header;

/* Writes the Authorization header value ("AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
 * Signature=...") for one request into out. canonical_uri: the URI-encoded path;
 * canonical_query: "k=v&k2=v2" encoded and sorted by key ("" for none); headers: the headers
 * to sign (any order; must include host, x-amz-content-sha256 and x-amz-date);
 * payload_sha256: lowercase hex SHA-256 of the body; amz_date: "YYYYMMDDTHHMMSSZ".
 * Returns 0, or -1 when out is too small or an argument is missing. */
int ws_s3_sign(const char *method, const char *canonical_uri, const char *canonical_query,
               const ws_s3_header *headers, size_t n_headers, const char *payload_sha256,
               const char *amz_date, const char *region, const char *access_key, const char *secret_key,
               char *out, size_t out_size);

/* Lowercase hex SHA-256 of data into out[65]. */
void ws_s3_sha256_hex(const void *data, size_t len, char out[65]);

/* Appends the S3 URI encoding of s (unreserved characters kept; '/' kept when keep_slash)
 * to out[0..out_size); returns the length, or -1 when it does not fit. */
int ws_s3_uri_encode(const char *s, int keep_slash, char *out, size_t out_size);

/* Parses one ListObjectsV2 response page (NUL-terminated XML from the server: untrusted, so
 * bounded and never crashing): calls on_key with each <Key> (entities decoded; keys longer
 * than WS_S3_LIST_KEY_MAX bytes are skipped). Returns 1 when the listing is truncated and a
 * continuation token was copied to next (NUL-terminated, at most next_size - 1 bytes),
 * else 0. */
#define WS_S3_LIST_KEY_MAX 1024
int ws_s3_parse_list(const char *xml, void (*on_key)(void *arg, const char *key), void *arg, char *next,
                     size_t next_size);

#endif
