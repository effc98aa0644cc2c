/* Computing the style profile, rendering it as JSON and text, and the stylometric distance. */
#include "style/profile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/strset.h"
#include "style/text.h"

/* ---- a string-keyed counting table --------------------------------------------------------- */

typedef struct entry {
    const char *key;
    uint32_t len;
    uint32_t last_p, last_o; /* last message number that counted it (+1), persona / others */
    uint64_t p, o;           /* counts: persona, others */
} entry;

typedef struct table {
    entry *e;
    size_t cap, n, max;
    ws_arena *arena;
} table;

#define TABLE_MAX_NGRAMS (1u << 20)

static void table_init(table *t, size_t max, ws_arena *a)
{
    t->cap = 1024;
    t->e = ws_xcalloc(t->cap, sizeof *t->e);
    t->n = 0;
    t->max = max;
    t->arena = a;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = ws_hash_fnv1a(s, n);
    return h ^ (h >> 29);
}

/* Finds key; inserts it when add is set and the table is not full. NULL when absent. */
static entry *table_get(table *t, const char *key, size_t len, bool add)
{
    if (add && (t->n + 1) * 2 > t->cap) {
        table old = *t;
        t->cap *= 2;
        t->e = ws_xcalloc(t->cap, sizeof *t->e);
        for (size_t i = 0; i < old.cap; i++)
            if (old.e[i].key) {
                size_t j = hash_bytes(old.e[i].key, old.e[i].len) & (t->cap - 1);
                while (t->e[j].key)
                    j = (j + 1) & (t->cap - 1);
                t->e[j] = old.e[i];
            }
        free(old.e);
    }
    size_t j = hash_bytes(key, len) & (t->cap - 1);
    while (t->e[j].key) {
        if (t->e[j].len == len && memcmp(t->e[j].key, key, len) == 0)
            return &t->e[j];
        j = (j + 1) & (t->cap - 1);
    }
    if (!add || t->n >= t->max)
        return NULL;
    t->e[j].key = ws_arena_strndup(t->arena, key, len);
    t->e[j].len = (uint32_t)len;
    t->n++;
    return &t->e[j];
}

/* ---- languages ---------------------------------------------------------------------------- */

static const char *const lang_codes[] = {"en", "de", "es", "fr", "it", "pt", "nl", "tr", "id"};
enum { N_LANGS = 9 };
static const char *const stopwords[N_LANGS] = {
    "the and you to is it that of in i me my what are this was for have not but with just so be do "
    "can don't i'm it's yeah yes will your we they there about know like get u ur lol omg pls "
    "thanks see on way",
    "ich und du der die das ist nicht ein eine es mit auf zu den dem wir hast bin auch noch schon mal "
    "aber wie ja nein doch heute jetzt bist habe kann oder wenn sie mir dich",
    "que de el la y en los las es por para con pero muy yo tu está estoy qué bien hola sí también "
    "jaja vale ya cuando como eso una del lo te me",
    "je tu le les et est pas des un une qui pour dans avec mais oui non c'est ça suis moi toi bien "
    "merci on vous nous j'ai du au",
    "che non il di e un una per sono ma io ti mi ci è come anche cosa bene grazie sì allora perché "
    "ciao sei hai ho gli",
    "que não de o a e um uma para com eu você é tá muito mas sim obrigado tudo isso bem vc também "
    "kkk do da no na",
    "ik je het de een en niet is dat wat van maar ook met zijn jij wel nog hoe dan op voor heb ben "
    "er naar",
    "bir ve bu da de ne ben sen çok mi var yok için ama evet hayır tamam nasıl şey gibi değil "
    "mı misin",
    "aku kamu yang dan di ini itu tidak ga gak ada apa mau sudah udah juga dengan bisa lagi kok "
    "dong sih",
};

/* ---- the builder -------------------------------------------------------------------------- */

typedef struct dvec {
    double *v;
    size_t n, cap;
} dvec;

static void dvec_push(dvec *d, double x)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 256;
        d->v = ws_xrealloc(d->v, d->cap * sizeof *d->v);
    }
    d->v[d->n++] = x;
}

struct ws_profile_builder {
    ws_arena *arena;
    table ngrams, emoji, stop, shorts;
    dvec chars, words, resp;
    uint32_t msg_p, msg_o;
    uint64_t n_bubbles, emoji_total, emoji_msgs, emoji_only;
    uint64_t excl, quest, comma, multi_excl, multi_quest, ellipsis, ends_period, ends_bare;
    uint64_t cased_msgs, starts_upper, all_lower, all_caps, caps_words, upper_letters, cased_letters;
    uint64_t script_letters[WS_SCRIPT_COUNT];
    uint64_t lang_msgs[N_LANGS + WS_SCRIPT_COUNT + 2];
    uint64_t len_hist[WS_PROFILE_LEN_BUCKETS];
    uint64_t hours[24], weekdays[7], week_hours[7 * 24], timed;
    uint64_t word_hist[WS_PROFILE_WORD_BUCKETS], word_total;
    ws_buf w; /* scratch */
};

ws_profile_builder *ws_profile_builder_new(void)
{
    ws_profile_builder *b = ws_xcalloc(1, sizeof *b);
    b->arena = ws_arena_new(256 * 1024);
    table_init(&b->ngrams, TABLE_MAX_NGRAMS, b->arena);
    table_init(&b->emoji, 1u << 16, b->arena);
    table_init(&b->stop, 4096, b->arena);
    table_init(&b->shorts, 1u << 16, b->arena);
    for (int l = 0; l < N_LANGS; l++) {
        const char *s = stopwords[l];
        while (*s) {
            size_t n = strcspn(s, " ");
            if (n) {
                entry *e = table_get(&b->stop, s, n, true);
                e->p |= 1ull << l;
            }
            s += n;
            while (*s == ' ')
                s++;
        }
    }
    /* chat slang: a language hint, but no function word (it may well be a signature phrase) */
    static const char *const slang[] = {"u",   "ur", "lol", "omg", "pls",  "thanks", "jaja",
                                        "kkk", "vc", "ga",  "gak", "dong", "sih",    "kok"};
    for (size_t k = 0; k < sizeof slang / sizeof slang[0]; k++) {
        entry *e = table_get(&b->stop, slang[k], strlen(slang[k]), false);
        if (e)
            e->o = 1;
    }
    return b;
}

