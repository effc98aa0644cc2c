/* Chat templates of instruction-tuned bases: how a conversation (system, user and assistant
 * messages) becomes the text the model was trained on. Recognised from the model's Jinja
 * template (tokenizer.chat_template in GGUF, tokenizer_config.json beside a Hugging Face model):
 * ChatML (<|im_start|>role ... <|im_end|>, SmolLM2 and Qwen2.5, with the default system message
 * the template inserts when the conversation has none) and Llama-3 (<|start_header_id|>role
 * <|end_header_id|> ... <|eot_id|>). The rendered text contains the special tokens as text;
 * encode it with the tokenizer (special tokens are split out), without adding BOS again.
 * Immutable after detection; thread-safe. */
#ifndef WS_NN_CHAT_TEMPLATE_H
#define WS_NN_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"

typedef enum { WS_TPL_CHATML = 1, WS_TPL_LLAMA3 } ws_tpl_kind;

typedef struct ws_chat_template {
    ws_tpl_kind kind;
    char default_system[512]; /* "" when the template inserts none */
} ws_chat_template;

typedef struct ws_chat_msg {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} ws_chat_msg;

/* Recognises the template in src[len]. Errors: WS_EUNSUPPORTED (a template of another kind:
 * the message says which kinds are known). */
int ws_chat_template_detect(const char *src, size_t len, ws_chat_template *out, ws_error *err);
/* Appends the rendering of msgs[n] to out, and the assistant's header when
 * add_generation_prompt (what the model continues from). */
void ws_chat_template_render(const ws_chat_template *t, const ws_chat_msg *msgs, size_t n,
                             bool add_generation_prompt, ws_buf *out);
/* The text that ends an assistant message ("<|im_end|>" or "<|eot_id|>"). */
const char *ws_chat_template_end(const ws_chat_template *t);

#endif
