/* Benchmark: tokenizer encode throughput (MB/s, median of 7 runs) on WhatsApp-style text.
 * Usage: bench_tokenizer [tokenizer.json] [text file]   (defaults: the committed qwen2.json
 * reference tokenizer and 4 MB of generated chat text)
 *        bench_tokenizer --write-text PATH               (writes the generated text and exits)
 * bench/tokenizer_peer.sh runs the same text through the Python `tokenizers` library. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "nn/tokenizer.h"

static const char *const words[] = {
    "ok",
    "haha",
    "yes",
    "no",
    "I'll",
    "don't",
    "can't",
    "we're",
    "tomorrow",
    "tonight",
    "dinner",
    "love",
    "you",
    "the",
    "at",
    "see",
    "what",
    "time",
    "are",
    "going",
    "to",
    "be",
    "there",
    "Hallo",
    "danke",
    "schön",
    "mañana",
    "café",
    "👍",
    "😂",
    "❤️",
    "🎉",
    "👨‍👩‍👧",
    "🇩🇪",
    "你好",
    "世界",
    "مرحبا",
    "שלום",
    "नमस्ते",
    "2024",
    "12345",
    "3.14",
    "!!!",
    "?",
    "...",
    "lol",
    "Okay",
    "WHAT",
    "it's",
    "https://wa.me/1",
};

static void make_text(ws_buf *b, size_t target)
{
    uint64_t s = 42;
    unsigned line = 0;
    while (b->len < target) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ws_buf_printf(b, "[%02u/%02u/2024, %02u:%02u:%02u] %s: ", (unsigned)(s >> 59) % 28 + 1,
                      (unsigned)(s >> 55) % 12 + 1, (unsigned)(s >> 50) % 24, (unsigned)(s >> 44) % 60,
                      line++ % 60, (s >> 40) & 1 ? "Anna Müller" : "Tom");
        unsigned n = (unsigned)(s >> 33) % 14 + 1;
        for (unsigned i = 0; i < n; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            ws_buf_puts(b, words[(s >> 33) % (sizeof words / sizeof words[0])]);
            ws_buf_putc(b, i + 1 < n ? ' ' : '\n');
        }
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    ws_buf text = WS_BUF_INIT;
    if (argc == 3 && strcmp(argv[1], "--write-text") == 0) {
        make_text(&text, 4u << 20);
        FILE *f = fopen(argv[2], "wb");
        if (!f || fwrite(text.data, 1, text.len, f) != text.len)
            return 1;
        fclose(f);
        ws_buf_free(&text);
        return 0;
    }
    const char *path = argc > 1 ? argv[1] : "tests/reference/tokenizer/qwen2.json";
    if (argc > 2) {
        FILE *f = fopen(argv[2], "rb");
        if (!f) {
            perror(argv[2]);
            return 1;
        }
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            ws_buf_append(&text, chunk, n);
        fclose(f);
    } else {
        make_text(&text, 4u << 20);
    }
    ws_tokenizer *t = NULL;
    ws_error err = {0};
    double t0 = now();
    if (ws_tokenizer_load(path, &t, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double load_s = now() - t0;
    printf("tokenizer %s: vocab %zu, load %.1f ms\n", path, ws_tokenizer_vocab_size(t), load_s * 1e3);
    enum { RUNS = 7 };
    for (int per_line = 0; per_line < 2; per_line++) {
        double secs[RUNS];
        size_t n_ids = 0;
        for (int r = 0; r < RUNS; r++) {
            int32_t *ids = NULL;
            size_t n = 0;
            n_ids = 0;
            t0 = now();
            if (!per_line) {
                ws_tokenizer_encode(t, text.data, text.len, false, &ids, &n_ids, NULL);
                free(ids);
            } else { /* each line (message) on its own, newline included */
                for (size_t i = 0; i < text.len;) {
                    const char *nl = memchr(text.data + i, '\n', text.len - i);
                    size_t end = nl ? (size_t)(nl - text.data) + 1 : text.len;
                    ws_tokenizer_encode(t, text.data + i, end - i, false, &ids, &n, NULL);
                    n_ids += n;
                    free(ids);
                    i = end;
                }
            }
            secs[r] = now() - t0;
        }
        qsort(secs, RUNS, sizeof secs[0], cmp_double);
        double med = secs[RUNS / 2];
        printf("encode %s %.2f MB -> %zu tokens: median %.1f ms, %.2f MB/s, %.2f Mtok/s (min %.1f ms, max "
               "%.1f ms)\n",
               per_line ? "per-line" : "one-call", (double)text.len / 1e6, n_ids, med * 1e3,
               (double)text.len / 1e6 / med, (double)n_ids / 1e6 / med, secs[0] * 1e3, secs[RUNS - 1] * 1e3);
    }
    ws_tokenizer_free(t);
    ws_buf_free(&text);
    return 0;
}