void ws_profile_builder_free(ws_profile_builder *b)
{
    if (!b)
        return;
    free(b->ngrams.e);
    free(b->emoji.e);
    free(b->stop.e);
    free(b->shorts.e);
    free(b->chars.v);
    free(b->words.v);
    free(b->resp.v);
    ws_buf_free(&b->w);
    ws_arena_free(b->arena);
    free(b);
}

/* Splits text into lowercased words (letters/digits with inner apostrophes); a placeholder such
 * as "<phone>" or "<media>" ends the current run. Words land NUL-separated in b->w; returns the
 * count, and *breaks marks (bit per word, up to 64 kept per run) where runs restart. */
typedef struct words {
    const char *w[512];
    size_t len[512];
    bool run_start[512];
    size_t n;
} words;

static void split_words(ws_profile_builder *b, const char *s, size_t n, words *out)
{
    ws_buf_reset(&b->w);
    ws_buf_reserve(&b->w, n * 2 + 16); /* lowercasing never more than doubles a code point */
    size_t offs[512];
    out->n = 0;
    bool in_word = false, new_run = true;
    size_t i = 0;
    while (i < n && out->n < 512) {
        if (s[i] == '<') {
            size_t j = i + 1;
            while (j < n && j - i < 20 && ((s[j] >= 'a' && s[j] <= 'z') || s[j] == '_'))
                j++;
            if (j < n && s[j] == '>' && j > i + 1) {
                if (in_word)
                    ws_buf_putc(&b->w, '\0');
                in_word = false;
                new_run = true;
                i = j + 1;
                continue;
            }
        }
        size_t at = i;
        uint32_t cp = ws_utf8_next(s, n, &i);
        bool apos = (cp == '\'' || cp == 0x2019) && in_word && i < n;
        if (apos) {
            size_t k = i;
            apos = ws_cp_is_alnum(ws_utf8_next(s, n, &k));
        }
        if (ws_cp_is_alnum(cp) || apos) {
            if (!in_word) {
                offs[out->n] = b->w.len;
                out->run_start[out->n] = new_run;
                out->n++;
                new_run = false;
                in_word = true;
            }
            char enc[4];
            size_t el = ws_utf8_put(enc, apos ? '\'' : ws_cp_lower(cp));
            ws_buf_append(&b->w, enc, el);
        } else {
            if (in_word)
                ws_buf_putc(&b->w, '\0');
            in_word = false;
            if (!ws_cp_is_space(cp) && cp != ',')
                new_run =
                    new_run || cp == '.' || cp == '!' || cp == '?' || cp == '\n' || ws_emoji_at(s, n, at);
            if (cp == '\n')
                new_run = true;
        }
    }
    if (in_word)
        ws_buf_putc(&b->w, '\0');
    for (size_t k = 0; k < out->n; k++) {
        out->w[k] = b->w.data + offs[k];
        out->len[k] = strlen(out->w[k]);
    }
}

/* Counts each 1-3 word n-gram once per message. */
static void count_ngrams(ws_profile_builder *b, const words *ws, bool persona)
{
    uint32_t msg = persona ? ++b->msg_p : ++b->msg_o;
    char key[192];
    for (size_t i = 0; i < ws->n; i++) {
        size_t kl = 0;
        for (size_t g = 0; g < 3 && i + g < ws->n; g++) {
            if (g > 0 && ws->run_start[i + g])
                break;
            if (kl + ws->len[i + g] + 1 >= sizeof key)
                break;
            if (g)
                key[kl++] = ' ';
            memcpy(key + kl, ws->w[i + g], ws->len[i + g]);
            kl += ws->len[i + g];
            entry *e = table_get(&b->ngrams, key, kl, true);
            if (!e)
                continue;
            if (persona && e->last_p != msg) {
                e->p++;
                e->last_p = msg;
            } else if (!persona && e->last_o != msg) {
                e->o++;
                e->last_o = msg;
            }
        }
    }
}

static size_t len_bucket(size_t chars)
{
    static const size_t edges[] = {5, 10, 20, 40, 80, 160, 320};
    for (size_t k = 0; k < 7; k++)
        if (chars <= edges[k])
            return k;
    return 7;
}

static int language_of(ws_profile_builder *b, const words *ws, const uint64_t *letters, bool has_kana,
                       const char *s, size_t n)
{
    ws_script best = WS_SCRIPT_NONE;
    uint64_t most = 0;
    for (int k = 1; k < WS_SCRIPT_COUNT; k++)
        if (letters[k] > most) {
            most = letters[k];
            best = (ws_script)k;
        }
    if (best == WS_SCRIPT_NONE)
        return -1;
    if (best == WS_SCRIPT_LATIN) {
        int hits[N_LANGS] = {0};
        for (size_t i = 0; i < ws->n; i++) {
            entry *e = table_get(&b->stop, ws->w[i], ws->len[i], false);
            if (e)
                for (int l = 0; l < N_LANGS; l++)
                    if (e->p & (1ull << l))
                        hits[l]++;
        }
        int bl = -1;
        for (int l = 0; l < N_LANGS; l++)
            if (hits[l] > 0 && (bl < 0 || hits[l] > hits[bl]))
                bl = l;
        if (bl >= 0)
            return bl;
    }
    if (best == WS_SCRIPT_HAN && has_kana)
        best = WS_SCRIPT_KANA;
    (void)s;
    (void)n;
    return N_LANGS + (int)best;
}

static const char *lang_name(int code, char buf[16])
{
    if (code < N_LANGS)
        return lang_codes[code];
    ws_script s = (ws_script)(code - N_LANGS);
    switch (s) {
    case WS_SCRIPT_CYRILLIC: return "ru";
    case WS_SCRIPT_GREEK: return "el";
    case WS_SCRIPT_ARABIC: return "ar";
    case WS_SCRIPT_HEBREW: return "he";
    case WS_SCRIPT_DEVANAGARI: return "hi";
    case WS_SCRIPT_THAI: return "th";
    case WS_SCRIPT_HANGUL: return "ko";
    case WS_SCRIPT_KANA: return "ja";
    case WS_SCRIPT_HAN: return "zh";
    default: break;
    }
    snprintf(buf, 16, "und-%s", ws_script_name(s));
    return buf;
}

