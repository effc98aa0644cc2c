/* gRPC's message framing, timeouts, status names and grpc-message encoding (see grpc_wire.h). */
#include "grpc/grpc_wire.h"

#include <stdio.h>
#include <string.h>

#include "core/hex.h"

void ws_grpc_deframer_init(ws_grpc_deframer *d, size_t max)
{
    memset(d, 0, sizeof *d);
    d->max = max;
}

void ws_grpc_deframer_free(ws_grpc_deframer *d)
{
    ws_buf_free(&d->msg);
    d->hdr_len = d->need = 0;
}

bool ws_grpc_deframer_idle(const ws_grpc_deframer *d)
{
    return d->hdr_len == 0;
}

int ws_grpc_deframe(ws_grpc_deframer *d, const uint8_t *p, size_t n, ws_grpc_msg_fn on_msg, void *arg,
                    ws_error *err)
{
    while (n > 0) {
        if (d->hdr_len < WS_GRPC_PREFIX) {
            size_t k = WS_GRPC_PREFIX - d->hdr_len < n ? WS_GRPC_PREFIX - d->hdr_len : n;
            memcpy(d->hdr + d->hdr_len, p, k);
            d->hdr_len += k;
            p += k;
            n -= k;
            if (d->hdr_len < WS_GRPC_PREFIX)
                break;
            if (d->hdr[0] == 1)
                return ws_error_set(err, WS_EUNSUPPORTED, "compressed message without a grpc-encoding");
            if (d->hdr[0] != 0)
                return ws_error_set(err, WS_EFORMAT, "bad message flag %u", d->hdr[0]);
            size_t len =
                (size_t)d->hdr[1] << 24 | (size_t)d->hdr[2] << 16 | (size_t)d->hdr[3] << 8 | d->hdr[4];
            if (len > d->max)
                return ws_error_set(err, WS_ETOOBIG, "message of %zu bytes over the cap of %zu", len, d->max);
            d->need = len;
            ws_buf_reset(&d->msg);
        }
        size_t k = d->need - d->msg.len < n ? d->need - d->msg.len : n;
        ws_buf_append(&d->msg, p, k);
        p += k;
        n -= k;
        if (d->msg.len == d->need) {
            d->hdr_len = 0;
            int rc = on_msg(arg, (const uint8_t *)(d->msg.data ? d->msg.data : ""), d->msg.len);
            ws_buf_reset(&d->msg);
            if (rc)
                return rc;
        }
    }
    return 0;
}

void ws_grpc_frame(ws_buf *out, const uint8_t *msg, size_t len)
{
    uint8_t h[WS_GRPC_PREFIX] = {0, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                                 (uint8_t)len};
    ws_buf_append(out, h, sizeof h);
    if (len)
        ws_buf_append(out, msg, len);
}

int ws_grpc_parse_timeout(const char *s, size_t n, double *seconds)
{
    if (n < 2 || n > 9)
        return WS_EINVAL;
    double v = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return WS_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    switch (s[n - 1]) {
    case 'H': v *= 3600; break;
    case 'M': v *= 60; break;
    case 'S': break;
    case 'm': v /= 1e3; break;
    case 'u': v /= 1e6; break;
    case 'n': v /= 1e9; break;
    default: return WS_EINVAL;
    }
    *seconds = v;
    return 0;
}

void ws_grpc_format_timeout(double seconds, char *out, size_t cap)
{
    if (seconds < 0)
        seconds = 0;
    long long us = (long long)(seconds * 1e6 + 0.5);
    if (us < 100000000)
        snprintf(out, cap, "%lldu", us);
    else
        snprintf(out, cap, "%lldm", us / 1000 > 99999999 ? 99999999LL : us / 1000);
}

void ws_grpc_percent_encode(ws_buf *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%')
            ws_buf_putc(out, (char)*p);
        else
            ws_buf_printf(out, "%%%02X", *p);
    }
}

void ws_grpc_percent_decode(ws_buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int a, b;
        if (s[i] == '%' && i + 2 < n && (a = ws_hex_digit(s[i + 1])) >= 0 &&
            (b = ws_hex_digit(s[i + 2])) >= 0) {
            ws_buf_putc(out, (char)(a * 16 + b));
            i += 2;
        } else {
            ws_buf_putc(out, s[i]);
        }
    }
}

const char *ws_grpc_status_name(int status)
{
    static const char *const names[] = {
        "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
        "DATA_LOSS", "UNAUTHENTICATED"};
    return status >= 0 && status <= 16 ? names[status] : "UNKNOWN";
}

int ws_grpc_status_of(int ws_code)
{
    switch (ws_code) {
    case WS_OK: return WS_GRPC_OK;
    case WS_ENOENT: return WS_GRPC_NOT_FOUND;
    case WS_EINVAL:
    case WS_EFORMAT:
    case WS_EEMPTY: return WS_GRPC_INVALID_ARGUMENT;
    case WS_ETOOBIG:
    case WS_ENOMEM: return WS_GRPC_RESOURCE_EXHAUSTED;
    case WS_EUNSUPPORTED: return WS_GRPC_UNIMPLEMENTED;
    case WS_EAGAIN: return WS_GRPC_CANCELLED;
    case WS_ECONFLICT: return WS_GRPC_FAILED_PRECONDITION;
    case WS_EPERM:
    case WS_EUNSAFE: return WS_GRPC_PERMISSION_DENIED;
    case WS_EIO: return WS_GRPC_UNAVAILABLE;
    case WS_ETIMEDOUT: return WS_GRPC_DEADLINE_EXCEEDED;
    default: return WS_GRPC_INTERNAL;
    }
}
