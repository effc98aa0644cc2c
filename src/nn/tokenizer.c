/* Byte-level BPE tokenizer from a Hugging Face tokenizer.json: loading (model, added tokens,
 * normalizer, pre-tokenizer, post-processor, decoder), encoding and decoding. It follows what
 * the `tokenizers` library does step by step so that ids match transformers exactly:
 *   added tokens split out (non-normalized ones on the raw text, normalized ones after the
 *   normalizer) -> pre-tokenizer pieces -> BPE per piece -> template special tokens.
 * A loaded tokenizer is never written again, so encode/decode are thread-safe. */
#include "nn/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/json.h"
#include "core/mem.h"
#include "nn/tokenizer_int.h"

#define MAX_FILE_BYTES ((size_t)256 << 20) /* tokenizer.json files are ~2-35 MB */
#define MAX_ID ((int32_t)1 << 21)          /* ids above this are refused at load (vocabs are < 300k) */
#define MAX_TEXT_BYTES ((size_t)256 << 20) /* offsets are 32-bit, and NFC/prefix spaces grow text */

/* ------------------------------------------------------------------ hash maps */

static inline uint64_t mix64(uint64_t h) /* MurmurHash3's finalizer */
{
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return h;
}

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = mix64(h ^ v);
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, n);
    return (uint32_t)mix64(h ^ v);
}

/* String -> id, keys are (offset, length) in the tokenizer's pool. */
typedef struct {
    uint32_t hash, off, len;
    int32_t id; /* -1 = empty slot */
} str_slot;

typedef struct {
    str_slot *slots;
    size_t mask, count;
} str_map;

static void str_map_init(str_map *m, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2)
        cap *= 2;
    m->slots = ws_xmalloc(cap * sizeof *m->slots);
    for (size_t i = 0; i < cap; i++)
        m->slots[i].id = -1;
    m->mask = cap - 1;
    m->count = 0;
}

static str_slot *str_map_find(const str_map *m, const char *pool, const char *key, size_t len, uint32_t h)
{
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        str_slot *s = &m->slots[i];
        if (s->id < 0 || (s->hash == h && s->len == len && memcmp(pool + s->off, key, len) == 0))
            return s;
    }
}

static int32_t str_map_get(const str_map *m, const char *pool, const char *key, size_t len)
{
    if (!m->slots)
        return -1;
    return str_map_find(m, pool, key, len, hash_bytes(key, len))->id;
}

static void str_map_grow(str_map *m, const char *pool);

/* Sets key (already stored at pool + off) to id; replace: overwrite an existing entry. */
static void str_map_put(str_map *m, const char *pool, uint32_t off, uint32_t len, int32_t id, bool replace)
{
    if ((m->count + 1) * 2 > m->mask + 1)
        str_map_grow(m, pool);
    uint32_t h = hash_bytes(pool + off, len);
    str_slot *s = str_map_find(m, pool, pool + off, len, h);
    if (s->id >= 0) {
        if (replace)
            s->id = id;
        return;
    }
    *s = (str_slot){h, off, len, id};
    m->count++;
}

static void str_map_grow(str_map *m, const char *pool)
{
    str_map old = *m;
    str_map_init(m, (old.mask + 1));
    for (size_t i = 0; i <= old.mask; i++)
        if (old.slots[i].id >= 0) {
            str_slot *s = str_map_find(m, pool, pool + old.slots[i].off, old.slots[i].len, old.slots[i].hash);
            *s = old.slots[i];
            m->count++;
        }
    free(old.slots);
}

/* (left id, right id) -> (rank, merged id) */
typedef struct {
    uint64_t key;
    int32_t rank; /* -1 = empty slot */
    int32_t new_id;
} merge_slot;

typedef struct {
    merge_slot *slots;
    size_t mask;
} merge_map;

static inline uint64_t pair_key(int32_t a, int32_t b)
{
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static inline size_t pair_hash(uint64_t k)
{
    return (size_t)mix64(k);
}

static const merge_slot *merge_get(const merge_map *m, int32_t a, int32_t b)
{
    uint64_t k = pair_key(a, b);
    for (size_t i = pair_hash(k) & m->mask;; i = (i + 1) & m->mask) {
        const merge_slot *s = &m->slots[i];
        if (s->rank < 0)
            return NULL;
        if (s->key == k)
            return s;
    }
}

/* ------------------------------------------------------------------ the tokenizer */

typedef struct {
    uint32_t str_off, str_len;     /* the vocabulary string ("Ġhello", "<|im_end|>") */
    uint32_t bytes_off, bytes_len; /* what the ByteLevel decoder makes of it */
    bool present, special, added;
} tok_info;

typedef struct {
    uint32_t off, len; /* pattern text in pool (normalized when the token is) */
    int32_t id;
    bool single_word, lstrip, rstrip;
} added_tok;

/* Added tokens of one kind (normalized or not), indexed by first byte, longest first. */
typedef struct {
    uint32_t *order;     /* indices into added[] */
    uint32_t first[257]; /* order[first[b] .. first[b+1]) start with byte b */
    size_t n;
} added_group;

typedef enum { BEH_REMOVED, BEH_ISOLATED, BEH_MERGED_PREV, BEH_MERGED_NEXT, BEH_CONTIGUOUS } behavior;

typedef enum { STEP_SPLIT_REGEX, STEP_SPLIT_STRING, STEP_DIGITS, STEP_BYTELEVEL } step_kind;

typedef struct {
    step_kind kind;
    ws_pattern pattern;        /* STEP_SPLIT_REGEX */
    uint32_t lit_off, lit_len; /* STEP_SPLIT_STRING */
    behavior beh;
    bool invert;
    bool add_prefix_space, use_regex; /* STEP_BYTELEVEL */
} pretok_step;

struct ws_tokenizer {
    char *pool;
    size_t pool_len, pool_cap;
    tok_info *info;
    size_t n_ids, info_cap; /* highest id + 1, allocated entries */
    str_map by_str;         /* vocabulary and added-token strings -> id */
    str_map by_bytes;       /* model vocabulary, byte form -> id */
    merge_map merges;
    int32_t byte_id[256]; /* id of each single-byte token, -1 if absent */
    bool ignore_merges;
    int32_t unk_id;
    bool fuse_unk;
    bool nfc;
    added_tok *added;
    size_t n_added;
    added_group groups[2]; /* 0: matched on the raw text, 1: on the normalized text */
    pretok_step *steps;
    size_t n_steps;
    int32_t *tmpl; /* TemplateProcessing single: ids before and after $A */
    size_t n_prefix, n_suffix;
    int32_t bos, eos;
};

/* GPT-2's byte-level alphabet: printable bytes stand for themselves, the other 68 bytes
 * (controls, space, DEL, NBSP...) for U+0100 onwards, in byte order. */
static int cp_to_byte(uint32_t cp)
{
    /* the 68 remapped bytes, in order: 0-32, 127-160, 173 */
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return (int)cp;
    if (cp < 256 || cp >= 256 + 68)
        return -1;
    uint32_t k = cp - 256;
    return k <= 32 ? (int)k : k <= 66 ? (int)(k - 33 + 127) : 173;
}

static uint32_t pool_add(ws_tokenizer *t, const char *s, size_t n)
{
    if (t->pool_len + n + 1 > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap : 1 << 16;
        while (cap < t->pool_len + n + 1)
            cap *= 2;
        t->pool = ws_xrealloc(t->pool, cap);
        t->pool_cap = cap;
    }
    uint32_t off = (uint32_t)t->pool_len;
    if (n)
        memcpy(t->pool + off, s, n);
    t->pool[off + n] = '\0';
    t->pool_len += n + 1;
    return off;
}

/* Byte-level decoding of a token string: each char back to its byte, or the UTF-8 itself when
 * some char is not in the byte alphabet (what the ByteLevel decoder does per token). Writes to
 * out (at least n bytes); returns the length and whether every char mapped. */
static size_t byte_decode(const char *s, size_t n, char *out, bool *all_mapped)
{
    size_t w = 0;
    if (ws_utf8_valid_prefix(s, n) == n) {
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            i += ws_utf8_at(s, n, i, &cp);
            int b = cp_to_byte(cp);
            if (b < 0)
                goto raw;
            out[w++] = (char)b;
        }
        *all_mapped = true;
        return w;
    }
raw:
    memcpy(out, s, n);
    *all_mapped = false;
    return n;
}

