/* The candidate guard of a reply: refuses a candidate that leaks the prompt instead of answering
 * (it repeats the system message or a line of the conversation, starts with a speaker label
 * "Name:", mostly echoes the incoming message or opens by restating it). Used by the ranked and
 * the streamed path; the ranking also reads how much of a candidate echoes the message. */
#include <stdlib.h>
#include <string.h>

#include "clone/clone_int.h"
#include "core/mem.h"
#include "style/text.h"

#define GUARD_WORDS 128      /* words of a text the checks look at */
#define GUARD_LABEL_BYTES 40 /* longest speaker label */
#define ECHO_SHARE 0.6       /* "mostly": this share of the candidate's words echo the text */
#define ECHO_MIN_WORDS 4     /* "The 06:40 plane." to "...for the 06:40 flight?" shares 3 words: an answer */
#define QUOTE_MIN_WORDS 4    /* a message this long found whole in the candidate is quoted */
#define OPENING_ECHO_SHARE 0.6 /* a first bubble this much the message's words opens with an echo */

typedef struct words {
    uint64_t h[GUARD_WORDS];
    size_t n;
} words;

/* The words of the text's first n bytes (runs of letters, digits and pictographic emoji, lower-cased)
 * as hashes. */
static void split_words_n(const char *s, size_t n, words *w)
{
    size_t i = 0;
    uint64_t h = 0;
    bool in = false;
    w->n = 0;
    while (i <= n && w->n < GUARD_WORDS) {
        uint32_t cp = i < n ? ws_utf8_next(s, n, &i) : (i++, 0);
        bool wordy = cp && (ws_cp_is_alnum(cp) || ws_emoji_is_pictographic(cp));
        if (wordy) {
            h = (in ? h : 1469598103934665603ull) ^ ws_cp_lower(cp);
            h *= 1099511628211ull;
            in = true;
        } else if (in) {
            w->h[w->n++] = h;
            in = false;
        }
    }
}

static void split_words(const char *s, words *w)
{
    split_words_n(s, strlen(s), w);
}

/* Longest common subsequence of two word lists. */
static size_t lcs(const words *a, const words *b)
{
    size_t prev[GUARD_WORDS + 1] = {0}, cur[GUARD_WORDS + 1] = {0};
    for (size_t i = 1; i <= a->n; i++) {
        for (size_t j = 1; j <= b->n; j++)
            cur[j] = a->h[i - 1] == b->h[j - 1] ? prev[j - 1] + 1
                     : prev[j] > cur[j - 1]     ? prev[j]
                                                : cur[j - 1];
        memcpy(prev, cur, sizeof prev);
    }
    return prev[b->n];
}

/* True when b's words appear one after the other somewhere in a. */
static bool contains_run(const words *a, const words *b)
{
    for (size_t i = 0; b->n && i + b->n <= a->n; i++)
        if (!memcmp(a->h + i, b->h, b->n * sizeof *b->h))
            return true;
    return false;
}

/* cand mostly echoes text: the same words, or most of its words are text's in text's order, or
 * text (when long enough) is quoted whole. */
static bool mostly_echoes(const char *cand, const words *cw, const char *text, bool quote)
{
    if (ws_text_is_echo(cand, text))
        return true;
    words tw;
    split_words(text, &tw);
    size_t common = lcs(cw, &tw);
    if (cw->n >= ECHO_MIN_WORDS && common >= ECHO_MIN_WORDS && (double)common >= ECHO_SHARE * (double)cw->n)
        return true;
    return quote && tw.n >= QUOTE_MIN_WORDS && contains_run(cw, &tw);
}

/* cand opens by echoing the message: its first bubble, when more follow, is mostly the message's
 * words in the message's order ("49:58 in Regent's Park\nu are a friend now" to "49:58 in
 * Regent's Park. Under fifty."), or a one-bubble cand is nothing but the message's words
 * ("Lisbon flat??" to "Don't forget the Lisbon flat."). Replies like that restate the message
 * instead of answering it; a short answer that adds a word ("The 06:40 plane.") passes. */
