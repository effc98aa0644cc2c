/* gRPC's wire format over HTTP/2 (the parts that do not depend on the transport): the
 * length-prefixed message framing carried across DATA frames, the grpc-timeout header, the
 * percent-encoded grpc-message trailer, status codes and their names, and the mapping of our
 * WS_E* codes onto them. Shared by the server (grpc_server.c) and the fuzz target.
 *
 * Ownership: a ws_grpc_deframer owns its partial-message buffer (ws_grpc_deframer_free). */
#ifndef WS_GRPC_GRPC_WIRE_H
#define WS_GRPC_GRPC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

enum {
    WS_GRPC_OK = 0,
    WS_GRPC_CANCELLED = 1,
    WS_GRPC_UNKNOWN = 2,
    WS_GRPC_INVALID_ARGUMENT = 3,
    WS_GRPC_DEADLINE_EXCEEDED = 4,
    WS_GRPC_NOT_FOUND = 5,
    WS_GRPC_ALREADY_EXISTS = 6,
    WS_GRPC_PERMISSION_DENIED = 7,
    WS_GRPC_RESOURCE_EXHAUSTED = 8,
    WS_GRPC_FAILED_PRECONDITION = 9,
    WS_GRPC_ABORTED = 10,
    WS_GRPC_OUT_OF_RANGE = 11,
    WS_GRPC_UNIMPLEMENTED = 12,
    WS_GRPC_INTERNAL = 13,
    WS_GRPC_UNAVAILABLE = 14,
    WS_GRPC_DATA_LOSS = 15,
    WS_GRPC_UNAUTHENTICATED = 16,
};

/* The 5-byte prefix of every message: compressed flag, then the length (big-endian). */
#define WS_GRPC_PREFIX 5

/* Reassembles messages from the bytes of DATA frames, in any split. */
typedef struct ws_grpc_deframer {
    uint8_t hdr[WS_GRPC_PREFIX];
    size_t hdr_len; /* prefix bytes seen of the current message */
    size_t need;    /* body bytes of the current message */
    ws_buf msg;     /* its body so far */
    size_t max;     /* message size cap; a larger length prefix is an error */
} ws_grpc_deframer;

typedef int (*ws_grpc_msg_fn)(void *arg, const uint8_t *msg, size_t len);

void ws_grpc_deframer_init(ws_grpc_deframer *d, size_t max);
void ws_grpc_deframer_free(ws_grpc_deframer *d);
/* Feeds n bytes; calls on_msg for each complete message (a non-zero return stops and is
 * returned). Errors: WS_ETOOBIG (a length prefix over max), WS_EUNSUPPORTED (the compressed flag:
 * we announce no grpc-encoding), WS_EFORMAT (a flag byte other than 0 or 1). */
int ws_grpc_deframe(ws_grpc_deframer *d, const uint8_t *p, size_t n, ws_grpc_msg_fn on_msg, void *arg,
                    ws_error *err);
/* True between messages (no partial prefix or body pending). */
bool ws_grpc_deframer_idle(const ws_grpc_deframer *d);

/* Appends the prefix and the message to out. */
void ws_grpc_frame(ws_buf *out, const uint8_t *msg, size_t len);

/* Parses a grpc-timeout value ("1-8 digits" + one of H M S m u n) into seconds. Errors: WS_EINVAL. */
int ws_grpc_parse_timeout(const char *s, size_t n, double *seconds);
/* Formats seconds as a grpc-timeout value into out (at least 16 bytes). */
void ws_grpc_format_timeout(double seconds, char *out, size_t cap);

/* Appends s percent-encoded as the grpc-message trailer wants it (printable ASCII but '%' as is). */
void ws_grpc_percent_encode(ws_buf *out, const char *s);
/* Decodes a percent-encoded grpc-message into out (malformed escapes kept as they are). */
void ws_grpc_percent_decode(ws_buf *out, const char *s, size_t n);

/* "OK", "CANCELLED", ...; "UNKNOWN" for codes out of range. */
const char *ws_grpc_status_name(int status);
/* The gRPC status for a WS_E* code (WS_ENOENT → NOT_FOUND, WS_EINVAL → INVALID_ARGUMENT, ...). */
int ws_grpc_status_of(int ws_code);

#endif
