/* The streaming export reader: line splitting with any line endings (the bytes come from
 * source.c), UTF-8 repair, date-order detection (first pass) and message assembly
 * (second pass). Memory stays flat: one input chunk plus the message being built. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "chat/chat_int.h"
#include "core/buf.h"
#include "core/mem.h"

#define CHUNK (1u << 20)
/* Bytes a range reader reads past its end before it reads whole windows again. */
#define RANGE_LOOKAHEAD 4096
/* Zeroed bytes after the window, so word and vector reads near a line's start need no copy. */
#define SLACK 64
/* Bodies remembered with their kind (see struct kind_memo): slots and the longest body. */
#define KIND_MEMO_SLOTS 16 /* 8 pairs */
#define KIND_MEMO_TEXT 61

/* ------------------------------------------------------------------ the reader */

struct ws_chat_reader {
    chat_source src;
    ws_chat_options opt;
    char *buf; /* input window: [pos, end) not yet consumed */
    size_t buf_cap, pos, end;
    uint64_t window_offset; /* offset in the source of buf[0] */
    uint64_t line_offset;   /* offset in the source of the last line returned */
    uint64_t *nl_bits;      /* bit i set: buf[i] is '\n' (for i < end); rebuilt after each refill */
    size_t nl_words;        /* allocated words of nl_bits */
    bool nl_ready;
    size_t cr_at;   /* index in buf of the next '\r' at or after pos, or end */
    bool cr_known;  /* cr_at is up to date for the bytes in the window */
    size_t utf8_ok; /* bytes of buf before this index (from the current line) are valid UTF-8 */
    bool eof, first_line;
    uint64_t line_no;

    ws_date_order order;
    bool empty, seen_header;
    uint64_t invalid_utf8, skipped;

    bool date_cached; /* the date of the last header, for resolve_cached */
    int cached_field[3], cached_ampm;
    unsigned char cached_digits[3];
    ws_datetime cached_date;
    chat_template templates[4]; /* header layouts seen lately, tried before the grammar */
    unsigned n_templates, next_template;
    /* The file's layout (the chat_header.layout 90% of the headers in its first MiB share, 0 =
     * none does): once known, a line of another layout is a body line. And the placeholders
     * that MiB taught. Both come from the start of the file whatever the range, so every range
     * reader agrees with a whole-file one (sample.c). */
    uint32_t layout;
    chat_learned learned;
    const uint64_t *colon_pairs;    /* ws__chat_colon_pairs() */
    const chat_plain_filter *plain; /* ws__chat_plain_filter() */
    /* The last bodies ws__chat_classify answered for, by length and last byte: an export sends
     * the same few placeholders ("<Media omitted>", "This message was deleted") over and over,
     * and the answer depends only on the bytes (and learned, fixed per reader). len 0 = empty. */
    struct kind_memo {
        unsigned char len, kind;
        bool edited;
        char text[KIND_MEMO_TEXT];
    } memo[KIND_MEMO_SLOTS];

    /* the message being assembled and the one last returned */
    bool have_cur;
    ws_datetime cur_ts;
    uint64_t cur_line;
    size_t cur_first_len; /* bytes of the body that came from the header line */
    /* A message of one line is not copied: it stays in the window at buf[cur_at..+cur_len)
     * until a continuation line or a refill needs it in cur_body. */
    bool cur_in_window;
    size_t cur_at, cur_len;
    ws_buf cur_body, out_body;
    ws_buf fixed; /* scratch for a line with invalid UTF-8 repaired */
};

static const ws_chat_options default_options;

/* Copies the message being assembled out of the window (before the window moves, or when a
 * second line joins it). Fails only above the message cap. */
static int take_out_of_window(ws_chat_reader *r)
{
    if (!r->have_cur || !r->cur_in_window)
        return 0;
    r->cur_in_window = false;
    ws_buf_reset(&r->cur_body);
    return ws_buf_append(&r->cur_body, r->buf + r->cur_at, r->cur_len);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
/* The AVX2 form of newline_bits_portable: two 32-byte compares per 64 bytes. */
__attribute__((target("avx2"))) static bool newline_bits_avx2(const unsigned char *b, size_t words,
                                                              uint64_t *out)
{
    const __m256i nl = _mm256_set1_epi8('\n'), cr = _mm256_set1_epi8('\r');
    __m256i any_cr = _mm256_setzero_si256();
    for (size_t w = 0; w < words; w++) {
        const unsigned char *p = b + w * 64;
        __m256i x0 = _mm256_loadu_si256((const __m256i *)p),
                x1 = _mm256_loadu_si256((const __m256i *)(p + 32));
        uint64_t lo = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x0, nl));
        uint64_t hi = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x1, nl));
        any_cr =
            _mm256_or_si256(any_cr, _mm256_or_si256(_mm256_cmpeq_epi8(x0, cr), _mm256_cmpeq_epi8(x1, cr)));
        out[w] = lo | hi << 32;
    }
    return !_mm256_testz_si256(any_cr, any_cr);
}

/* The AVX-512BW form: one 64-byte compare gives a word of the bitmap. */
__attribute__((target("avx512f,avx512bw"))) static bool newline_bits_avx512(const unsigned char *b,
                                                                            size_t words, uint64_t *out)
{
    const __m512i nl = _mm512_set1_epi8('\n'), cr = _mm512_set1_epi8('\r');
    __mmask64 any_cr = 0;
    for (size_t w = 0; w < words; w++) {
        __m512i x = _mm512_loadu_si512((const void *)(b + w * 64));
        out[w] = _mm512_cmpeq_epi8_mask(x, nl);
        any_cr |= _mm512_cmpeq_epi8_mask(x, cr);
    }
    return any_cr != 0;
}
#define HAVE_NEWLINE_X86 1
#endif

