/* The API gateway behind `whatstyle serve`: the HTTP server (http_server.h) with the REST
 * API under /v1, MCP at /mcp, /healthz, /readyz and /metrics, wired to the store, the
 * cache, the blobs (uploaded exports, encrypted at rest) and the AI, plus the background
 * training worker (embedded queue: jobs are claimed
 * from the store) and the asynchronous writer of conversation rows and analytics events.
 *
 * Ownership: the server borrows cfg->ai (the caller frees it after ws_server_free) and
 * copies every string of cfg. Thread-safety: ws_server_stop may be called from any thread
 * or a signal handler; the rest from the creating thread. */
#ifndef WS_SERVER_SERVER_H
#define WS_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ai/ai.h"

#define WS_SERVICE_KEY_FILE "service-ed25519.pem" /* the gateway's key for AI calls, under DATA */
#include "core/error.h"

typedef struct ws_server ws_server;

typedef struct ws_server_config {
    const char *data_dir;          /* required: uploaded exports (and the SQLite file) live here */
    const char *store_url;         /* NULL = SQLite in data_dir; "postgres://..." = PostgreSQL */
    const char *store_replica_url; /* optional PostgreSQL read replica */
    const char *cache_url;         /* NULL = "memory"; "redis://..." = Redis */
    const char *blobs_url;         /* NULL = WS_BLOBS_URL, else DATA/blobs (blobs/blobs.h) */
    const char *host;              /* default 0.0.0.0 */
    int port;                      /* 0 = any free port */
    int threads;                   /* event loops; 0 = one per core */
    const char *tls_cert;          /* both set: TLS 1.3 */
    const char *tls_key;
    int key_rate_limit;                   /* per key per minute when the key says 0; default 120 */
    int user_rate_limit;                  /* per user per minute over all their keys; default 600 */
    size_t max_export_bytes;              /* upload cap; default 64 MiB */
    size_t max_body_bytes;                /* other bodies; default 1 MiB */
    size_t max_head_bytes;                /* default 16 KiB */
    int store_connections;                /* store pool size; default 8 */
    int keepalive_timeout_ms;             /* 0 = http_server default */
    int head_timeout_ms;                  /* 0 = default */
    int drain_timeout_ms;                 /* 0 = default */
    const char *allowed_origins;          /* comma-separated Origins accepted at /mcp (besides localhost) */
    bool no_training;                     /* do not run the training worker in this process */
    bool allow_signup;                    /* POST /v1/signup creates users (dashboard; rate-limited) */
    size_t writer_queue_max;              /* conversation rows queued for the writer; default 50 000 */
    ws_ai *ai;                            /* borrowed; NULL = AI-backed calls answer 503 */
    const struct ws_jwt_key *service_key; /* borrowed: its public half is served as JWKS at
                                           * /.well-known/jwks.json; NULL = the server reads
                                           * (or makes) DATA/WS_SERVICE_KEY_FILE itself */
    /* WhatsApp channel (docs/whatsapp.md) */
    const char *whatsapp_app_secret;    /* NULL: the webhook answers 503 */
    const char *whatsapp_verify_token;  /* NULL: the verification handshake answers 403 */
    const char *whatsapp_graph_url;     /* default https://graph.facebook.com */
    const char *whatsapp_graph_version; /* default v21.0 */
    int whatsapp_number_rate;           /* messages/s per business number; default 80 */
    int whatsapp_recipient_gap_ms;      /* least time between two replies to one contact; default 6000 */
    /* Tests only (core/fault.h, borrowed): injected failures of the store's and the blobs'
     * calls; NULL = none. */
    struct ws_fault *store_fault;
    struct ws_fault *blobs_fault;
} ws_server_config;

/* Opens the store (migrating it), the cache, binds the port. Errors: WS_EINVAL (config),
 * WS_EIO (store/cache/port), with details in err. */
int ws_server_new(const ws_server_config *cfg, ws_server **out, ws_error *err);
int ws_server_port(const ws_server *s);
int ws_server_start(ws_server *s, ws_error *err);
/* Graceful shutdown: stop accepting, drain requests, stop the worker (an interrupted
 * training job goes back to the queue). Async-signal-safe, idempotent. */
void ws_server_stop(ws_server *s);
void ws_server_wait(ws_server *s);
void ws_server_free(ws_server *s); /* NULL is a no-op */

/* The gateway's side of the bus (bus_events.c, `serve --kafka`): a thread consuming
 * training-events in its own consumer group (each gateway sees every event; at start it
 * skips the events older than a minute): a finished job drops the user's cached replies and principal here
 * and asks the AI engine (the gRPC AI nodes, or the in-process engine) to reload the user's model. Events are
 * handled once per event id. The bus is borrowed and must be subscribed by no one else; stop before
 * ws_server_free. */
struct ws_bus;
typedef struct ws_srv_bus ws_srv_bus;
int ws_server_bus_start(ws_server *s, struct ws_bus *bus, const char *group, ws_srv_bus **out, ws_error *err);
/* Stops the thread (logging the events handled and the duplicates dropped). NULL: no-op. */
void ws_server_bus_stop(ws_srv_bus *b);

#endif
