/* libpq, loaded on first use (core/lazylib.h): only the PostgreSQL store needs it. Call
 * ws__pq_load before the first ws__pq.PQ...(); the functions keep libpq's own contracts. */
#ifndef WS_STORE_PQ_LIB_H
#define WS_STORE_PQ_LIB_H

#include <libpq-fe.h>

#include "core/lazylib.h"

/* an X-macro list, kept as written (clang-format breaks it differently on each pass) */
/* clang-format off */
#define WS_PQ_FUNCTIONS(X)                                                                     \
    X(PQconnectdbParams) X(PQstatus) X(PQreset) X(PQfinish) X(PQerrorMessage)                  \
    X(PQtransactionStatus) X(PQexec) X(PQexecParams) X(PQresultStatus) X(PQresultErrorMessage)  \
    X(PQresultErrorField) X(PQntuples) X(PQnfields) X(PQgetvalue) X(PQgetlength) X(PQgetisnull) \
    X(PQclear)
/* clang-format on */

typedef struct ws__pq_api {
    WS_PQ_FUNCTIONS(WS_LAZYLIB_SLOT)
} ws__pq_api;

extern ws__pq_api ws__pq; /* filled by ws__pq_load */

/* 0 once libpq is loaded; WS_EUNSUPPORTED with a message naming the package otherwise. */
int ws__pq_load(ws_error *err);

#endif
