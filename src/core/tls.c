/* TLS contexts and error descriptions on OpenSSL (see tls.h). */
#include "core/tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* The oldest error of the thread's OpenSSL queue as text (the queue is cleared). */
static void ossl_reason(char *out, size_t cap)
{
    unsigned long e = ERR_get_error(), last = e;
    while (last) /* the first one is the cause; drop the rest */
        last = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(out, cap, "%s", r ? r : e ? "unknown OpenSSL error" : "no detail");
}

/* ALPN on the server: the first of our protocols (arg, wire format) the client offers. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg)
{
    const char *prefs = arg;
    unsigned char *o = NULL;
    bool required = prefs[0] == '!'; /* marker set by ws_tls_server_ctx_new */
    if (required)
        prefs++;
    if (SSL_select_next_proto(&o, outlen, (const unsigned char *)prefs, (unsigned)strlen(prefs), in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return required ? SSL_TLSEXT_ERR_ALERT_FATAL : SSL_TLSEXT_ERR_NOACK;
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

/* The ALPN lists the callback sees: "!" before a required list. Static, as the options'. */
static const char *alpn_arg(const char *alpn, bool required)
{
    if (!required)
        return alpn;
    if (!strcmp(alpn, WS_TLS_ALPN_H2))
        return "!" WS_TLS_ALPN_H2;
    if (!strcmp(alpn, WS_TLS_ALPN_H2_HTTP11))
        return "!" WS_TLS_ALPN_H2_HTTP11;
    return alpn; /* other lists are offered, not enforced */
}

int ws_tls_server_ctx_new(const ws_tls_server_opts *o, SSL_CTX **out, ws_error *err)
{
    *out = NULL;
    if (!o || !o->cert_file || !o->key_file)
        return ws_error_set(err, WS_EINVAL, "TLS: a certificate and a key are required");
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return ws_error_set(err, WS_EIO, "TLS: cannot create context");
    char why[200];
    int rc = 0;
    SSL_CTX_set_min_proto_version(ctx, o->min_version ? o->min_version : TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ossl_reason(why, sizeof why);
        rc = ws_error_set(err, WS_EINVAL, "TLS: cannot load %s / %s: %s", o->cert_file, o->key_file, why);
        goto out;
    }
    if (o->client_ca_file) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->client_ca_file);
        if (!names || SSL_CTX_load_verify_locations(ctx, o->client_ca_file, NULL) != 1) {
            if (names)
                sk_X509_NAME_pop_free(names, X509_NAME_free);
            ossl_reason(why, sizeof why);
            rc = ws_error_set(err, WS_EINVAL, "TLS: cannot load the client CAs %s: %s", o->client_ca_file,
                              why);
            goto out;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    if (o->alpn)
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, (void *)alpn_arg(o->alpn, o->alpn_required));
out:
    if (rc) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

int ws_tls_client_ctx_new(const ws_tls_client_opts *o, SSL_CTX **out, ws_error *err)
{
    *out = NULL;
    if (o && !!o->cert_file != !!o->key_file)
        return ws_error_set(err, WS_EINVAL, "TLS: a client certificate and its key go together");
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return ws_error_set(err, WS_EIO, "TLS: cannot create context");
    char why[200];
    int rc = 0;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (o && o->ca_file ? SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1
                        : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        ossl_reason(why, sizeof why);
        rc = ws_error_set(err, WS_EINVAL, "TLS: cannot load the CAs %s: %s",
                          o && o->ca_file ? o->ca_file : "(system)", why);
        goto out;
    }
    if (o && o->cert_file &&
        (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(ctx) != 1)) {
        ossl_reason(why, sizeof why);
        rc = ws_error_set(err, WS_EINVAL, "TLS: cannot load %s / %s: %s", o->cert_file, o->key_file, why);
        goto out;
    }
    /* SSL_CTX_set_alpn_protos returns 0 on success */
    if (o && o->alpn &&
        SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)o->alpn, (unsigned)strlen(o->alpn))) {
        rc = ws_error_set(err, WS_EIO, "TLS: cannot set ALPN");
        goto out;
    }
out:
    if (rc) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

int ws_tls_client_expect_host(SSL *ssl, const char *host, ws_error *err)
{
    unsigned char addr[16];
    bool ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    if (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1
           : SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1)
        return ws_error_set(err, WS_EINVAL, "TLS: cannot check the host name %s", host);
    return 0;
}

void ws_tls_describe_error(const SSL *ssl, int ssl_ret, char *out, size_t cap)
{
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    char why[200];
    ossl_reason(why, sizeof why);
    if (v != X509_V_OK) {
        snprintf(out, cap, "the certificate did not verify: %s", X509_verify_cert_error_string(v));
    } else if (ssl_ret == SSL_ERROR_SYSCALL || ssl_ret == SSL_ERROR_ZERO_RETURN) {
        snprintf(out, cap, "the peer closed the connection during TLS");
    } else if (strstr(why, "wrong version number") || strstr(why, "packet length too long") ||
               strstr(why, "http request")) {
        snprintf(out, cap, "%s (the peer does not speak TLS?)", why);
    } else {
        snprintf(out, cap, "%s", why);
    }
}
