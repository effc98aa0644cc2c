/* Unit tests of src/auth/jwt.c (EdDSA JWTs) and src/core/base64.c: round trips, every claim
 * check, tampering, alg confusion, foreign keys, PEM round trip, JWKS thumbprint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "auth/jwt.h"
#include "core/base64.h"
#include "harness.h"

static ws_jwt_claims claims(int64_t iat, int64_t exp)
{
    ws_jwt_claims c = {.iat = iat, .exp = exp};
    strcpy(c.sub, "usr_1");
    strcpy(c.role, "user");
    strcpy(c.jti, "sess_abc");
    return c;
}

static void test_base64url(void)
{
    static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *want[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char out[16];
        unsigned char back[16];
        CHECK_EQ_INT(ws_base64url_encode(in[i], strlen(in[i]), out), strlen(want[i]));
        CHECK_EQ_STR(out, want[i]);
        long n = ws_base64url_decode(out, strlen(out), back, sizeof back);
        CHECK_EQ_INT(n, strlen(in[i]));
        CHECK(n >= 0 && memcmp(back, in[i], (size_t)n) == 0);
    }
    unsigned char b[8];
    unsigned char all[] = {0xfb, 0xff, 0xfe};
    char o[8];
    ws_base64url_encode(all, 3, o);
    CHECK_EQ_STR(o, "-__-");
    CHECK_EQ_INT(ws_base64url_decode("Zm9=", 4, b, sizeof b), -1); /* padding is not url-safe form */
    CHECK_EQ_INT(ws_base64url_decode("Z", 1, b, sizeof b), -1);    /* impossible length */
    CHECK_EQ_INT(ws_base64url_decode("Zh", 2, b, sizeof b), -1);   /* non-zero trailing bits */
    CHECK_EQ_INT(ws_base64url_decode("Zm9vYmFy", 8, b, 5), -1);    /* over the cap */
}

static void test_sign_verify(void)
{
    ws_jwt_key *k = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_jwt_key_generate(&k, &err), 0);
    ws_jwt_claims c = claims(1000, 1900);
    strcpy(c.iss, "whatstyle");
    strcpy(c.aud, "dashboard");
    ws_buf tok = WS_BUF_INIT;
    CHECK_EQ_INT(ws_jwt_sign(k, &c, &tok, &err), 0);
    ws_jwt_claims got;
    ws_jwt_expect x = {.now = 1500, .iss = "whatstyle", .aud = "dashboard"};
    CHECK_EQ_INT(ws_jwt_verify(k, tok.data, tok.len, &x, &got, &err), 0);
    CHECK_EQ_STR(got.sub, "usr_1");
    CHECK_EQ_STR(got.role, "user");
    CHECK_EQ_STR(got.jti, "sess_abc");
    CHECK_EQ_INT(got.iat, 1000);
    CHECK_EQ_INT(got.exp, 1900);
    /* expiry, leeway, not yet issued */
    x.now = 1900;
    CHECK_EQ_INT(ws_jwt_verify(k, tok.data, tok.len, &x, NULL, &err), WS_EPERM);
    x.leeway_s = 5;
    CHECK_EQ_INT(ws_jwt_verify(k, tok.data, tok.len, &x, NULL, &err), 0);
    x.now = 900;
    x.leeway_s = 0;
    CHECK_EQ_INT(ws_jwt_verify(k, tok.data, tok.len, &x, NULL, &err), WS_EPERM);
    /* issuer and audience */
    x.now = 1500;
    x.iss = "other";
    CHECK_EQ_INT(ws_jwt_verify(k, tok.data, tok.len, &x, NULL, &err), WS_EPERM);
    x.iss = NULL;
    x.aud = "api";
    CHECK_EQ_INT(ws_jwt_verify(k, tok.data, tok.len, &x, NULL, &err), WS_EPERM);
    x.aud = NULL;
    CHECK_EQ_INT(ws_jwt_verify(k, tok.data, tok.len, &x, NULL, &err), 0);
    /* a prefix of the token never verifies (and is never read past) */
    for (size_t n = 0; n < tok.len; n++)
        CHECK(ws_jwt_verify(k, tok.data, n, &x, NULL, &err) != 0);
    ws_buf_free(&tok);
    ws_jwt_key_free(k);
}