/* Bit k of out[w] set: b[w * 64 + k] is '\n', for words * 64 bytes. Returns whether the bytes
 * hold a '\r' too. SSE2 where the build has it, else a byte loop. */
static bool newline_bits_portable(const unsigned char *b, size_t words, uint64_t *out)
{
    bool any_cr = false;
#if defined(__SSE2__)
    const __m128i nl = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
    __m128i crs = _mm_setzero_si128();
#endif
    for (size_t w = 0; w < words; w++) {
        const unsigned char *p = b + w * 64;
        uint64_t bits = 0;
#if defined(__SSE2__)
        __m128i x0 = _mm_loadu_si128((const __m128i *)p), x1 = _mm_loadu_si128((const __m128i *)(p + 16));
        __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 32)),
                x3 = _mm_loadu_si128((const __m128i *)(p + 48));
        uint64_t m0 = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x0, nl));
        uint64_t m1 = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x1, nl));
        uint64_t m2 = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x2, nl));
        uint64_t m3 = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x3, nl));
        crs = _mm_or_si128(crs, _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x0, cr), _mm_cmpeq_epi8(x1, cr)),
                                             _mm_or_si128(_mm_cmpeq_epi8(x2, cr), _mm_cmpeq_epi8(x3, cr))));
        bits = m0 | m1 << 16 | m2 << 32 | m3 << 48;
#else
        for (int k = 0; k < 64; k++) {
            bits |= (uint64_t)(p[k] == '\n') << k;
            any_cr |= p[k] == '\r';
        }
#endif
        out[w] = bits;
    }
#if defined(__SSE2__)
    any_cr |= _mm_movemask_epi8(crs) != 0;
#endif
    return any_cr;
}

bool ws__chat_newline_bits_with(ws_utf8_impl impl, const unsigned char *b, size_t words, uint64_t *out,
                                bool *any_cr)
{
    switch (impl) {
    case WS_UTF8_SCALAR: *any_cr = newline_bits_portable(b, words, out); return true;
#if defined(HAVE_NEWLINE_X86)
    case WS_UTF8_AVX2:
        if (!ws_cpu_avx2())
            return false;
        *any_cr = newline_bits_avx2(b, words, out);
        return true;
    case WS_UTF8_AVX512:
        if (ws_utf8_impl_used() != WS_UTF8_AVX512)
            return false;
        *any_cr = newline_bits_avx512(b, words, out);
        return true;
#endif
    default: return false;
    }
}

/* The widest form this CPU has (the one UTF-8 validation uses, and AVX2 on its own). */
static bool newline_bits(const unsigned char *b, size_t words, uint64_t *out)
{
#if defined(HAVE_NEWLINE_X86)
    ws_utf8_impl impl = ws_utf8_impl_used();
    if (impl == WS_UTF8_AVX512)
        return newline_bits_avx512(b, words, out);
    if (impl == WS_UTF8_AVX2 || ws_cpu_avx2())
        return newline_bits_avx2(b, words, out);
#endif
    return newline_bits_portable(b, words, out);
}

/* Marks the '\n' bytes of buf[0..end) in nl_bits: one pass per window instead of a search
 * per line. The same pass tells whether the window holds any '\r' (bytes of the slack may
 * count: that only costs the search below): when it holds none, no line needs the search. */
static void index_newlines(ws_chat_reader *r)
{
    size_t words = (r->end + 63) / 64;
    if (words + 1 > r->nl_words) {
        r->nl_words = (r->buf_cap + SLACK) / 64 + 1;
        free(r->nl_bits);
        r->nl_bits = ws_xmalloc(r->nl_words * sizeof *r->nl_bits);
    }
    /* the last word may run into the slack: masked below. With AVX-512BW the UTF-8 check of the
     * window runs in the same pass (buf[0] is a line start, so a character boundary) */
    bool any_cr;
    size_t valid;
    if (ws_utf8_valid_prefix_lines(r->buf, r->end, r->nl_bits, &any_cr, &valid)) {
        if (valid > r->utf8_ok)
            r->utf8_ok = valid;
    } else {
        any_cr = newline_bits((const unsigned char *)r->buf, words, r->nl_bits);
    }
    if (r->end % 64)
        r->nl_bits[words - 1] &= (1ull << (r->end % 64)) - 1;
    r->nl_bits[words] = 0;
    r->nl_ready = true;
    if (!any_cr) {
        r->cr_at = r->end; /* no '\r' in the window: the search in next_line never runs */
        r->cr_known = true;
    }
}

/* Index of the first '\n' in buf[from..end), or end. */
static inline size_t find_newline(const ws_chat_reader *r, size_t from)
{
    size_t w = from / 64, words = (r->end + 63) / 64;
    if (w >= words)
        return r->end;
    uint64_t bits = r->nl_bits[w] & (~0ull << (from % 64));
    while (!bits) {
        if (++w >= words)
            return r->end;
        bits = r->nl_bits[w];
    }
    return w * 64 + (size_t)__builtin_ctzll(bits);
}

