/* `whatstyle generate --model PATH --prompt TEXT`: runs the engine on a GGUF file (quantized,
 * in place) or a Hugging Face model directory (config.json, safetensors, tokenizer.json),
 * optionally with a PEFT LoRA adapter and the model's chat template, and prints the continuation — streamed as text, or as one JSON object with the prompt ids
 * (exactly transformers' tokenizer(prompt)), the new ids, their natural-log probabilities under
 * the model, and the decoded text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"
#include "nn/base.h"
#include "nn/generate.h"
#include "nn/lora.h"
#include "nn/model.h"
#include "nn/ops.h"
#include "nn/tokenizer.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: whatstyle generate --model PATH --prompt TEXT [--max-new-tokens N] [--temperature T]\n"
               "                          [--top-k K] [--top-p P] [--repetition-penalty R] [--seed S]\n"
               "                          [--stop STRING]... [--adapter DIR] [--threads N] [--json]\n"
               "                          [--chat [--system TEXT]] [--f32]\n\n"
               "Generates a continuation of TEXT with the model at PATH: a GGUF file (llama or qwen2;\n"
               "F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q4_K/Q5_K/Q6_K, run on the quantized blocks; --f32\n"
               "dequantizes it first) or a Hugging Face directory (LlamaForCausalLM or Qwen2ForCausalLM;\n"
               "safetensors F32/F16/BF16; tokenizer.json), optionally with a PEFT LoRA adapter. --chat\n"
               "sends TEXT as a user message through the model's chat template (and --system as the\n"
               "system message). Temperature 0 (the default) is greedy. Generation stops at the model's\n"
               "end-of-sequence token, a --stop string or --max-new-tokens (default 64).\n"
               "--json prints {\"prompt_tokens\":[...],\"tokens\":[...],\"logprobs\":[...],\"text\":...};\n"
               "otherwise the text is streamed as it is generated.\n");
}

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

static bool parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

#define MAX_STOPS 16

int ws_cmd_generate(int argc, char **argv)
{
    const char *model_dir = NULL, *prompt = NULL, *adapter_dir = NULL, *system = NULL;
    bool chat = false, f32 = false;
    const char *stops[MAX_STOPS];
    int n_stops = 0, threads = 0;
    bool json = false;
    ws_gen_opts o;
    ws_gen_opts_init(&o);
    for (int i = 1; i < argc; i++) {
        double v;
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--chat")) {
            chat = true;
        } else if (!strcmp(a, "--f32")) {
            f32 = true;
        } else if (!next) {
            usage(stderr);
            return 2;
        } else if (!strcmp(a, "--model")) {
            model_dir = argv[++i];
        } else if (!strcmp(a, "--prompt")) {
            prompt = argv[++i];
        } else if (!strcmp(a, "--system")) {
            system = argv[++i];
        } else if (!strcmp(a, "--adapter")) {
            adapter_dir = argv[++i];
        } else if (!strcmp(a, "--stop") && n_stops < MAX_STOPS) {
            stops[n_stops++] = argv[++i];
        } else if (!strcmp(a, "--max-new-tokens") && parse_num(next, 0, 1 << 20, &v)) {
            o.max_new_tokens = (int)v, i++;
        } else if (!strcmp(a, "--temperature") && parse_num(next, 0, 100, &v)) {
            o.temperature = (float)v, i++;
        } else if (!strcmp(a, "--top-k") && parse_num(next, 0, 1 << 24, &v)) {
            o.top_k = (int)v, i++;
        } else if (!strcmp(a, "--top-p") && parse_num(next, 0, 1, &v)) {
            o.top_p = (float)v, i++;
        } else if (!strcmp(a, "--repetition-penalty") && parse_num(next, 0.01, 100, &v)) {
            o.repetition_penalty = (float)v, i++;
        } else if (!strcmp(a, "--seed") && parse_num(next, 0, 1.8e19, &v)) {
            o.seed = (uint64_t)v, i++;
        } else if (!strcmp(a, "--threads") && parse_num(next, 1, 256, &v)) {
            threads = (int)v, i++;
        } else {
            fprintf(stderr, "whatstyle generate: bad option or value: %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model_dir || !prompt) {
        usage(stderr);
        return 2;
    }
    if (threads)
        ws_nn_set_threads(threads);
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
