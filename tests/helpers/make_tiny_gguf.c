/* Writes a tiny random model as a GGUF file (ChatML template, byte-level vocabulary) for
 * black-box tests that need a base model without the cost of a real one (the sanitizer build)
 * and for the seeds of fuzz/fuzz_gguf_model.c.
 * Usage: helper_make_tiny_gguf OUT.gguf [SEED [llama|qwen2 [TYPE [DIM]]]]  (TYPE e.g. Q8_0, F32;
 * DIM 64 by default, a multiple of 32) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tiny_gguf.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUT.gguf [SEED [llama|qwen2 [TYPE [DIM]]]]\n", argv[0]);
        return 2;
    }
    bool qwen = argc > 3 && !strcmp(argv[3], "qwen2");
    ws_qtype type = WS_QT_Q8_0;
    for (int t = 0; argc > 4 && t < WS_QT_COUNT; t++)
        if (ws_qtype_name(t) && !strcmp(ws_qtype_name(t), argv[4]))
            type = (ws_qtype)t;
    int dim = argc > 5 ? atoi(argv[5]) : 64;
    if (dim < 32 || dim % 32) {
        fprintf(stderr, "DIM must be a positive multiple of 32\n");
        return 2;
    }
    ws_model_config c = {.arch = qwen ? WS_ARCH_QWEN2 : WS_ARCH_LLAMA,
                         .vocab_size = VOCAB,
                         .dim = dim,
                         .hidden_dim = 2 * dim,
                         .n_layers = 2,
                         .n_heads = 4,
                         .n_kv_heads = 2,
                         .head_dim = dim / 4,
                         .max_pos = 512,
                         .norm_eps = 1e-5f,
                         .rope_theta = 10000,
                         .tied = !qwen,
                         .qkv_bias = qwen,
                         .bos_id = -1,
                         .eos_ids = {2},
                         .n_eos = 1};
    ws_model *m = ws_model_new(&c, argc > 2 ? strtoull(argv[2], NULL, 10) : 1);
    int rc = write_gguf(m, type, argv[1], NULL);
    ws_model_free(m);
    return rc ? 1 : 0;
}