/* Fills the window so that a complete line (or the rest of the input) is available. */
static int refill(ws_chat_reader *r, ws_error *err)
{
    if (take_out_of_window(r))
        return ws_error_set(err, WS_ETOOBIG, "%s: the message at line %llu is longer than %llu bytes",
                            r->src.path, (unsigned long long)r->cur_line,
                            (unsigned long long)r->opt.max_message_bytes);
    r->nl_ready = false;
    r->cr_known = false;
    r->utf8_ok = r->utf8_ok > r->pos ? r->utf8_ok - r->pos : 0;
    if (r->pos > 0) {
        r->window_offset += r->pos;
        memmove(r->buf, r->buf + r->pos, r->end - r->pos);
        r->end -= r->pos;
        r->pos = 0;
    }
    if (r->end == r->buf_cap) {
        if (r->buf_cap >= r->opt.max_message_bytes)
            return ws_error_set(err, WS_ETOOBIG, "line %llu is longer than %llu bytes",
                                (unsigned long long)r->line_no + 1,
                                (unsigned long long)r->opt.max_message_bytes);
        r->buf_cap *= 2;
        r->buf = ws_xrealloc(r->buf, r->buf_cap + SLACK);
        memset(r->buf + r->buf_cap / 2, 0, r->buf_cap / 2 + SLACK);
    }
    size_t want = r->buf_cap - r->end;
    /* a range reads little past its end: the line there (its first RANGE_LOOKAHEAD bytes tell
     * whether it starts a header), not a whole window that the next range reads again */
    uint64_t stop = r->opt.range_end + RANGE_LOOKAHEAD;
    if (r->opt.range_end && r->src.read_total < stop && stop - r->src.read_total < want)
        want = (size_t)(stop - r->src.read_total);
    long got = ws__chat_source_read(&r->src, r->buf + r->end, want, err);
    if (got < 0)
        return (int)got;
    if (got == 0)
        r->eof = true;
    r->end += (size_t)got;
    return 0;
}

/* Next physical line without its terminator (\n, \r\n or a lone \r). Returns 1, 0 at the end,
 * or a negative code. The line stays valid until the next call. */
static inline __attribute__((always_inline)) int next_line(ws_chat_reader *r, const char **line, size_t *len,
                                                           ws_error *err)
{
    for (;;) {
        char *start = r->buf + r->pos;
        size_t avail = r->end - r->pos;
        if (!r->nl_ready)
            index_newlines(r);
        size_t at = find_newline(r, r->pos);
        char *nl = at < r->end ? r->buf + at : NULL;
        if (!nl && !r->eof) {
            int rc = refill(r, err);
            if (rc)
                return rc;
            continue;
        }
        if (!nl && avail == 0)
            return 0;
        size_t n = nl ? (size_t)(nl - start) : avail;
        r->pos += nl ? n + 1 : n;
        /* one search for '\r' serves every line up to the next one found */
        if (!r->cr_known || r->cr_at < (size_t)(start - r->buf)) {
            char *cr = memchr(start, '\r', (size_t)(r->buf + r->end - start));
            r->cr_at = cr ? (size_t)(cr - r->buf) : r->end;
            r->cr_known = true;
        }
        if (r->cr_at < (size_t)(start - r->buf) + n) {
            size_t k = r->cr_at - (size_t)(start - r->buf);
            if (k + 1 < n) {
                /* a lone CR ends a line too: hand back the first part, keep the rest */
                r->pos -= (nl ? n + 1 : n) - (k + 1);
                n = k;
            } else {
                n = k;
            }
        }
        r->line_no++;
        r->line_offset = r->window_offset + (uint64_t)(start - r->buf);
        *line = start;
        *len = n;
        if (r->first_line) {
            r->first_line = false;
            if (n >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0) {
                *line += 3;
                *len -= 3;
            }
        }
        return 1;
    }
}

/* Returns the line itself when it is valid UTF-8, else a repaired copy in r->fixed. The
 * window is validated ahead in one pass, so most lines cost one comparison. */
static void repair_utf8(ws_chat_reader *r, const char **line, size_t *len)
{
    const unsigned char *s = (const unsigned char *)*line;
    size_t n = *len, i, bad;
    size_t a = (size_t)(*line - r->buf), b = a + n;
    if (b <= r->utf8_ok)
        return;
    size_t from = a > r->utf8_ok ? a : r->utf8_ok;
    r->utf8_ok = from + ws_utf8_valid_prefix(r->buf + from, r->end - from);
    if (b <= r->utf8_ok)
        return;
    size_t first_bad = ws_utf8_valid_prefix((const char *)s, n);
    if (first_bad == n)
        return;
    ws_buf_reset(&r->fixed);
    ws_buf_append(&r->fixed, s, first_bad);
    for (i = first_bad; i < n;) {
        size_t k = ws_utf8_seq(s + i, n - i, &bad);
        if (k) {
            ws_buf_append(&r->fixed, s + i, k);
            i += k;
        } else {
            ws_buf_append(&r->fixed, "\xEF\xBF\xBD", 3);
            r->invalid_utf8++;
            i += bad;
        }
    }
    *line = r->fixed.data;
    *len = r->fixed.len;
}

