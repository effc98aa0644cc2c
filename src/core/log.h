/* The structured logger: one event per line, JSON with ECS field names (@timestamp,
 * log.level, message, event.action, service.*, trace.id, span.id, ...) for Elastic/Loki, or
 * a human format on a terminal. Library code logs through this (never prints on its own);
 * the CLI chooses the role, level, format and stream once at start-up.
 *
 * Never log message text, phone numbers, e-mail addresses, keys or tokens: fields carry ids,
 * counts, durations and error messages that do not quote user input.
 *
 * Thread-safety: ws_log_setup before threads start; everything else from any thread (each
 * line is written with one locked write). The current trace context (core/trace.h) of the
 * calling thread adds trace.id / span.id to every line. */
#ifndef WS_CORE_LOG_H
#define WS_CORE_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"

typedef enum { WS_LOG_DEBUG, WS_LOG_INFO, WS_LOG_WARN, WS_LOG_ERROR, WS_LOG_OFF } ws_log_level;
typedef enum { WS_LOG_AUTO, WS_LOG_JSON, WS_LOG_TEXT } ws_log_format;

typedef enum { WS_LF_END, WS_LF_STR, WS_LF_INT, WS_LF_NUM, WS_LF_BOOL } ws_log_ftype;

/* One field: key is an ECS-style dotted name ("http.response.status_code"), borrowed. */
typedef struct ws_log_field {
    const char *key;
    ws_log_ftype type;
    const char *s; /* WS_LF_STR (NULL = JSON null) */
    int64_t i;     /* WS_LF_INT, WS_LF_BOOL */
    double d;      /* WS_LF_NUM */
} ws_log_field;

#define WS_LF_S(k, v) ((ws_log_field){.key = (k), .type = WS_LF_STR, .s = (v)})
#define WS_LF_I(k, v) ((ws_log_field){.key = (k), .type = WS_LF_INT, .i = (int64_t)(v)})
#define WS_LF_D(k, v) ((ws_log_field){.key = (k), .type = WS_LF_NUM, .d = (double)(v)})
#define WS_LF_B(k, v) ((ws_log_field){.key = (k), .type = WS_LF_BOOL, .i = (v) ? 1 : 0})

/* Sets the role (service.node.role, e.g. "serve"), the lowest level written, the format
 * (AUTO = TEXT when out is a terminal, else JSON) and the stream (borrowed; NULL = stderr).
 * Defaults before any call: role "whatstyle", INFO, AUTO, stderr. Not thread-safe. */
void ws_log_setup(const char *role, ws_log_level min, ws_log_format fmt, FILE *out);
/* "debug"/"info"/"warn"/"error"/"off" and "auto"/"json"/"text"; -1 when unknown. */
int ws_log_level_parse(const char *s);
int ws_log_format_parse(const char *s);
bool ws_log_enabled(ws_log_level level);
/* Lines written since start (all levels), for the log-volume figures. */
uint64_t ws_log_lines(void);
uint64_t ws_log_bytes(void);

/* Writes one event: event is a short dotted action name ("http.request", "job.failed"),
 * message a human sentence (may be NULL), fields n entries (WS_LF_END entries skipped). */
void ws_log_write(ws_log_level level, const char *event, const char *message, const ws_log_field *fields,
                  size_t n);
/* The same with a printf-style message. */
void ws_log_fmt(ws_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* WS_LOG(level, event, message, field...): fields are built only when the level is on. */
#define WS_LOG(level, event, message, ...)                                                                   \
    do {                                                                                                     \
        if (ws_log_enabled(level)) {                                                                         \
            const ws_log_field ws_lf_[] = {{.type = WS_LF_END}, __VA_ARGS__};                                \
            ws_log_write(level, event, message, ws_lf_, sizeof ws_lf_ / sizeof ws_lf_[0]);                   \
        }                                                                                                    \
    } while (0)

/* Appends one line with its newline (no level check) to out: JSON or the human format. The
 * message and string fields are cut at WS_LOG_VALUE_MAX bytes. For the writer and tests. */
#define WS_LOG_VALUE_MAX 2048
void ws_log_render(ws_buf *out, bool json, ws_log_level level, const char *event, const char *message,
                   const ws_log_field *fields, size_t n);

#endif
