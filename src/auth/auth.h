/* Authentication and authorisation: API keys (random, shown once, stored as SHA-256,
 * identifiable by a visible prefix), roles (user/admin/system) and ownership checks.
 *
 * Key format: "ws_live_" + 8 hex (the key id; together the visible prefix, e.g.
 * "ws_live_3fa9c2d1") + "_" + 43 base64url characters (256 random bits). Example:
 *   ws_live_3fa9c2d1_Qm9vYm9vYm9vYm9vYm9vYm9vYm9vYm9vYm9vYm9vYm8
 * Only the lowercase hex SHA-256 of the whole key is stored (api_keys.hashed_key).
 *
 * Threading: the pure functions are thread-safe. The ones that take a ws_store follow the
 * store's rule (one store handle per thread). */
#ifndef WS_AUTH_AUTH_H
#define WS_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "store/store.h"

#define WS_KEY_PREFIX "ws_live_"
#define WS_KEY_ID_LEN 16                                   /* "ws_live_" + 8 hex */
#define WS_KEY_SECRET_LEN 43                               /* base64url of 32 bytes, no padding */
#define WS_KEY_LEN (WS_KEY_ID_LEN + 1 + WS_KEY_SECRET_LEN) /* 60 */
#define WS_KEY_HASH_HEX 64

typedef enum { WS_ROLE_USER = 0, WS_ROLE_ADMIN = 1, WS_ROLE_SYSTEM = 2 } ws_role;

const char *ws_role_name(ws_role r);               /* "user", "admin", "system" */
int ws_role_parse(const char *name, ws_role *out); /* WS_EINVAL if unknown */

/* Who is calling, after authentication. Plain values, no pointers: copy freely. */
typedef struct ws_principal {
    char user_id[WS_STORE_ID_MAX + 1];
    char user_name[WS_STORE_NAME_MAX + 1];
    char key_id[WS_KEY_ID_LEN + 1];
    ws_role role;
    int rate_limit; /* per minute; 0 = server default */
} ws_principal;

/* ---- pure functions on keys ----------------------------------------------------------- */

/* Makes a new random key (OpenSSL RAND_bytes). key_out gets WS_KEY_LEN chars + NUL, id_out
 * the first WS_KEY_ID_LEN chars + NUL. WS_EIO if the random source fails. */
int ws_auth_key_generate(char key_out[WS_KEY_LEN + 1], char id_out[WS_KEY_ID_LEN + 1]);
/* Checks the format of untrusted input (an Authorization header's token): exactly the
 * format above, reading at most len bytes. On success copies the visible prefix to id_out.
 * WS_EINVAL otherwise. Never allocates. Fuzzed by fuzz/fuzz_apikey.c. */
int ws_auth_key_parse(const char *key, size_t len, char id_out[WS_KEY_ID_LEN + 1]);
/* Lowercase hex SHA-256 of len bytes at key into hex_out (64 chars + NUL). */
void ws_auth_key_hash(const char *key, size_t len, char hex_out[WS_KEY_HASH_HEX + 1]);
/* Extracts the token from an "Authorization: Bearer <token>" value (case-insensitive scheme,
 * surrounding spaces ignored). *tok points into value. WS_EINVAL if not a Bearer value. */
int ws_auth_bearer_token(const char *value, size_t len, const char **tok, size_t *tok_len);

/* ---- with the store ------------------------------------------------------------------- */

/* Creates a key for user_name (creating the user first if it does not exist) with the role
 * and per-minute rate limit (0 = server default); client_name and expires_at (ms, 0 =
 * never) are optional. key_out gets the plaintext key — the only time it exists; show it
 * once. *principal (may be NULL) gets who the key authenticates as. */
int ws_auth_key_create(ws_store *s, const char *user_name, ws_role role, int rate_limit,
                       const char *client_name, int64_t expires_at, char key_out[WS_KEY_LEN + 1],
                       ws_principal *principal, ws_error *err);

/* Authenticates a presented key: format check, hash lookup, active, not expired, user
 * active. Fills *out. WS_EPERM for any key that does not authenticate (the message does
 * not say which check failed, to not help guessing); WS_EIO if the store failed. Does not
 * touch last_used_at (call ws_store_key_touch off the hot path if wanted). */
int ws_auth_authenticate(ws_store *s, const char *key, size_t len, ws_principal *out, ws_error *err);

/* The same checks for a key known only by its stored hash (a dashboard session keeps the
 * hash of the key it signed in with, never the key). id (may be NULL) must match the key's
 * id when given. */
int ws_auth_authenticate_hash(ws_store *s, const char *hash, const char *id, ws_principal *out,
                              ws_error *err);

/* Ownership rule: a user may act on their own resources; admin and system on anyone's. */
bool ws_auth_can_access(const ws_principal *p, const char *owner_user_id);

#endif
