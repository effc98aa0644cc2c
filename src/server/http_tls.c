/* TLS for the HTTP server: OpenSSL over memory BIOs, ALPN (h2 or http/1.1) (see http_int.h). */
#include "server/http_int.h"

void ws__http_tls_collect(conn *c)
{
    BIO *wbio = SSL_get_wbio(c->ssl);
    char tmp[16384];
    int n;
    while ((n = BIO_read(wbio, tmp, sizeof tmp)) > 0)
        ws_buf_append(&c->wbuf, tmp, (size_t)n);
}

/* Decrypts what the TLS engine holds into the input buffer. Returns false on a fatal error. */
bool ws__http_tls_pull(conn *c)
{
    for (;;) {
        if (!ws__http_grow_input(c))
            break;
        int n = SSL_read(c->ssl, c->buf + c->len, (int)(c->cap - c->len));
        if (n > 0) {
            c->len += (size_t)n;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        ws__http_tls_collect(c);
        ws__http_conn_flush(c);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        return false;
    }
    ws__http_tls_collect(c);
    ws__http_conn_flush(c);
    return true;
}

/* ALPN: h2 when the client offers it, else http/1.1. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg)
{
    static const unsigned char prefs[] = "\x02h2\x08http/1.1";
    unsigned char *o = NULL;
    if (SSL_select_next_proto(&o, outlen, prefs, sizeof prefs - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

int ws__http_tls_init(ws_http_server *s, ws_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return ws_error_set(err, WS_EIO, "TLS: cannot create context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, s->cfg.tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, s->cfg.tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        SSL_CTX_free(ctx);
        return ws_error_set(err, WS_EINVAL, "TLS: cannot load %s / %s: %s", s->cfg.tls_cert, s->cfg.tls_key,
                            buf);
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    s->ssl_ctx = ctx;
    return 0;
}

