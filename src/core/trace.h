/* Distributed tracing: W3C trace context (traceparent), spans, and the calling thread's
 * current span. Finished sampled spans go to the exporter (core/trace_export.h) when one is
 * running; without one, spans cost a few field writes and nothing is recorded.
 *
 * Ownership: ws_span_begin returns a span the caller ends with ws_span_end (which frees it);
 * attribute keys are borrowed and must be static (string literals), string values copied. Thread-safety: a
 * span is used by one thread at a time (a request's span may move between threads with ws_span_activate); the
 * current span is per thread. */
#ifndef WS_CORE_TRACE_H
#define WS_CORE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_TRACEPARENT_LEN 55 /* "00-" 32 hex "-" 16 hex "-" 2 hex */

typedef struct ws_trace_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    bool sampled;
} ws_trace_ctx;

/* Parses a traceparent header value (n bytes; surrounding spaces allowed). Versions other
 * than 00 are read by their first four fields as the spec asks. Returns 0, or WS_EINVAL for
 * a malformed value or an all-zero id (the caller then starts a new trace). */
int ws_traceparent_parse(const char *s, size_t n, ws_trace_ctx *out);
/* Writes "00-<trace>-<span>-<flags>" and a NUL into out (WS_TRACEPARENT_LEN + 1 bytes). */
void ws_traceparent_format(const ws_trace_ctx *c, char *out);
/* Lower-case hex of the ids (33 and 17 bytes with the NUL). */
void ws_trace_id_hex(const ws_trace_ctx *c, char *out33);
void ws_span_id_hex(const ws_trace_ctx *c, char *out17);

typedef enum { WS_SPAN_INTERNAL = 1, WS_SPAN_SERVER = 2, WS_SPAN_CLIENT = 3 } ws_span_kind;

typedef struct ws_span ws_span;

/* Starts a span named name (copied). Its parent: remote (a parsed traceparent) if not NULL,
 * else the thread's current span, else none (a new trace, sampled by the configured ratio).
 * The span becomes the thread's current span. Never NULL. */
ws_span *ws_span_begin(const char *name, ws_span_kind kind, const ws_trace_ctx *remote);
/* Like ws_span_begin(name, kind, NULL) but only inside a recorded trace: NULL when no span is
 * current or the current one is not sampled (library code below a request: a store query of
 * a background thread starts no trace, and an unsampled request allocates no child spans;
 * its context still propagates). Every ws_span_* call takes NULL as a no-op. */
ws_span *ws_span_begin_child(const char *name, ws_span_kind kind);
void ws_span_attr_str(ws_span *sp, const char *key, const char *value);
void ws_span_attr_int(ws_span *sp, const char *key, int64_t value);
/* Marks the span failed with a short description (no user data). */
void ws_span_error(ws_span *sp, const char *description);
/* Ends the span (NULL: no-op): the thread's current span goes back to what it was when the
 * span began (or was activated), and a sampled span is queued for export. */
void ws_span_end(ws_span *sp);
/* Makes sp the calling thread's current span (for a request that moved to another thread);
 * returns the previous one for ws_span_deactivate. */
ws_span *ws_span_activate(ws_span *sp);
void ws_span_deactivate(ws_span *previous);
const ws_trace_ctx *ws_span_ctx(const ws_span *sp);

/* The calling thread's current trace context, or NULL. */
const ws_trace_ctx *ws_trace_current(void);
/* The current context as a traceparent value for an outgoing call (gRPC metadata, Kafka
 * header, HTTP): returns 0 and fills out (WS_TRACEPARENT_LEN + 1 bytes), or WS_ENOENT when
 * no span is current. */
int ws_trace_current_traceparent(char *out);

/* ---- what the exporter reads (core/trace_export.c) ---- */
typedef struct ws_span_attr {
    const char *key; /* static */
    char *str;       /* NULL: an integer */
    int64_t num;
} ws_span_attr;

#define WS_SPAN_MAX_ATTRS 16

struct ws_span {
    ws_trace_ctx ctx;
    uint8_t parent_id[8];
    bool has_parent;
    ws_span_kind kind;
    char *name;
    uint64_t start_ns, end_ns; /* Unix time */
    ws_span_attr attrs[WS_SPAN_MAX_ATTRS];
    size_t n_attrs;
    char *error; /* NULL = ok */
    ws_span *prev_current;
};

/* Sampling: the ratio of new traces recorded (0..1; default 0). A remote parent's sampled
 * flag wins. Set before threads start. */
void ws_trace_set_ratio(double ratio);
/* The exporter's hook: called with each finished sampled span (it takes the span). NULL =
 * no exporter (spans are freed). Set before threads start. */
void ws_trace_set_sink(void (*sink)(ws_span *sp));
void ws_span_free(ws_span *sp); /* NULL is a no-op */

#endif