static void test_tampering(void)
{
    ws_jwt_key *k = NULL, *other = NULL;
    ws_error err = {0};
    ws_jwt_key_generate(&k, &err);
    ws_jwt_key_generate(&other, &err);
    ws_jwt_claims c = claims(1000, 2000);
    ws_buf tok = WS_BUF_INIT;
    CHECK_EQ_INT(ws_jwt_sign(k, &c, &tok, &err), 0);
    ws_jwt_expect x = {.now = 1500};
    /* another key's token */
    CHECK_EQ_INT(ws_jwt_verify(other, tok.data, tok.len, &x, NULL, &err), WS_EPERM);
    /* one flipped character anywhere */
    for (size_t i = 0; i < tok.len; i++) {
        if (tok.data[i] == '.')
            continue;
        char saved = tok.data[i];
        tok.data[i] = saved == 'A' ? 'B' : 'A';
        CHECK(ws_jwt_verify(k, tok.data, tok.len, &x, NULL, &err) != 0);
        tok.data[i] = saved;
    }
    /* the payload swapped for a forged one (role admin) keeps the old signature */
    ws_jwt_claims forged = claims(1000, 2000);
    strcpy(forged.role, "admin");
    ws_buf f = WS_BUF_INIT;
    ws_jwt_sign(other, &forged, &f, &err);
    const char *d1 = strchr(tok.data, '.'), *d2 = strrchr(tok.data, '.');
    const char *f1 = strchr(f.data, '.'), *f2 = strrchr(f.data, '.');
    ws_buf mix = WS_BUF_INIT;
    ws_buf_append(&mix, tok.data, (size_t)(d1 - tok.data));
    ws_buf_append(&mix, f1, (size_t)(f2 - f1));
    ws_buf_puts(&mix, d2);
    CHECK_EQ_INT(ws_jwt_verify(k, mix.data, mix.len, &x, NULL, &err), WS_EPERM);
    /* alg "none" with an empty signature */
    char hdr[64], none[512];
    const char *h = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    ws_base64url_encode(h, strlen(h), hdr);
    snprintf(none, sizeof none, "%s%.*s.", hdr, (int)(d2 - d1), d1);
    CHECK_EQ_INT(ws_jwt_verify(k, none, strlen(none), &x, NULL, &err), WS_EPERM);
    /* a fourth part, empty parts */
    ws_buf_puts(&tok, ".x");
    CHECK_EQ_INT(ws_jwt_verify(k, tok.data, tok.len, &x, NULL, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_jwt_verify(k, "..", 2, &x, NULL, &err), WS_EINVAL);
    ws_buf_free(&mix);
    ws_buf_free(&f);
    ws_buf_free(&tok);
    ws_jwt_key_free(k);
    ws_jwt_key_free(other);
}

static void test_claims_required(void)
{
    ws_jwt_key *k = NULL;
    ws_error err = {0};
    ws_jwt_key_generate(&k, &err);
    ws_jwt_claims c = claims(1000, 1000);
    ws_buf tok = WS_BUF_INIT;
    CHECK_EQ_INT(ws_jwt_sign(k, &c, &tok, &err), WS_EINVAL); /* exp must follow iat */
    c = claims(1000, 2000);
    c.sub[0] = '\0';
    CHECK_EQ_INT(ws_jwt_sign(k, &c, &tok, &err), WS_EINVAL);
    c = claims(1000, 2000);
    c.nbf = 1600;
    CHECK_EQ_INT(ws_jwt_sign(k, &c, &tok, &err), 0);
    ws_jwt_expect x = {.now = 1500};
    CHECK_EQ_INT(ws_jwt_verify(k, tok.data, tok.len, &x, NULL, &err), WS_EPERM);
    x.now = 1700;
    CHECK_EQ_INT(ws_jwt_verify(k, tok.data, tok.len, &x, NULL, &err), 0);
    ws_jwt_claims un;
    CHECK_EQ_INT(ws_jwt_decode_unverified(tok.data, tok.len, &un, &err), 0);
    CHECK_EQ_INT(un.nbf, 1600);
    ws_buf_free(&tok);
    ws_jwt_key_free(k);
}

static void test_pem_and_jwks(void)
{
    ws_jwt_key *k = NULL, *back = NULL, *pub = NULL;
    ws_error err = {0};
    ws_jwt_key_generate(&k, &err);
    ws_buf pem = WS_BUF_INIT;
    CHECK_EQ_INT(ws_jwt_key_private_pem(k, &pem, &err), 0);
    ws_buf_putc(&pem, '\0');
    CHECK(strstr(pem.data, "BEGIN PRIVATE KEY") != NULL);
    CHECK_EQ_INT(ws_jwt_key_from_pem(pem.data, pem.len - 1, &back, &err), 0);
    CHECK_EQ_STR(ws_jwt_key_id(back), ws_jwt_key_id(k));
    /* a token signed with the reloaded key verifies with the original */
    ws_jwt_claims c = claims(1000, 2000);
    ws_buf tok = WS_BUF_INIT;
    CHECK_EQ_INT(ws_jwt_sign(back, &c, &tok, &err), 0);
    ws_jwt_expect x = {.now = 1500};
    CHECK_EQ_INT(ws_jwt_verify(k, tok.data, tok.len, &x, NULL, &err), 0);
    /* RFC 8037 appendix A.1/A.3: the public key's x and its RFC 7638 thumbprint */
    static const char rfc_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                                  "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
                                  "-----END PUBLIC KEY-----\n";
    CHECK_EQ_INT(ws_jwt_key_from_pem(rfc_pem, strlen(rfc_pem), &pub, &err), 0);
    if (pub) {
        CHECK_EQ_STR(ws_jwt_key_id(pub), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        ws_buf j = WS_BUF_INIT;
        ws_jwt_jwks(pub, &j);
        ws_buf_putc(&j, '\0');
        CHECK(strstr(j.data, "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"") != NULL);
        CHECK(strstr(j.data, "\"crv\":\"Ed25519\"") != NULL);
        ws_buf_free(&j);
        /* a public key verifies but cannot sign */
        ws_buf t2 = WS_BUF_INIT;
        CHECK_EQ_INT(ws_jwt_sign(pub, &c, &t2, &err), WS_EINVAL);
        ws_buf_free(&t2);
    }
    CHECK(ws_jwt_key_from_pem("junk", 4, &pub, &err) != 0);
    ws_buf_free(&tok);
    ws_buf_free(&pem);
    ws_jwt_key_free(k);
    ws_jwt_key_free(back);
    ws_jwt_key_free(pub);
}

WS_TEST_MAIN(T(test_base64url), T(test_sign_verify), T(test_tampering), T(test_claims_required),
             T(test_pem_and_jwks))