static bool opens_with_echo(const char *cand, const char *text)
{
    const char *s = cand + strspn(cand, " \t\r\n");
    const char *nl = strchr(s, '\n');
    bool more = nl && nl[strspn(nl, " \t\r\n")];
    words fw, tw;
    split_words_n(s, more ? (size_t)(nl - s) : strlen(s), &fw);
    if (!fw.n)
        return false;
    split_words(text, &tw);
    size_t common = lcs(&fw, &tw);
    return more ? (double)common >= OPENING_ECHO_SHARE * (double)fw.n : common == fw.n;
}

double ws__clone_echo_share(const char *cand, const char *message)
{
    words cw, mw;
    split_words(cand, &cw);
    split_words(message, &mw);
    return cw.n ? (double)lcs(&cw, &mw) / (double)cw.n : 0;
}

/* The candidate repeats the system message: two of its word trigrams are the system message's,
 * or one when that is at least half of them ("went to the last show" shares one of three). */
static bool repeats_system(const words *cw, const char *system)
{
    words sw;
    split_words(system, &sw);
    if (cw->n < 3 || sw.n < 3)
        return false;
    size_t hits = 0, tri = cw->n - 2;
    for (size_t i = 0; i < tri; i++)
        for (size_t j = 0; j + 2 < sw.n; j++)
            if (!memcmp(cw->h + i, sw.h + j, 3 * sizeof *cw->h)) {
                hits++;
                break;
            }
    return hits >= 2 || (hits && 2 * hits >= tri);
}

static bool name_eq(const char *a, size_t na, const char *b)
{
    if (!b || strlen(b) != na)
        return false;
    for (size_t i = 0; i < na; i++)
        if ((a[i] | 0x20) != (b[i] | 0x20))
            return false;
    return true;
}

/* Whether s starts with a label "Name:": 1 (its name's length in *name_len), 0 not, -1 maybe (s
 * ends inside what could still become one). A name is one or two words of letters (digits and
 * . - _ ' after the first character), then ':' and a space, a line end or the end. */
static int label_scan(const char *s, size_t *name_len)
{
    size_t i = 0, spaces = 0;
    while (s[i] && s[i] != ':' && s[i] != '\n' && i < GUARD_LABEL_BYTES) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == ' ' && (++spaces > 1 || !i || s[i - 1] == ' '))
            return 0;
        if (ch != ' ' && ch < 0x80 && !(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') &&
            !(i && ((ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_' || ch == '\'')))
            return 0;
        i++;
    }
    if (!s[i] && i < GUARD_LABEL_BYTES)
        return -1;
    if (!i || s[i] != ':' || s[i - 1] == ' ' || (s[i + 1] && s[i + 1] != ' ' && s[i + 1] != '\n'))
        return 0;
    *name_len = i;
    return 1;
}

/* A known speaker (the persona, an author of the context, or the prompt's "Friend"). */
static bool known_name(const clone_guard *g, const char *s, size_t n)
{
    if (name_eq(s, n, "Friend") || name_eq(s, n, g->persona))
        return true;
    for (size_t i = 0; i < g->n_ctx; i++)
        if (g->ctx_authors && name_eq(s, n, g->ctx_authors[i]))
            return true;
    return false;
}

/* A speaker label: a capitalised (or known) name at the start, or a known name at the start of
 * any later line ("ok\nFriend: see you"). */
static bool has_label(const clone_guard *g, const char *cand)
{
    const char *s = cand + strspn(cand, " \t\r\n");
    for (bool first = true; *s; first = false) {
        size_t nl = 0;
        if (label_scan(s, &nl) == 1) {
            unsigned char c0 = (unsigned char)s[0];
            if (known_name(g, s, nl) || (first && c0 >= 'A' && c0 <= 'Z'))
                return true;
        }
        const char *e = strchr(s, '\n');
        if (!e)
            break;
        s = e + 1 + strspn(e + 1, " \t\r\n");
    }
    return false;
}

