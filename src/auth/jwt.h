/* JSON Web Tokens (RFC 7519) signed with EdDSA (Ed25519, RFC 8037) through OpenSSL EVP:
 * sign, verify (signature, algorithm, exp/nbf/iat, optional issuer and audience) and the
 * public key as a JWKS (RFC 7517) with an RFC 7638 thumbprint as its "kid". Generic: the
 * dashboard's session cookie uses it, and so can service-to-service tokens.
 *
 * Ownership: a ws_jwt_key belongs to whoever made it (ws_jwt_key_free). Strings in
 * ws_jwt_claims are fixed-size arrays (no pointers): copy freely.
 * Thread-safety: a key is read-only after it is made; sign/verify may run concurrently.
 * Errors: 0 or a negative WS_E* code with err->msg: WS_EINVAL (bad argument / malformed
 * token), WS_EPERM (the token does not verify or is expired / not yet valid / for another
 * issuer or audience), WS_ETOOBIG (over WS_JWT_MAX), WS_EIO (OpenSSL failed). */
#ifndef WS_AUTH_JWT_H
#define WS_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

#define WS_JWT_MAX 4096      /* longest token accepted by ws_jwt_verify */
#define WS_JWT_CLAIM_MAX 128 /* longest string claim (sub, role, iss, aud, jti) */

typedef struct ws_jwt_key ws_jwt_key;

typedef struct ws_jwt_claims {
    char sub[WS_JWT_CLAIM_MAX + 1];  /* subject (required) */
    char role[WS_JWT_CLAIM_MAX + 1]; /* "" = absent */
    char iss[WS_JWT_CLAIM_MAX + 1];  /* "" = absent */
    char aud[WS_JWT_CLAIM_MAX + 1];  /* "" = absent (a single string audience) */
    char jti[WS_JWT_CLAIM_MAX + 1];  /* token / session id; "" = absent */
    int64_t iat;                     /* issued at, seconds since the epoch (required) */
    int64_t exp;                     /* expires at, seconds (required) */
    int64_t nbf;                     /* not before, seconds; 0 = absent */
} ws_jwt_claims;

/* What ws_jwt_verify checks besides the signature. iss/aud NULL = not checked. */
typedef struct ws_jwt_expect {
    int64_t now;  /* seconds since the epoch */
    int leeway_s; /* clock skew allowed on exp/nbf/iat */
    const char *iss;
    const char *aud;
} ws_jwt_expect;

/* A fresh Ed25519 key pair. */
int ws_jwt_key_generate(ws_jwt_key **out, ws_error *err);
/* Loads a PEM private key (PKCS#8; signs and verifies) or public key (SubjectPublicKeyInfo;
 * verifies only). Only Ed25519 keys are accepted. */
int ws_jwt_key_from_pem(const char *pem, size_t len, ws_jwt_key **out, ws_error *err);
/* Reads the private key (PKCS#8 PEM) at path, or makes a fresh one and writes it there (0600,
 * atomically) when the file does not exist: a server's long-lived signing key under DATA. */
int ws_jwt_key_load_or_create(const char *path, ws_jwt_key **out, ws_error *err);
/* The public key of an untrusted JWKS document (len bytes, at most 64 KiB): the first key with
 * kty "OKP", crv "Ed25519" and a 32-byte x (verifies only). Errors: WS_EINVAL (not JSON, no
 * such key). Fuzzed by fuzz/fuzz_jwt.c. */
int ws_jwt_key_from_jwks(const char *json, size_t len, ws_jwt_key **out, ws_error *err);
/* Appends the private key as PKCS#8 PEM (for a 0600 file), or WS_EINVAL for a public key. */
int ws_jwt_key_private_pem(const ws_jwt_key *k, ws_buf *out, ws_error *err);
/* The key id: the RFC 7638 JWK thumbprint (base64url SHA-256, 43 chars + NUL). */
const char *ws_jwt_key_id(const ws_jwt_key *k);
void ws_jwt_key_free(ws_jwt_key *k); /* NULL is a no-op */

/* Appends {"keys":[{"kty":"OKP","crv":"Ed25519","x":...,"kid":...,"alg":"EdDSA","use":"sig"}]}. */
void ws_jwt_jwks(const ws_jwt_key *k, ws_buf *out);

/* Appends header.payload.signature ({"alg":"EdDSA","typ":"JWT","kid":...}) for the claims.
 * sub must be non-empty and exp > iat. WS_EINVAL for a public-only key. */
int ws_jwt_sign(const ws_jwt_key *k, const ws_jwt_claims *c, ws_buf *out, ws_error *err);

/* Verifies len bytes of untrusted token text: three base64url parts, header alg "EdDSA"
 * (anything else, "none" included, is refused), kid (when present) equal to the key's,
 * the signature, then the claims: exp > now - leeway, nbf <= now + leeway,
 * iat <= now + leeway, iss/aud when expected. Fills *out (may be NULL) on success.
 * Never reads past len. Fuzzed by fuzz/fuzz_jwt.c. */
int ws_jwt_verify(const ws_jwt_key *k, const char *token, size_t len, const ws_jwt_expect *x,
                  ws_jwt_claims *out, ws_error *err);

/* Parses the claims of a token without checking anything (for tests and diagnostics: never
 * trust what it returns). */
int ws_jwt_decode_unverified(const char *token, size_t len, ws_jwt_claims *out, ws_error *err);

#endif
