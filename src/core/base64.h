/* Base64 for the whole project: base64url (RFC 4648 §5, no padding) for tokens that travel in
 * URLs, cookies and JWTs (API keys, cursors, session tokens), and a lenient decoder for files
 * sent inside JSON. Pure functions, thread-safe, no allocation. */
#ifndef WS_CORE_BASE64_H
#define WS_CORE_BASE64_H

#include <stddef.h>

/* Characters ws_base64url_encode writes for n input bytes (without the NUL). */
#define WS_BASE64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/* Writes the base64url form of n bytes at in to out (WS_BASE64URL_LEN(n) + 1 bytes, NUL
 * terminated); returns the characters written. */
size_t ws_base64url_encode(const void *in, size_t n, char *out);

/* Decodes len characters of unpadded base64url (untrusted input) into out, which has room
 * for cap bytes. Returns the bytes written, or -1 for a character outside the alphabet,
 * an impossible length (len % 4 == 1), non-zero trailing bits, or more than cap bytes. */
long ws_base64url_decode(const char *in, size_t len, unsigned char *out, size_t cap);

/* Decodes len characters of standard or URL-safe base64 (untrusted input; '=' padding and
 * ASCII whitespace ignored) into out, which has room for cap bytes (len / 4 * 3 + 3 always
 * suffices). Returns the bytes written, or -1 for another character or more than cap bytes. */
long ws_base64_decode_lenient(const char *in, size_t len, unsigned char *out, size_t cap);

#endif