/* ------------------------------------------------------------------ loading */

static bool json_is(const ws_json *v, ws_json_type t)
{
    return v && v->type == t;
}

static bool get_flag(const ws_json *obj, const char *key, bool dflt)
{
    bool v;
    return ws_json_get_bool(obj, key, &v) ? v : dflt;
}

static bool id_ok(double d)
{
    return d >= 0 && d < MAX_ID && d == (double)(int32_t)d;
}

static void ensure_ids(ws_tokenizer *t, size_t n)
{
    if (n <= t->n_ids)
        return;
    if (n > t->info_cap) {
        size_t cap = t->info_cap ? t->info_cap : 1024;
        while (cap < n)
            cap *= 2;
        t->info = ws_xrealloc(t->info, cap * sizeof *t->info);
        memset(t->info + t->info_cap, 0, (cap - t->info_cap) * sizeof *t->info);
        t->info_cap = cap;
    }
    t->n_ids = n;
}

/* Stores token string s for id (vocabulary or added), with its decoded bytes. */
static void set_token(ws_tokenizer *t, int32_t id, const char *s, size_t n, bool added, bool special)
{
    ensure_ids(t, (size_t)id + 1);
    tok_info *ti = &t->info[id];
    ti->present = true;
    ti->added |= added;
    ti->special |= special;
    ti->str_off = pool_add(t, s, n);
    ti->str_len = (uint32_t)n;
    char *tmp = ws_xmalloc(n + 1);
    bool mapped;
    size_t bn = byte_decode(s, n, tmp, &mapped);
    ti->bytes_off = pool_add(t, tmp, bn);
    ti->bytes_len = (uint32_t)bn;
    free(tmp);
    str_map_put(&t->by_str, t->pool, ti->str_off, ti->str_len, id, added);
    if (!added && mapped)
        str_map_put(&t->by_bytes, t->pool, ti->bytes_off, ti->bytes_len, id, false);
}

static int load_model(ws_tokenizer *t, const ws_json *model, const char *path, ws_error *err)
{
    if (!json_is(model, WS_JSON_OBJECT))
        return ws_error_set(err, WS_EFORMAT, "%s: no \"model\" object", path);
    const char *type = ws_json_get_str(model, "type");
    if (type && strcmp(type, "BPE") != 0)
        return ws_error_set(err, WS_EUNSUPPORTED, "%s: model type %s is not supported (only byte-level BPE)",
                            path, type);
    const ws_json *vocab = ws_json_get(model, "vocab"), *merges = ws_json_get(model, "merges");
    if (!json_is(vocab, WS_JSON_OBJECT) || !json_is(merges, WS_JSON_ARRAY))
        return ws_error_set(err, WS_EFORMAT, "%s: BPE model needs a \"vocab\" object and a \"merges\" array",
                            path);
    const char *bad = NULL;
    const ws_json *v;
    if ((v = ws_json_get(model, "continuing_subword_prefix")) && v->type != WS_JSON_NULL && v->len)
        bad = "continuing_subword_prefix";
    else if ((v = ws_json_get(model, "end_of_word_suffix")) && v->type != WS_JSON_NULL && v->len)
        bad = "end_of_word_suffix";
    else if (get_flag(model, "byte_fallback", false))
        bad = "byte_fallback";
    else if ((v = ws_json_get(model, "dropout")) && v->type == WS_JSON_NUMBER && v->number > 0)
        bad = "dropout";
    if (bad)
        return ws_error_set(err, WS_EUNSUPPORTED, "%s: BPE option %s is not supported", path, bad);
    t->ignore_merges = get_flag(model, "ignore_merges", false);
    t->fuse_unk = get_flag(model, "fuse_unk", false);

    str_map_init(&t->by_str, vocab->len + 1024);
    str_map_init(&t->by_bytes, vocab->len + 16);
    for (size_t i = 0; i < vocab->len; i++) {
        const ws_json *idv = &vocab->items[i];
        if (idv->type != WS_JSON_NUMBER || !id_ok(idv->number))
            return ws_error_set(err, WS_EFORMAT, "%s: vocab entry \"%.64s\" has no valid id", path,
                                vocab->keys[i]);
        set_token(t, (int32_t)idv->number, vocab->keys[i], vocab->key_lens[i], false, false);
    }
    t->unk_id = -1;
    const char *unk = ws_json_get_str(model, "unk_token");
    if (unk) {
        t->unk_id = str_map_get(&t->by_str, t->pool, unk, strlen(unk));
        if (t->unk_id < 0)
            return ws_error_set(err, WS_EFORMAT, "%s: unk_token \"%.64s\" is not in the vocab", path, unk);
    }

    size_t cap = 16;
    while (cap < merges->len * 2 + 2)
        cap *= 2;
    t->merges.slots = ws_xmalloc(cap * sizeof *t->merges.slots);
    for (size_t i = 0; i < cap; i++)
        t->merges.slots[i].rank = -1;
    t->merges.mask = cap - 1;
    ws_buf joined = WS_BUF_INIT;
    int rc = 0;
    for (size_t r = 0; r < merges->len; r++) {
        const ws_json *m = &merges->items[r];
        const char *a, *b;
        size_t alen, blen;
        if (m->type == WS_JSON_STRING) {
            const char *sp = memchr(m->str, ' ', m->len);
            if (!sp || memchr(sp + 1, ' ', m->len - (size_t)(sp + 1 - m->str))) {
                rc = ws_error_set(err, WS_EFORMAT, "%s: merge %zu \"%.64s\" is not two tokens", path, r,
                                  m->str);
                goto out;
            }
            a = m->str;
            alen = (size_t)(sp - m->str);
            b = sp + 1;
            blen = m->len - alen - 1;
        } else if (m->type == WS_JSON_ARRAY && m->len == 2 && m->items[0].type == WS_JSON_STRING &&
                   m->items[1].type == WS_JSON_STRING) {
            a = m->items[0].str;
            alen = m->items[0].len;
            b = m->items[1].str;
            blen = m->items[1].len;
        } else {
            rc = ws_error_set(err, WS_EFORMAT, "%s: merge %zu is neither \"a b\" nor [a, b]", path, r);
            goto out;
        }
        ws_buf_reset(&joined);
        ws_buf_append(&joined, a, alen);
        ws_buf_append(&joined, b, blen);
        int32_t ia = str_map_get(&t->by_str, t->pool, a, alen);
        int32_t ib = str_map_get(&t->by_str, t->pool, b, blen);
        int32_t in = str_map_get(&t->by_str, t->pool, joined.data, joined.len);
        if (ia < 0 || ib < 0 || in < 0) {
            rc = ws_error_set(err, WS_EFORMAT,
                              "%s: merge %zu (\"%.32s\" + \"%.32s\") uses tokens not in the vocab", path, r,
                              a, b);
            goto out;
        }
        uint64_t k = pair_key(ia, ib);
        for (size_t i = pair_hash(k) & t->merges.mask;; i = (i + 1) & t->merges.mask) {
            merge_slot *s = &t->merges.slots[i];
            if (s->rank < 0 || s->key == k) { /* a repeated pair keeps its last rank */
                *s = (merge_slot){k, (int32_t)r, in};
                break;
            }
        }
    }
out:
    ws_buf_free(&joined);
    return rc;
}

