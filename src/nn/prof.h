/* Per-op time accounting of the engine, off unless enabled (ws_prof_enable, or the environment
 * variable WS_NN_PROFILE=1 (wall time) or =cpu (the calling thread's CPU time: with one thread,
 * the work of each op whatever else the machine runs) read by bench/nn_bench.c): each op adds
 * the time it took to its category, and ws_prof_report prints the table. Meant for one training or inference
 * thread at a time (the totals are plain doubles); an op called from inside another op's
 * timing is counted in both, so categories are chosen not to nest. */
#ifndef WS_NN_PROF_H
#define WS_NN_PROF_H

#include <stdbool.h>
#include <stdio.h>

enum {
    WS_PROF_MATMUL_FWD,
    WS_PROF_MATMUL_DX,
    WS_PROF_MATMUL_DW,
    WS_PROF_HEAD_FWD,
    WS_PROF_HEAD_DX,
    WS_PROF_HEAD_DW,
    WS_PROF_ATTN_FWD,
    WS_PROF_ATTN_BWD,
    WS_PROF_RMSNORM,
    WS_PROF_ROPE,
    WS_PROF_SWIGLU,
    WS_PROF_CE_FWD,
    WS_PROF_CE_BWD,
    WS_PROF_LORA,
    WS_PROF_EMBED,
    WS_PROF_COPY,
    WS_PROF_OPTIM,
    WS_PROF_N
};

extern bool ws_prof_on;

/* on: start counting; cpu: count the calling thread's CPU time instead of wall time */
void ws_prof_enable(bool on, bool cpu);
void ws_prof_reset(void);
double ws_prof_now(void);
void ws_prof_add(int cat, double seconds);
/* Prints each category's time divided by `per` (e.g. the number of steps) and its share. */
void ws_prof_report(FILE *f, double per);

#define WS_PROF_BEGIN() double ws_prof_t0_ = ws_prof_on ? ws_prof_now() : 0.0
#define WS_PROF_END(cat)                                                                                     \
    do {                                                                                                     \
        if (ws_prof_on)                                                                                      \
            ws_prof_add((cat), ws_prof_now() - ws_prof_t0_);                                                 \
    } while (0)
/* Times one statement. */
#define WS_PROF(cat, stmt)                                                                                   \
    do {                                                                                                     \
        WS_PROF_BEGIN();                                                                                     \
        stmt;                                                                                                \
        WS_PROF_END(cat);                                                                                    \
    } while (0)

#endif