/* Positions the reader at the start of its range (the whole input by default). */
static int seek_start(ws_chat_reader *r, ws_error *err)
{
    int rc = ws__chat_source_rewind(&r->src, err);
    if (rc)
        return rc;
    r->pos = r->end = 0;
    r->nl_ready = false;
    r->have_cur = r->cur_in_window = false;
    r->cr_known = false;
    r->utf8_ok = 0;
    r->eof = false;
    r->first_line = r->opt.range_start == 0;
    r->line_no = 0;
    r->window_offset = 0;
    if (r->opt.range_start) {
        if (r->src.kind == SRC_ZIP)
            return ws_error_set(err, WS_EINVAL, "%s: a byte range needs a plain text export", r->src.path);
        if (r->src.kind == SRC_FILE && lseek(r->src.fd, (off_t)r->opt.range_start, SEEK_SET) < 0)
            return ws_error_set(err, WS_EIO, "%s: cannot seek: %s", r->src.path, strerror(errno));
        if (r->src.kind == SRC_MEM)
            r->src.mem_pos = r->opt.range_start < r->src.mem_len ? r->opt.range_start : r->src.mem_len;
        r->window_offset = r->opt.range_start;
        r->src.read_total = r->opt.range_start;
    }
    return 0;
}

/* ws__chat_resolve with the date of the previous header reused: consecutive messages
 * mostly share their day, and only the time needs converting then. */
static bool resolve_cached(ws_chat_reader *r, const chat_header *h, ws_datetime *ts)
{
    if (r->date_cached && h->field[0] == r->cached_field[0] && h->field[1] == r->cached_field[1] &&
        h->field[2] == r->cached_field[2] && h->digits[0] == r->cached_digits[0] &&
        h->digits[1] == r->cached_digits[1] && h->digits[2] == r->cached_digits[2] &&
        h->ampm == r->cached_ampm) {
        int hour = h->hour;
        if (h->ampm == 1 && hour == 12)
            hour = 0;
        else if (h->ampm == 2 && hour < 12)
            hour += 12;
        if (hour <= 23 && !(h->ampm == 1 && h->hour > 12)) {
            *ts = r->cached_date;
            ts->hour = hour;
            ts->minute = h->minute;
            ts->second = h->second;
            return true;
        }
    }
    if (!ws__chat_resolve(h, r->order, ts))
        return false;
    r->date_cached = true;
    memcpy(r->cached_field, h->field, sizeof r->cached_field);
    memcpy(r->cached_digits, h->digits, sizeof r->cached_digits);
    r->cached_ampm = h->ampm;
    r->cached_date = *ts;
    return true;
}

/* How many bytes from line may be read: a line in the window up to the slack after it. */
static inline size_t readable_at(const ws_chat_reader *r, const char *line, size_t len)
{
    return line >= r->buf && line < r->buf + r->buf_cap ? (size_t)(r->buf + r->buf_cap + SLACK - line) : len;
}

/* Is this line a message header? Known layouts first, then the full grammar. *matched: the
 * template that matched, or -1 (the grammar). */
static inline __attribute__((always_inline)) bool header_of(ws_chat_reader *r, const char *line, size_t len,
                                                            chat_header *h, int *matched)
{
    size_t readable = readable_at(r, line, len);
    *matched = -1;
    for (unsigned k = 0; k < r->n_templates; k++) {
        const chat_template *t = &r->templates[k];
        if (t->avx2_32 ? ws__chat_template_match_avx2(t, line, len, readable, h)
                       : ws__chat_template_match(t, line, len, readable, h)) {
            *matched = (int)k;
            return true;
        }
    }
    if (!ws__chat_maybe_header(line, len) && !ws__chat_mark_len(line, len))
        return false;
    if (!ws__chat_parse_header(line, len, h) || (r->layout && h->layout != r->layout))
        return false;
    /* A layout is learned only from a header that ends with the space it consumed: after "-"
     * or "]" the grammar takes one space when there is one, so a header cut there ("10:00 -"
     * at the end of the line, "[...]text") would teach a layout that leaves that space in
     * the author of later lines. */
    if (h->body < len && h->body > 0 && line[h->body - 1] == ' ' &&
        ws__chat_template_make(line, h, &r->templates[r->next_template])) {
        r->next_template = (r->next_template + 1) % 4;
        if (r->n_templates < 4)
            r->n_templates++;
    }
    return true;
}

/* The last file sampled and what it taught: the readers of one file's byte ranges (--stats
 * over threads) sample the same bytes, so all but the first take the result. Keyed by what
 * changes when the file does (device, inode, size, modification time); memory inputs are
 * always sampled (their bytes may change under the same address). */
static pthread_mutex_t sample_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    bool valid;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    uint32_t layout;
    chat_learned learned;
} last_sample;

