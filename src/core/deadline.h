/* The calling thread's deadline for the work it does on behalf of a request: the API sets it
 * from the request's own time budget around an operation, and outgoing calls made below it
 * (the AI's gRPC client: src/ai/ai_grpc.c) end by then, whatever their own budget, so a
 * caller's deadline flows into the calls its request makes (as gRPC's grpc-timeout).
 *
 * Thread-safety: per thread; no allocation. */
#ifndef WS_CORE_DEADLINE_H
#define WS_CORE_DEADLINE_H

/* The thread's deadline as ws_now_s() time; 0 = none. */
double ws_deadline_get(void);
/* Sets the thread's deadline (0 = none) and returns the previous one, to restore after. */
double ws_deadline_set(double deadline);
/* The earlier of the thread's deadline and d (d when the thread has none). */
double ws_deadline_bound(double d);

#endif
