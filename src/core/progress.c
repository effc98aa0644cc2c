/* Terminal progress bar with rate and ETA. */
#include "core/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

void ws_progress_start(ws_progress *p, const char *label, uint64_t total)
{
    p->label = label;
    p->total = total;
    p->done = 0;
    p->start_s = ws_now_s();
    p->last_draw_s = 0;
    p->enabled = isatty(STDERR_FILENO);
}

static void draw(ws_progress *p, const char *extra, bool final)
{
    double elapsed = ws_now_s() - p->start_s;
    char bar[31];
    int width = 30, filled = 0;
    if (p->total)
        filled = (int)((double)p->done / (double)p->total * width + 0.5);
    if (filled > width)
        filled = width;
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%-10s [%s] ", p->label, bar);
    if (p->total)
        fprintf(stderr, "%5.1f%% ", 100.0 * (double)p->done / (double)p->total);
    if (!final && p->total && p->done && elapsed > 0.5) {
        double eta = elapsed * ((double)p->total / (double)p->done - 1.0);
        fprintf(stderr, "ETA %4.0fs ", eta);
    } else {
        fprintf(stderr, "%5.1fs ", elapsed);
    }
    if (extra)
        fprintf(stderr, "%s", extra);
    fprintf(stderr, "\033[K%s", final ? "\n" : "");
    fflush(stderr);
}

void ws_progress_update(ws_progress *p, uint64_t done, const char *extra)
{
    p->done = done;
    if (!p->enabled)
        return;
    double now = ws_now_s();
    if (now - p->last_draw_s < 0.1)
        return;
    p->last_draw_s = now;
    draw(p, extra, false);
}

void ws_progress_finish(ws_progress *p, const char *extra)
{
    if (p->total)
        p->done = p->total;
    if (p->enabled)
        draw(p, extra, true);
}