/* Does the text hold a word of three or more letters, all upper-case (emphasis)? */
static bool has_caps_word(const char *s, size_t n)
{
    size_t i = 0, run = 0;
    bool lower = false;
    for (;;) {
        uint32_t cp = i < n ? ws_utf8_next(s, n, &i) : ' ';
        int c = ws_cp_case(cp);
        if (c > 0) {
            run++;
        } else if (c < 0) {
            lower = true;
        } else {
            if (run >= 3 && !lower)
                return true;
            run = 0;
            lower = false;
            if (i >= n)
                return false;
        }
    }
}

/* Counts a short reply (trimmed, <= 3 words, no placeholders) for the typical-reply pick. */
static void count_short(ws_profile_builder *b, const char *s, size_t n, size_t n_words)
{
    while (n && (unsigned char)*s <= ' ') {
        s++;
        n--;
    }
    while (n && (unsigned char)s[n - 1] <= ' ')
        n--;
    if (n == 0 || n > 40 || n_words > 3 || memchr(s, '<', n) || memchr(s, '\n', n))
        return;
    entry *e = table_get(&b->shorts, s, n, true);
    if (e)
        e->p++;
}

void ws_profile_add_message(ws_profile_builder *b, const char *s, size_t n, int hour, int weekday,
                            uint32_t bubbles)
{
    words ws;
    split_words(b, s, n, &ws);
    count_ngrams(b, &ws, true);
    for (size_t i = 0; i < ws.n; i++) {
        b->word_hist[hash_bytes(ws.w[i], ws.len[i]) % WS_PROFILE_WORD_BUCKETS]++;
        b->word_total++;
    }
    b->n_bubbles += bubbles ? bubbles : 1;
    if (hour >= 0 && hour < 24 && weekday >= 0 && weekday < 7) {
        b->hours[hour]++;
        b->weekdays[weekday]++;
        b->week_hours[weekday * 24 + hour]++;
        b->timed++;
    }
    size_t chars = 0, emoji = 0, other_visible = 0, upper = 0, lower = 0;
    uint64_t letters[WS_SCRIPT_COUNT] = {0};
    bool has_kana = false;
    int first_case = 0;
    uint32_t last = 0, prev = 0;
    bool last_was_emoji = false;
    size_t i = 0;
    while (i < n) {
        size_t e = ws_emoji_at(s, n, i);
        if (e) {
            entry *en = table_get(&b->emoji, s + i, e, true);
            if (en)
                en->p++;
            emoji++;
            chars += ws_utf8_count(s + i, e);
            i += e;
            last_was_emoji = true;
            continue;
        }
        uint32_t cp = ws_utf8_next(s, n, &i);
        chars++;
        if (ws_cp_is_space(cp) || cp == 0xFE0F || cp == 0x200D)
            continue;
        last_was_emoji = false;
        other_visible++;
        ws_script sc = ws_script_of(cp);
        letters[sc]++;
        if (sc == WS_SCRIPT_KANA)
            has_kana = true;
        int c = ws_cp_case(cp);
        if (c > 0)
            upper++;
        else if (c < 0)
            lower++;
        if (c && !first_case)
            first_case = c;
        if (cp == '!' || cp == 0xFF01)
            b->excl++;
        if (cp == '?' || cp == 0xFF1F)
            b->quest++;
        if (cp == ',' || cp == 0x060C || cp == 0xFF0C || cp == 0x3001)
            b->comma++;
        prev = last;
        last = cp;
    }
    (void)prev;
    b->emoji_total += emoji;
    if (emoji)
        b->emoji_msgs++;
    if (emoji && !other_visible)
        b->emoji_only++;
    if (memmem(s, n, "!!", 2))
        b->multi_excl++;
    if (memmem(s, n, "??", 2))
        b->multi_quest++;
    if (memmem(s, n, "..", 2) || memmem(s, n, "\xe2\x80\xa6", 3))
        b->ellipsis++;
    if (!last_was_emoji && last) {
        bool dots = n >= 2 && s[n - 1] == '.' && s[n - 2] == '.';
        if ((last == '.' || last == 0x3002) && !dots)
            b->ends_period++;
        else if (ws_cp_is_alnum(last))
            b->ends_bare++;
    }
    if (upper + lower) {
        b->cased_msgs++;
        if (first_case > 0)
            b->starts_upper++;
        if (!upper)
            b->all_lower++;
        if (upper >= 3 && !lower)
            b->all_caps++;
        if (lower && has_caps_word(s, n))
            b->caps_words++;
        b->upper_letters += upper;
        b->cased_letters += upper + lower;
    }
    for (int k = 0; k < WS_SCRIPT_COUNT; k++)
        b->script_letters[k] += letters[k];
    int lang = language_of(b, &ws, letters, has_kana, s, n);
    if (lang >= 0)
        b->lang_msgs[lang]++;
    b->len_hist[len_bucket(chars)]++;
    count_short(b, s, n, ws.n);
    dvec_push(&b->chars, (double)chars);
    dvec_push(&b->words, (double)ws.n);
}

void ws_profile_add_other(ws_profile_builder *b, const char *text, size_t len)
{
    words ws;
    split_words(b, text, len, &ws);
    count_ngrams(b, &ws, false);
}

void ws_profile_add_response(ws_profile_builder *b, double seconds)
{
    if (seconds >= 0 && isfinite(seconds))
        dvec_push(&b->resp, seconds);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void dist_of(dvec *d, ws_profile_dist *out)
{
    static const double qs[5] = {0.10, 0.25, 0.50, 0.75, 0.90};
    memset(out, 0, sizeof *out);
    out->n = d->n;
    if (!d->n)
        return;
    qsort(d->v, d->n, sizeof *d->v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < d->n; i++)
        sum += d->v[i];
    out->mean = sum / (double)d->n;
    for (int k = 0; k < 5; k++) {
        double pos = qs[k] * (double)(d->n - 1);
        size_t lo = (size_t)floor(pos);
        size_t hi = lo + 1 < d->n ? lo + 1 : lo;
        out->p[k] = d->v[lo] + (pos - (double)lo) * (d->v[hi] - d->v[lo]);
    }
}

static int cmp_item(const void *a, const void *b)
{
    const ws_profile_item *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return strcmp(x->text, y->text);
}

/* Keeps the best n items of a candidate list (sorted by score). */
static void top_items(ws_profile_item *cand, size_t nc, ws_profile_item *out, size_t *n_out, size_t max)
{
    qsort(cand, nc, sizeof *cand, cmp_item);
    *n_out = nc < max ? nc : max;
    memcpy(out, cand, *n_out * sizeof *out);
}

static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0;
}

