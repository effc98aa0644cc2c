/* Parsing a conversation context given by a user (`whatstyle reply --context-file`): a JSON
 * array of {"author", "text"} objects, or lines "Name: text" (a line without a short
 * "Name: " prefix is someone else's turn). Only the latest WS_CLONE_CONTEXT_MAX turns are kept. */
#include <stdlib.h>
#include <string.h>

#include "clone/clone.h"
#include "core/json.h"
#include "core/mem.h"

static void add_turn(ws_clone_turn **t, size_t *n, const char *author, size_t alen, const char *text,
                     size_t tlen)
{
    if (*n == WS_CLONE_CONTEXT_MAX) { /* keep the latest */
        free((char *)(*t)[0].author);
        free((char *)(*t)[0].text);
        memmove(*t, *t + 1, (*n - 1) * sizeof **t);
        (*n)--;
    }
    *t = ws_xrealloc(*t, (*n + 1) * sizeof **t);
    (*t)[*n].author = author ? ws_xstrndup(author, alen) : NULL;
    (*t)[*n].text = ws_xstrndup(text, tlen);
    (*n)++;
}

void ws_clone_context_free(ws_clone_turn *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)t[i].author);
        free((char *)t[i].text);
    }
    free(t);
}

int ws_clone_context_parse(const char *data, size_t len, ws_clone_turn **out, size_t *n_out, ws_error *err)
{
    *out = NULL;
    *n_out = 0;
    if (len > WS_CLONE_CONTEXT_BYTES)
        return ws_error_set(err, WS_ETOOBIG, "context over %u bytes", WS_CLONE_CONTEXT_BYTES);
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\t' || data[i] == '\r'))
        i++;
    int rc = 0;
    if (i < len && data[i] == '[') {
        ws_json_doc *doc = NULL;
        ws_error jerr = {0};
        if (ws_json_parse(data, len, &doc, &jerr))
            return ws_error_set(err, WS_EFORMAT, "context: %s", jerr.msg);
        const ws_json *r = ws_json_root(doc);
        for (size_t k = 0; k < r->len && !rc; k++) {
            const ws_json *it = &r->items[k];
            const ws_json *a = ws_json_get(it, "author"), *t = ws_json_get(it, "text");
            if (!t || t->type != WS_JSON_STRING ||
                (a && a->type != WS_JSON_STRING && a->type != WS_JSON_NULL))
                rc = ws_error_set(err, WS_EFORMAT,
                                  "context: turn %zu needs a string \"text\" (and \"author\")", k);
            else if (memchr(t->str, '\0', t->len) ||
                     (a && a->type == WS_JSON_STRING && memchr(a->str, '\0', a->len)))
                rc = ws_error_set(err, WS_EFORMAT, "context: turn %zu holds a NUL character", k);
            else
                add_turn(out, n_out, a && a->type == WS_JSON_STRING ? a->str : NULL,
                         a && a->type == WS_JSON_STRING ? a->len : 0, t->str, t->len);
        }
        ws_json_doc_free(doc);
    } else {
        const char *p = data, *end = data + len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
            size_t full = l;
            if (l && p[l - 1] == '\r')
                l--;
            if (memchr(p, '\0', l)) {
                rc = ws_error_set(err, WS_EFORMAT, "context: a line holds a NUL character");
                break;
            }
            const char *colon = memchr(p, ':', l);
            if (l) {
                if (colon && colon > p && colon + 1 < p + l && colon[1] == ' ' && colon - p < 64)
                    add_turn(out, n_out, p, (size_t)(colon - p), colon + 2, l - (size_t)(colon + 2 - p));
                else
                    add_turn(out, n_out, NULL, 0, p, l);
            }
            p += full + (nl ? 1 : 0);
        }
    }
    if (rc) {
        ws_clone_context_free(*out, *n_out);
        *out = NULL;
        *n_out = 0;
    }
    return rc;
}
