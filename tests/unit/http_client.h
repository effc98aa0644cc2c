/* A tiny blocking HTTP/1.1 client for the server tests: one request per connection
 * (Connection: close), the whole response read into memory. */
#ifndef WS_TESTS_HTTP_CLIENT_H
#define WS_TESTS_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/buf.h"

typedef struct http_resp {
    int status;
    ws_buf raw;       /* head + body */
    const char *body; /* into raw */
    size_t body_len;
} http_resp;

static inline int hc_dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline void hc_send(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static inline void hc_read_all(int fd, http_resp *r)
{
    char tmp[16384];
    ssize_t n;
    while ((n = recv(fd, tmp, sizeof tmp, 0)) > 0)
        ws_buf_append(&r->raw, tmp, (size_t)n);
    r->status = r->raw.len > 12 ? atoi(r->raw.data + 9) : -1;
    const char *sep = r->raw.data ? strstr(r->raw.data, "\r\n\r\n") : NULL;
    r->body = sep ? sep + 4 : "";
    r->body_len = sep ? r->raw.len - (size_t)(sep + 4 - r->raw.data) : 0;
}

/* extra_headers: "Name: v\r\n..." or NULL. Returns the status (-1 if no answer). */
static inline int hc_request(int port, const char *method, const char *path, const char *key,
                             const char *extra_headers, const char *body, size_t len, http_resp *r)
{
    ws_buf_free(&r->raw);
    memset(r, 0, sizeof *r);
    int fd = hc_dial(port);
    if (fd < 0)
        return r->status = -1;
    ws_buf req = WS_BUF_INIT;
    ws_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n", method, path, port);
    if (key)
        ws_buf_printf(&req, "Authorization: Bearer %s\r\n", key);
    if (extra_headers)
        ws_buf_puts(&req, extra_headers);
    if (body)
        ws_buf_printf(&req, "Content-Length: %zu\r\n", len);
    ws_buf_puts(&req, "\r\n");
    hc_send(fd, req.data, req.len);
    if (body)
        hc_send(fd, body, len);
    ws_buf_free(&req);
    hc_read_all(fd, r);
    close(fd);
    return r->status;
}

static inline int hc_json(int port, const char *method, const char *path, const char *key, const char *json,
                          http_resp *r)
{
    return hc_request(port, method, path, key, json ? "Content-Type: application/json\r\n" : NULL, json,
                      json ? strlen(json) : 0, r);
}

/* The value of a response header (first match, case-sensitive name) copied into out. */
static inline const char *hc_header(const http_resp *r, const char *name, char *out, size_t n)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\r\n%s: ", name);
    const char *p = r->raw.data ? strstr(r->raw.data, pat) : NULL;
    if (!p || p > r->body)
        return NULL;
    p += strlen(pat);
    const char *e = strstr(p, "\r\n");
    size_t l = (size_t)(e - p) < n - 1 ? (size_t)(e - p) : n - 1;
    memcpy(out, p, l);
    out[l] = '\0';
    return out;
}

static inline void hc_free(http_resp *r)
{
    ws_buf_free(&r->raw);
}

#endif