/* Is phrase a (whole words) inside phrase b? */
static bool contains_words(const char *b, const char *a)
{
    size_t la = strlen(a);
    for (const char *p = strstr(b, a); p; p = strstr(p + 1, a))
        if ((p == b || p[-1] == ' ') && (p[la] == '\0' || p[la] == ' '))
            return true;
    return false;
}

/* Phrases made only of function words ("i", "in my") say little about a person. */
static bool only_stopwords(ws_profile_builder *b, const char *key, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && key[e] != ' ')
            e++;
        const entry *st = table_get(&b->stop, key + i, e - i, false);
        if (!st || st->o)
            return false;
        i = e + 1;
    }
    return true;
}

static void signature_phrases(ws_profile_builder *b, ws_profile *p)
{
    double n = b->msg_p, m = b->msg_o;
    if (n < 1)
        return;
    size_t nc = 0, cap = 256;
    ws_profile_item *cand = ws_xmalloc(cap * sizeof *cand);
    for (size_t i = 0; i < b->ngrams.cap; i++) {
        const entry *e = &b->ngrams.e[i];
        if (!e->key || e->p < 3 || e->len >= sizeof cand[0].text || only_stopwords(b, e->key, e->len))
            continue;
        double score;
        if (m >= 1) {
            /* two-proportion z-score (messages holding the phrase), smoothed */
            double p1 = ((double)e->p + 0.5) / (n + 1), p2 = ((double)e->o + 0.5) / (m + 1);
            if (p1 < 2 * p2)
                continue;
            double pool = ((double)(e->p + e->o) + 1) / (n + m + 2);
            score = (p1 - p2) / sqrt(pool * (1 - pool) * (1 / n + 1 / m));
        } else {
            score = (double)e->p; /* no one to compare with: most frequent */
        }
        /* longer phrases say more about a person than single words */
        int nw = 1;
        for (uint32_t k = 0; k < e->len; k++)
            nw += e->key[k] == ' ';
        score *= 1 + 0.15 * (nw - 1);
        if (nc == cap) {
            cap *= 2;
            cand = ws_xrealloc(cand, cap * sizeof *cand);
        }
        ws_profile_item *it = &cand[nc++];
        memset(it, 0, sizeof *it);
        memcpy(it->text, e->key, e->len);
        it->count = e->p;
        it->others = e->o;
        it->score = score;
    }
    qsort(cand, nc, sizeof *cand, cmp_item);
    /* drop a phrase that overlaps a better one of almost the same frequency */
    for (size_t i = 0; i < nc && p->n_phrases < WS_PROFILE_TOP_PHRASES; i++) {
        bool dup = false;
        for (size_t j = 0; j < p->n_phrases && !dup; j++) {
            const ws_profile_item *k = &p->phrases[j];
            if ((contains_words(k->text, cand[i].text) || contains_words(cand[i].text, k->text)) &&
                (double)cand[i].count <= 1.3 * (double)k->count &&
                (double)k->count <= 1.3 * (double)cand[i].count)
                dup = true;
        }
        if (!dup)
            p->phrases[p->n_phrases++] = cand[i];
    }
    free(cand);
}

ws_profile *ws_profile_builder_finish(ws_profile_builder *b)
{
    ws_profile *p = ws_xcalloc(1, sizeof *p);
    uint64_t msgs = b->chars.n;
    p->n_messages = msgs;
    p->n_bubbles = b->n_bubbles;
    p->n_other_messages = b->msg_o;
    p->bubbles_per_turn = ratio(b->n_bubbles, msgs);
    dist_of(&b->chars, &p->chars);
    dist_of(&b->words, &p->words);
    dist_of(&b->resp, &p->response_s);
    for (int k = 0; k < WS_PROFILE_LEN_BUCKETS; k++)
        p->len_hist[k] = ratio(b->len_hist[k], msgs);
    p->emoji_per_message = ratio(b->emoji_total, msgs);
    p->emoji_messages = ratio(b->emoji_msgs, msgs);
    p->emoji_only = ratio(b->emoji_only, msgs);
    {
        size_t nc = 0;
        ws_profile_item *cand = ws_xcalloc(b->emoji.n + 1, sizeof *cand);
        for (size_t i = 0; i < b->emoji.cap; i++) {
            const entry *e = &b->emoji.e[i];
            if (!e->key || e->len >= sizeof cand[0].text)
                continue;
            memcpy(cand[nc].text, e->key, e->len);
            cand[nc].count = e->p;
            cand[nc].score = ratio(e->p, b->emoji_total);
            nc++;
        }
        top_items(cand, nc, p->emoji, &p->n_emoji, WS_PROFILE_TOP_EMOJI);
        free(cand);
    }
    p->excl_per_message = ratio(b->excl, msgs);
    p->quest_per_message = ratio(b->quest, msgs);
    p->comma_per_message = ratio(b->comma, msgs);
    p->multi_excl = ratio(b->multi_excl, msgs);
    p->multi_quest = ratio(b->multi_quest, msgs);
    p->ellipsis = ratio(b->ellipsis, msgs);
    p->ends_period = ratio(b->ends_period, msgs);
    p->ends_bare = ratio(b->ends_bare, msgs);
    p->starts_upper = ratio(b->starts_upper, b->cased_msgs);
    p->all_lower = ratio(b->all_lower, b->cased_msgs);
    p->all_caps = ratio(b->all_caps, b->cased_msgs);
    p->caps_words = ratio(b->caps_words, b->cased_msgs);
    p->upper_letters = ratio(b->upper_letters, b->cased_letters);
    uint64_t letters = 0;
    for (int k = 1; k < WS_SCRIPT_COUNT; k++)
        letters += b->script_letters[k];
    for (int k = 1; k < WS_SCRIPT_COUNT && k < 16; k++)
        p->scripts[k] = ratio(b->script_letters[k], letters);
    {
        /* languages: shares of messages decided by stopwords or script */
        enum { NL = N_LANGS + WS_SCRIPT_COUNT + 2 };
        /* Latin messages without a stopword go to the Latin languages seen elsewhere */
        uint64_t latin_decided = 0;
        for (int k = 0; k < N_LANGS; k++)
            latin_decided += b->lang_msgs[k];
        if (latin_decided)
            b->lang_msgs[N_LANGS + WS_SCRIPT_LATIN] = 0;
        uint64_t decided = 0;
        for (int k = 0; k < NL; k++)
            decided += b->lang_msgs[k];
        ws_profile_item cand[NL];
        size_t nc = 0;
        for (int k = 0; k < NL; k++) {
            if (!b->lang_msgs[k])
                continue;
            char buf[16];
            memset(&cand[nc], 0, sizeof cand[nc]);
            snprintf(cand[nc].text, sizeof cand[nc].text, "%s", lang_name(k, buf));
            cand[nc].score = ratio(b->lang_msgs[k], decided);
            nc++;
        }
        qsort(cand, nc, sizeof *cand, cmp_item);
        for (size_t k = 0; k < nc && p->n_langs < WS_PROFILE_LANGS; k++) {
            if (cand[k].score < 0.02 && p->n_langs > 0)
                break;
            size_t cl = strnlen(cand[k].text, sizeof p->langs[0].code - 1);
            memcpy(p->langs[p->n_langs].code, cand[k].text, cl);
            p->langs[p->n_langs].code[cl] = '\0';
            p->langs[p->n_langs].share = cand[k].score;
            p->n_langs++;
        }
    }
    for (int h = 0; h < 24; h++)
        p->hours[h] = ratio(b->hours[h], b->timed);
    for (int d = 0; d < 7; d++)
        p->weekdays[d] = ratio(b->weekdays[d], b->timed);
    for (int k = 0; k < 7 * 24; k++)
        p->week_hours[k] = ratio(b->week_hours[k], b->timed);
    for (int k = 0; k < WS_PROFILE_WORD_BUCKETS; k++)
        p->word_hist[k] = ratio(b->word_hist[k], b->word_total);
    signature_phrases(b, p);
    const entry *best = NULL;
    for (size_t i = 0; i < b->shorts.cap; i++) {
        const entry *e = &b->shorts.e[i];
        if (e->key && e->p >= 2 &&
            (!best || e->p > best->p || (e->p == best->p && strcmp(e->key, best->key) < 0)))
            best = e;
    }
    if (best && best->len < sizeof p->typical_reply) {
        memcpy(p->typical_reply, best->key, best->len);
        p->typical_reply_count = best->p;
    }
    ws_profile_builder_free(b);
    return p;
}

