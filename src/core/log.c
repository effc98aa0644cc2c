/* The structured logger (see log.h): ECS JSON lines or a human format, one locked write per
 * line. */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/json.h"
#include "core/trace.h"

static struct {
    char role[32];
    ws_log_level min;
    bool json;
    FILE *out; /* NULL = stderr */
} cfg = {"whatstyle", WS_LOG_INFO, false, NULL};
static bool cfg_auto = true;
static long cfg_pid; /* getpid() is a system call each time on current glibc */
static _Atomic uint64_t n_lines, n_bytes;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

static FILE *out_stream(void)
{
    return cfg.out ? cfg.out : stderr;
}

void ws_log_setup(const char *role, ws_log_level min, ws_log_format fmt, FILE *out)
{
    snprintf(cfg.role, sizeof cfg.role, "%s", role && *role ? role : "whatstyle");
    cfg.min = min;
    cfg.out = out;
    fflush(out_stream());
    cfg_pid = (long)getpid();
    cfg_auto = fmt == WS_LOG_AUTO;
    cfg.json = fmt == WS_LOG_JSON || (cfg_auto && !isatty(fileno(out_stream())));
}

int ws_log_level_parse(const char *s)
{
    for (int i = 0; i <= WS_LOG_OFF; i++)
        if (s && !strcmp(s, level_names[i]))
            return i;
    return -1;
}

int ws_log_format_parse(const char *s)
{
    static const char *const names[] = {"auto", "json", "text"};
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, names[i]))
            return i;
    return -1;
}

bool ws_log_enabled(ws_log_level level)
{
    return level >= cfg.min && level < WS_LOG_OFF;
}

uint64_t ws_log_lines(void)
{
    return atomic_load_explicit(&n_lines, memory_order_relaxed);
}

uint64_t ws_log_bytes(void)
{
    return atomic_load_explicit(&n_bytes, memory_order_relaxed);
}

/* "2026-12-02T22:41:05.123Z" (JSON) or "22:41:05.123" (text); the calendar part is kept
 * per thread for the current second */
static void put_time(ws_buf *out, bool json)
{
    static _Thread_local time_t sec = -1;
    static _Thread_local char day[24];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
        sec = ts.tv_sec;
    }
    int ms = (int)(ts.tv_nsec / 1000000);
    char frac[6] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', 0};
    if (!json)
        frac[4] = 0;
    ws_buf_puts(out, json ? day : day + 11);
    ws_buf_puts(out, frac);
}

/* a string value cut at WS_LOG_VALUE_MAX bytes (on a UTF-8 boundary) */
static size_t capped(const char *s)
{
    size_t n = strnlen(s, WS_LOG_VALUE_MAX + 1);
    if (n > WS_LOG_VALUE_MAX) {
        n = WS_LOG_VALUE_MAX;
        while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    return n;
}

static void put_value(ws_buf *out, const ws_log_field *f, bool json)
{
    switch (f->type) {
    case WS_LF_STR:
        if (json)
            f->s ? ws_json_put_str(out, f->s, capped(f->s)) : ws_buf_puts(out, "null");
        else
            ws_buf_printf(out, "%.*s", f->s ? (int)capped(f->s) : 1, f->s ? f->s : "-");
        break;
    case WS_LF_INT: ws_buf_printf(out, "%lld", (long long)f->i); break;
    case WS_LF_NUM: ws_json_put_num(out, f->d); break;
    case WS_LF_BOOL: ws_buf_puts(out, f->i ? "true" : "false"); break;
    case WS_LF_END: break;
    }
}

static void put_trace(ws_buf *out, bool json)
{
    const ws_trace_ctx *tc = ws_trace_current();
    if (!tc)
        return;
    char tid[33], sid[17];
    ws_trace_id_hex(tc, tid);
    ws_span_id_hex(tc, sid);
    if (json)
        ws_buf_printf(out, ",\"trace.id\":\"%s\",\"span.id\":\"%s\"", tid, sid);
    else
        ws_buf_printf(out, " trace.id=%s", tid);
}

void ws_log_render(ws_buf *out, bool json, ws_log_level level, const char *event, const char *message,
                   const ws_log_field *fields, size_t n)
{
    const char *lv = level_names[level < WS_LOG_OFF ? level : WS_LOG_ERROR];
    if (json) {
        ws_buf_puts(out, "{\"@timestamp\":\"");
        put_time(out, true);
        ws_buf_printf(out, "\",\"log.level\":\"%s\",\"event.action\":", lv);
        ws_json_put_cstr(out, event ? event : "log");
        if (message) {
            ws_buf_puts(out, ",\"message\":");
            ws_json_put_str(out, message, capped(message));
        }
        ws_buf_printf(out, ",\"service.name\":\"whatstyle\",\"service.node.role\":");
        ws_json_put_cstr(out, cfg.role);
        ws_buf_printf(out, ",\"process.pid\":%ld", cfg_pid ? cfg_pid : (long)getpid());
        put_trace(out, true);
        for (size_t i = 0; i < n; i++) {
            if (fields[i].type == WS_LF_END || !fields[i].key)
                continue;
            ws_buf_putc(out, ',');
            ws_json_put_cstr(out, fields[i].key);
            ws_buf_putc(out, ':');
            put_value(out, &fields[i], true);
        }
        ws_buf_puts(out, "}\n");
        return;
    }
    put_time(out, false);
    ws_buf_printf(out, " %-5s %s %s", lv, cfg.role, event ? event : "log");
    if (message)
        ws_buf_printf(out, ": %.*s", (int)capped(message), message);
    for (size_t i = 0; i < n; i++) {
        if (fields[i].type == WS_LF_END || !fields[i].key)
            continue;
        ws_buf_printf(out, " %s=", fields[i].key);
        put_value(out, &fields[i], false);
    }
    put_trace(out, false);
    ws_buf_putc(out, '\n');
}

void ws_log_write(ws_log_level level, const char *event, const char *message, const ws_log_field *fields,
                  size_t n)
{
    if (!ws_log_enabled(level))
        return;
    ws_buf line = WS_BUF_INIT;
    ws_log_render(&line, cfg.json, level, event, message, fields, n);
    /* one write(2) per line, no stdio lock: a line under PIPE_BUF bytes reaches a pipe whole,
     * and O_APPEND files and terminals take each write whole too */
    int fd = fileno(out_stream()); /* stdio output before ws_log_setup was flushed there */
    for (size_t off = 0; off < line.len;) {
        ssize_t w = write(fd, line.data + off, line.len - off);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            break; /* the log stream is gone: nothing sensible to do */
        }
        off += (size_t)w;
    }
    atomic_fetch_add_explicit(&n_lines, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&n_bytes, line.len, memory_order_relaxed);
    ws_buf_free(&line);
}

void ws_log_fmt(ws_log_level level, const char *event, const char *fmt, ...)
{
    if (!ws_log_enabled(level))
        return;
    char msg[WS_LOG_VALUE_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ws_log_write(level, event, msg, NULL, 0);
}