static bool same_file(const struct stat *st)
{
    return last_sample.valid && last_sample.dev == st->st_dev && last_sample.ino == st->st_ino &&
           last_sample.size == st->st_size && last_sample.mtime.tv_sec == st->st_mtim.tv_sec &&
           last_sample.mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Reads the first MiB of the file (whatever the range) to learn its layout and its
 * placeholders (sample.c), then rewinds: the reader starts as if nothing had been read. */
static int sample_start(ws_chat_reader *r, ws_error *err)
{
    struct stat st;
    bool file = r->src.kind == SRC_FILE && fstat(r->src.fd, &st) == 0 && S_ISREG(st.st_mode);
    if (file) {
        pthread_mutex_lock(&sample_lock);
        bool hit = same_file(&st);
        if (hit) {
            r->layout = last_sample.layout;
            r->learned = last_sample.learned;
        }
        pthread_mutex_unlock(&sample_lock);
        if (hit)
            return 0;
    }
    int rc = ws__chat_source_rewind(&r->src, err);
    size_t have = 0;
    while (!rc && have < WS_CHAT_SAMPLE_BYTES && have < r->buf_cap) {
        long got = ws__chat_source_read(&r->src, r->buf + have, r->buf_cap - have, err);
        if (got <= 0) {
            rc = got < 0 ? (int)got : 0;
            break;
        }
        have += (size_t)got;
    }
    if (rc)
        return rc;
    /* complete: the whole input is in the sample */
    ws__chat_sample_scan(r->buf, have, have < r->buf_cap, &r->layout, &r->learned);
    if (file) {
        pthread_mutex_lock(&sample_lock);
        last_sample.valid = true;
        last_sample.dev = st.st_dev;
        last_sample.ino = st.st_ino;
        last_sample.size = st.st_size;
        last_sample.mtime = st.st_mtim;
        last_sample.layout = r->layout;
        last_sample.learned = r->learned;
        pthread_mutex_unlock(&sample_lock);
    }
    return ws__chat_source_rewind(&r->src, err);
}

/* First pass: decide D/M order from evidence, and check there are headers at all. */
static int detect_order(ws_chat_reader *r, ws_error *err)
{
    const char *line = NULL;
    size_t len = 0;
    int rc;
    uint64_t dm_lines = 0, ymd_lines = 0, back_dmy = 0, back_mdy = 0, us_votes = 0;
    long long prev_dmy = -1, prev_mdy = -1;
    ws_date_order decided = WS_DATE_AUTO;
    while ((rc = next_line(r, &line, &len, err)) == 1) {
        chat_header h;
        int matched;
        if (!header_of(r, line, len, &h, &matched))
            continue;
        if (h.digits[0] == 4) {
            ymd_lines++;
            continue;
        }
        dm_lines++;
        /* the en-US layout (M/D/YY, "PM", no zero padding) votes for M/D; others for D/M */
        bool us_like = h.us_marker && (h.digits[2] == 2 || h.digits[0] == 1 || h.digits[1] == 1);
        us_votes += us_like;
        if (h.field[0] > 12 && h.field[1] <= 12) {
            decided = WS_DATE_DMY;
            break;
        }
        if (h.field[1] > 12 && h.field[0] <= 12) {
            decided = WS_DATE_MDY;
            break;
        }
        /* no decisive field: count steps back in time under each reading */
        ws_datetime a, b;
        if (ws__chat_resolve(&h, WS_DATE_DMY, &a) && ws__chat_resolve(&h, WS_DATE_MDY, &b)) {
            long long ka = ((a.year * 13LL + a.month) * 32 + a.day) * 1440 + a.hour * 60 + a.minute;
            long long kb = ((b.year * 13LL + b.month) * 32 + b.day) * 1440 + b.hour * 60 + b.minute;
            back_dmy += prev_dmy > ka;
            back_mdy += prev_mdy > kb;
            prev_dmy = ka;
            prev_mdy = kb;
        }
    }
    if (rc < 0)
        return rc;
    if (decided != WS_DATE_AUTO)
        r->order = decided;
    else if (dm_lines == 0 && ymd_lines > 0)
        r->order = WS_DATE_YMD;
    else if (dm_lines == 0)
        return r->empty ? 0
                        : ws_error_set(err, WS_EFORMAT, "%s: no WhatsApp message headers found", r->src.path);
    else if (back_mdy + 3 <= back_dmy)
        r->order = WS_DATE_MDY; /* time runs forward only when read as M/D */
    else if (back_dmy + 3 <= back_mdy)
        r->order = WS_DATE_DMY;
    else
        r->order = us_votes * 2 > dm_lines ? WS_DATE_MDY : WS_DATE_DMY;
    return seek_start(r, err);
}

/* The zeroed window. For an input larger than one window it is placed in a 2 MiB page where
 * the kernel has transparent huge pages (one page fault and one TLB entry instead of 256 of
 * each: the window is copied into and read for every line); the page's other MiB stays unused,
 * so memory is still one fixed window per reader. */
static char *window_alloc(size_t bytes, bool big)
{
#if defined(MADV_HUGEPAGE)
    enum { HUGE_PAGE = 2u << 20 };
    void *p = NULL;
    if (big && bytes <= HUGE_PAGE && posix_memalign(&p, HUGE_PAGE, HUGE_PAGE) == 0) {
        madvise(p, HUGE_PAGE, MADV_HUGEPAGE);
        memset(p, 0, bytes);
        return p;
    }
#endif
    (void)big;
    return ws_xcalloc(1, bytes);
}

static int reader_start(ws_chat_reader *r, const ws_chat_options *opt, ws_error *err)
{
    r->opt = opt ? *opt : default_options;
    if (!r->opt.max_file_bytes)
        r->opt.max_file_bytes = WS_CHAT_DEFAULT_MAX_FILE;
    if (!r->opt.max_message_bytes)
        r->opt.max_message_bytes = WS_CHAT_DEFAULT_MAX_MESSAGE;
    r->src.cap = r->opt.max_file_bytes;
    r->buf_cap = CHUNK;
    r->buf = window_alloc(r->buf_cap + SLACK, r->src.size > CHUNK);
    r->first_line = true;
    r->cur_body.limit = r->opt.max_message_bytes;

    /* zip or text? look at the first bytes */
    char magic[4] = {0};
    size_t have = 0;
    if (r->src.kind == SRC_MEM) {
        have = r->src.mem_len < 4 ? r->src.mem_len : 4;
        memcpy(magic, r->src.mem, have);
    } else {
        ssize_t got = pread(r->src.fd, magic, 4, 0);
        have = got > 0 ? (size_t)got : 0;
    }
    r->empty = (r->src.kind == SRC_MEM ? r->src.mem_len : have) == 0;
    if (have == 4 && memcmp(magic, "PK", 2) == 0 &&
        ((magic[2] == 3 && magic[3] == 4) || (magic[2] == 5 && magic[3] == 6))) {
        int rc = ws__chat_source_open_zip(&r->src, r->opt.max_file_bytes, err);
        if (rc)
            return rc;
    }
    r->order = r->opt.date_order;
    r->colon_pairs = ws__chat_colon_pairs();
    r->plain = ws__chat_plain_filter();
    if (!r->empty) {
        int rc = sample_start(r, err);
        if (rc)
            return rc;
    }
    if (r->order == WS_DATE_AUTO && !r->empty)
        return detect_order(r, err);
    return r->opt.range_start ? seek_start(r, err) : 0;
}

int ws_chat_open_file(const char *path, const ws_chat_options *opt, ws_chat_reader **out, ws_error *err)
{
    ws_chat_reader *r = ws_xcalloc(1, sizeof *r);
    int rc = 0;
    struct stat st;
    r->src.fd = open(path, O_RDONLY | O_CLOEXEC);
    r->src.path = ws_xstrdup(path);
    r->src.kind = SRC_FILE;
    if (r->src.fd < 0) {
        rc = ws_error_set(err, errno == ENOENT ? WS_ENOENT : WS_EIO, "%s: cannot open: %s", path,
                          strerror(errno));
        goto out;
    }
    if (fstat(r->src.fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        rc = ws_error_set(err, WS_EINVAL, "%s: is a directory, not an export", path);
        goto out;
    }
    uint64_t cap = opt && opt->max_file_bytes ? opt->max_file_bytes : WS_CHAT_DEFAULT_MAX_FILE;
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > cap) {
        rc = ws_error_set(err, WS_ETOOBIG, "%s: %llu bytes is above the size cap of %llu bytes", path,
                          (unsigned long long)st.st_size, (unsigned long long)cap);
        goto out;
    }
    posix_fadvise(r->src.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    r->src.size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    rc = reader_start(r, opt, err);
out:
    if (rc) {
        ws_chat_close(r);
        r = NULL;
    }
    *out = r;
    return rc;
}

/* Starts over on another byte range of the same input, as a reader opened with those range
 * options would (same date order, same sample), keeping the window and buffers: the readers
 * of one file's parts need not allocate, zero and fault in a window each. */
int ws_chat_set_range(ws_chat_reader *r, uint64_t range_start, uint64_t range_end, ws_error *err)
{
    r->opt.range_start = range_start;
    r->opt.range_end = range_end;
    r->invalid_utf8 = r->skipped = 0;
    r->seen_header = r->date_cached = false;
    r->n_templates = r->next_template = 0;
    ws_buf_reset(&r->cur_body);
    if (r->empty)
        return 0;
    return seek_start(r, err);
}

int ws_chat_open_memory(const void *data, size_t len, const ws_chat_options *opt, ws_chat_reader **out,
                        ws_error *err)
{
    ws_chat_reader *r = ws_xcalloc(1, sizeof *r);
    r->src.fd = -1;
    r->src.kind = SRC_MEM;
    r->src.mem = data;
    r->src.mem_len = len;
    r->src.size = len;
    r->src.path = ws_xstrdup("(memory)");
    uint64_t cap = opt && opt->max_file_bytes ? opt->max_file_bytes : WS_CHAT_DEFAULT_MAX_FILE;
    int rc = 0;
    if (len > cap)
        rc = ws_error_set(err, WS_ETOOBIG, "export of %zu bytes is above the size cap of %llu bytes", len,
                          (unsigned long long)cap);
    else
        rc = reader_start(r, opt, err);
    if (rc) {
        ws_chat_close(r);
        r = NULL;
    }
    *out = r;
    return rc;
}

/* Does s[0..n) hold an opening quote that group-event templates put around a subject
 * (" ' “ „ « 「)? Only then can a ": " before the author split belong to a subject. */
static bool has_opening_quote(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c != '"' && c != '\'' && c != 0xC2 && c != 0xE2 && c != 0xE3)
            continue;
        if (c == '"' || c == '\'' || (c == 0xC2 && i + 1 < n && s[i + 1] == 0xAB) ||
            ((c == 0xE2 || c == 0xE3) && i + 2 < n && s[i + 1] == 0x80 &&
             (c == 0xE2 ? (s[i + 2] == 0x9C || s[i + 2] == 0x9E) : s[i + 2] == 0x8C)))
            return true;
    }
    return false;
}

