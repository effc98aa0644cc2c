/* Style-model throughput: parse a synthetic export, build training pairs (with masking) and
 * the persona's profile; prints messages per second for each stage and the masking cost
 * against the same run without masking.
 * Usage: build/bench_style_pairs [MESSAGES]   (default 200000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/synth.h"
#include "core/buf.h"
#include "core/progress.h"
#include "style/pairs.h"
#include "style/profile.h"

static double build(const ws_buf *text, const char *persona, bool mask, ws_pairs **out)
{
    ws_chat_reader *r = NULL;
    ws_error err = {0};
    if (ws_chat_open_memory(text->data, text->len, NULL, &r, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    double t0 = ws_now_s();
    int rc = ws_pairs_from_chat(r, persona, &(ws_pairs_options){.no_mask = !mask}, out, &err);
    double dt = ws_now_s() - t0;
    ws_chat_close(r);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    return dt;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    ws_chat_synth s;
    ws_chat_synth_init(&s, 1);
    ws_buf text = WS_BUF_INIT;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        ws_chat_synth_next(&s, &text, &sum);
    /* persona: the first author */
    ws_chat_reader *r = NULL;
    ws_message m;
    char persona[128] = "";
    double t0 = ws_now_s();
    ws_chat_open_memory(text.data, text.len, NULL, &r, NULL);
    size_t parsed = 0;
    while (ws_chat_next(r, &m, NULL) == 1) {
        if (!persona[0] && m.author)
            snprintf(persona, sizeof persona, "%s", m.author);
        parsed++;
    }
    ws_chat_close(r);
    double t_parse = ws_now_s() - t0;
    printf("style pipeline on %zu synthetic messages (%.1f MB), persona \"%s\"\n", parsed, text.len / 1e6,
           persona);
    printf("parse only:            %8.0f messages/s\n", parsed / t_parse);
    ws_pairs *p = NULL, *q = NULL;
    double t_plain = build(&text, persona, false, &q);
    double t_mask = build(&text, persona, true, &p);
    printf("parse + pairs:         %8.0f messages/s  (%zu turns, %zu examples, %zu held out)\n",
           parsed / t_plain, p->n_turns, p->n_examples, p->n_heldout);
    printf("parse + pairs + mask:  %8.0f messages/s  (%llu masked; masking adds %.0f%%)\n", parsed / t_mask,
           (unsigned long long)p->n_masked, 100 * (t_mask / t_plain - 1));
    t0 = ws_now_s();
    ws_profile *pf = ws_profile_from_pairs(p, WS_PROFILE_ALL);
    double t_prof = ws_now_s() - t0;
    printf("profile:               %8.0f turns/s     (%zu turns, %zu signature phrases)\n",
           p->n_turns / t_prof, p->n_turns, pf->n_phrases);
    ws_profile_free(pf);
    ws_pairs_free(p);
    ws_pairs_free(q);
    ws_buf_free(&text);
    return 0;
}
