/* The verdict of a fidelity report and its renderings (JSON members, readable table); see
 * fidelity.h. The verdict only uses measures a reply ranker does not optimise: stylometric
 * distance, the verifier, relevance, distinct replies, copies, echoes and the loss lift. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "style/fidelity.h"

#define Z95 1.645 /* one-sided 95% */

static const char *const set_keys[WS_FID_SETS] = {"clone", "same_person_random", "other_participant", "real"};

static void add(ws_fidelity_report *r, const char *name, const char *rule, bool measured, bool pass,
                double value, double bound)
{
    if (r->n_criteria < WS_FIDELITY_MAX_CRITERIA)
        r->criteria[r->n_criteria++] =
            (ws_fidelity_criterion){name, rule, measured, measured && pass, value, bound};
}

void ws_fidelity_judge(ws_fidelity_report *r)
{
    const ws_fidelity_set *c = &r->set[WS_FID_CLONE], *s = &r->set[WS_FID_SAME], *o = &r->set[WS_FID_OTHER],
                          *real = &r->set[WS_FID_REAL];
    r->n_criteria = 0;
    add(r, "enough_examples", "evaluated >= 10", true, r->n_evaluated >= 10, (double)r->n_evaluated, 10);
    double b = 0.5 * (s->style_distance + o->style_distance);
    add(r, "style_distance", "< midpoint of same-person and other-participant distances", true,
        c->style_distance < b, c->style_distance, b);
    b = 0.5 * (s->verifier + o->verifier);
    add(r, "verifier", "< midpoint of same-person and other-participant verifier accuracies", true,
        c->verifier < b, c->verifier, b);
    add(r, "relevance_embedding", "paired t of (clone - random same-person reply) context cosine >= 1.645",
        true, r->relevance_gain > 0 && r->relevance_t >= Z95, r->relevance_t, Z95);
    b = r->have_rank
            ? r->rank_chance + Z95 * sqrt(r->rank_chance * (1 - r->rank_chance) / (double)r->n_ranked)
            : 0;
    add(r, "relevance_ranking", "R10@1 (mean log-prob) > chance + 1.645 standard errors", r->have_rank,
        r->rank_model.by_mean_logprob > b, r->rank_model.by_mean_logprob, b);
    b = 0.5 * real->distinct;
    add(r, "distinct_replies", ">= half the real replies' share of distinct texts", true, c->distinct >= b,
        c->distinct, b);
    b = real->copy_rate + 0.5 * (1 - real->copy_rate);
    add(r, "copy_rate", "<= real copy rate + half of the rest (at least half the new text the person writes)",
        true, c->copy_rate <= b, c->copy_rate, b);
    b = real->echo_rate + 0.05;
    add(r, "echo_rate", "<= real echo rate + 0.05", true, c->echo_rate <= b, c->echo_rate, b);
    add(r, "loss_lift", "> 0 nats per byte over the base", r->have_loss, r->loss_lift > 0, r->loss_lift, 0);
    r->pass = true;
    bool rel = true;
    for (size_t i = 0; i < r->n_criteria; i++) {
        const ws_fidelity_criterion *k = &r->criteria[i];
        if (k->measured && !k->pass)
            r->pass = false;
        if (k->measured && !k->pass && !strncmp(k->name, "relevance", 9))
            rel = false;
    }
    r->beats_other = c->style_distance < o->style_distance && c->verifier < o->verifier;
    r->beats_same = rel;
}

static void num(ws_buf *o, const char *key, double v, bool comma)
{
    if (comma)
        ws_buf_putc(o, ',');
    ws_json_put_cstr(o, key);
    ws_buf_puts(o, ": ");
    ws_json_put_num(o, isfinite(v) ? round(v * 10000) / 10000 : 0);
}

static void put_bool(ws_buf *o, const char *key, bool v)
{
    ws_buf_puts(o, ", ");
    ws_json_put_cstr(o, key);
    ws_buf_puts(o, v ? ": true" : ": false");
}

static void put_set(ws_buf *o, const ws_fidelity_set *s)
{
    ws_buf_putc(o, '{');
    num(o, "style_distance", s->style_distance, false);
    ws_buf_puts(o, ", \"style_parts\": {");
    num(o, "function_words", s->parts.function_words, false);
    num(o, "char_ngrams", s->parts.char_ngrams, true);
    num(o, "length", s->parts.length, true);
    num(o, "bursts", s->parts.bursts, true);
    num(o, "vocabulary", s->parts.vocabulary, true);
    num(o, "language", s->parts.language, true);
    ws_buf_putc(o, '}');
    num(o, "verifier_accuracy", s->verifier, true);
    num(o, "relevance", s->relevance, true);
    num(o, "distinct", s->distinct, true);
    num(o, "copy_rate", s->copy_rate, true);
    num(o, "echo_rate", s->echo_rate, true);
    num(o, "repetition", s->repetition, true);
    num(o, "empty_rate", s->empty_rate, true);
    num(o, "mean_chars", s->mean_chars, true);
    num(o, "length_ratio", s->length_ratio, true);
    num(o, "attribution", s->attribution, true);
    num(o, "typicality", s->typicality, true);
    ws_buf_putc(o, '}');
}

