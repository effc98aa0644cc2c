/* Streaming reader of WhatsApp chat exports (.txt, or a .zip holding one).
 *
 * Reads Android and iOS exports of any locale: bracketed and unbracketed headers, 12h/24h
 * clocks, D/M/Y, M/D/Y and Y/M/D dates, Eastern Arabic digits, BOM and direction marks, any
 * line endings. Memory stays flat whatever the file size: the reader holds one chunk of input
 * and the current message. The date order is decided from evidence in the file (a first pass
 * that stops at the first decisive date), or forced by the caller.
 *
 * Ownership: a ws_chat_reader is created by ws_chat_open_* and released by ws_chat_close.
 * The strings in a ws_message stay valid until the next ws_chat_next() or ws_chat_close().
 * A reader is not thread-safe; different readers are independent. */
#ifndef WS_CHAT_CHAT_H
#define WS_CHAT_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef enum {
    WS_MSG_TEXT = 0,
    WS_MSG_SYSTEM,  /* encryption notice, group events... author is NULL */
    WS_MSG_MEDIA,   /* "<Media omitted>", "image omitted", "<attached: ...>", in any language */
    WS_MSG_DELETED, /* "This message was deleted", in any language */
} ws_msg_kind;

typedef enum {
    WS_DATE_AUTO = 0, /* decide from the file */
    WS_DATE_DMY,
    WS_DATE_MDY,
    WS_DATE_YMD,
} ws_date_order;

typedef struct ws_datetime {
    int year, month, day, hour, minute, second; /* local wall-clock time as written */
} ws_datetime;

typedef struct ws_message {
    ws_datetime ts;
    const char *author; /* NULL for system events; NUL-terminated */
    size_t author_len;
    const char *text; /* body, lines joined with '\n'; NUL-terminated */
    size_t text_len;
    ws_msg_kind kind;
    bool edited;   /* ends with an "edited" marker (kept in text) */
    uint64_t line; /* 1-based line of the header in the export */
} ws_message;

typedef struct ws_chat_options {
    ws_date_order date_order;   /* WS_DATE_AUTO unless forced */
    uint64_t max_file_bytes;    /* 0 = WS_CHAT_DEFAULT_MAX_FILE */
    uint64_t max_message_bytes; /* 0 = WS_CHAT_DEFAULT_MAX_MESSAGE */
    /* Read only the messages whose header starts in [range_start, range_end) (0 = to the end)
     * of a text export; range_start must be the start of a line. Lines before the first
     * header of the range are not messages of it (nor are their bad UTF-8 bytes counted: the
     * range before counts them). A range without any header yields 0 messages, not the
     * "no headers" error. Lets several readers split one file. */
    uint64_t range_start, range_end;
} ws_chat_options;

#define WS_CHAT_DEFAULT_MAX_FILE (4ull << 30)     /* 4 GiB, also caps a zip's uncompressed size */
#define WS_CHAT_DEFAULT_MAX_MESSAGE (64ull << 20) /* 64 MiB for one message */
#define WS_CHAT_MAX_ZIP_RATIO 100                 /* uncompressed/compressed above this = bomb */

typedef struct ws_chat_reader ws_chat_reader;

/* Opens a .txt export, or a .zip (detected by content) holding `_chat.txt` or another .txt.
 * opt may be NULL. Errors: WS_ENOENT, WS_EIO, WS_ETOOBIG (file or zip contents above the cap),
 * WS_EFORMAT (broken zip, no text file inside), WS_EUNSUPPORTED (encrypted zip),
 * WS_EUNSAFE (path traversal names, zip bomb); err says which and why. */
int ws_chat_open_file(const char *path, const ws_chat_options *opt, ws_chat_reader **out, ws_error *err);
/* Reads from memory (.txt or .zip content). data is borrowed and must outlive the reader. */
int ws_chat_open_memory(const void *data, size_t len, const ws_chat_options *opt, ws_chat_reader **out,
                        ws_error *err);

/* Next message: returns 1 and fills *msg, 0 at the end, or a negative code.
 * An input with no message header at all fails with WS_EFORMAT ("no WhatsApp message headers
 * found"); an empty input ends at once with 0 messages (ws_chat_is_empty tells). */
int ws_chat_next(ws_chat_reader *r, ws_message *msg, ws_error *err);
/* Starts r over on the byte range [range_start, range_end) of the same input, exactly as a
 * reader opened with those range options and r's date order would read it; the window and
 * buffers are kept (no allocation). Errors as ws_chat_open_* gives for those options: WS_EINVAL
 * for a range that does not start at 0 in a zip, WS_EIO when the file cannot seek. */
int ws_chat_set_range(ws_chat_reader *r, uint64_t range_start, uint64_t range_end, ws_error *err);

ws_date_order ws_chat_date_order(const ws_chat_reader *r); /* the order in use */
const char *ws_chat_date_order_name(ws_date_order o);      /* "dmy", "mdy", "ymd", "auto" */
uint64_t ws_chat_invalid_utf8(const ws_chat_reader *r);    /* bad sequences replaced so far */
uint64_t ws_chat_lines_skipped(const ws_chat_reader *r);   /* lines before the first header */
bool ws_chat_is_empty(const ws_chat_reader *r);            /* input had no bytes */
/* Bytes of chat text read so far in this pass, and (if known, else 0) the total. */
uint64_t ws_chat_bytes_read(const ws_chat_reader *r, uint64_t *total);
bool ws_chat_is_zip(const ws_chat_reader *r); /* the text came out of a zip */
void ws_chat_close(ws_chat_reader *r);        /* NULL is a no-op */

const char *ws_msg_kind_name(ws_msg_kind k); /* "text", "system", "media", "deleted" */
/* Formats ts as "YYYY-MM-DDTHH:MM:SS" into out (at least 20 bytes). */
void ws_datetime_format(const ws_datetime *t, char out[20]);

#endif
