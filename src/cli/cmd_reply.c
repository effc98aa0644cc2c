/* `whatstyle reply DIR MESSAGE [--context-file F] [--json]`: one reply of the clone in DIR.
 * The context file holds earlier turns, oldest first: a JSON array of {"author", "text"}, or
 * lines "Name: text" (a line without "Name: " is someone else's). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "clone/clone.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"

void ws_cli_free_context(ws_clone_turn *t, size_t n)
{
    ws_clone_context_free(t, n);
}

int ws_cli_read_context(const char *path, ws_clone_turn **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    char *data = NULL;
    size_t len = 0;
    ws_error err = {0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "whatstyle: cannot open context file %s\n", path);
        return -1;
    }
    ws_buf b = WS_BUF_INIT;
    b.limit = WS_CLONE_CONTEXT_BYTES;
    char chunk[8192];
    size_t k;
    int rc = 0;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (ws_buf_append(&b, chunk, k)) {
            fprintf(stderr, "whatstyle: context file %s is over %u bytes\n", path, WS_CLONE_CONTEXT_BYTES);
            rc = -1;
            break;
        }
    fclose(f);
    data = b.data;
    len = b.len;
    if (!rc && ws_clone_context_parse(data ? data : "", len, out, n_out, &err)) {
        fprintf(stderr, "whatstyle: context file %s: %s\n", path, err.msg);
        rc = -1;
    }
    ws_buf_free(&b);
    return rc;
}

typedef struct reply_cli {
    const char *context_file, *minilm_dir;
    bool json;
    double seed;
    int nn_threads;
} reply_cli;

static const ws_opt rows[] = {
    {.name = "context-file",
     .kind = WS_OPT_STR,
     .off = offsetof(reply_cli, context_file),
     .arg = "F",
     .help = "earlier turns, oldest first: JSON [{\"author\",\"text\"}] or \"Name: text\" lines"},
    {.name = "json",
     .kind = WS_OPT_FLAG,
     .off = offsetof(reply_cli, json),
     .help = "print {\"reply\",\"confidence\",\"fallback\",\"model_version\",\"processing_ms\"}"},
    {.name = "seed",
     .kind = WS_OPT_NUM,
     .off = offsetof(reply_cli, seed),
     .lo = 0,
     .hi = 1.8e19,
     .arg = "N",
     .help = "sampling seed (default: from the message)"},
    WS_CLI_ROW_NN_THREADS(reply_cli, nn_threads),
    WS_CLI_ROW_MINILM_DIR(reply_cli, minilm_dir),
};

const ws_cli_spec ws_cli_spec_reply = {
    .name = "reply",
    .synopsis = "DIR MESSAGE [--context-file F] [--json]",
    .about = "One reply of the clone trained into DIR (a MESSAGE starting with '-' goes after --).\n",
    .min_pos = 2,
    .max_pos = 2,
    WS_CLI_SPEC_ROWS(rows),
};

int ws_cmd_reply(int argc, char **argv)
{
    reply_cli r = {.nn_threads = -1};
    ws_cli_pos pos;
    int pr = ws_cli_parse(&ws_cli_spec_reply, argc, argv, &r, &pos, NULL);
    if (pr)
        return pr == 1 ? 0 : 2;
    ws_cli_engine_apply(r.nn_threads, r.minilm_dir);
    const char *dir = pos.v[0], *message = pos.v[1], *ctx_file = r.context_file;
    bool json = r.json;
    ws_clone_reply_opts ro = {.seed = (uint64_t)r.seed};
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