/* The first ": " in s[0..n), or NULL. *quote: whether the bytes before it may hold an opening
 * quote (has_opening_quote), by a superset test on them (" ' and the last bytes of « “ „ 「:
 * AB 9C 9E 8C, and a few neighbours). 16 bytes past any byte before n must be readable (the
 * window's slack, or a buffer's spare capacity); what they hold changes no answer. */
static inline __attribute__((always_inline)) char *find_colon_space_window(char *s, size_t n, bool *quote)
{
#if defined(__SSE2__)
    const __m128i colon = _mm_set1_epi8(':'), space = _mm_set1_epi8(' ');
    /* (x | 05) == 27: 22 " 23 # 26 & 27 '; (x | 12) == 9E: 8C 8E 9C 9E; and AB */
    const __m128i x05 = _mm_set1_epi8(0x05), x27 = _mm_set1_epi8(0x27), ab = _mm_set1_epi8((char)0xAB);
    const __m128i x12 = _mm_set1_epi8(0x12), x9e = _mm_set1_epi8((char)0x9E);
    unsigned any = 0;
    for (size_t i = 0; i < n; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(s + i + 1));
        unsigned m =
            (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, colon), _mm_cmpeq_epi8(b, space)));
        __m128i q = _mm_or_si128(_mm_cmpeq_epi8(_mm_or_si128(a, x05), x27), _mm_cmpeq_epi8(a, ab));
        unsigned qm = (unsigned)_mm_movemask_epi8(_mm_or_si128(q, _mm_cmpeq_epi8(_mm_or_si128(a, x12), x9e)));
        if (m) {
            size_t at = i + (size_t)__builtin_ctz(m);
            if (at + 1 >= n)
                return NULL;
            *quote = any || (qm & ((1u << (at - i)) - 1));
            return s + at;
        }
        any |= qm;
    }
    return NULL;
