/* The AI interface over gRPC: `whatstyle serve --ai grpc://h1:p1,h2:p2` (grpcs:// for TLS)
 * sends replies and style profiles to `whatstyle ai` nodes (docs/ai-service.md). A user's calls go to one
 * node by consistent hashing of the user id (their model stays warm there); on UNAVAILABLE or a dead
 * connection the next node on the ring takes over. Each node has a circuit breaker: after
 * WS_AI_GRPC_BREAKER_FAILS failures in a row it is skipped for a cool-down, then one caller
 * probes it (grpc.health.v1.Health/Check) before it is used again. Calls are idempotent and are
 * retried with jittered exponential backoff within the call's time budget — opts->budget_s, or
 * the request's own deadline (core/deadline.h) when that ends sooner; each attempt carries what
 * is left as grpc-timeout. When the budget runs out generate() fails with WS_ETIMEDOUT (the
 * API answers 504), when no node can be reached with WS_EIO (503 with Retry-After) — it never
 * waits past the budget. A timeout under the caller's own budget does not count against the
 * node's breaker.
 *
 * Training stays in the gateway (the wrapped local engine trains and stores the model in the
 * shared blobs); when it completes, and on reload() and forget(), every node is told to
 * ReloadUserModel.
 *
 * Every call also carries the caller's W3C `traceparent` (core/trace.h) when a span is current.
 *
 * Ownership: ws_ai_grpc_new takes local (freed with the returned ws_ai); thread-safe. */
#ifndef WS_AI_AI_GRPC_H
#define WS_AI_AI_GRPC_H

#include "ai/ai.h"
#include "auth/jwt.h"

/* The service-to-service token every call carries as `authorization: Bearer <jwt>` (signed with
 * opts->sign_key): sub = the user id, role "user", iss/aud these, valid WS_AI_TOKEN_TTL_S. */
#define WS_AI_TOKEN_ISS "whatstyle-gateway"
#define WS_AI_TOKEN_AUD "whatstyle-ai"
#define WS_AI_TOKEN_ROLE "user"
#define WS_AI_TOKEN_TTL_S 60

#define WS_AI_GRPC_BREAKER_FAILS 3

typedef struct ws_ai_grpc_opts {
    double budget_s;            /* time budget of one generate/profile call; 0 = 5 s */
    double breaker_cooldown_s;  /* 0 = 2 s */
    const ws_jwt_key *sign_key; /* borrowed, outlives the ws_ai; NULL = calls carry no token */
    /* grpcs:// only: the CAs that sign the nodes' certificates (PEM; NULL = the system's), and
     * the gateway's client certificate and key for nodes that require one (mTLS). The nodes'
     * certificates must name the host as written in the spec (DNS name or IP address). */
    const char *tls_ca, *tls_cert, *tls_key;
} ws_ai_grpc_opts;

/* spec: "grpc://host:port[,host:port...]" or "grpcs://..." for TLS (IPv6 as [addr]:port).
 * Errors: WS_EINVAL (bad spec, TLS files unusable, TLS options without grpcs://). */
int ws_ai_grpc_new(const char *spec, ws_ai *local, const ws_ai_grpc_opts *opts, ws_ai **out, ws_error *err);

#endif