void ws_profile_free(ws_profile *p)
{
    free(p);
}

ws_profile *ws_profile_from_pairs(const ws_pairs *pr, ws_profile_set which)
{
    ws_profile_builder *b = ws_profile_builder_new();
    for (size_t i = 0; i < pr->n_turns; i++) {
        const ws_turn *t = &pr->turns[i];
        if (!t->persona)
            ws_profile_add_other(b, t->text, strlen(t->text));
        else if (which == WS_PROFILE_ALL && t->reply)
            ws_profile_add_message(b, t->reply, strlen(t->reply), t->hour, t->weekday, t->n_bubbles);
    }
    for (size_t i = 0; i < pr->n_examples; i++) {
        const ws_example *e = &pr->examples[i];
        if (which == WS_PROFILE_ALL || (which == WS_PROFILE_HELDOUT) == e->heldout) {
            ws_profile_add_response(b, e->response_s);
            if (which != WS_PROFILE_ALL) {
                const ws_turn *t = &pr->turns[e->turn];
                ws_profile_add_message(b, t->reply, strlen(t->reply), t->hour, t->weekday, t->n_bubbles);
            }
        }
    }
    return ws_profile_builder_finish(b);
}

ws_profile *ws_profile_of_participant(const ws_pairs *pr, uint32_t who)
{
    ws_profile_builder *b = ws_profile_builder_new();
    for (size_t i = 0; i < pr->n_turns; i++) {
        const ws_turn *t = &pr->turns[i];
        if (t->author_idx != who) {
            ws_profile_add_other(b, t->text, strlen(t->text));
            continue;
        }
        if (t->reply)
            ws_profile_add_message(b, t->reply, strlen(t->reply), t->hour, t->weekday, t->n_bubbles);
        const ws_turn *prev = i ? &pr->turns[i - 1] : NULL;
        if (prev && prev->author_idx != who && prev->session == t->session)
            ws_profile_add_response(b, (double)(t->start > prev->end ? t->start - prev->end : 0));
    }
    return ws_profile_builder_finish(b);
}

ws_profile *ws_profile_from_texts(const char *const *texts, size_t n)
{
    ws_profile_builder *b = ws_profile_builder_new();
    for (size_t i = 0; i < n; i++)
        if (texts[i])
            ws_profile_add_message(b, texts[i], strlen(texts[i]), -1, -1, 1);
    return ws_profile_builder_finish(b);
}

/* ---- JSON and summary --------------------------------------------------------------------- */

static void put_key(ws_buf *o, const char *k, bool *first)
{
    if (!*first)
        ws_buf_putc(o, ',');
    *first = false;
    ws_json_put_cstr(o, k);
    ws_buf_putc(o, ':');
}

static void put_num_field(ws_buf *o, const char *k, double v, bool *first)
{
    put_key(o, k, first);
    ws_json_put_num(o, round(v * 10000) / 10000);
}

static void put_dist(ws_buf *o, const char *k, const ws_profile_dist *d, bool *first)
{
    static const char *names[5] = {"p10", "p25", "p50", "p75", "p90"};
    put_key(o, k, first);
    ws_buf_putc(o, '{');
    bool f = true;
    put_num_field(o, "count", (double)d->n, &f);
    put_num_field(o, "mean", d->mean, &f);
    for (int i = 0; i < 5; i++)
        put_num_field(o, names[i], d->p[i], &f);
    ws_buf_putc(o, '}');
}

static void put_array(ws_buf *o, const char *k, const double *v, size_t n, bool *first)
{
    put_key(o, k, first);
    ws_buf_putc(o, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            ws_buf_putc(o, ',');
        ws_json_put_num(o, round(v[i] * 10000) / 10000);
    }
    ws_buf_putc(o, ']');
}