#else
    char *p = (char *)ws__chat_colon_space(s, n);
    *quote = p != NULL;
    return p;
#endif
}

/* ws__chat_classify(text, n, &r->learned, edited), answered from r->memo when the same body
 * was classified before. */
static ws_msg_kind classify_memo(ws_chat_reader *r, const char *text, size_t n, bool *edited)
{
    if (n == 0 || n > KIND_MEMO_TEXT)
        return ws__chat_classify(text, n, &r->learned, edited);
    /* two ways: the pair of slots of this length and last byte, the latest body first (two
     * common placeholders that share a pair, "<Media omitted>" and "You deleted this
     * message", both stay) */
    struct kind_memo *m = &r->memo[((n + (unsigned char)text[n - 1]) * 2) % KIND_MEMO_SLOTS];
    for (int way = 0; way < 2; way++)
        if (m[way].len == n && memcmp(m[way].text, text, n) == 0) {
            *edited = m[way].edited;
            return (ws_msg_kind)m[way].kind;
        }
    ws_msg_kind kind = ws__chat_classify(text, n, &r->learned, edited);
    m[1] = m[0];
    m[0].len = (unsigned char)n;
    m[0].kind = (unsigned char)kind;
    m[0].edited = *edited;
    memcpy(m[0].text, text, n);
    return kind;
}

/* Moves the message being assembled into the output slot and fills msg. */
static inline __attribute__((always_inline)) void emit(ws_chat_reader *r, ws_message *msg)
{
    char *body;
    size_t len = 0;
    bool in_window = r->cur_in_window;
    if (in_window) {
        body = r->buf + r->cur_at;
        len = r->cur_len;
        r->cur_in_window = false;
    } else {
        ws_buf tmp = r->out_body;
        r->out_body = r->cur_body;
        r->cur_body = tmp;
        r->cur_body.limit = r->opt.max_message_bytes;
        body = r->out_body.data;
        len = r->out_body.len;
    }
    r->have_cur = false;

    msg->ts = r->cur_ts; /* every field is set below: no memset once per message */
    msg->line = r->cur_line;
    msg->author = NULL;
    msg->author_len = 0;
    msg->edited = false;
    bool may_quote = true;
    /* a copied body may be read 17 bytes past its first line too when its buffer is that big */
    char *colon = in_window || r->cur_first_len + 17 <= r->out_body.cap
                      ? find_colon_space_window(body, r->cur_first_len, &may_quote)
                      : (char *)ws__chat_colon_space(body, r->cur_first_len);
    if (in_window) {
        /* the line's terminator (or the slack at the end) becomes the NUL; written after the
         * search above, whose wide loads would otherwise wait on this store */
        body[len] = '\0';
    }
    /* the ": " may be a group event's: after two bytes some template has before its own ": ",
     * or with an opening quote before it (a subject); only then are the templates tried */
    bool maybe_event = false;
    if (colon && colon > body) {
        unsigned pair =
            colon - body >= 2 ? (unsigned)(unsigned char)colon[-2] << 8 | (unsigned char)colon[-1] : 0;
        maybe_event = (r->colon_pairs[pair >> 6] >> (pair & 63) & 1) ||
                      (may_quote && has_opening_quote(body, (size_t)(colon - body)));
    }
    if (colon && colon > body &&
        !(maybe_event && ws__chat_is_system_text(body, r->cur_first_len, (size_t)(colon - body)))) {
        *colon = '\0'; /* the author is terminated in place */
        msg->author = body;
        msg->author_len = (size_t)(colon - body);
        msg->text = colon + 2;
        msg->text_len = len - (size_t)(colon + 2 - body);
        msg->kind = ws__chat_plain_text(r->plain, msg->text, msg->text_len)
                        ? WS_MSG_TEXT
                        : classify_memo(r, msg->text, msg->text_len, &msg->edited);
        if (msg->kind == WS_MSG_SYSTEM) {
            msg->author = NULL;
            msg->author_len = 0;
        }
    } else {
        msg->text = body;
        msg->text_len = len;
        msg->kind = WS_MSG_SYSTEM;
    }
}

