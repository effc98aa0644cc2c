/* API keys (generate, parse, hash), authentication against the store, roles and the
 * ownership rule. See auth.h for the key format. */
#include "auth/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/hex.h"

static const char *const role_names[] = {"user", "admin", "system"};

const char *ws_role_name(ws_role r)
{
    return (unsigned)r < 3 ? role_names[r] : "unknown";
}

int ws_role_parse(const char *name, ws_role *out)
{
    for (int i = 0; name && i < 3; i++)
        if (!strcmp(name, role_names[i])) {
            *out = (ws_role)i;
            return 0;
        }
    return WS_EINVAL;
}

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int ws_auth_key_generate(char key_out[WS_KEY_LEN + 1], char id_out[WS_KEY_ID_LEN + 1])
{
    unsigned char id[4], secret[32];
    if (RAND_bytes(id, sizeof id) != 1 || RAND_bytes(secret, sizeof secret) != 1)
        return WS_EIO;
    size_t o = 0;
    memcpy(key_out, WS_KEY_PREFIX, strlen(WS_KEY_PREFIX));
    o = strlen(WS_KEY_PREFIX);
    for (size_t i = 0; i < sizeof id; i++) {
        snprintf(key_out + o, 3, "%02x", id[i]);
        o += 2;
    }
    key_out[o++] = '_';
    /* base64url without padding: 32 bytes -> 43 characters */
    o += ws_base64url_encode(secret, sizeof secret, key_out + o);
    memcpy(id_out, key_out, WS_KEY_ID_LEN);
    id_out[WS_KEY_ID_LEN] = '\0';
    OPENSSL_cleanse(secret, sizeof secret);
    return o == WS_KEY_LEN ? 0 : WS_EINTERNAL;
}

int ws_auth_key_parse(const char *key, size_t len, char id_out[WS_KEY_ID_LEN + 1])
{
    size_t plen = strlen(WS_KEY_PREFIX);
    if (!key || len != WS_KEY_LEN || memcmp(key, WS_KEY_PREFIX, plen) != 0)
        return WS_EINVAL;
    for (size_t i = plen; i < WS_KEY_ID_LEN; i++)
        if (!is_lower_hex(key[i]))
            return WS_EINVAL;
    if (key[WS_KEY_ID_LEN] != '_')
        return WS_EINVAL;
    /* the secret: 43 base64url characters, canonical (the last one's 2 spare bits zero) */
    unsigned char secret[32];
    if (ws_base64url_decode(key + WS_KEY_ID_LEN + 1, WS_KEY_LEN - WS_KEY_ID_LEN - 1, secret, sizeof secret) !=
        (long)sizeof secret)
        return WS_EINVAL;
    if (id_out) {
        memcpy(id_out, key, WS_KEY_ID_LEN);
        id_out[WS_KEY_ID_LEN] = '\0';
    }
    return 0;
}