void ws_profile_to_json(const ws_profile *p, ws_buf *o)
{
    bool f = true, g;
    ws_buf_putc(o, '{');
    put_num_field(o, "version", 1, &f);
    put_num_field(o, "messages", (double)p->n_messages, &f);
    put_num_field(o, "bubbles", (double)p->n_bubbles, &f);
    put_num_field(o, "bubbles_per_turn", p->bubbles_per_turn, &f);
    put_num_field(o, "other_messages", (double)p->n_other_messages, &f);
    put_key(o, "length", &f);
    ws_buf_putc(o, '{');
    g = true;
    put_dist(o, "chars", &p->chars, &g);
    put_dist(o, "words", &p->words, &g);
    put_array(o, "histogram", p->len_hist, WS_PROFILE_LEN_BUCKETS, &g);
    ws_buf_putc(o, '}');
    put_key(o, "emoji", &f);
    ws_buf_putc(o, '{');
    g = true;
    put_num_field(o, "per_message", p->emoji_per_message, &g);
    put_num_field(o, "messages_with_emoji", p->emoji_messages, &g);
    put_num_field(o, "emoji_only_messages", p->emoji_only, &g);
    put_key(o, "favourites", &g);
    ws_buf_putc(o, '[');
    for (size_t i = 0; i < p->n_emoji; i++) {
        bool h = true;
        ws_buf_puts(o, i ? ",{" : "{");
        put_key(o, "emoji", &h);
        ws_json_put_cstr(o, p->emoji[i].text);
        put_num_field(o, "count", (double)p->emoji[i].count, &h);
        put_num_field(o, "share", p->emoji[i].score, &h);
        ws_buf_putc(o, '}');
    }
    ws_buf_puts(o, "]}");
    put_key(o, "punctuation", &f);
    ws_buf_putc(o, '{');
    g = true;
    put_num_field(o, "exclamations_per_message", p->excl_per_message, &g);
    put_num_field(o, "questions_per_message", p->quest_per_message, &g);
    put_num_field(o, "commas_per_message", p->comma_per_message, &g);
    put_num_field(o, "multiple_exclamation", p->multi_excl, &g);
    put_num_field(o, "multiple_question", p->multi_quest, &g);
    put_num_field(o, "ellipsis", p->ellipsis, &g);
    put_num_field(o, "ends_with_period", p->ends_period, &g);
    put_num_field(o, "ends_without_punctuation", p->ends_bare, &g);
    ws_buf_putc(o, '}');
    put_key(o, "casing", &f);
    ws_buf_putc(o, '{');
    g = true;
    put_num_field(o, "starts_upper", p->starts_upper, &g);
    put_num_field(o, "all_lower", p->all_lower, &g);
    put_num_field(o, "all_caps", p->all_caps, &g);
    put_num_field(o, "caps_for_emphasis", p->caps_words, &g);
    put_num_field(o, "uppercase_letters", p->upper_letters, &g);
    ws_buf_putc(o, '}');
    put_key(o, "languages", &f);
    ws_buf_putc(o, '[');
    for (size_t i = 0; i < p->n_langs; i++) {
        bool h = true;
        ws_buf_puts(o, i ? ",{" : "{");
        put_key(o, "code", &h);
        ws_json_put_cstr(o, p->langs[i].code);
        put_num_field(o, "share", p->langs[i].share, &h);
        ws_buf_putc(o, '}');
    }
    ws_buf_putc(o, ']');
    put_key(o, "scripts", &f);
    ws_buf_putc(o, '{');
    g = true;
    for (int k = 1; k < WS_SCRIPT_COUNT; k++)
        if (p->scripts[k] > 0)
            put_num_field(o, ws_script_name((ws_script)k), p->scripts[k], &g);
    ws_buf_putc(o, '}');
    put_dist(o, "response_time_s", &p->response_s, &f);
    put_array(o, "active_hours", p->hours, 24, &f);
    put_array(o, "active_weekdays", p->weekdays, 7, &f);
    put_array(o, "active_weekday_hours", p->week_hours, 7 * 24, &f);
    put_key(o, "typical_short_reply", &f);
    ws_buf_putc(o, '{');
    g = true;
    put_key(o, "text", &g);
    ws_json_put_cstr(o, p->typical_reply);
    put_num_field(o, "count", (double)p->typical_reply_count, &g);
    ws_buf_putc(o, '}');
    put_key(o, "signature_phrases", &f);
    ws_buf_putc(o, '[');
    for (size_t i = 0; i < p->n_phrases; i++) {
        bool h = true;
        ws_buf_puts(o, i ? ",{" : "{");
        put_key(o, "phrase", &h);
        ws_json_put_cstr(o, p->phrases[i].text);
        put_num_field(o, "count", (double)p->phrases[i].count, &h);
        put_num_field(o, "others", (double)p->phrases[i].others, &h);
        put_num_field(o, "score", p->phrases[i].score, &h);
        ws_buf_putc(o, '}');
    }
    ws_buf_putc(o, ']');
    /* hashed word frequencies: only for ws_profile_distance after a reload */
    put_key(o, "fingerprint", &f);
    ws_buf_putc(o, '[');
    for (size_t i = 0; i < WS_PROFILE_WORD_BUCKETS; i++) {
        if (i)
            ws_buf_putc(o, ',');
        ws_json_put_num(o, round(p->word_hist[i] * 1e7) / 1e7);
    }
    ws_buf_puts(o, "]}");
}

/* ---- reading a profile back ------------------------------------------------------------- */

static double num_at(const ws_json *obj, const char *key)
{
    double v = 0;
    ws_json_get_num(obj, key, &v);
    return isfinite(v) ? v : 0;
}

static uint64_t count_at(const ws_json *obj, const char *key)
{
    double v = num_at(obj, key);
    return v > 0 && v < 1e18 ? (uint64_t)v : 0;
}

static void dist_from(const ws_json *obj, ws_profile_dist *d)
{
    static const char *names[5] = {"p10", "p25", "p50", "p75", "p90"};
    d->n = count_at(obj, "count");
    d->mean = num_at(obj, "mean");
    for (int i = 0; i < 5; i++)
        d->p[i] = num_at(obj, names[i]);
}

static void array_from(const ws_json *arr, double *out, size_t n)
{
    if (!arr || arr->type != WS_JSON_ARRAY)
        return;
    for (size_t i = 0; i < n && i < arr->len; i++)
        if (arr->items[i].type == WS_JSON_NUMBER && isfinite(arr->items[i].number))
            out[i] = arr->items[i].number;
}

static void text_from(const ws_json *obj, const char *key, char *out, size_t cap)
{
    const ws_json *v = ws_json_get(obj, key);
    if (!v || v->type != WS_JSON_STRING || v->len >= cap || memchr(v->str, 0, v->len))
        return;
    memcpy(out, v->str, v->len);
    out[v->len] = '\0';
}

