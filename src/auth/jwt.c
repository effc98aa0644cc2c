/* JWTs signed with Ed25519 (EdDSA) through OpenSSL EVP: keys, JWKS, sign and verify (see
 * jwt.h). */
#include "auth/jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include "core/base64.h"
#include "core/file.h"
#include "core/json.h"
#include "core/mem.h"

#define ED25519_LEN 32
#define SIG_LEN 64

struct ws_jwt_key {
    EVP_PKEY *pkey;
    bool has_private;
    char x[WS_BASE64URL_LEN(ED25519_LEN) + 1]; /* public key, base64url */
    char kid[WS_BASE64URL_LEN(32) + 1];
};

static int finish_key(EVP_PKEY *pkey, bool priv, ws_jwt_key **out, ws_error *err)
{
    unsigned char raw[ED25519_LEN], d[32];
    size_t rl = sizeof raw;
    unsigned dl = 0;
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(pkey);
        return ws_error_set(err, WS_EUNSUPPORTED, "only Ed25519 keys are supported");
    }
    if (EVP_PKEY_get_raw_public_key(pkey, raw, &rl) != 1 || rl != ED25519_LEN) {
        EVP_PKEY_free(pkey);
        return ws_error_set(err, WS_EIO, "cannot read the public key");
    }
    ws_jwt_key *k = ws_xcalloc(1, sizeof *k);
    k->pkey = pkey;
    k->has_private = priv;
    ws_base64url_encode(raw, rl, k->x);
    /* RFC 7638: SHA-256 of the required members in lexicographic order, no spaces */
    char canon[128];
    int cl = snprintf(canon, sizeof canon, "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", k->x);
    EVP_Digest(canon, (size_t)cl, d, &dl, EVP_sha256(), NULL);
    ws_base64url_encode(d, dl, k->kid);
    *out = k;
    return 0;
}

int ws_jwt_key_generate(ws_jwt_key **out, ws_error *err)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!pkey)
        return ws_error_set(err, WS_EIO, "cannot generate an Ed25519 key");
    return finish_key(pkey, true, out, err);
}

int ws_jwt_key_from_pem(const char *pem, size_t len, ws_jwt_key **out, ws_error *err)
{
    if (!pem || len == 0 || len > 16384)
        return ws_error_set(err, WS_EINVAL, "no PEM key");
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return ws_error_set(err, WS_EIO, "out of memory");
    bool priv = strstr(pem, "PRIVATE KEY") != NULL;
    EVP_PKEY *pkey =
        priv ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!pkey)
        return ws_error_set(err, WS_EINVAL, "not a PEM %s key", priv ? "private" : "public");
    return finish_key(pkey, priv, out, err);
}

int ws_jwt_key_load_or_create(const char *path, ws_jwt_key **out, ws_error *err)
{
    char *pem = NULL;
    size_t len = 0;
    ws_buf pw = WS_BUF_INIT;
    *out = NULL;
    int rc = ws_file_read(path, 16384, &pem, &len, NULL);
    if (rc == 0) {
        rc = ws_jwt_key_from_pem(pem, len, out, err);
        goto out;
    }
    if ((rc = ws_jwt_key_generate(out, err)) != 0 || (rc = ws_jwt_key_private_pem(*out, &pw, err)) != 0)
        goto out;
    mode_t old = umask(077); /* the private key file is 0600 */
    rc = ws_file_write_atomic(path, pw.data, pw.len, err);
    umask(old);
out:
    if (rc) {
        ws_jwt_key_free(*out);
        *out = NULL;
    }
    if (pem)
        OPENSSL_cleanse(pem, len);
    free(pem);
    OPENSSL_cleanse(pw.data, pw.len);
    ws_buf_free(&pw);
    return rc;
}

int ws_jwt_key_from_jwks(const char *json, size_t len, ws_jwt_key **out, ws_error *err)
{
    ws_json_doc *doc = NULL;
    *out = NULL;
    if (!json || len > 65536)
        return ws_error_set(err, WS_EINVAL, "no JWKS (or over 64 KiB)");
    if (ws_json_parse(json, len, &doc, err) != 0)
        return ws_error_set(err, WS_EINVAL, "the JWKS is not JSON");
    const ws_json *keys = ws_json_get(ws_json_root(doc), "keys");
    int rc = ws_error_set(err, WS_EINVAL, "the JWKS holds no Ed25519 (OKP) key");
    for (size_t i = 0; keys && keys->type == WS_JSON_ARRAY && i < keys->len; i++) {
        const ws_json *k = ws_json_at(keys, i);
        const char *kty = ws_json_get_str(k, "kty"), *crv = ws_json_get_str(k, "crv"),
                   *x = ws_json_get_str(k, "x");
        unsigned char raw[ED25519_LEN + 1];
        if (!kty || !crv || !x || strcmp(kty, "OKP") || strcmp(crv, "Ed25519") ||
            ws_base64url_decode(x, strlen(x), raw, sizeof raw) != ED25519_LEN)
            continue;
        EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, ED25519_LEN);
        rc = pkey ? finish_key(pkey, false, out, err)
                  : ws_error_set(err, WS_EINVAL, "bad Ed25519 key in the JWKS");
        break;
    }
    ws_json_doc_free(doc);
    return rc;
}

