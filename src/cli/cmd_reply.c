/* `whatstyle reply DIR MESSAGE [--context-file F] [--json]`: one reply of the clone in DIR.
 * The context file holds earlier turns, oldest first: a JSON array of {"author", "text"}, or
 * lines "Name: text" (a line without "Name: " is someone else's). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "clone/clone.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"

#define CONTEXT_CAP (1u << 20)
#define CONTEXT_TURNS 64


void ws_cli_free_context(ws_clone_turn *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)t[i].author);
        free((char *)t[i].text);
    }
    free(t);
}

static void add_turn(ws_clone_turn **t, size_t *n, const char *author, size_t alen, const char *text, size_t tlen)
{
    if (*n == CONTEXT_TURNS) {   /* keep the latest */
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

int ws_cli_read_context(const char *path, ws_clone_turn **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "whatstyle: cannot open context file %s\n", path);
        return -1;
    }
    ws_buf b = WS_BUF_INIT;
    b.limit = CONTEXT_CAP;
    char chunk[8192];
    size_t k;
    int rc = 0;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (ws_buf_append(&b, chunk, k)) {
            fprintf(stderr, "whatstyle: context file %s is over %u bytes\n", path, CONTEXT_CAP);
            rc = -1;
            break;
        }
    fclose(f);
    const char *s = b.data ? b.data : "";
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
        s++;
    if (!rc && *s == '[') {
        ws_json_doc *doc = NULL;
        ws_error err = {0};
        if (ws_json_parse(b.data, b.len, &doc, &err)) {
            fprintf(stderr, "whatstyle: context file %s: %s\n", path, err.msg);
            rc = -1;
        } else {
            const ws_json *r = ws_json_root(doc);
            for (size_t i = 0; i < r->len && !rc; i++) {
                const char *a = ws_json_get_str(&r->items[i], "author"), *t = ws_json_get_str(&r->items[i], "text");
                if (!t) {
                    fprintf(stderr, "whatstyle: context file %s: turn %zu has no \"text\"\n", path, i);
                    rc = -1;
                } else {
                    add_turn(out, n_out, a, a ? strlen(a) : 0, t, strlen(t));
                }
            }
            ws_json_doc_free(doc);
        }
    } else if (!rc) {
        const char *p = b.data ? b.data : "";
        while (*p) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            if (len && p[len - 1] == '\r')
                len--;
            const char *colon = memchr(p, ':', len);
            if (len) {
                if (colon && colon > p && colon + 1 < p + len && colon[1] == ' ' && colon - p < 64)
                    add_turn(out, n_out, p, (size_t)(colon - p), colon + 2, len - (size_t)(colon + 2 - p));
                else
                    add_turn(out, n_out, NULL, 0, p, len);
            }
            p += nl ? (size_t)(nl - p) + 1 : strlen(p);
        }
    }
    ws_buf_free(&b);
    if (rc) {
        ws_cli_free_context(*out, *n_out);
        *out = NULL;
        *n_out = 0;
    }
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: whatstyle reply DIR MESSAGE [--context-file F] [--json]\n"
               "  --context-file F   earlier turns, oldest first: JSON [{\"author\",\"text\"}] or \"Name: text\" lines\n"
               "  --json             print {\"reply\",\"confidence\",\"fallback\",\"model_version\",\"processing_ms\"}\n"
               "  --seed N           sampling seed (default: from the message)\n");
}

int ws_cmd_reply(int argc, char **argv)
{
    const char *dir = NULL, *message = NULL, *ctx_file = NULL;
    bool json = false;
    ws_clone_reply_opts ro = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (!strcmp(argv[i], "--context-file") && i + 1 < argc) {
            ctx_file = argv[++i];
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            ro.seed = strtoull(argv[++i], NULL, 10);
        } else if (argv[i][0] == '-' && argv[i][1] && argv[i][1] != ' ' && !dir) {
            fprintf(stderr, "whatstyle reply: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!dir) {
            dir = argv[i];
        } else if (!message) {
            message = argv[i];
        } else {
            fprintf(stderr, "whatstyle reply: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    if (!dir || !message) {
        usage(stderr);
        return 2;
    }
    ws_clone_turn *ctx = NULL;
    size_t n_ctx = 0;
    if (ctx_file && ws_cli_read_context(ctx_file, &ctx, &n_ctx))
        return 1;
    ws_error err = {0};
    ws_clone *c = NULL;
    int rc = ws_clone_open(dir, &c, &err);
    if (rc) {
        fprintf(stderr, "whatstyle reply: %s\n", err.msg);
        ws_cli_free_context(ctx, n_ctx);
        return 1;
    }
    ws_clone_answer a;
    rc = ws_clone_reply(c, message, ctx, n_ctx, &ro, &a, &err);
    if (rc) {
        fprintf(stderr, "whatstyle reply: %s\n", err.msg);
    } else if (json) {
        ws_buf b = WS_BUF_INIT;
        ws_buf_puts(&b, "{\"reply\":");
        ws_json_put_cstr(&b, a.reply);
        ws_buf_puts(&b, ",\"confidence\":");
        ws_json_put_num(&b, a.confidence);
        ws_buf_printf(&b, ",\"fallback\":%s,\"model_version\":", a.fallback ? "true" : "false");
        ws_json_put_cstr(&b, ws_clone_model_version(c));
        ws_buf_puts(&b, ",\"processing_ms\":");
        ws_json_put_num(&b, a.processing_ms);
        ws_buf_puts(&b, "}\n");
        fputs(b.data, stdout);
        ws_buf_free(&b);
    } else {
        printf("%s\n", a.reply);
    }
    ws_clone_answer_clear(&a);
    ws_clone_free(c);
    ws_cli_free_context(ctx, n_ctx);
    return rc ? 1 : 0;
}
