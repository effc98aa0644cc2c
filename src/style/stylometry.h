/* General stylometry: how a set of texts is written, in features that tell apart people who
 * differ in any way, not only in the habits a generator gave them:
 *   - function-word profile (about 150 closed-class words of en, es, de, fr, it, pt, nl),
 *   - character 1-3-gram profile (case and punctuation kept, hashed into buckets),
 *   - message length (code points, log buckets) and burst structure (bubbles per turn: a turn's
 *     bubbles are joined by '\n', as in src/style/pairs.h),
 *   - vocabulary: type/token ratio and rare-word rate (share of words seen once), both over
 *     fixed windows of words so sets of different sizes compare, and mean word length,
 *   - language mix (function-word hits per language, letters outside the Latin script).
 * A set profile (ws_stylo_profile) compares with another by ws_stylo_distance; a per-text vector
 * (ws_stylo_vector) feeds ws_stylo_verifier, a cross-validated classifier of two sets of texts,
 * and ws_stylo_attributor, which tells which of several people wrote a text (Cosine Delta).
 *
 * Everything here is pure computation on caller-owned strings; the profile functions and the
 * verifier keep no state and are thread-safe; an attributor is used by one thread at a time
 * while it is fed, and read-only (any threads) once fitted. */
#ifndef WS_STYLE_STYLOMETRY_H
#define WS_STYLE_STYLOMETRY_H

#include <stddef.h>
#include <stdint.h>

#define WS_STYLO_FW 160    /* function-word slots (the list is shorter; the rest stay 0) */
#define WS_STYLO_NGRAM 256 /* hashed character n-gram buckets */
#define WS_STYLO_LEN 10    /* length buckets: 1, 2-3, 4-7, ..., >= 512 code points */
#define WS_STYLO_BURST 4   /* 1, 2, 3, >= 4 bubbles per turn */
#define WS_STYLO_LANG 8    /* en es de fr it pt nl, other script */
#define WS_STYLO_SCALARS 8
/* Dimensions of the per-text vector. */
#define WS_STYLO_DIM (WS_STYLO_FW + WS_STYLO_NGRAM + WS_STYLO_LANG + WS_STYLO_SCALARS)

/* Counts over a set of texts (a plain value; build with ws_stylo_profile_of). */
typedef struct ws_stylo_profile {
    size_t n_texts;
    double fw[WS_STYLO_FW + 1]; /* function-word counts; [WS_STYLO_FW] = other words */
    double ngram[WS_STYLO_NGRAM];
    double len[WS_STYLO_LEN];
    double burst[WS_STYLO_BURST];
    double lang[WS_STYLO_LANG];
    double ttr, rare_rate, word_len; /* window means (0 when there are no words) */
} ws_stylo_profile;

/* Components of the distance, each in [0,1] (0 = same), and their weighted mean. */
typedef struct ws_stylo_parts {
    double total;
    double function_words, char_ngrams, length, bursts, vocabulary, language;
} ws_stylo_parts;

/* The profile of n texts (n may be 0: an empty profile). */
void ws_stylo_profile_of(const char *const *texts, size_t n, ws_stylo_profile *out);
/* Jensen-Shannon divergences (base 2) of the distributions and scaled gaps of the scalars;
 * total = 0.25 fw + 0.25 n-grams + 0.15 length + 0.10 bursts + 0.15 vocabulary + 0.10 language.
 * parts may be NULL. Returns total. */
double ws_stylo_distance(const ws_stylo_profile *a, const ws_stylo_profile *b, ws_stylo_parts *parts);

/* The feature vector of one text (WS_STYLO_DIM floats): function-word rates, L2-normalised
 * n-gram counts, language shares, and scalars (log length, words, bubbles, type/token ratio,
 * word length, upper-case share, digit share, punctuation share), each roughly in [0,1]. */
void ws_stylo_vector(const char *text, float *out);

/* Share of texts a 5-fold cross-validated logistic regression on ws_stylo_vector features
 * (standardised) classifies right as belonging to a or to b: 0.5 = cannot tell them apart,
 * 1.0 = always can. Copies of one text on both sides (matched one to one) count half right
 * each without a model (one trained on the twin with the other label would always be wrong);
 * the rest are judged by 5-fold cross-validation. Deterministic for a seed.
 * Returns 0.5 when there are fewer than 4 texts or one side is empty. */
double ws_stylo_verifier(const char *const *a, size_t na, const char *const *b, size_t nb, uint64_t seed);

/* Authorship attribution by Cosine Delta (Burrows's Delta with the cosine, as in Evert et al.
 * 2017): every feature of ws_stylo_vector is z-scored by its mean and deviation over all the
 * texts fed, so length, case and punctuation weigh as much as the n-gram buckets, and a text is
 * given to the author whose mean z-scored text is nearest by cosine. Build: _new, _add each
 * known text, _fit once; then ws_stylo_attribute. Owned by the caller: free with
 * ws_stylo_attributor_free (NULL is a no-op). */
typedef struct ws_stylo_attributor ws_stylo_attributor;
ws_stylo_attributor *ws_stylo_attributor_new(size_t n_authors);
/* A known text of author (< n_authors; others are ignored). Not after _fit. */
void ws_stylo_attributor_add(ws_stylo_attributor *a, size_t author, const char *text);
/* Ends the feeding: an author with fewer than min_texts texts is no candidate, except keep
 * (pass SIZE_MAX for none), a candidate with at least one text. Returns the number of
 * candidates (0 when called again: it fits once). */
size_t ws_stylo_attributor_fit(ws_stylo_attributor *a, size_t min_texts, size_t keep);
/* The candidate nearest text (ties to the lower index); SIZE_MAX before _fit or without
 * candidates. */
size_t ws_stylo_attribute(const ws_stylo_attributor *a, const char *text);
void ws_stylo_attributor_free(ws_stylo_attributor *a);

#endif