int ws_jwt_key_private_pem(const ws_jwt_key *k, ws_buf *out, ws_error *err)
{
    if (!k->has_private)
        return ws_error_set(err, WS_EINVAL, "a public key has no private PEM");
    BIO *bio = BIO_new(BIO_s_mem());
    char *p;
    int rc = 0;
    if (!bio || PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) != 1) {
        rc = ws_error_set(err, WS_EIO, "cannot write the key");
        goto out;
    }
    long n = BIO_get_mem_data(bio, &p);
    ws_buf_append(out, p, (size_t)n);
out:
    BIO_free(bio);
    return rc;
}

const char *ws_jwt_key_id(const ws_jwt_key *k)
{
    return k->kid;
}

void ws_jwt_key_free(ws_jwt_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

void ws_jwt_jwks(const ws_jwt_key *k, ws_buf *out)
{
    ws_buf_printf(out,
                  "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"%s\","
                  "\"alg\":\"EdDSA\",\"use\":\"sig\"}]}",
                  k->x, k->kid);
}

/* ---- sign -------------------------------------------------------------------------- */

static void put_b64(ws_buf *b, const void *p, size_t n)
{
    char *o = ws_buf_reserve(b, WS_BASE64URL_LEN(n) + 1);
    b->len += ws_base64url_encode(p, n, o);
}

static void put_claim_str(ws_buf *b, const char *name, const char *v)
{
    if (!v[0])
        return;
    ws_buf_printf(b, ",\"%s\":", name);
    ws_json_put_cstr(b, v);
}

int ws_jwt_sign(const ws_jwt_key *k, const ws_jwt_claims *c, ws_buf *out, ws_error *err)
{
    if (!k->has_private)
        return ws_error_set(err, WS_EINVAL, "a public key cannot sign");
    if (!c->sub[0] || c->exp <= c->iat)
        return ws_error_set(err, WS_EINVAL, "a token needs a subject and exp after iat");
    ws_buf hdr = WS_BUF_INIT, pl = WS_BUF_INIT;
    int rc = 0;
    ws_buf_printf(&hdr, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}", k->kid);
    ws_buf_puts(&pl, "{\"sub\":");
    ws_json_put_cstr(&pl, c->sub);
    put_claim_str(&pl, "role", c->role);
    put_claim_str(&pl, "iss", c->iss);
    put_claim_str(&pl, "aud", c->aud);
    put_claim_str(&pl, "jti", c->jti);
    ws_buf_printf(&pl, ",\"iat\":%lld,\"exp\":%lld", (long long)c->iat, (long long)c->exp);
    if (c->nbf)
        ws_buf_printf(&pl, ",\"nbf\":%lld", (long long)c->nbf);
    ws_buf_putc(&pl, '}');
    size_t start = out->len;
    put_b64(out, hdr.data, hdr.len);
    ws_buf_putc(out, '.');
    put_b64(out, pl.data, pl.len);
    unsigned char sig[SIG_LEN];
    size_t sl = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey) != 1 ||
        EVP_DigestSign(md, sig, &sl, (const unsigned char *)out->data + start, out->len - start) != 1) {
        out->len = start;
        rc = ws_error_set(err, WS_EIO, "signing failed");
        goto out;
    }
    ws_buf_putc(out, '.');
    put_b64(out, sig, sl);
out:
    EVP_MD_CTX_free(md);
    ws_buf_free(&hdr);
    ws_buf_free(&pl);
    return rc;
}

/* ---- verify ------------------------------------------------------------------------ */

typedef struct parts {
    const char *p[3];
    size_t n[3];
} parts;

static int split(const char *t, size_t len, parts *o, ws_error *err)
{
    if (len == 0)
        return ws_error_set(err, WS_EINVAL, "empty token");
    if (len > WS_JWT_MAX)
        return ws_error_set(err, WS_ETOOBIG, "token over %d bytes", WS_JWT_MAX);
    size_t k = 0, s = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && t[i] != '.')
            continue;
        if (k == 3)
            return ws_error_set(err, WS_EINVAL, "a token has three parts");
        o->p[k] = t + s;
        o->n[k] = i - s;
        k++;
        s = i + 1;
    }
    if (k != 3)
        return ws_error_set(err, WS_EINVAL, "a token has three parts");
    return 0;
}

/* Decodes one base64url JSON object; *doc belongs to the caller. */
static int decode_json(const char *p, size_t n, ws_json_doc **doc, ws_error *err)
{
    unsigned char buf[WS_JWT_MAX];
    long m = ws_base64url_decode(p, n, buf, sizeof buf);
    if (m <= 0)
        return ws_error_set(err, WS_EINVAL, "token part is not base64url");
    ws_error je = {0};
    if (ws_json_parse((const char *)buf, (size_t)m, doc, &je) != 0)
        return ws_error_set(err, WS_EINVAL, "token part is not JSON");
    if (ws_json_root(*doc)->type != WS_JSON_OBJECT) {
        ws_json_doc_free(*doc);
        *doc = NULL;
        return ws_error_set(err, WS_EINVAL, "token part is not a JSON object");
    }
    return 0;
}