/* The whole text in brackets: a stage direction ("(no response)", "[image]"), not a message. */
static bool is_meta(const char *cand)
{
    const char *s = cand + strspn(cand, " \t\r\n");
    size_t n = strlen(s);
    while (n && strchr(" \t\r\n.", s[n - 1]))
        n--;
    if (n < 3)
        return false;
    char open = s[0], close = s[n - 1];
    if (!((open == '(' && close == ')') || (open == '[' && close == ']') || (open == '<' && close == '>')))
        return false;
    return !memchr(s + 1, close, n - 2); /* one bracketed part: "(a) or (b)" is text */
}

clone_guard_why ws__clone_guard_check(const clone_guard *g, const char *cand)
{
    if (has_label(g, cand))
        return CLONE_GUARD_LABEL;
    if (is_meta(cand))
        return CLONE_GUARD_META;
    words cw;
    split_words(cand, &cw);
    if (g->system && repeats_system(&cw, g->system))
        return CLONE_GUARD_SYSTEM;
    if (g->message && (mostly_echoes(cand, &cw, g->message, true) || opens_with_echo(cand, g->message)))
        return CLONE_GUARD_ECHO;
    for (size_t i = 0; i < g->n_ctx; i++) {
        const char *t = g->ctx_texts[i];
        bool mine = g->ctx_authors && g->ctx_authors[i] &&
                    name_eq(g->ctx_authors[i], strlen(g->ctx_authors[i]), g->persona);
        if (!t || !*t)
            continue;
        if (mine) { /* the persona saying "haha" twice is a style; a sentence of theirs again is a leak */
            words tw;
            split_words(t, &tw);
            if (tw.n < QUOTE_MIN_WORDS)
                continue;
        }
        if (mostly_echoes(cand, &cw, t, true))
            return CLONE_GUARD_CONTEXT;
    }
    return CLONE_GUARD_OK;
}

int ws__clone_guard_label_start(const clone_guard *g, const char *text, bool final)
{
    const char *s = text + strspn(text, " \t\r\n");
    size_t nl = 0;
    int r = label_scan(s, &nl);
    if (r < 0)
        return final ? 0 : -1;
    if (!r)
        return 0;
    char *head = ws_xstrndup(s, strcspn(s, "\n"));
    r = has_label(g, head) ? 1 : 0;
    free(head);
    return r;
}

const char *ws__clone_guard_name(clone_guard_why why)
{
    switch (why) {
    case CLONE_GUARD_OK: return "ok";
    case CLONE_GUARD_LABEL: return "speaker label";
    case CLONE_GUARD_SYSTEM: return "repeats the system message";
    case CLONE_GUARD_ECHO: return "echoes the message";
    case CLONE_GUARD_CONTEXT: return "repeats a line of the conversation";
    case CLONE_GUARD_META: return "a bracketed stage direction";
    }
    return "?";
}

void ws__clone_guard_set(clone_guard *g, const ws_clone *c, const char *message, const ws_clone_turn *context,
                         size_t n_context)
{
    memset(g, 0, sizeof *g);
    g->persona = c->persona;
    g->message = message;
    if (c->fmt.chat) {
        ws__clone_chat_system(&c->fmt, g->sys_buf, sizeof g->sys_buf);
        g->system = g->sys_buf;
    }
    g->own = ws_xcalloc(2 * n_context + 1, sizeof *g->own);
    for (size_t i = 0; i < n_context; i++) {
        g->own[i] = context[i].text;
        g->own[n_context + i] = context[i].author;
    }
    g->ctx_texts = g->own;
    g->ctx_authors = g->own + n_context;
    g->n_ctx = n_context;
}

void ws__clone_guard_clear(clone_guard *g)
{
    free(g->own);
    memset(g, 0, sizeof *g);
}
