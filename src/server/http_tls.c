/* TLS for the HTTP server: OpenSSL over memory BIOs, ALPN (h2 or http/1.1) (see http_int.h). */
#include "server/http_int.h"

#include "core/tls.h"

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

/* TLS 1.3; ALPN: h2 when the client offers it, else http/1.1 (core/tls.h). */
int ws__http_tls_init(ws_http_server *s, ws_error *err)
{
    ws_tls_server_opts o = {.cert_file = s->cfg.tls_cert,
                            .key_file = s->cfg.tls_key,
                            .min_version = TLS1_3_VERSION,
                            .alpn = WS_TLS_ALPN_H2_HTTP11};
    return ws_tls_server_ctx_new(&o, &s->ssl_ctx, err);
}