int ws_profile_from_json(const char *text, size_t len, ws_profile **out, ws_error *err)
{
    *out = NULL;
    ws_json_doc *doc = NULL;
    int rc = ws_json_parse(text, len, &doc, err);
    if (rc)
        return rc;
    const ws_json *r = ws_json_root(doc);
    double version = 0;
    if (r->type != WS_JSON_OBJECT || !ws_json_get_num(r, "version", &version) || version != 1) {
        ws_json_doc_free(doc);
        return ws_error_set(err, WS_EFORMAT, "not a version 1 style profile");
    }
    ws_profile *p = ws_xcalloc(1, sizeof *p);
    p->n_messages = count_at(r, "messages");
    p->n_bubbles = count_at(r, "bubbles");
    p->bubbles_per_turn = num_at(r, "bubbles_per_turn");
    p->n_other_messages = count_at(r, "other_messages");
    const ws_json *o = ws_json_get(r, "length");
    dist_from(ws_json_get(o, "chars"), &p->chars);
    dist_from(ws_json_get(o, "words"), &p->words);
    array_from(ws_json_get(o, "histogram"), p->len_hist, WS_PROFILE_LEN_BUCKETS);
    o = ws_json_get(r, "emoji");
    p->emoji_per_message = num_at(o, "per_message");
    p->emoji_messages = num_at(o, "messages_with_emoji");
    p->emoji_only = num_at(o, "emoji_only_messages");
    const ws_json *a = ws_json_get(o, "favourites");
    for (size_t i = 0; a && a->type == WS_JSON_ARRAY && i < a->len && p->n_emoji < WS_PROFILE_TOP_EMOJI;
         i++) {
        ws_profile_item *it = &p->emoji[p->n_emoji];
        text_from(&a->items[i], "emoji", it->text, sizeof it->text);
        it->count = count_at(&a->items[i], "count");
        it->score = num_at(&a->items[i], "share");
        if (it->text[0])
            p->n_emoji++;
    }
    o = ws_json_get(r, "punctuation");
    p->excl_per_message = num_at(o, "exclamations_per_message");
    p->quest_per_message = num_at(o, "questions_per_message");
    p->comma_per_message = num_at(o, "commas_per_message");
    p->multi_excl = num_at(o, "multiple_exclamation");
    p->multi_quest = num_at(o, "multiple_question");
    p->ellipsis = num_at(o, "ellipsis");
    p->ends_period = num_at(o, "ends_with_period");
    p->ends_bare = num_at(o, "ends_without_punctuation");
    o = ws_json_get(r, "casing");
    p->starts_upper = num_at(o, "starts_upper");
    p->all_lower = num_at(o, "all_lower");
    p->all_caps = num_at(o, "all_caps");
    p->caps_words = num_at(o, "caps_for_emphasis");
    p->upper_letters = num_at(o, "uppercase_letters");
    a = ws_json_get(r, "languages");
    for (size_t i = 0; a && a->type == WS_JSON_ARRAY && i < a->len && p->n_langs < WS_PROFILE_LANGS; i++) {
        ws_profile_lang *l = &p->langs[p->n_langs];
        text_from(&a->items[i], "code", l->code, sizeof l->code);
        l->share = num_at(&a->items[i], "share");
        if (l->code[0])
            p->n_langs++;
    }
    o = ws_json_get(r, "scripts");
    for (int k = 1; k < WS_SCRIPT_COUNT; k++)
        p->scripts[k] = num_at(o, ws_script_name((ws_script)k));
    dist_from(ws_json_get(r, "response_time_s"), &p->response_s);
    array_from(ws_json_get(r, "active_hours"), p->hours, 24);
    array_from(ws_json_get(r, "active_weekdays"), p->weekdays, 7);
    array_from(ws_json_get(r, "active_weekday_hours"), p->week_hours, 7 * 24);
    o = ws_json_get(r, "typical_short_reply");
    text_from(o, "text", p->typical_reply, sizeof p->typical_reply);
    p->typical_reply_count = count_at(o, "count");
    a = ws_json_get(r, "signature_phrases");
    for (size_t i = 0; a && a->type == WS_JSON_ARRAY && i < a->len && p->n_phrases < WS_PROFILE_TOP_PHRASES;
         i++) {
        ws_profile_item *it = &p->phrases[p->n_phrases];
        text_from(&a->items[i], "phrase", it->text, sizeof it->text);
        it->count = count_at(&a->items[i], "count");
        it->others = count_at(&a->items[i], "others");
        it->score = num_at(&a->items[i], "score");
        if (it->text[0])
            p->n_phrases++;
    }
    array_from(ws_json_get(r, "fingerprint"), p->word_hist, WS_PROFILE_WORD_BUCKETS);
    ws_json_doc_free(doc);
    *out = p;
    return 0;
}

static void fmt_duration(double s, char *out, size_t n)
{
    if (s < 90)
        snprintf(out, n, "%.0f s", s);
    else if (s < 5400)
        snprintf(out, n, "%.0f min", s / 60);
    else
        snprintf(out, n, "%.1f h", s / 3600);
}

