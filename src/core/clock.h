/* The project's clock: monotonic time for durations, deadlines and rates (wall-clock
 * timestamps for rows and logs stay with their owners: ws_store_now_ms, the log). Thread-safe. */
#ifndef WS_CORE_CLOCK_H
#define WS_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

double ws_now_s(void);        /* monotonic seconds */
int64_t ws_now_ms_mono(void); /* monotonic milliseconds */
/* The wall-clock time ms milliseconds from now, for pthread_cond_timedwait (whose condition
 * variables wait on CLOCK_REALTIME). */
struct timespec ws_cond_deadline(int64_t ms);

#endif
