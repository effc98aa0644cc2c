/* TLS contexts (OpenSSL) for every server and client of the project: the server's certificate
 * and key with ALPN and optional client certificates (mTLS), the client's trust anchors, host
 * name checks and optional client certificate, and readable messages for TLS failures
 * (a certificate that does not verify, a peer that does not speak TLS).
 *
 * Ownership: a context made here belongs to the caller (SSL_CTX_free; OpenSSL counts
 * references, so a holder may SSL_CTX_up_ref it). The ALPN lists are borrowed and must be
 * static (string literals). */
#ifndef WS_CORE_TLS_H
#define WS_CORE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "core/error.h"

/* ALPN lists in wire format (a length byte before each name), NUL-terminated. */
#define WS_TLS_ALPN_H2 "\x02h2"
#define WS_TLS_ALPN_H2_HTTP11 "\x02h2\x08http/1.1"

typedef struct ws_tls_server_opts {
    const char *cert_file;      /* PEM certificate chain */
    const char *key_file;       /* PEM private key */
    const char *client_ca_file; /* NULL: no client certificate asked; else one signed by these
                                 * CAs is required (mTLS) */
    int min_version;            /* TLS1_2_VERSION or TLS1_3_VERSION; 0 = TLS 1.2 */
    const char *alpn;           /* the server's preference order; NULL = no ALPN */
    bool alpn_required;         /* a client that offers ALPN but none of ours is refused (a
                                 * fatal no_application_protocol alert); else served without */
} ws_tls_server_opts;

/* Errors: WS_EINVAL (a file that cannot be read, a key that does not match the certificate),
 * WS_EIO. The message names the files, never their contents. */
int ws_tls_server_ctx_new(const ws_tls_server_opts *o, SSL_CTX **out, ws_error *err);

typedef struct ws_tls_client_opts {
    const char *ca_file;   /* trusted CAs (PEM); NULL = the system's trust store */
    const char *cert_file; /* client certificate chain for mTLS; NULL = none */
    const char *key_file;  /* its key (required with cert_file) */
    const char *alpn;      /* offered protocols; NULL = no ALPN */
} ws_tls_client_opts;

/* A client context that verifies the server's certificate (TLS 1.2 or later). Host names
 * are checked per connection: ws_tls_client_expect_host. Errors: WS_EINVAL, WS_EIO. */
int ws_tls_client_ctx_new(const ws_tls_client_opts *o, SSL_CTX **out, ws_error *err);

/* Makes ssl check that the server's certificate is for host (a DNS name, or an IPv4/IPv6
 * literal checked against the IP addresses of the certificate) and sends it as SNI when it is
 * a name. Errors: WS_EINVAL. */
int ws_tls_client_expect_host(SSL *ssl, const char *host, ws_error *err);

/* A short description of why a TLS operation on ssl failed (ssl_ret: SSL_get_error's result
 * for it): the certificate check's result when that failed ("certificate has expired",
 * "hostname mismatch", ...), else OpenSSL's reason ("wrong version number", "tlsv13 alert
 * certificate required"), with a hint when the peer seems to speak plaintext. Clears
 * OpenSSL's error queue of the thread. Never quotes key material. */
void ws_tls_describe_error(const SSL *ssl, int ssl_ret, char *out, size_t cap);

#endif