static int load_added(ws_tokenizer *t, const ws_json *list, const char *path, ws_error *err)
{
    if (!list || list->type == WS_JSON_NULL)
        return 0;
    if (list->type != WS_JSON_ARRAY)
        return ws_error_set(err, WS_EFORMAT, "%s: \"added_tokens\" is not an array", path);
    t->added = ws_xcalloc(list->len + 1, sizeof *t->added);
    bool *normalized = ws_xcalloc(list->len + 1, sizeof *normalized);
    ws_buf norm = WS_BUF_INIT;
    for (size_t i = 0; i < list->len; i++) {
        const ws_json *a = &list->items[i];
        const ws_json *content = ws_json_get(a, "content");
        double id;
        if (!json_is(content, WS_JSON_STRING) || !ws_json_get_num(a, "id", &id) || !id_ok(id)) {
            ws_buf_free(&norm);
            free(normalized);
            return ws_error_set(err, WS_EFORMAT, "%s: added_tokens[%zu] needs \"id\" and \"content\"", path,
                                i);
        }
        if (content->len == 0)
            continue;
        bool special = get_flag(a, "special", false);
        set_token(t, (int32_t)id, content->str, content->len, true, special);
        added_tok *at = &t->added[t->n_added];
        at->id = (int32_t)id;
        at->single_word = get_flag(a, "single_word", false);
        at->lstrip = get_flag(a, "lstrip", false);
        at->rstrip = get_flag(a, "rstrip", false);
        normalized[t->n_added] = get_flag(a, "normalized", !special);
        const char *pat = content->str;
        size_t plen = content->len;
        if (normalized[t->n_added] && t->nfc) {
            ws_buf_reset(&norm);
            ws_uni_nfc(content->str, content->len, &norm);
            pat = norm.data;
            plen = norm.len;
        }
        at->off = pool_add(t, pat, plen);
        at->len = (uint32_t)plen;
        t->n_added++;
    }
    ws_buf_free(&norm);
    for (int g = 0; g < 2; g++) {
        added_group *grp = &t->groups[g];
        grp->order = ws_xmalloc((t->n_added + 1) * sizeof *grp->order);
        size_t n = 0;
        for (int b = 0; b < 256; b++) {
            grp->first[b] = (uint32_t)n;
            size_t start = n;
            for (size_t i = 0; i < t->n_added; i++)
                if (normalized[i] == (g == 1) && (unsigned char)t->pool[t->added[i].off] == b)
                    grp->order[n++] = (uint32_t)i;
            /* longest first (leftmost-longest matching); stable for equal lengths */
            for (size_t x = start + 1; x < n; x++)
                for (size_t y = x; y > start && t->added[grp->order[y]].len > t->added[grp->order[y - 1]].len;
                     y--) {
                    uint32_t tmp = grp->order[y];
                    grp->order[y] = grp->order[y - 1];
                    grp->order[y - 1] = tmp;
                }
        }
        grp->first[256] = (uint32_t)n;
        grp->n = n;
    }
    free(normalized);
    return 0;
}