static void put_relevance(ws_buf *o, const ws_fidelity_report *r)
{
    ws_buf_puts(o, ",\n  \"relevance\": {\"embedder\": ");
    ws_json_put_cstr(o, r->embedder);
    ws_buf_puts(o, ", \"context_cosine\": {");
    for (int s = 0; s < WS_FID_SETS; s++)
        num(o, set_keys[s], r->set[s].relevance, s > 0);
    ws_buf_puts(o, "}, \"clone_minus_random_reply\": {");
    num(o, "mean", r->relevance_gain, false);
    num(o, "t", r->relevance_t, true);
    ws_buf_puts(o, "}, \"ranking\": ");
    if (!r->have_rank) {
        ws_buf_puts(o, "null}");
        return;
    }
    ws_buf_putc(o, '{');
    num(o, "examples", (double)r->n_ranked, false);
    num(o, "candidates", (double)r->n_rank_candidates, true);
    num(o, "pool", (double)r->n_rank_pool, true);
    num(o, "chance", r->rank_chance, true);
    ws_buf_puts(o, ", \"model\": {");
    num(o, "r10_at_1_mean_logprob", r->rank_model.by_mean_logprob, false);
    num(o, "r10_at_1_total_logprob", r->rank_model.by_total_logprob, true);
    ws_buf_puts(o, "}, \"base\": ");
    if (r->have_base_rank) {
        ws_buf_putc(o, '{');
        num(o, "r10_at_1_mean_logprob", r->rank_base.by_mean_logprob, false);
        num(o, "r10_at_1_total_logprob", r->rank_base.by_total_logprob, true);
        ws_buf_putc(o, '}');
    } else {
        ws_buf_puts(o, "null");
    }
    ws_buf_puts(o, "}}");
}

static void put_verdict(ws_buf *o, const ws_fidelity_report *r)
{
    ws_buf_puts(o, ",\n  \"verdict\": {\"pass\": ");
    ws_buf_puts(o, r->pass ? "true" : "false");
    ws_buf_puts(o, ", \"criteria\": [");
    for (size_t i = 0; i < r->n_criteria; i++) {
        const ws_fidelity_criterion *k = &r->criteria[i];
        ws_buf_puts(o, i ? ",\n    {\"name\": " : "\n    {\"name\": ");
        ws_json_put_cstr(o, k->name);
        put_bool(o, "measured", k->measured);
        put_bool(o, "pass", k->pass);
        num(o, "value", k->value, true);
        num(o, "bound", k->bound, true);
        ws_buf_puts(o, ", \"rule\": ");
        ws_json_put_cstr(o, k->rule);
        ws_buf_putc(o, '}');
    }
    ws_buf_puts(o, "]},\n  \"beats\": {\"other_participant\": ");
    ws_buf_puts(o, r->beats_other ? "true" : "false");
    put_bool(o, "same_person_random", r->beats_same);
    ws_buf_puts(o, "},\n  \"beats_baselines\": ");
    ws_buf_puts(o, r->pass ? "true" : "false");
}

void ws_fidelity_json_members(const ws_fidelity_report *r, ws_buf *o)
{
    ws_buf_puts(o, "\"heldout_examples\": ");
    ws_json_put_num(o, (double)r->n_heldout);
    num(o, "evaluated", (double)r->n_evaluated, true);
    ws_buf_puts(o, ",\n  \"baselines\": {\"same_person_random\": \"another held-out reply of the persona\", "
                   "\"other_participant\": ");
    ws_json_put_cstr(o, r->other_from_heldout
                            ? "a held-out-period turn of another participant"
                            : "one of the latest training-period turns of another participant");
    num(o, "attribution_participants", (double)r->n_candidates, true);
    ws_buf_puts(o, "},\n  \"loss\": ");
    if (r->have_loss) {
        ws_buf_putc(o, '{');
        num(o, "model_nats_per_byte", r->model_nll_byte, false);
        num(o, "base_nats_per_byte", r->base_nll_byte, true);
        ws_buf_puts(o, ", \"base\": ");
        ws_json_put_cstr(o, r->base_name ? r->base_name : "base");
        num(o, "lift", r->loss_lift, true);
        num(o, "model_nats_per_token", r->model_nll_token, true);
        num(o, "examples", (double)r->n_scored, true);
        ws_buf_putc(o, '}');
    } else {
        ws_buf_puts(o, "null");
    }
    ws_buf_puts(o, ",\n  \"sets\": {");
    for (int s = 0; s < WS_FID_SETS; s++) {
        ws_buf_printf(o, "%s\n    \"%s\": ", s ? "," : "", set_keys[s]);
        put_set(o, &r->set[s]);
    }
    ws_buf_puts(o, "\n  }");
    put_relevance(o, r);
    put_verdict(o, r);
}