void ws_profile_summary(const ws_profile *p, ws_buf *o)
{
    ws_buf_printf(o, "Messages analysed: %llu turns (%.2f bubbles per turn), %llu from others\n",
                  (unsigned long long)p->n_messages, p->bubbles_per_turn,
                  (unsigned long long)p->n_other_messages);
    ws_buf_printf(o, "Length: median %.0f characters / %.0f words (10%%-90%%: %.0f-%.0f characters)\n",
                  p->chars.p[2], p->words.p[2], p->chars.p[0], p->chars.p[4]);
    ws_buf_printf(o, "Emoji: %.2f per message, in %.0f%% of messages", p->emoji_per_message,
                  100 * p->emoji_messages);
    if (p->n_emoji) {
        ws_buf_puts(o, "; favourites ");
        for (size_t i = 0; i < p->n_emoji && i < 5; i++)
            ws_buf_printf(o, "%s%s", i ? " " : "", p->emoji[i].text);
    }
    ws_buf_putc(o, '\n');
    ws_buf_printf(o,
                  "Punctuation: %.2f '!' and %.2f '?' per message; ellipsis in %.0f%%, ends with '.' %.0f%%, "
                  "no final punctuation %.0f%%\n",
                  p->excl_per_message, p->quest_per_message, 100 * p->ellipsis, 100 * p->ends_period,
                  100 * p->ends_bare);
    ws_buf_printf(o,
                  "Casing: starts upper-case %.0f%%, all lower-case %.0f%%, ALL CAPS %.0f%%, "
                  "CAPITALS for emphasis %.0f%%\n",
                  100 * p->starts_upper, 100 * p->all_lower, 100 * p->all_caps, 100 * p->caps_words);
    ws_buf_puts(o, "Languages:");
    for (size_t i = 0; i < p->n_langs; i++)
        ws_buf_printf(o, " %s %.0f%%", p->langs[i].code, 100 * p->langs[i].share);
    ws_buf_puts(o, p->n_langs ? "\n" : " unknown\n");
    if (p->response_s.n) {
        char a[32], b[32], c[32];
        fmt_duration(p->response_s.p[0], a, sizeof a);
        fmt_duration(p->response_s.p[2], b, sizeof b);
        fmt_duration(p->response_s.p[4], c, sizeof c);
        ws_buf_printf(o, "Response time: median %s (10%%: %s, 90%%: %s)\n", b, a, c);
    }
    int best = -1;
    for (int h = 0; h < 24; h++)
        if (p->hours[h] > 0 && (best < 0 || p->hours[h] > p->hours[best]))
            best = h;
    if (best >= 0)
        ws_buf_printf(o, "Most active: %02d:00-%02d:59 (%.0f%% of turns)\n", best, best,
                      100 * p->hours[best]);
    if (p->typical_reply[0])
        ws_buf_printf(o, "Typical short reply: \"%s\" (%llu times)\n", p->typical_reply,
                      (unsigned long long)p->typical_reply_count);
    if (p->n_phrases) {
        ws_buf_puts(o, "Signature phrases:");
        for (size_t i = 0; i < p->n_phrases && i < 10; i++)
            ws_buf_printf(o, "%s \"%s\"", i ? "," : "", p->phrases[i].text);
        ws_buf_putc(o, '\n');
    }
}

/* ---- stylometric distance ----------------------------------------------------------------- */

/* Jensen-Shannon divergence (base 2, in [0,1]) of two distributions (normalised here). */
static double js(const double *a, const double *b, size_t n)
{
    double sa = 0, sb = 0;
    for (size_t i = 0; i < n; i++) {
        sa += a[i];
        sb += b[i];
    }
    if (sa <= 0 && sb <= 0)
        return 0;
    if (sa <= 0 || sb <= 0)
        return 1;
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double x = a[i] / sa, y = b[i] / sb, m = (x + y) / 2;
        if (x > 0)
            d += 0.5 * x * log2(x / m);
        if (y > 0)
            d += 0.5 * y * log2(y / m);
    }
    return d < 0 ? 0 : d > 1 ? 1 : d;
}

/* Hellinger distance of two Bernoulli distributions, in [0,1]. */
static double bern(double p, double q)
{
    p = p < 0 ? 0 : p > 1 ? 1 : p;
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    double bc = sqrt(p * q) + sqrt((1 - p) * (1 - q));
    double h = 1 - bc;
    return h > 0 ? sqrt(h) : 0;
}

/* Difference of two non-negative rates, squashed into [0,1]. */
static double rate(double a, double b)
{
    return fabs(a - b) / (a + b + 0.25);
}

double ws_profile_distance(const ws_profile *a, const ws_profile *b, ws_style_distance *parts)
{
    ws_style_distance d = {0};
    d.length = 0.5 * js(a->len_hist, b->len_hist, WS_PROFILE_LEN_BUCKETS) +
               0.5 * rate(log1p(a->chars.p[2]), log1p(b->chars.p[2]));
    /* emoji: rates, plus how far the favourites differ (shares over the union) */
    double fav = 0;
    {
        double va[2 * WS_PROFILE_TOP_EMOJI] = {0}, vb[2 * WS_PROFILE_TOP_EMOJI] = {0};
        const char *keys[2 * WS_PROFILE_TOP_EMOJI];
        size_t nk = 0;
        for (size_t i = 0; i < a->n_emoji; i++) {
            keys[nk] = a->emoji[i].text;
            va[nk++] = a->emoji[i].score;
        }
        for (size_t i = 0; i < b->n_emoji; i++) {
            size_t k = 0;
            while (k < nk && strcmp(keys[k], b->emoji[i].text))
                k++;
            if (k == nk)
                keys[nk++] = b->emoji[i].text;
            vb[k] = b->emoji[i].score;
        }
        fav = (a->n_emoji || b->n_emoji) ? js(va, vb, nk) : 0;
        if (!a->n_emoji || !b->n_emoji)
            fav = (a->n_emoji || b->n_emoji) ? 1 : 0;
    }
    d.emoji = (bern(a->emoji_messages, b->emoji_messages) + rate(a->emoji_per_message, b->emoji_per_message) +
               fav) /
              3;
    d.punctuation =
        (rate(a->excl_per_message, b->excl_per_message) + rate(a->quest_per_message, b->quest_per_message) +
         rate(a->comma_per_message, b->comma_per_message) + bern(a->multi_excl, b->multi_excl) +
         bern(a->multi_quest, b->multi_quest) + bern(a->ellipsis, b->ellipsis) +
         bern(a->ends_period, b->ends_period) + bern(a->ends_bare, b->ends_bare)) /
        8;
    d.casing = (bern(a->starts_upper, b->starts_upper) + bern(a->all_lower, b->all_lower) +
                bern(a->all_caps, b->all_caps) + bern(a->caps_words, b->caps_words) +
                bern(a->upper_letters, b->upper_letters)) /
               5;
    {
        double va[2 * WS_PROFILE_LANGS] = {0}, vb[2 * WS_PROFILE_LANGS] = {0};
        const char *keys[2 * WS_PROFILE_LANGS];
        size_t nk = 0;
        for (size_t i = 0; i < a->n_langs; i++) {
            keys[nk] = a->langs[i].code;
            va[nk++] = a->langs[i].share;
        }
        for (size_t i = 0; i < b->n_langs; i++) {
            size_t k = 0;
            while (k < nk && strcmp(keys[k], b->langs[i].code))
                k++;
            if (k == nk)
                keys[nk++] = b->langs[i].code;
            vb[k] = b->langs[i].share;
        }
        d.language = js(va, vb, nk);
    }
    d.vocabulary = js(a->word_hist, b->word_hist, WS_PROFILE_WORD_BUCKETS);
    d.total = 0.2 * d.length + 0.15 * d.emoji + 0.2 * d.punctuation + 0.15 * d.casing + 0.1 * d.language +
              0.2 * d.vocabulary;
    if (parts)
        *parts = d;
    return d.total;
}
