/* `whatstyle generate --model PATH --prompt TEXT`: runs the engine on a GGUF file (quantized,
 * in place) or a Hugging Face model directory (config.json, safetensors, tokenizer.json),
 * optionally with a PEFT LoRA adapter and the model's chat template, and prints the continuation — streamed
 * as text, or as one JSON object with the prompt ids (exactly transformers' tokenizer(prompt)), the new ids,
 * their natural-log probabilities under the model, and the decoded text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "core/buf.h"
#include "core/json.h"
#include "nn/base.h"
#include "nn/generate.h"
#include "nn/lora.h"
#include "nn/model.h"
#include "nn/ops.h"
#include "nn/tokenizer.h"

typedef struct gen_cli {
    const char *model, *prompt, *system, *adapter;
    ws_cli_list stop;
    double max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed;
    int threads;
    bool json, chat, f32, llamacpp_order;
} gen_cli;

#define F(field) offsetof(gen_cli, field)
static const ws_opt rows[] = {
    {.name = "model",
     .kind = WS_OPT_STR,
     .off = F(model),
     .arg = "PATH",
     .flags = WS_OPTF_REQUIRED,
     .help = "GGUF file or Hugging Face model directory"},
    {.name = "prompt",
     .kind = WS_OPT_STR,
     .off = F(prompt),
     .arg = "TEXT",
     .flags = WS_OPTF_REQUIRED,
     .help = "the text to continue (with --chat: the user message)"},
    {.name = "max-new-tokens",
     .kind = WS_OPT_NUM,
     .off = F(max_new_tokens),
     .lo = 0,
     .hi = 1 << 20,
     .arg = "N",
     .help = "stop after N new tokens (default 64)"},
    {.name = "temperature",
     .kind = WS_OPT_NUM,
     .off = F(temperature),
     .lo = 0,
     .hi = 100,
     .arg = "T",
     .help = "sampling temperature (default 0: greedy)"},
    {.name = "top-k",
     .kind = WS_OPT_NUM,
     .off = F(top_k),
     .lo = 0,
     .hi = 1 << 24,
     .arg = "K",
     .help = "sample from the K likeliest tokens"},
    {.name = "top-p",
     .kind = WS_OPT_NUM,
     .off = F(top_p),
     .lo = 0,
     .hi = 1,
     .arg = "P",
     .help = "nucleus sampling"},
    {.name = "repetition-penalty",
     .kind = WS_OPT_NUM,
     .off = F(repetition_penalty),
     .lo = 0.01,
     .hi = 100,
     .arg = "R",
     .help = "penalty of tokens already generated"},
    {.name = "seed",
     .kind = WS_OPT_NUM,
     .off = F(seed),
     .lo = 0,
     .hi = 1.8e19,
     .arg = "S",
     .help = "sampling seed"},
    {.name = "stop",
     .kind = WS_OPT_LIST,
     .off = F(stop),
     .arg = "STRING",
     .help = "stop at STRING (repeatable, up to 16)"},
    {.name = "adapter", .kind = WS_OPT_STR, .off = F(adapter), .arg = "DIR", .help = "a PEFT LoRA adapter"},
    {.name = "nn-threads",
     .kind = WS_OPT_INT,
     .off = F(threads),
     .env = "WS_NN_THREADS",
     .lo = 1,
     .hi = 256,
     .alias = "threads",
     .arg = "N",
     .help = "threads of the neural engine (default: all cores)"},
    {.name = "json",
     .kind = WS_OPT_FLAG,
     .off = F(json),
     .help = "print {\"prompt_tokens\",\"tokens\",\"logprobs\",\"text\",\"stop\"} instead of streaming text"},
    {.name = "chat",
     .kind = WS_OPT_FLAG,
     .off = F(chat),
     .help = "send TEXT as a user message through the model's chat template"},
    {.name = "system",
     .kind = WS_OPT_STR,
     .off = F(system),
     .arg = "TEXT",
     .help = "the system message (--chat)"},
    {.name = "f32", .kind = WS_OPT_FLAG, .off = F(f32), .help = "dequantize a GGUF model first"},
    {.name = "llamacpp-order",
     .kind = WS_OPT_FLAG,
     .off = F(llamacpp_order),
     .help = "a quantized GGUF model sums as llama.cpp does: its greedy tokens, about half the speed"},
};
#undef F

const ws_cli_spec ws_cli_spec_generate = {
    .name = "generate",
    .synopsis = "--model PATH --prompt TEXT [options]",
    .about = "Generates a continuation of TEXT with the model at PATH: a GGUF file (llama or qwen2;\n"
             "F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q4_K/Q5_K/Q6_K, run on the quantized blocks; --f32\n"
             "dequantizes it first) or a Hugging Face directory (LlamaForCausalLM or Qwen2ForCausalLM;\n"
             "safetensors F32/F16/BF16; tokenizer.json), optionally with a PEFT LoRA adapter.\n"
             "Generation stops at the model's end-of-sequence token, a --stop string or\n"
             "--max-new-tokens.\n",
    WS_CLI_SPEC_ROWS(rows),
};

typedef struct {
    const ws_tokenizer *tok;
    ws_tokenizer_stream st;
    ws_buf out;
    bool stream;
} gen_ctx;

static int on_token(void *p, int32_t id, float logprob)
{
    gen_ctx *g = p;
    if (!g->stream)
        return 0;
    ws_tokenizer_stream_put(g->tok, &g->st, id, true, &g->out);
    if (g->out.len) {
        fwrite(g->out.data, 1, g->out.len, stdout);
        fflush(stdout);
        ws_buf_reset(&g->out);
    }
    return 0;
}

static int token_bytes(void *p, int32_t id, const char **b, size_t *len)
{
    return ws_tokenizer_token_bytes(((gen_ctx *)p)->tok, id, b, len);
}

int ws_cmd_generate(int argc, char **argv)
{
    ws_gen_opts o;
    ws_gen_opts_init(&o);
    gen_cli g0 = {.max_new_tokens = o.max_new_tokens,
                  .temperature = o.temperature,
                  .top_k = o.top_k,
                  .top_p = o.top_p,
                  .repetition_penalty = o.repetition_penalty,
                  .seed = (double)o.seed};
    int pr = ws_cli_parse(&ws_cli_spec_generate, argc, argv, &g0, NULL, NULL);
    if (pr)
        return pr == 1 ? 0 : 2;
    const char *model_dir = g0.model, *prompt = g0.prompt, *adapter_dir = g0.adapter, *system = g0.system;
    bool chat = g0.chat, f32 = g0.f32, json = g0.json;
    const char *const *stops = g0.stop.v;
    int n_stops = g0.stop.n;
    o.max_new_tokens = (int)g0.max_new_tokens;
    o.temperature = (float)g0.temperature;
    o.top_k = (int)g0.top_k;
    o.top_p = (float)g0.top_p;
    o.repetition_penalty = (float)g0.repetition_penalty;
    o.seed = (uint64_t)g0.seed;
    if (g0.threads)
        ws_nn_set_threads(g0.threads);
    int rc = 1;
    ws_error err = {0};
    ws_base *base = NULL;
    ws_model *m = NULL;
    ws_lora *lora = NULL;
    const ws_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    ws_gen_result res = {0};
    gen_ctx g = {.out = WS_BUF_INIT, .stream = !json};
    ws_chat_msg msgs[2];
    size_t n_msgs = 0;
    if (system)
        msgs[n_msgs++] = (ws_chat_msg){"system", system};
    msgs[n_msgs++] = (ws_chat_msg){"user", prompt};
    if (ws_base_load(model_dir, f32 ? WS_LOAD_COPY : 0, &base, &err) ||
        (adapter_dir && ws_lora_load(adapter_dir, &base->model->cfg, &lora, &err)) ||
        (chat ? ws_base_encode_chat(base, msgs, n_msgs, true, &ids, &n_ids, &err)
              : ws_tokenizer_encode(base->tok, prompt, strlen(prompt), true, &ids, &n_ids, &err))) {
        fprintf(stderr, "whatstyle generate: %s\n", err.msg);
        goto out;
    }
    m = base->model;
    tok = base->tok;
    if (g0.llamacpp_order) {
        if (!m->quantized) {
            fprintf(stderr,
                    "whatstyle generate: --llamacpp-order needs a quantized GGUF model (not --f32 nor a "
                    "Hugging Face directory)\n");
            goto out;
        }
        ws_model_set_llamacpp_order(m, true);
    }
    if (n_ids == 0) {
        fprintf(stderr, "whatstyle generate: the prompt encodes to no tokens\n");
        goto out;
    }
    /* stop at the model's eos ids, and at the tokenizer's when the config names none */
    int32_t stop_ids[WS_MAX_EOS + 1];
    int n_stop_ids = 0;
    for (int i = 0; i < m->cfg.n_eos; i++)
        stop_ids[n_stop_ids++] = m->cfg.eos_ids[i];
    if (!n_stop_ids && ws_tokenizer_eos_id(tok) >= 0)
        stop_ids[n_stop_ids++] = ws_tokenizer_eos_id(tok);
    o.stop_ids = stop_ids;
    o.n_stop_ids = n_stop_ids;
    o.stop_strings = stops;
    o.n_stop_strings = n_stops;
    o.token_bytes = token_bytes;
    o.token_ctx = &g;
    o.on_token = on_token;
    o.on_token_ctx = &g;
    g.tok = tok;
    if (ws_generate(m, lora, ids, (int)n_ids, &o, &res, &err)) {
        fprintf(stderr, "whatstyle generate: %s\n", err.msg);
        goto out;
    }
    if (json) {
        ws_buf b = WS_BUF_INIT;
        ws_buf_puts(&b, "{\"prompt_tokens\":[");
        for (size_t i = 0; i < n_ids; i++)
            ws_buf_printf(&b, "%s%d", i ? "," : "", (int)ids[i]);
        ws_buf_puts(&b, "],\"tokens\":[");
        for (int i = 0; i < res.n; i++)
            ws_buf_printf(&b, "%s%d", i ? "," : "", (int)res.tokens[i]);
        ws_buf_puts(&b, "],\"logprobs\":[");
        for (int i = 0; i < res.n; i++) {
            if (i)
                ws_buf_putc(&b, ',');
            ws_json_put_num(&b, res.logprobs[i]);
        }
        size_t tl = 0;
        char *text = ws_tokenizer_decode_len(tok, res.tokens, (size_t)res.n, true, &tl);
        ws_buf_puts(&b, "],\"text\":");
        ws_json_put_str(&b, text, tl);
        static const char *const reasons[] = {"length", "eos", "stop_string", "callback"};
        ws_buf_printf(&b, ",\"stop\":\"%s\"}\n", reasons[res.stop]);
        fwrite(b.data, 1, b.len, stdout);
        free(text);
        ws_buf_free(&b);
    } else {
        ws_tokenizer_stream_flush(&g.st, &g.out);
        fwrite(g.out.data ? g.out.data : "", 1, g.out.len, stdout);
        putchar('\n');
    }
    rc = 0;
out:
    ws_buf_free(&g.out);
    ws_gen_result_free(&res);
    free(ids);
    ws_lora_free(lora);
    ws_base_free(base);
    return rc;
}