static bool copy_str(const ws_json *o, const char *name, char *dst, bool required)
{
    const ws_json *v = ws_json_get(o, name);
    if (!v)
        return !required;
    if (v->type != WS_JSON_STRING || v->len > WS_JWT_CLAIM_MAX || strlen(v->str) != v->len)
        return false;
    if (required && v->len == 0)
        return false;
    memcpy(dst, v->str, v->len + 1);
    return true;
}

static bool copy_time(const ws_json *o, const char *name, int64_t *dst, bool required)
{
    const ws_json *v = ws_json_get(o, name);
    if (!v)
        return !required;
    /* whole seconds in a sane range (no NaN, no 1e300) */
    if (v->type != WS_JSON_NUMBER || !(v->number >= 0 && v->number < 1e12) ||
        v->number != (double)(int64_t)v->number)
        return false;
    *dst = (int64_t)v->number;
    return true;
}

static int parse_claims(const char *p, size_t n, ws_jwt_claims *c, ws_error *err)
{
    ws_json_doc *doc = NULL;
    int rc = decode_json(p, n, &doc, err);
    if (rc)
        return rc;
    const ws_json *o = ws_json_root(doc);
    memset(c, 0, sizeof *c);
    if (!copy_str(o, "sub", c->sub, true) || !copy_str(o, "role", c->role, false) ||
        !copy_str(o, "iss", c->iss, false) || !copy_str(o, "aud", c->aud, false) ||
        !copy_str(o, "jti", c->jti, false) || !copy_time(o, "iat", &c->iat, true) ||
        !copy_time(o, "exp", &c->exp, true) || !copy_time(o, "nbf", &c->nbf, false))
        rc = ws_error_set(err, WS_EINVAL, "token claims are malformed (sub, iat and exp are required)");
    ws_json_doc_free(doc);
    return rc;
}

int ws_jwt_decode_unverified(const char *token, size_t len, ws_jwt_claims *out, ws_error *err)
{
    parts t;
    int rc = split(token, len, &t, err);
    return rc ? rc : parse_claims(t.p[1], t.n[1], out, err);
}

static int check_header(const ws_jwt_key *k, const parts *t, ws_error *err)
{
    ws_json_doc *doc = NULL;
    int rc = decode_json(t->p[0], t->n[0], &doc, err);
    if (rc)
        return rc;
    const ws_json *h = ws_json_root(doc);
    const char *alg = ws_json_get_str(h, "alg");
    const ws_json *kid = ws_json_get(h, "kid");
    const ws_json *crit = ws_json_get(h, "crit");
    if (!alg || strcmp(alg, "EdDSA") != 0)
        rc = ws_error_set(err, WS_EPERM, "token algorithm is not EdDSA");
    else if (kid && (kid->type != WS_JSON_STRING || strcmp(kid->str, k->kid) != 0))
        rc = ws_error_set(err, WS_EPERM, "token was signed by another key");
    else if (crit)
        rc = ws_error_set(err, WS_EPERM, "token has critical header parameters");
    ws_json_doc_free(doc);
    return rc;
}

int ws_jwt_verify(const ws_jwt_key *k, const char *token, size_t len, const ws_jwt_expect *x,
                  ws_jwt_claims *out, ws_error *err)
{
    parts t;
    ws_jwt_claims c;
    unsigned char sig[SIG_LEN + 1];
    int rc = split(token, len, &t, err);
    if (rc)
        return rc;
    if ((rc = check_header(k, &t, err)) != 0)
        return rc;
    if (ws_base64url_decode(t.p[2], t.n[2], sig, sizeof sig) != SIG_LEN)
        return ws_error_set(err, WS_EPERM, "token signature is malformed");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return ws_error_set(err, WS_EIO, "out of memory");
    int ok = EVP_DigestVerifyInit(md, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestVerify(md, sig, SIG_LEN, (const unsigned char *)token, t.n[0] + 1 + t.n[1]) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return ws_error_set(err, WS_EPERM, "token signature does not verify");
    if ((rc = parse_claims(t.p[1], t.n[1], &c, err)) != 0)
        return rc;
    int64_t lw = x->leeway_s > 0 ? x->leeway_s : 0;
    if (c.exp <= x->now - lw)
        return ws_error_set(err, WS_EPERM, "token expired");
    if (c.nbf && c.nbf > x->now + lw)
        return ws_error_set(err, WS_EPERM, "token not valid yet");
    if (c.iat > x->now + lw)
        return ws_error_set(err, WS_EPERM, "token issued in the future");
    if (x->iss && strcmp(c.iss, x->iss) != 0)
        return ws_error_set(err, WS_EPERM, "token is from another issuer");
    if (x->aud && strcmp(c.aud, x->aud) != 0)
        return ws_error_set(err, WS_EPERM, "token is for another audience");
    if (out)
        *out = c;
    return 0;
}