/* SHA-256 fetched once: EVP_sha256() in every call costs an implicit fetch under a lock
 * (this runs for every authenticated request). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static void fetch_sha256(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void ws_auth_key_hash(const char *key, size_t len, char hex_out[WS_KEY_HASH_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    pthread_once(&sha256_once, fetch_sha256);
    EVP_Digest(key, len, md, &mdlen, sha256_md ? sha256_md : EVP_sha256(), NULL);
    ws_hex_encode(md, 32, hex_out);
}

int ws_auth_bearer_token(const char *value, size_t len, const char **tok, size_t *tok_len)
{
    size_t i = 0;
    while (i < len && (value[i] == ' ' || value[i] == '\t'))
        i++;
    if (len - i < 7 || strncasecmp(value + i, "bearer", 6) != 0 ||
        (value[i + 6] != ' ' && value[i + 6] != '\t'))
        return WS_EINVAL;
    i += 7;
    while (i < len && (value[i] == ' ' || value[i] == '\t'))
        i++;
    size_t end = len;
    while (end > i && (value[end - 1] == ' ' || value[end - 1] == '\t'))
        end--;
    if (end == i)
        return WS_EINVAL;
    for (size_t k = i; k < end; k++)
        if (value[k] == ' ' || value[k] == '\t')
            return WS_EINVAL;
    *tok = value + i;
    *tok_len = end - i;
    return 0;
}

static void fill_principal(ws_principal *p, const ws_user *u, const char *key_id, ws_role role,
                           int rate_limit)
{
    memset(p, 0, sizeof *p);
    snprintf(p->user_id, sizeof p->user_id, "%s", u->id);
    snprintf(p->user_name, sizeof p->user_name, "%s", u->name);
    snprintf(p->key_id, sizeof p->key_id, "%s", key_id);
    p->role = role;
    p->rate_limit = rate_limit;
}

int ws_auth_key_create(ws_store *s, const char *user_name, ws_role role, int rate_limit,
                       const char *client_name, int64_t expires_at, char key_out[WS_KEY_LEN + 1],
                       ws_principal *principal, ws_error *err)
{
    if ((unsigned)role > WS_ROLE_SYSTEM)
        return ws_error_set(err, WS_EINVAL, "unknown role");
    if (rate_limit < 0)
        return ws_error_set(err, WS_EINVAL, "rate limit must not be negative");
    ws_arena *a = ws_arena_new(1024);
    ws_user u;
    char id[WS_KEY_ID_LEN + 1], hash[WS_KEY_HASH_HEX + 1];
    int rc = ws_store_user_get_by_name(s, a, user_name, &u, err);
    if (rc == WS_ENOENT) {
        rc = ws_store_user_create(s, a, user_name, NULL, NULL, &u, err);
        if (rc == WS_ECONFLICT) /* created meanwhile by someone else */
            rc = ws_store_user_get_by_name(s, a, user_name, &u, err);
    }
    if (rc < 0)
        goto out;
    /* A key id collision (1 in 2^32 per existing key) is retried with a fresh key. */
    for (int attempt = 0; attempt < 4; attempt++) {
        if ((rc = ws_auth_key_generate(key_out, id)) < 0) {
            ws_error_set(err, rc, "no random bytes for a key");
            goto out;
        }
        ws_auth_key_hash(key_out, WS_KEY_LEN, hash);
        ws_api_key k = {.key_id = id,
                        .user_id = u.id,
                        .client_name = client_name,
                        .role = ws_role_name(role),
                        .rate_limit = rate_limit,
                        .expires_at = expires_at};
        rc = ws_store_key_insert(s, &k, hash, err);
        if (rc != WS_ECONFLICT)
            break;
    }
    if (rc == 0 && principal)
        fill_principal(principal, &u, id, role, rate_limit);
out:
    if (rc < 0)
        OPENSSL_cleanse(key_out, WS_KEY_LEN + 1);
    ws_arena_free(a);
    return rc;
}

int ws_auth_authenticate(ws_store *s, const char *key, size_t len, ws_principal *out, ws_error *err)
{
    char id[WS_KEY_ID_LEN + 1], hash[WS_KEY_HASH_HEX + 1];
    if (ws_auth_key_parse(key, len, id) < 0)
        return ws_error_set(err, WS_EPERM, "invalid API key");
    ws_auth_key_hash(key, len, hash);
    return ws_auth_authenticate_hash(s, hash, id, out, err);
}

int ws_auth_authenticate_hash(ws_store *s, const char *hash, const char *id, ws_principal *out, ws_error *err)
{
    ws_arena *a = ws_arena_new(1024);
    ws_api_key k;
    ws_user u;
    ws_role role = WS_ROLE_USER;
    int rc = ws_store_key_get_by_hash(s, a, hash, &k, err);
    if (rc == WS_ENOENT)
        goto denied;
    if (rc < 0)
        goto out;
    /* The hash matched, so the key is the stored one; the id check guards against a row
     * whose id and hash disagree. One query brought the owner's name and state too. */
    if ((id && strcmp(k.key_id, id) != 0) || !k.is_active || !k.user_is_active ||
        (k.expires_at > 0 && k.expires_at <= ws_store_now_ms()) || ws_role_parse(k.role, &role) < 0)
        goto denied;
    u.id = k.user_id;
    u.name = k.user_name;
    fill_principal(out, &u, k.key_id, role, k.rate_limit);
    rc = 0;
    goto out;
denied:
    rc = ws_error_set(err, WS_EPERM, "invalid API key");
out:
    ws_arena_free(a);
    return rc;
}

bool ws_auth_can_access(const ws_principal *p, const char *owner_user_id)
{
    if (!p)
        return false;
    if (p->role == WS_ROLE_ADMIN || p->role == WS_ROLE_SYSTEM)
        return true;
    return owner_user_id && p->user_id[0] && strcmp(p->user_id, owner_user_id) == 0;
}
