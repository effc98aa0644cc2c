/* Per-op wall-time accounting (see prof.h). */
#include "nn/prof.h"

#include <time.h>

bool ws_prof_on;
static double totals[WS_PROF_N];
static long calls[WS_PROF_N];
static const char *names[WS_PROF_N] = {
    "matmul forward",         "matmul backward dX",  "matmul backward dW", "lm_head forward",
    "lm_head backward dX",    "lm_head backward dW", "attention forward",  "attention backward",
    "rmsnorm fwd+bwd",        "rope fwd+bwd",        "swiglu fwd+bwd",     "cross-entropy forward",
    "cross-entropy backward", "lora terms fwd+bwd",  "embedding fwd+bwd",  "copies and zeroing",
    "grad norm, clip, AdamW",
};

static clockid_t clock_id = CLOCK_MONOTONIC;

void ws_prof_enable(bool on, bool cpu)
{
    ws_prof_on = on;
    clock_id = cpu ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
}

void ws_prof_reset(void)
{
    for (int i = 0; i < WS_PROF_N; i++) {
        totals[i] = 0;
        calls[i] = 0;
    }
}

double ws_prof_now(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ws_prof_add(int cat, double seconds)
{
    totals[cat] += seconds;
    calls[cat]++;
}

void ws_prof_report(FILE *f, double per)
{
    double all = 0;
    for (int i = 0; i < WS_PROF_N; i++)
        all += totals[i];
    if (per <= 0)
        per = 1;
    fprintf(f, "%-26s %10s %7s %8s\n", "op", "s/step", "share", "calls");
    for (int i = 0; i < WS_PROF_N; i++)
        if (calls[i])
            fprintf(f, "%-26s %10.4f %6.1f%% %8.0f\n", names[i], totals[i] / per,
                    all > 0 ? 100 * totals[i] / all : 0, calls[i] / per);
    fprintf(f, "%-26s %10.4f\n", "total timed", all / per);
}
