/* A terminal progress bar for long work (parsing, training): redrawn in place on stderr
 * when it is a terminal, at most ~10 times a second; silent otherwise unless forced. */
#ifndef WS_CORE_PROGRESS_H
#define WS_CORE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h" /* ws_now_s */

typedef struct ws_progress {
    const char *label;
    uint64_t total; /* 0 = unknown */
    uint64_t done;
    double start_s, last_draw_s;
    bool enabled;
} ws_progress;

void ws_progress_start(ws_progress *p, const char *label, uint64_t total);
/* Sets done and redraws if due; extra (may be NULL) is shown after the bar (e.g. "loss 2.31"). */
void ws_progress_update(ws_progress *p, uint64_t done, const char *extra);
void ws_progress_finish(ws_progress *p, const char *extra);

#endif
