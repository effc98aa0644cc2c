/* Fault injection for tests (the SQLite way): a ws_fault given to a store or blobs handle
 * (ws_store_config.fault, ws_blobs_fault_wrap) makes its I/O calls fail on purpose — the Nth
 * call from when it was armed, or each call with a probability from a seed — so tests can check
 * that every failure ends in a clean error and leaves nothing half-written. Production code never
 * arms one (a NULL or disarmed fault costs one atomic load per call). Thread-safe. */
#ifndef WS_CORE_FAULT_H
#define WS_CORE_FAULT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct ws_fault {
    _Atomic uint64_t nth;      /* fail the nth call after arming (1-based); 0 = not by count */
    _Atomic uint64_t rate_ppm; /* else fail each call with this probability (parts per million) */
    _Atomic uint64_t seed;     /* of the random choice: the same seed fails the same calls */
    _Atomic uint64_t calls;    /* calls seen since arming */
    _Atomic uint64_t injected; /* failures injected since arming */
} ws_fault;

#define WS_FAULT_INIT                                                                                        \
    {                                                                                                        \
        0                                                                                                    \
    }

/* Arms f: fail call number nth (1-based; 0 = none by count), or each call with probability
 * rate_ppm / 1e6 chosen from seed; resets the counters. */
void ws_fault_arm(ws_fault *f, uint64_t nth, uint64_t rate_ppm, uint64_t seed);
void ws_fault_disarm(ws_fault *f);
/* Counts one call; true when it is to fail. f may be NULL (never fails). */
bool ws_fault_hit(ws_fault *f);

#endif
