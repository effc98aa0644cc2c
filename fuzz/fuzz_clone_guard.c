/* libFuzzer target: the clone's candidate guard (src/clone/guard.c) reads a model's output, the
 * incoming message and the context turns, all untrusted: it must never crash nor read out of
 * bounds. Input: parts split by 0x1F — candidate, message, system message, then context turns
 * as "author 0x1E text" (no 0x1E: someone else's). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clone/clone_int.h"

#define MAX_TURNS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *parts[3 + MAX_TURNS] = {0};
    size_t np = 0;
    for (char *p = buf; np < 3 + MAX_TURNS;) {
        parts[np++] = p;
        char *sep = strchr(p, 0x1F);
        if (!sep)
            break;
        *sep = '\0';
        p = sep + 1;
    }
    const char *texts[MAX_TURNS], *authors[MAX_TURNS];
    size_t nt = 0;
    for (size_t i = 3; i < np; i++, nt++) {
        char *sep = strchr(parts[i], 0x1E);
        authors[nt] = sep ? parts[i] : NULL;
        if (sep)
            *sep = '\0';
        texts[nt] = sep ? sep + 1 : parts[i];
    }
    clone_guard g = {.persona = "Maya",
                     .system = np > 2 ? parts[2] : NULL,
                     .message = np > 1 ? parts[1] : NULL,
                     .ctx_texts = texts,
                     .ctx_authors = authors,
                     .n_ctx = nt};
    clone_guard_why why = ws__clone_guard_check(&g, parts[0]);
    (void)ws__clone_guard_name(why);
    (void)ws__clone_guard_label_start(&g, parts[0], false);
    (void)ws__clone_guard_label_start(&g, parts[0], true);
    free(buf);
    return 0;
}
