/* Error codes shared by every part of WhatStyle, and the error struct that carries details
 * (file, line, column, message) a user needs to fix their input.
 *
 * Convention: functions return 0 on success or a negative WS_E* code; when the caller passes a
 * ws_error, it is filled with a human-readable message. ws_strerror() names every code. */
#ifndef WS_CORE_ERROR_H
#define WS_CORE_ERROR_H

#include <stddef.h>

enum {
    WS_OK = 0,
    WS_ENOMEM = -1,       /* out of memory (most allocations abort instead) */
    WS_EIO = -2,          /* read/write failed */
    WS_ENOENT = -3,       /* file or resource not found */
    WS_EINVAL = -4,       /* bad argument or malformed input */
    WS_EFORMAT = -5,      /* input is not in the expected format */
    WS_ETOOBIG = -6,      /* input is above a configured size cap */
    WS_EUNSUPPORTED = -7, /* valid input we do not handle (encrypted zip, unknown model) */
    WS_EAGAIN = -8,       /* not finished; call again */
    WS_EEMPTY = -9,       /* input holds nothing */
    WS_EUNSAFE = -10,     /* refused for safety (zip path traversal, zip bomb) */
    WS_ECONFLICT = -11,   /* state does not allow this now */
    WS_EPERM = -12,       /* not allowed */
    WS_EINTERNAL = -13,   /* a bug */
    WS_ETIMEDOUT = -14,   /* the time budget ran out before an answer (core/deadline.h) */
};

#define WS_ERROR_MSG_MAX 512

/* Details of a failure. Zero-initialise; functions that take one fill it on error. */
typedef struct ws_error {
    int code;                   /* the WS_E* code */
    char msg[WS_ERROR_MSG_MAX]; /* human-readable, includes file/line when known */
} ws_error;

/* Static name of an error code ("invalid input", ...). Never NULL. */
const char *ws_strerror(int code);

/* Fills err (if not NULL) with code and a printf-style message; returns code. */
int ws_error_set(ws_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