static int load_normalizer(ws_tokenizer *t, const ws_json *n, const char *path, ws_error *err)
{
    if (!n || n->type == WS_JSON_NULL)
        return 0;
    const char *type = ws_json_get_str(n, "type");
    if (type && strcmp(type, "NFC") == 0) {
        t->nfc = true;
        return 0;
    }
    if (type && strcmp(type, "Sequence") == 0) {
        const ws_json *list = ws_json_get(n, "normalizers");
        if (!json_is(list, WS_JSON_ARRAY))
            return ws_error_set(err, WS_EFORMAT, "%s: normalizer Sequence without \"normalizers\"", path);
        for (size_t i = 0; i < list->len; i++) {
            int rc = load_normalizer(t, &list->items[i], path, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    return ws_error_set(err, WS_EUNSUPPORTED, "%s: normalizer %s is not supported (only NFC)", path,
                        type ? type : "(untyped)");
}

static int parse_behavior(const char *s, behavior *b)
{
    static const struct {
        const char *name;
        behavior b;
    } names[] = {
        {"Removed", BEH_REMOVED},
        {"Isolated", BEH_ISOLATED},
        {"MergedWithPrevious", BEH_MERGED_PREV},
        {"MergedWithNext", BEH_MERGED_NEXT},
        {"Contiguous", BEH_CONTIGUOUS},
    };
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *b = names[i].b;
            return 0;
        }
    return -1;
}

static int load_pretok(ws_tokenizer *t, const ws_json *p, const char *path, ws_error *err)
{
    if (!p || p->type == WS_JSON_NULL)
        return 0;
    const char *type = ws_json_get_str(p, "type");
    if (!type)
        return ws_error_set(err, WS_EFORMAT, "%s: pre_tokenizer without \"type\"", path);
    if (strcmp(type, "Sequence") == 0) {
        const ws_json *list = ws_json_get(p, "pretokenizers");
        if (!json_is(list, WS_JSON_ARRAY))
            return ws_error_set(err, WS_EFORMAT, "%s: pre_tokenizer Sequence without \"pretokenizers\"",
                                path);
        for (size_t i = 0; i < list->len; i++) {
            int rc = load_pretok(t, &list->items[i], path, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    pretok_step st = {0};
    if (strcmp(type, "ByteLevel") == 0) {
        st.kind = STEP_BYTELEVEL;
        st.add_prefix_space = get_flag(p, "add_prefix_space", true);
        st.use_regex = get_flag(p, "use_regex", true);
    } else if (strcmp(type, "Digits") == 0) {
        st.kind = STEP_DIGITS;
        st.beh = get_flag(p, "individual_digits", false) ? BEH_ISOLATED : BEH_CONTIGUOUS;
    } else if (strcmp(type, "Split") == 0) {
        const ws_json *pat = ws_json_get(p, "pattern");
        const char *re = ws_json_get_str(pat, "Regex"), *lit = ws_json_get_str(pat, "String");
        if (parse_behavior(ws_json_get_str(p, "behavior"), &st.beh))
            return ws_error_set(err, WS_EFORMAT, "%s: Split pre-tokenizer with unknown behavior", path);
        st.invert = get_flag(p, "invert", false);
        if (re) {
            const ws_json *rv = ws_json_get(pat, "Regex");
            int k = ws_pattern_lookup(rv->str, rv->len);
            if (k < 0)
                return ws_error_set(
                    err, WS_EUNSUPPORTED,
                    "%s: Split regex \"%.200s\" is not one we implement (GPT-2, Llama-3, Qwen2)", path, re);
            st.kind = STEP_SPLIT_REGEX;
            st.pattern = (ws_pattern)k;
        } else if (lit) {
            const ws_json *lv = ws_json_get(pat, "String");
            if (lv->len == 0)
                return ws_error_set(err, WS_EUNSUPPORTED, "%s: Split on an empty string", path);
            st.kind = STEP_SPLIT_STRING;
            st.lit_off = pool_add(t, lv->str, lv->len);
            st.lit_len = (uint32_t)lv->len;
        } else {
            return ws_error_set(err, WS_EFORMAT, "%s: Split pre-tokenizer without a pattern", path);
        }
    } else {
        return ws_error_set(err, WS_EUNSUPPORTED, "%s: pre-tokenizer %s is not supported", path, type);
    }
    t->steps = ws_xrealloc(t->steps, (t->n_steps + 1) * sizeof *t->steps);
    t->steps[t->n_steps++] = st;
    return 0;
}

/* Appends the ids of a TemplateProcessing special token (by its name) to ids. */
static int template_special(ws_tokenizer *t, const ws_json *specials, const char *name, int32_t **ids,
                            size_t *n, const char *path, ws_error *err)
{
    const ws_json *sp = ws_json_get(specials, name);
    const ws_json *list = ws_json_get(sp, "ids");
    if (!json_is(list, WS_JSON_ARRAY))
        return ws_error_set(err, WS_EFORMAT, "%s: template special token \"%.64s\" has no ids", path, name);
    for (size_t i = 0; i < list->len; i++) {
        if (list->items[i].type != WS_JSON_NUMBER || !id_ok(list->items[i].number))
            return ws_error_set(err, WS_EFORMAT, "%s: template special token \"%.64s\": bad id", path, name);
        *ids = ws_xrealloc(*ids, (*n + 1) * sizeof **ids);
        (*ids)[(*n)++] = (int32_t)list->items[i].number;
    }
    return 0;
}

static int load_post(ws_tokenizer *t, const ws_json *p, const char *path, ws_error *err)
{
    if (!p || p->type == WS_JSON_NULL)
        return 0;
    const char *type = ws_json_get_str(p, "type");
    if (type && strcmp(type, "ByteLevel") == 0)
        return 0; /* only adjusts offsets */
    if (type && strcmp(type, "Sequence") == 0) {
        const ws_json *list = ws_json_get(p, "processors");
        if (!json_is(list, WS_JSON_ARRAY))
            return ws_error_set(err, WS_EFORMAT, "%s: post_processor Sequence without \"processors\"", path);
        for (size_t i = 0; i < list->len; i++) {
            int rc = load_post(t, &list->items[i], path, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!type || strcmp(type, "TemplateProcessing") != 0)
        return ws_error_set(err, WS_EUNSUPPORTED, "%s: post_processor %s is not supported", path,
                            type ? type : "(untyped)");
    if (t->tmpl)
        return ws_error_set(err, WS_EUNSUPPORTED, "%s: more than one TemplateProcessing", path);
    const ws_json *single = ws_json_get(p, "single"), *specials = ws_json_get(p, "special_tokens");
    if (!json_is(single, WS_JSON_ARRAY))
        return ws_error_set(err, WS_EFORMAT, "%s: TemplateProcessing without \"single\"", path);
    int32_t *pre = NULL, *post = NULL;
    size_t npre = 0, npost = 0;
    bool seen_a = false;
    int rc = 0;
    for (size_t i = 0; i < single->len && !rc; i++) {
        const ws_json *item = &single->items[i];
        const ws_json *sp = ws_json_get(item, "SpecialToken"), *seq = ws_json_get(item, "Sequence");
        if (sp) {
            const char *name = ws_json_get_str(sp, "id");
            rc = name ? template_special(t, specials, name, seen_a ? &post : &pre, seen_a ? &npost : &npre,
                                         path, err)
                      : ws_error_set(err, WS_EFORMAT, "%s: template SpecialToken without id", path);
        } else if (seq && !seen_a) {
            seen_a = true;
        } else {
            rc = ws_error_set(err, WS_EUNSUPPORTED, "%s: TemplateProcessing single template item %zu", path,
                              i);
        }
    }
    if (!rc && !seen_a)
        rc = ws_error_set(err, WS_EUNSUPPORTED, "%s: TemplateProcessing single template without $A", path);
    if (!rc) {
        t->tmpl = ws_xmalloc((npre + npost + 1) * sizeof *t->tmpl);
        if (npre)
            memcpy(t->tmpl, pre, npre * sizeof *pre);
        if (npost)
            memcpy(t->tmpl + npre, post, npost * sizeof *post);
        t->n_prefix = npre;
        t->n_suffix = npost;
    }
    free(pre);
    free(post);
    return rc;
}

static int load_decoder(const ws_json *d, const char *path, ws_error *err)
{
    const char *type = ws_json_get_str(d, "type");
    if (type && strcmp(type, "ByteLevel") == 0)
        return 0;
    if (type && strcmp(type, "Sequence") == 0) {
        const ws_json *list = ws_json_get(d, "decoders");
        if (json_is(list, WS_JSON_ARRAY) && list->len == 1)
            return load_decoder(&list->items[0], path, err);
    }
    return ws_error_set(err, WS_EUNSUPPORTED, "%s: decoder %s is not supported (only ByteLevel)", path,
                        type ? type : "(none)");
}

/* Token id named by a tokenizer_config.json entry (string or {"content": ...}), or -1. */
static int32_t config_token(const ws_tokenizer *t, const ws_json *cfg, const char *key)
{
    const ws_json *v = ws_json_get(cfg, key);
    if (v && v->type == WS_JSON_OBJECT)
        v = ws_json_get(v, "content");
    if (!json_is(v, WS_JSON_STRING))
        return -1;
    return str_map_get(&t->by_str, t->pool, v->str, v->len);
}

/* BOS/EOS named by a tokenizer_config.json next to the file, when there is one. */
static void read_config(ws_tokenizer *t, const char *path)
{
    const char *slash = strrchr(path, '/');
    ws_buf cpath = WS_BUF_INIT;
    if (slash)
        ws_buf_append(&cpath, path, (size_t)(slash - path + 1));
    ws_buf_puts(&cpath, "tokenizer_config.json");
    char *data = NULL;
    size_t len = 0;
    ws_json_doc *doc = NULL;
    if (ws_file_read(cpath.data, MAX_FILE_BYTES, &data, &len, NULL) == 0 &&
        ws_json_parse(data, len, &doc, NULL) == 0) {
        const ws_json *root = ws_json_root(doc);
        int32_t b = config_token(t, root, "bos_token"), e = config_token(t, root, "eos_token");
        const ws_json *bv = ws_json_get(root, "bos_token");
        if (b >= 0 || (bv && bv->type == WS_JSON_NULL))
            t->bos = b;
        if (e >= 0)
            t->eos = e;
    }
    ws_json_doc_free(doc);
    free(data);
    ws_buf_free(&cpath);
}

static int load_json(const char *data, size_t len, const char *path, ws_tokenizer **out, ws_error *err)
{
    *out = NULL;
    ws_json_doc *doc = NULL;
    ws_tokenizer *t = ws_xcalloc(1, sizeof *t);
    int rc;
    ws_error jerr = {0};
    /* JSON text is UTF-8 (RFC 8259), and every string below is matched a character at a time:
     * a pattern or token with a stray byte could split the input inside a character. */
    size_t valid = ws_utf8_valid_prefix(data, len);
    if (valid != len) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: not valid UTF-8 (byte %zu)", path, valid);
        goto out;
    }
    rc = ws_json_parse(data, len, &doc, &jerr);
    if (rc) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: %s", path, jerr.msg);
        goto out;
    }
    const ws_json *root = ws_json_root(doc);
    if (!json_is(root, WS_JSON_OBJECT)) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: not a JSON object", path);
        goto out;
    }
    if ((rc = load_normalizer(t, ws_json_get(root, "normalizer"), path, err)) ||
        (rc = load_model(t, ws_json_get(root, "model"), path, err)) ||
        (rc = load_added(t, ws_json_get(root, "added_tokens"), path, err)) ||
        (rc = load_pretok(t, ws_json_get(root, "pre_tokenizer"), path, err)) ||
        (rc = load_post(t, ws_json_get(root, "post_processor"), path, err)) ||
        (rc = load_decoder(ws_json_get(root, "decoder"), path, err)))
        goto out;
    size_t n_bl = 0;
    for (size_t i = 0; i < t->n_steps; i++)
        n_bl += t->steps[i].kind == STEP_BYTELEVEL;
    if (n_bl != 1 || t->steps[t->n_steps - 1].kind != STEP_BYTELEVEL) {
        rc = ws_error_set(err, WS_EUNSUPPORTED,
                          "%s: pre_tokenizer must end in one ByteLevel step (byte-level BPE)", path);
        goto out;
    }
    for (int b = 0; b < 256; b++) {
        char one = (char)b;
        t->byte_id[b] = str_map_get(&t->by_bytes, t->pool, &one, 1);
    }
    t->bos = t->n_prefix ? t->tmpl[0] : -1;
    t->eos = -1;
    static const char *const eos_names[] = {"<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>",
                                            "</s>"};
    for (size_t i = 0; i < sizeof eos_names / sizeof eos_names[0] && t->eos < 0; i++)
        t->eos = ws_tokenizer_token_id(t, eos_names[i]);
out:
    ws_json_doc_free(doc);
    if (rc) {
        ws_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int ws_tokenizer_load_mem(const char *json, size_t len, const char *name, ws_tokenizer **out, ws_error *err)
{
    *out = NULL;
    if (len > MAX_FILE_BYTES)
        return ws_error_set(err, WS_ETOOBIG, "%s: larger than %zu MiB", name, MAX_FILE_BYTES >> 20);
    return load_json(json, len, name, out, err);
}

int ws_tokenizer_load(const char *path, ws_tokenizer **out, ws_error *err)
{
    *out = NULL;
    char *data = NULL;
    size_t len = 0;
    int rc = ws_file_read(path, MAX_FILE_BYTES, &data, &len, err);
    if (!rc)
        rc = load_json(data, len, path, out, err);
    free(data);
    if (!rc)
        read_config(*out, path);
    return rc;
}

void ws_tokenizer_free(ws_tokenizer *t)
{
    if (!t)
        return;
    free(t->pool);
    free(t->info);
    free(t->by_str.slots);
    free(t->by_bytes.slots);
    free(t->merges.slots);
    free(t->added);
    free(t->groups[0].order);
    free(t->groups[1].order);
    free(t->steps);
    free(t->tmpl);
    free(t);
}

/* ------------------------------------------------------------------ encoding */

typedef struct {
    uint32_t off, len;
    int32_t id; /* >= 0: an added token, emitted as is */
} piece;

typedef struct {
    piece *v;
    size_t n, cap;
} piece_vec;

static void piece_push(piece_vec *pv, uint32_t off, uint32_t len, int32_t id)
{
    if (len == 0 && id < 0)
        return; /* empty pieces are dropped, as tokenizers does */
    if (pv->n == pv->cap) {
        pv->cap = pv->cap ? pv->cap * 2 : 64;
        pv->v = ws_xrealloc(pv->v, pv->cap * sizeof *pv->v);
    }
    pv->v[pv->n++] = (piece){off, len, id};
}

typedef struct {
    int32_t *v;
    size_t n, cap;
} id_vec;

static void id_push(id_vec *iv, int32_t id)
{
    if (iv->n == iv->cap) {
        iv->cap = iv->cap ? iv->cap * 2 : 64;
        iv->v = ws_xrealloc(iv->v, iv->cap * sizeof *iv->v);
    }
    iv->v[iv->n++] = id;
}

/* A match/gap span used while splitting one piece. */
typedef struct {
    uint32_t start, end;
    bool match;
} span;

typedef struct {
    span *v;
    size_t n, cap;
} span_vec;

static void span_push(span_vec *sv, uint32_t start, uint32_t end, bool match)
{
    if (sv->n == sv->cap) {
        sv->cap = sv->cap ? sv->cap * 2 : 64;
        sv->v = ws_xrealloc(sv->v, sv->cap * sizeof *sv->v);
    }
    sv->v[sv->n++] = (span){start, end, match};
}

/* Per-call scratch memory. */
typedef struct {
    ws_buf text; /* sanitized input */
    ws_buf work; /* normalized pieces and their rewrites */
    piece_vec a, b;
    span_vec spans;
    struct sym {
        int32_t id;
        int32_t prev, next;
        uint32_t len;
    } * syms;
    struct heap_ent {
        int32_t rank;
        uint32_t pos;
        int32_t new_id;
    } * heap;
    size_t sym_cap, heap_cap;
    /* word -> ids of this call (chat text repeats words a lot); keys are pieces in work */
    struct cache_slot {
        uint32_t hash, off, len, ids_off, n_ids;
    } * cache;
    size_t cache_mask, cache_count;
    id_vec cache_ids;
} scratch;

#define CACHE_MAX_WORD 48    /* longer pieces are not cached */
#define CACHE_MIN_PIECES 128 /* calls with fewer pieces do not build a cache */

static bool is_word_char_before(const char *s, size_t start)
{
    if (start == 0)
        return false;
    uint32_t cp;
    ws_utf8_at(s, start, ws_utf8_prev(s, start), &cp);
    return ws_uni_class(cp) & WS_UNI_W;
}

static bool is_word_char_at(const char *s, size_t len, size_t i)
{
    if (i >= len)
        return false;
    uint32_t cp;
    ws_utf8_at(s, len, i, &cp);
    return ws_uni_class(cp) & WS_UNI_W;
}

/* Splits text[0, len) (at buffer offset base) on the added tokens of group g, as
 * AddedVocabulary::find_matches: leftmost-longest, then single_word / lstrip / rstrip. */
static void split_added(const ws_tokenizer *t, int g, const char *text, size_t len, uint32_t base,
                        piece_vec *out)
{
    const added_group *grp = &t->groups[g];
    if (grp->n == 0) {
        piece_push(out, base, (uint32_t)len, -1);
        return;
    }
    size_t start_offset = 0, pos = 0;
    while (pos < len) {
        unsigned char c = (unsigned char)text[pos];
        const added_tok *hit = NULL;
        for (uint32_t k = grp->first[c]; k < grp->first[c + 1]; k++) {
            const added_tok *at = &t->added[grp->order[k]];
            if (at->len <= len - pos && memcmp(text + pos, t->pool + at->off, at->len) == 0) {
                hit = at;
                break;
            }
        }
        if (!hit) {
            pos++;
            continue;
        }
        size_t start = pos, stop = pos + hit->len;
        pos = stop;
        if (hit->single_word && (is_word_char_before(text, start) || is_word_char_at(text, len, stop)))
            continue;
        if (hit->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t p = ws_utf8_prev(text, ns);
                uint32_t cp;
                ws_utf8_at(text, len, p, &cp);
                if (!(ws_uni_class(cp) & WS_UNI_S))
                    break;
                ns = p;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (hit->rstrip) {
            while (stop < len) {
                uint32_t cp;
                size_t n = ws_utf8_at(text, len, stop, &cp);
                if (!(ws_uni_class(cp) & WS_UNI_S))
                    break;
                stop += n;
            }
        }
        if (start_offset < start)
            piece_push(out, base + (uint32_t)start_offset, (uint32_t)(start - start_offset), -1);
        piece_push(out, base + (uint32_t)start, (uint32_t)(stop - start), hit->id);
        start_offset = stop;
    }
    if (start_offset < len)
        piece_push(out, base + (uint32_t)start_offset, (uint32_t)(len - start_offset), -1);
}

/* Turns the match/gap spans of one piece into pieces according to the split behavior. */
static void apply_behavior(behavior beh, bool invert, const span_vec *sv, uint32_t base, piece_vec *out)
{
    size_t first_out = out->n;
    bool prev_match = false;
    for (size_t i = 0; i < sv->n; i++) {
        span s = sv->v[i];
        bool m = s.match != invert;
        uint32_t off = base + s.start, len = s.end - s.start;
        bool has_last = out->n > first_out;
        switch (beh) {
        case BEH_REMOVED:
            if (!m)
                piece_push(out, off, len, -1);
            break;
        case BEH_ISOLATED: piece_push(out, off, len, -1); break;
        case BEH_CONTIGUOUS:
            if (m == prev_match && has_last)
                out->v[out->n - 1].len = off + len - out->v[out->n - 1].off;
            else
                piece_push(out, off, len, -1);
            break;
        case BEH_MERGED_PREV:
            if (m && !prev_match && has_last)
                out->v[out->n - 1].len = off + len - out->v[out->n - 1].off;
            else
                piece_push(out, off, len, -1);
            break;
        case BEH_MERGED_NEXT: break;
        }
        prev_match = m;
    }
    if (beh == BEH_MERGED_NEXT) {
        /* walk backwards: a match joins the piece after it */
        size_t start_n = out->n;
        prev_match = false;
        for (size_t i = sv->n; i-- > 0;) {
            span s = sv->v[i];
            bool m = s.match != invert;
            uint32_t off = base + s.start, len = s.end - s.start;
            if (m && !prev_match && out->n > start_n) {
                piece *last = &out->v[out->n - 1];
                last->len = last->off + last->len - off;
                last->off = off;
            } else {
                piece_push(out, off, len, -1);
            }
            prev_match = m;
        }
        for (size_t i = start_n, j = out->n - 1; i < j; i++, j--) {
            piece tmp = out->v[i];
            out->v[i] = out->v[j];
            out->v[j] = tmp;
        }
    }
}

/* Match/gap spans of one piece for a split step. */
static void find_spans(const ws_tokenizer *t, const pretok_step *st, ws_pattern pat, const char *s,
                       size_t len, span_vec *sv)
{
    sv->n = 0;
    size_t last = 0, pos = 0;
    while (pos < len) {
        size_t mlen = 0, step = 1;
        if (st->kind == STEP_DIGITS) {
            uint32_t cp;
            step = ws_utf8_at(s, len, pos, &cp);
            if (ws_uni_class(cp) & WS_UNI_DIGIT)
                mlen = step;
        } else if (st->kind == STEP_SPLIT_STRING) {
            if (st->lit_len <= len - pos && memcmp(s + pos, t->pool + st->lit_off, st->lit_len) == 0)
                mlen = st->lit_len;
        } else {
            mlen = ws_pattern_match_at(pat, s, len, pos);
            if (!mlen) {
                uint32_t cp;
                step = ws_utf8_at(s, len, pos, &cp);
            }
        }
        if (!mlen) {
            pos += step;
            continue;
        }
        if (last < pos)
            span_push(sv, (uint32_t)last, (uint32_t)pos, false);
        span_push(sv, (uint32_t)pos, (uint32_t)(pos + mlen), true);
        pos += mlen;
        last = pos;
    }
    if (last < len || sv->n == 0)
        span_push(sv, (uint32_t)last, (uint32_t)len, false);
}

static void run_step(const ws_tokenizer *t, const pretok_step *st, scratch *sc)
{
    sc->b.n = 0;
    for (size_t i = 0; i < sc->a.n; i++) {
        piece p = sc->a.v[i];
        if (p.id >= 0) {
            piece_push(&sc->b, p.off, p.len, p.id);
            continue;
        }
        if (st->kind == STEP_BYTELEVEL) {
            if (st->add_prefix_space && sc->work.data[p.off] != ' ') {
                uint32_t off = (uint32_t)sc->work.len;
                char *dst = ws_buf_reserve(&sc->work, (size_t)p.len + 1);
                dst[0] = ' ';
                memcpy(dst + 1, sc->work.data + p.off, p.len);
                sc->work.len += (size_t)p.len + 1;
                sc->work.data[sc->work.len] = '\0';
                p.off = off;
                p.len += 1;
            }
            if (!st->use_regex) {
                piece_push(&sc->b, p.off, p.len, -1);
                continue;
            }
            find_spans(t, st, WS_PAT_GPT2, sc->work.data + p.off, p.len, &sc->spans);
            apply_behavior(BEH_ISOLATED, false, &sc->spans, p.off, &sc->b);
            continue;
        }
        find_spans(t, st, st->pattern, sc->work.data + p.off, p.len, &sc->spans);
        apply_behavior(st->beh, st->invert, &sc->spans, p.off, &sc->b);
    }
    piece_vec tmp = sc->a;
    sc->a = sc->b;
    sc->b = tmp;
}

/* BPE of one pre-token (raw bytes), as tokenizers' Word::merge_all: a priority queue of
 * (rank, position) over adjacent pairs, lowest rank first, then leftmost. */
static void bpe(const ws_tokenizer *t, const char *s, size_t n, scratch *sc, id_vec *out)
{
    if (t->ignore_merges) {
        int32_t id = str_map_get(&t->by_bytes, t->pool, s, n);
        if (id >= 0) {
            id_push(out, id);
            return;
        }
    }
    if (n > sc->sym_cap) {
        sc->sym_cap = n * 2;
        sc->syms = ws_xrealloc(sc->syms, sc->sym_cap * sizeof *sc->syms);
    }
    struct sym *sy = sc->syms;
    size_t ns = 0;
    int32_t unk = -1;
    uint32_t unk_len = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[(unsigned char)s[i]];
        if (id >= 0) {
            if (unk >= 0) {
                sy[ns] = (struct sym){unk, (int32_t)ns - 1, (int32_t)ns + 1, unk_len};
                ns++;
                unk = -1;
            }
            sy[ns] = (struct sym){id, (int32_t)ns - 1, (int32_t)ns + 1, 1};
            ns++;
        } else if (t->unk_id >= 0) {
            if (unk >= 0 && t->fuse_unk) {
                unk_len++;
            } else {
                if (unk >= 0) {
                    sy[ns] = (struct sym){unk, (int32_t)ns - 1, (int32_t)ns + 1, unk_len};
                    ns++;
                }
                unk = t->unk_id;
                unk_len = 1;
            }
        }
    }
    if (unk >= 0) {
        sy[ns] = (struct sym){unk, (int32_t)ns - 1, (int32_t)ns + 1, unk_len};
        ns++;
    }
    if (ns == 0)
        return;
    sy[ns - 1].next = -1;
    size_t cap_needed = ns * 3 + 4;
    if (cap_needed > sc->heap_cap) {
        sc->heap_cap = cap_needed * 2;
        sc->heap = ws_xrealloc(sc->heap, sc->heap_cap * sizeof *sc->heap);
    }
    struct heap_ent *h = sc->heap;
    size_t hn = 0;
#define HEAP_LESS(x, y) ((x).rank < (y).rank || ((x).rank == (y).rank && (x).pos < (y).pos))
#define HEAP_PUSH(e)                                                                                         \
    do {                                                                                                     \
        struct heap_ent e_ = (e);                                                                            \
        size_t i_ = hn++;                                                                                    \
        while (i_ > 0 && HEAP_LESS(e_, h[(i_ - 1) / 2])) {                                                   \
            h[i_] = h[(i_ - 1) / 2];                                                                         \
            i_ = (i_ - 1) / 2;                                                                               \
        }                                                                                                    \
        h[i_] = e_;                                                                                          \
    } while (0)
    for (size_t i = 0; i + 1 < ns; i++) {
        const merge_slot *m = merge_get(&t->merges, sy[i].id, sy[i + 1].id);
        if (m)
            HEAP_PUSH(((struct heap_ent){m->rank, (uint32_t)i, m->new_id}));
    }
    while (hn > 0) {
        struct heap_ent top = h[0];
        struct heap_ent last = h[--hn];
        size_t i = 0;
        for (;;) {
            size_t c = 2 * i + 1;
            if (c >= hn)
                break;
            if (c + 1 < hn && HEAP_LESS(h[c + 1], h[c]))
                c++;
            if (!HEAP_LESS(h[c], last))
                break;
            h[i] = h[c];
            i = c;
        }
        if (hn > 0)
            h[i] = last;

        struct sym *cur = &sy[top.pos];
        if (cur->len == 0 || cur->next < 0)
            continue;
        struct sym *right = &sy[cur->next];
        const merge_slot *m = merge_get(&t->merges, cur->id, right->id);
        if (!m || m->new_id != top.new_id)
            continue;
        cur->id = top.new_id;
        cur->len += right->len;
        right->len = 0;
        cur->next = right->next;
        if (cur->next >= 0)
            sy[cur->next].prev = (int32_t)top.pos;
        if (cur->prev >= 0) {
            const merge_slot *pm = merge_get(&t->merges, sy[cur->prev].id, cur->id);
            if (pm)
                HEAP_PUSH(((struct heap_ent){pm->rank, (uint32_t)cur->prev, pm->new_id}));
        }
        if (cur->next >= 0) {
            const merge_slot *nm = merge_get(&t->merges, cur->id, sy[cur->next].id);
            if (nm)
                HEAP_PUSH(((struct heap_ent){nm->rank, top.pos, nm->new_id}));
        }
    }
#undef HEAP_PUSH
#undef HEAP_LESS
    for (int32_t i = 0; i >= 0; i = sy[i].next)
        id_push(out, sy[i].id);
}

/* bpe() through the per-call word cache. */
static void bpe_cached(const ws_tokenizer *t, uint32_t off, uint32_t n, scratch *sc, id_vec *out)
{
    const char *s = sc->work.data + off;
    if (!sc->cache || n > CACHE_MAX_WORD) {
        bpe(t, s, n, sc, out);
        return;
    }
    uint32_t h = hash_bytes(s, n);
    size_t i = h & sc->cache_mask;
    for (;; i = (i + 1) & sc->cache_mask) {
        struct cache_slot *c = &sc->cache[i];
        if (c->len == 0)
            break;
        if (c->hash == h && c->len == n && memcmp(sc->work.data + c->off, s, n) == 0) {
            for (uint32_t k = 0; k < c->n_ids; k++)
                id_push(out, sc->cache_ids.v[c->ids_off + k]);
            return;
        }
    }
    size_t before = out->n;
    bpe(t, s, n, sc, out);
    if ((sc->cache_count + 1) * 2 > sc->cache_mask + 1)
        return; /* full: no eviction, the rest of the call goes uncached */
    sc->cache[i] = (struct cache_slot){h, off, n, (uint32_t)sc->cache_ids.n, (uint32_t)(out->n - before)};
    sc->cache_count++;
    for (size_t k = before; k < out->n; k++)
        id_push(&sc->cache_ids, out->v[k]);
}

int ws_tokenizer_encode(const ws_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids,
                        size_t *n_ids, ws_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    if (len > MAX_TEXT_BYTES)
        return ws_error_set(err, WS_ETOOBIG, "text of %zu bytes is above the tokenizer's limit", len);
    scratch sc = {0};
    id_vec out = {0};
    if (add_special)
        for (size_t i = 0; i < t->n_prefix; i++)
            id_push(&out, t->tmpl[i]);

    /* 1. valid UTF-8 (ill-formed sequences become U+FFFD) */
    const char *src = text;
    size_t slen = len;
    if (ws_utf8_valid_prefix(text, len) != len) {
        ws_utf8_sanitize(text, len, &sc.text);
        src = sc.text.data;
        slen = sc.text.len;
    }
    /* 2. added tokens matched on the raw text; the rest normalized, then normalized tokens */
    piece_vec raw = {0};
    split_added(t, 0, src, slen, 0, &raw);
    for (size_t i = 0; i < raw.n; i++) {
        piece p = raw.v[i];
        if (p.id >= 0) {
            piece_push(&sc.a, 0, 0, p.id);
            continue;
        }
        uint32_t off = (uint32_t)sc.work.len;
        if (t->nfc)
            ws_uni_nfc(src + p.off, p.len, &sc.work);
        else
            ws_buf_append(&sc.work, src + p.off, p.len);
        split_added(t, 1, sc.work.data + off, sc.work.len - off, off, &sc.a);
    }
    free(raw.v);
    /* 3. pre-tokenizer steps */
    for (size_t s = 0; s < t->n_steps; s++)
        run_step(t, &t->steps[s], &sc);
    /* 4. BPE per piece */
    if (sc.a.n >= CACHE_MIN_PIECES) {
        size_t cap = 1024;
        while (cap < sc.a.n && cap < 65536)
            cap *= 2;
        sc.cache = ws_xcalloc(cap, sizeof *sc.cache);
        sc.cache_mask = cap - 1;
    }
    for (size_t i = 0; i < sc.a.n; i++) {
        piece p = sc.a.v[i];
        if (p.id >= 0)
            id_push(&out, p.id);
        else
            bpe_cached(t, p.off, p.len, &sc, &out);
    }
    if (add_special)
        for (size_t i = 0; i < t->n_suffix; i++)
            id_push(&out, t->tmpl[t->n_prefix + i]);
    ws_buf_free(&sc.text);
    ws_buf_free(&sc.work);
    free(sc.a.v);
    free(sc.b.v);
    free(sc.spans.v);
    free(sc.syms);
    free(sc.heap);
    free(sc.cache);
    free(sc.cache_ids.v);
    if (!out.v)
        out.v = ws_xmalloc(sizeof *out.v);
    *ids = out.v;
    *n_ids = out.n;
    return 0;
}

/* ------------------------------------------------------------------ decoding and queries */

char *ws_tokenizer_decode(const ws_tokenizer *t, const int32_t *ids, size_t n, bool skip_special)
{
    return ws_tokenizer_decode_len(t, ids, n, skip_special, NULL);
}

char *ws_tokenizer_decode_len(const ws_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                              size_t *len)
{
    ws_buf raw = WS_BUF_INIT, out = WS_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        const char *b;
        size_t bl;
        if (ws_tokenizer_token_bytes(t, ids[i], &b, &bl))
            continue;
        if (skip_special && t->info[ids[i]].special)
            continue;
        ws_buf_append(&raw, b, bl);
    }
    ws_utf8_sanitize(raw.data ? raw.data : "", raw.len, &out);
    ws_buf_free(&raw);
    if (len)
        *len = out.len;
    return ws_buf_take(&out);
}

int ws_tokenizer_stream_put(const ws_tokenizer *t, ws_tokenizer_stream *st, int32_t id, bool skip_special,
                            ws_buf *out)
{
    const char *b;
    size_t bl;
    if (ws_tokenizer_token_bytes(t, id, &b, &bl))
        return WS_EINVAL;
    if (skip_special && t->info[id].special)
        return 0;
    ws_buf tmp = WS_BUF_INIT;
    ws_buf_append(&tmp, st->held, st->n_held);
    ws_buf_append(&tmp, b, bl);
    size_t keep = ws_utf8_unfinished_tail(tmp.data, tmp.len);
    ws_utf8_sanitize(tmp.data, tmp.len - keep, out);
    memcpy(st->held, tmp.data + tmp.len - keep, keep);
    st->n_held = keep;
    ws_buf_free(&tmp);
    return 0;
}

void ws_tokenizer_stream_flush(ws_tokenizer_stream *st, ws_buf *out)
{
    ws_utf8_sanitize(st->held, st->n_held, out);
    st->n_held = 0;
}

int ws_tokenizer_token_bytes(const ws_tokenizer *t, int32_t id, const char **bytes, size_t *len)
{
    if (id < 0 || (size_t)id >= t->n_ids || !t->info[id].present)
        return WS_EINVAL;
    *bytes = t->pool + t->info[id].bytes_off;
    *len = t->info[id].bytes_len;
    return 0;
}

int32_t ws_tokenizer_token_id(const ws_tokenizer *t, const char *token)
{
    return str_map_get(&t->by_str, t->pool, token, strlen(token));
}

bool ws_tokenizer_is_special(const ws_tokenizer *t, int32_t id)
{
    return id >= 0 && (size_t)id < t->n_ids && t->info[id].special;
}

size_t ws_tokenizer_vocab_size(const ws_tokenizer *t)
{
    return t->n_ids;
}

int32_t ws_tokenizer_bos_id(const ws_tokenizer *t)
{
    return t->bos;
}

void ws_tokenizer_set_bos_eos(ws_tokenizer *t, int32_t bos, int32_t eos)
{
    t->bos = bos >= 0 && (size_t)bos < t->n_ids ? bos : -1;
    t->eos = eos >= 0 && (size_t)eos < t->n_ids ? eos : -1;
}

int32_t ws_tokenizer_eos_id(const ws_tokenizer *t)
{
    return t->eos;
}
