/* Error code names and the helper that fills a ws_error. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

const char *ws_strerror(int code)
{
    switch (code) {
    case WS_OK: return "success";
    case WS_ENOMEM: return "out of memory";
    case WS_EIO: return "input/output error";
    case WS_ENOENT: return "not found";
    case WS_EINVAL: return "invalid input";
    case WS_EFORMAT: return "unrecognised format";
    case WS_ETOOBIG: return "too large";
    case WS_EUNSUPPORTED: return "not supported";
    case WS_EAGAIN: return "try again";
    case WS_EEMPTY: return "empty input";
    case WS_EUNSAFE: return "refused as unsafe";
    case WS_ECONFLICT: return "conflict";
    case WS_EPERM: return "not permitted";
    case WS_EINTERNAL: return "internal error";
    case WS_ETIMEDOUT: return "deadline exceeded";
    }
    return "unknown error";
}

int ws_error_set(ws_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}