int ws_chat_next(ws_chat_reader *r, ws_message *msg, ws_error *err)
{
    const char *line = NULL;
    size_t len = 0;
    int rc;
    if (r->empty)
        return 0;
    while ((rc = next_line(r, &line, &len, err)) == 1) {
        uint64_t invalid_before = r->invalid_utf8;
        repair_utf8(r, &line, &len);
        chat_header h;
        ws_datetime ts;
        bool is_header;
        /* most lines: the first layout on the date of the header before it (the first template
         * is the one tried first below: same answer) */
        if (r->n_templates &&
            ws__chat_template_fast(&r->templates[0], line, len, readable_at(r, line, len), &ts)) {
            is_header = true;
            h.body = r->templates[0].len;
        } else {
            int matched;
            is_header = header_of(r, line, len, &h, &matched) && resolve_cached(r, &h, &ts);
            if (is_header && matched == 0)
                ws__chat_template_remember_date(&r->templates[0], line, readable_at(r, line, len), &ts);
        }
        if (is_header && r->opt.range_end && r->line_offset >= r->opt.range_end) {
            r->invalid_utf8 = invalid_before; /* the next range counts this line */
            r->eof = true;                    /* the next range begins here */
            r->pos = r->end;
            break;
        }
        if (is_header) {
            bool had = r->have_cur;
            if (had)
                emit(r, msg);
            r->have_cur = true;
            r->seen_header = true;
            r->cur_ts = ts;
            r->cur_line = r->line_no;
            r->cur_first_len = len - h.body;
            if (line >= r->buf && line < r->buf + r->end && r->cur_first_len <= r->opt.max_message_bytes) {
                r->cur_in_window = true; /* not copied unless a second line joins */
                r->cur_at = (size_t)(line + h.body - r->buf);
                r->cur_len = r->cur_first_len;
            } else {
                r->cur_in_window = false;
                ws_buf_reset(&r->cur_body);
                if (ws_buf_append(&r->cur_body, line + h.body, len - h.body))
                    return ws_error_set(err, WS_ETOOBIG,
                                        "%s: the message at line %llu is longer than %llu bytes", r->src.path,
                                        (unsigned long long)r->cur_line,
                                        (unsigned long long)r->opt.max_message_bytes);
            }
            if (had)
                return 1;
        } else if (r->have_cur) {
            /* a line that follows the message in the window after a lone '\n' (its own bytes,
             * not a repaired copy) joins it where it is: body and line are one stretch of the
             * window, as joined with '\n' */
            size_t at = (size_t)(line - r->buf);
            if (r->cur_in_window && line >= r->buf && line < r->buf + r->end &&
                at == r->cur_at + r->cur_len + 1 && r->buf[at - 1] == '\n' &&
                r->cur_len + 1 + len <= r->opt.max_message_bytes) {
                r->cur_len += 1 + len;
            } else if (take_out_of_window(r) || ws_buf_putc(&r->cur_body, '\n') ||
                       ws_buf_append(&r->cur_body, line, len))
                return ws_error_set(err, WS_ETOOBIG, "%s: the message at line %llu is longer than %llu bytes",
                                    r->src.path, (unsigned long long)r->cur_line,
                                    (unsigned long long)r->opt.max_message_bytes);
        } else if (!r->opt.range_start) {
            r->skipped++; /* lines before the first header of the file */
        } else {
            r->invalid_utf8 = invalid_before; /* the previous range's last message: counted there */
        }
    }
    if (rc < 0)
        return rc;
    if (r->have_cur) {
        emit(r, msg);
        return 1;
    }
    /* a range without headers is not an error: the other ranges may hold them */
    if (!r->seen_header && !r->opt.range_start && !r->opt.range_end)
        return ws_error_set(err, WS_EFORMAT, "%s: no WhatsApp message headers found", r->src.path);
    return 0;
}

bool ws_chat_is_zip(const ws_chat_reader *r)
{
    return r->src.kind == SRC_ZIP;
}

ws_date_order ws_chat_date_order(const ws_chat_reader *r)
{
    return r->order;
}

const char *ws_chat_date_order_name(ws_date_order o)
{
    switch (o) {
    case WS_DATE_DMY: return "dmy";
    case WS_DATE_MDY: return "mdy";
    case WS_DATE_YMD: return "ymd";
    default: return "auto";
    }
}

uint64_t ws_chat_invalid_utf8(const ws_chat_reader *r)
{
    return r->invalid_utf8;
}
uint64_t ws_chat_lines_skipped(const ws_chat_reader *r)
{
    return r->skipped;
}
bool ws_chat_is_empty(const ws_chat_reader *r)
{
    return r->empty;
}

uint64_t ws_chat_bytes_read(const ws_chat_reader *r, uint64_t *total)
{
    if (total)
        *total = r->src.size;
    return r->src.read_total;
}

void ws_chat_close(ws_chat_reader *r)
{
    if (!r)
        return;
    ws__chat_source_close(&r->src);
    free(r->buf);
    free(r->nl_bits);
    ws_buf_free(&r->cur_body);
    ws_buf_free(&r->out_body);
    ws_buf_free(&r->fixed);
    free(r);
}

const char *ws_msg_kind_name(ws_msg_kind k)
{
    switch (k) {
    case WS_MSG_TEXT: return "text";
    case WS_MSG_SYSTEM: return "system";
    case WS_MSG_MEDIA: return "media";
    case WS_MSG_DELETED: return "deleted";
    }
    return "text";
}

static void put_digits(char *out, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void ws_datetime_format(const ws_datetime *t, char out[20])
{
    put_digits(out, (unsigned)t->year % 10000u, 4);
    out[4] = '-';
    put_digits(out + 5, (unsigned)t->month % 100u, 2);
    out[7] = '-';
    put_digits(out + 8, (unsigned)t->day % 100u, 2);
    out[10] = 'T';
    put_digits(out + 11, (unsigned)t->hour % 100u, 2);
    out[13] = ':';
    put_digits(out + 14, (unsigned)t->minute % 100u, 2);
    out[16] = ':';
    put_digits(out + 17, (unsigned)t->second % 100u, 2);
    out[19] = '\0';
}