void ws_fidelity_to_json(const ws_fidelity_report *r, ws_buf *out)
{
    ws_buf_puts(out, "{\n  ");
    ws_fidelity_json_members(r, out);
    ws_buf_puts(out, "\n}\n");
}

/* The table's rows: the style distance, then its parts (ws_stylo_distance's weights), then the
 * other measures; each a double of ws_fidelity_set at off. */
#define ROW(label, field)                                                                                    \
    {                                                                                                        \
        label, offsetof(ws_fidelity_set, field)                                                              \
    }
static const struct {
    const char *label;
    size_t off;
} rows[] = {
    ROW("style distance (lower)", style_distance),    ROW("  function words (x0.25)", parts.function_words),
    ROW("  char n-grams (x0.25)", parts.char_ngrams), ROW("  message length (x0.15)", parts.length),
    ROW("  bubbles a turn (x0.10)", parts.bursts),    ROW("  vocabulary (x0.15)", parts.vocabulary),
    ROW("  language (x0.10)", parts.language),        ROW("verifier acc. (0.5 ideal)", verifier),
    ROW("context cosine (relevance)", relevance),     ROW("distinct replies", distinct),
    ROW("copies of training replies", copy_rate),     ROW("echoes the message", echo_rate),
    ROW("length / real length", length_ratio),        ROW("attributed to them (info)", attribution),
    ROW("style typicality (info)", typicality),
};
#undef ROW

static double row_value(size_t row, const ws_fidelity_set *s)
{
    double v;
    memcpy(&v, (const char *)s + rows[row].off, sizeof v);
    return v;
}

static void summary_rank(const ws_fidelity_report *r, ws_buf *b)
{
    if (!r->have_rank) {
        ws_buf_puts(b, "  R10@1: not measured (no scorer)\n");
        return;
    }
    ws_buf_printf(b,
                  "  R10@1 on %zu examples (true reply among %zu, expected over draws from %zu of theirs, "
                  "chance %.3f): model %.3f by mean log-prob, %.3f by total",
                  r->n_ranked, r->n_rank_candidates, r->n_rank_pool, r->rank_chance,
                  r->rank_model.by_mean_logprob, r->rank_model.by_total_logprob);
    if (r->have_base_rank)
        ws_buf_printf(b, "; %s %.3f / %.3f", r->base_name, r->rank_base.by_mean_logprob,
                      r->rank_base.by_total_logprob);
    ws_buf_putc(b, '\n');
}

void ws_fidelity_summary(const ws_fidelity_report *r, ws_buf *b)
{
    ws_buf_printf(b, "  %zu held-out replies evaluated (of %zu); baselines from the held-out period%s\n",
                  r->n_evaluated, r->n_heldout,
                  r->other_from_heldout ? "" : " (other person: latest training turns)");
    if (r->have_loss)
        ws_buf_printf(b, "  loss: %.3f nats/byte vs %.3f for the %s (lift %+.3f)\n", r->model_nll_byte,
                      r->base_nll_byte, r->base_name, r->loss_lift);
    ws_buf_printf(b, "  %-28s %8s %12s %13s %8s\n", "", "clone", "same person", "other person", "real");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        ws_buf_printf(b, "  %-28s %8.3f %12.3f %13.3f %8.3f\n", rows[i].label,
                      row_value(i, &r->set[WS_FID_CLONE]), row_value(i, &r->set[WS_FID_SAME]),
                      row_value(i, &r->set[WS_FID_OTHER]), row_value(i, &r->set[WS_FID_REAL]));
    ws_buf_printf(b, "  relevance gain over a random reply of theirs: %+.4f (paired t %.2f, %s)\n",
                  r->relevance_gain, r->relevance_t, r->embedder);
    summary_rank(r, b);
    ws_buf_printf(b, "  verdict: %s\n", r->pass ? "PASS (a clone: in their style and on topic)" : "FAIL");
    for (size_t i = 0; i < r->n_criteria; i++) {
        const ws_fidelity_criterion *k = &r->criteria[i];
        ws_buf_printf(b, "    [%s] %-20s %8.3f  bound %.3f  (%s)\n",
                      !k->measured ? " - "
                      : k->pass    ? "ok "
                                   : "NO ",
                      k->name, k->value, k->bound, k->rule);
    }
}
