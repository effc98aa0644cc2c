/* Examples in the base model's chat template: the system message naming the persona, the
 * conversation so far as the user message, the persona's reply as the assistant message. The
 * template's own text (with its special tokens) is encoded as it is; the people's text is
 * encoded so that it can never spell a special token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clone/clone_int.h"
#include "core/mem.h"

#define SENTINEL "\x1f" /* stands for a message's content while the template renders */

int ws__clone_fmt_init_chat(clone_fmt *f, const ws_base *b, const char *persona, ws_error *err)
{
    memset(f, 0, sizeof *f);
    if (!b->has_template)
        return ws_error_set(err, WS_EUNSUPPORTED, "%s has no chat template", b->path);
    f->chat = true;
    f->base = b;
    f->tok = b->tok;
    snprintf(f->persona, sizeof f->persona, "%s", persona ? persona : "me");
    f->end = ws_tokenizer_token_id(b->tok, ws_chat_template_end(&b->tpl));
    if (f->end < 0)
        return ws_error_set(err, WS_EFORMAT, "%s: the chat template's %s is not a token", b->path,
                            ws_chat_template_end(&b->tpl));
    return 0;
}

static void encode_template(const clone_fmt *f, const char *s, size_t n, ibuf *out)
{
    int32_t *ids = NULL;
    size_t k = 0;
    if (ws_tokenizer_encode(f->tok, s, n, false, &ids, &k, NULL))
        return;
    for (size_t i = 0; i < k; i++)
        ws__clone_ibuf_push(out, ids[i]);
    free(ids);
}

void ws__clone_chat_system(const clone_fmt *f, char *buf, size_t n)
{
    snprintf(buf, n, "You are %s, chatting on WhatsApp. Reply to the last message as %s.", f->persona,
             f->persona);
}

void ws__clone_chat_prompt(const clone_fmt *f, const char *const *authors, const char *const *texts, size_t n,
                           ibuf *out)
{
    char system[512];
    ws__clone_chat_system(f, system, sizeof system);
    ws_chat_msg msgs[2] = {{"system", SENTINEL}, {"user", SENTINEL}};
    ws_buf r = WS_BUF_INIT;
    ws_chat_template_render(&f->base->tpl, msgs, 2, true, &r);
    /* r = piece SENTINEL piece SENTINEL piece: template text around the two contents */
    const char *p = r.data, *end = r.data + r.len;
    for (int part = 0; part < 3; part++) {
        const char *q = part < 2 ? memchr(p, SENTINEL[0], (size_t)(end - p)) : end;
        if (!q)
            q = end;
        encode_template(f, p, (size_t)(q - p), out);
        if (part == 0) {
            ws__clone_fmt_text(f, system, sizeof system, false, out);
        } else if (part == 1) {
            size_t first = n > CLONE_CHAT_TURNS ? n - CLONE_CHAT_TURNS : 0;
            for (size_t i = first; i < n; i++) {
                ws_buf line = WS_BUF_INIT;
                ws_buf_printf(&line, "%s%s: ", i > first ? "\n" : "", authors[i] ? authors[i] : "Friend");
                ws__clone_fmt_text(f, line.data, line.len, false, out);
                ws__clone_fmt_text(f, texts[i] ? texts[i] : "", CLONE_CHAT_TURN_BYTES, true, out);
                ws_buf_free(&line);
            }
        }
        p = q < end ? q + 1 : end;
    }
    ws_buf_free(&r);
}
