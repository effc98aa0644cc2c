/* ChatML and Llama-3 chat templates: recognised from the Jinja source by their markers, and
 * rendered as the templates render them (see chat_template.h). */
#include "nn/chat_template.h"

#include <string.h>

static const char *find_n(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (s[i] == needle[0] && !memcmp(s + i, needle, k))
            return s + i;
    return NULL;
}

/* The default system message a ChatML template writes when the conversation has none: a
 * literal "<|im_start|>system\n...<|im_end|>" holding no Jinja expression. */
static void chatml_default_system(const char *src, size_t len, char *out, size_t cap)
{
    static const char open[] = "<|im_start|>system\n";
    const char *p = src, *end = src + len;
    out[0] = 0;
    while ((p = find_n(p, (size_t)(end - p), open))) {
        p += sizeof open - 1;
        const char *q = find_n(p, (size_t)(end - p), "<|im_end|>");
        if (!q)
            return;
        size_t n = (size_t)(q - p);
        bool literal = n > 0 && n < cap && !memchr(p, '{', n) && !memchr(p, '\'', n) && !memchr(p, '+', n);
        if (literal) {
            memcpy(out, p, n);
            out[n] = 0;
            return;
        }
    }
}

int ws_chat_template_detect(const char *src, size_t len, ws_chat_template *out, ws_error *err)
{
    memset(out, 0, sizeof *out);
    if (find_n(src, len, "<|im_start|>")) {
        out->kind = WS_TPL_CHATML;
        chatml_default_system(src, len, out->default_system, sizeof out->default_system);
        return 0;
    }
    if (find_n(src, len, "<|start_header_id|>")) {
        out->kind = WS_TPL_LLAMA3;
        return 0;
    }
    return ws_error_set(err, WS_EUNSUPPORTED,
                        "chat template: not one WhatStyle knows (ChatML as in SmolLM2 and "
                        "Qwen2.5, or Llama-3)");
}

/* Jinja's trim: white space off both ends (the Llama-3 template trims every content). */
static void put_trimmed(ws_buf *out, const char *s)
{
    size_t n = strlen(s), a = 0;
    while (a < n && strchr(" \t\r\n", s[a]))
        a++;
    while (n > a && strchr(" \t\r\n", s[n - 1]))
        n--;
    ws_buf_append(out, s + a, n - a);
}

void ws_chat_template_render(const ws_chat_template *t, const ws_chat_msg *msgs, size_t n,
                             bool add_generation_prompt, ws_buf *out)
{
    if (t->kind == WS_TPL_LLAMA3) {
        ws_buf_puts(out, "<|begin_of_text|>");
        for (size_t i = 0; i < n; i++) {
            ws_buf_printf(out, "<|start_header_id|>%s<|end_header_id|>\n\n", msgs[i].role);
            put_trimmed(out, msgs[i].content);
            ws_buf_puts(out, "<|eot_id|>");
        }
        if (add_generation_prompt)
            ws_buf_puts(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        return;
    }
    if (t->default_system[0] && (n == 0 || strcmp(msgs[0].role, "system")))
        ws_buf_printf(out, "<|im_start|>system\n%s<|im_end|>\n", t->default_system);
    for (size_t i = 0; i < n; i++)
        ws_buf_printf(out, "<|im_start|>%s\n%s<|im_end|>\n", msgs[i].role, msgs[i].content);
    if (add_generation_prompt)
        ws_buf_puts(out, "<|im_start|>assistant\n");
}

const char *ws_chat_template_end(const ws_chat_template *t)
{
    return t->kind == WS_TPL_LLAMA3 ? "<|eot_id|>" : "<|im_end|>";
}
