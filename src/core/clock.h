/* The project's clock: monotonic time for durations, deadlines and rates (wall-clock
 * timestamps for rows and logs stay with their owners: ws_store_now_ms, the log). Thread-safe. */
#ifndef WS_CORE_CLOCK_H
#define WS_CORE_CLOCK_H

#include <stdint.h>

double ws_now_s(void);       /* monotonic seconds */
int64_t ws_now_ms_mono(void); /* monotonic milliseconds */

#endif
