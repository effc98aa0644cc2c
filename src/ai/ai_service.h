/* The gRPC AI service (`whatstyle ai`, docs/ai-service.md): whatstyle.ai.v1.AiService over any
 * ws_ai implementation (the in-process engine with its LRU model cache), plus the standard
 * grpc.health.v1.Health and grpc.reflection.v1.ServerReflection services, on the gRPC
 * transport of src/grpc/.
 *
 * Each AiService call runs in a server span continuing the caller's `traceparent` metadata.
 *
 * Ownership: the ws_ai is borrowed and must outlive the service; the service belongs to the
 * caller (ws_ai_service_free, which drains and waits). */
#ifndef WS_AI_AI_SERVICE_H
#define WS_AI_AI_SERVICE_H

#include <stddef.h>

#include "ai/ai.h"
#include "auth/jwt.h"
#include "core/error.h"

typedef struct ws_ai_service ws_ai_service;

typedef struct ws_ai_service_config {
    const char *host;           /* NULL = 127.0.0.1 */
    int port;                   /* 0 = any free port */
    size_t max_message;         /* request and response cap; 0 = 4 MiB */
    double keepalive_s;         /* 0 = 60 */
    double keepalive_timeout_s; /* 0 = 20 */
    double drain_grace_s;       /* 0 = 10 */
    int workers;                /* replies computed at once (more wait their turn); 0 = cores */
    /* The gateway's public key (borrowed, outlives the service): every AiService call must carry
     * `authorization: Bearer <jwt>` signed by it (ai_grpc.h: iss/aud) — UNAUTHENTICATED without
     * a valid one, PERMISSION_DENIED when its sub is not the request's user_id. NULL = calls are
     * not authenticated. Health and reflection stay open. */
    const ws_jwt_key *gateway_key;
    /* TLS (docs/ai-service.md): the certificate chain and key (PEM) — NULL = h2c; with a client
     * CA file, a client certificate signed by it is required (mTLS). TLS 1.2+, ALPN h2. */
    const char *tls_cert, *tls_key, *tls_client_ca;
} ws_ai_service_config;

/* Starts serving. Errors: WS_EIO (cannot listen), WS_EINVAL (also: TLS files unusable). */
int ws_ai_service_start(ws_ai *ai, const ws_ai_service_config *cfg, ws_ai_service **out, ws_error *err);
int ws_ai_service_port(const ws_ai_service *s);
/* Health turns NOT_SERVING, GOAWAY is sent, calls in flight finish; returns at once. */
void ws_ai_service_drain(ws_ai_service *s);
void ws_ai_service_free(ws_ai_service *s); /* NULL is a no-op */

#endif
