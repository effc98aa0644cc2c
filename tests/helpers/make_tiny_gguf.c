/* Writes a tiny random llama model as a GGUF file (ChatML template, byte-level vocabulary,
 * Q8_0 matrices) for black-box tests that need a base model without the cost of a real one
 * (the sanitizer build). Usage: helper_make_tiny_gguf OUT.gguf [SEED] */
#include <stdio.h>
#include <stdlib.h>

#include "tiny_gguf.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUT.gguf [SEED]\n", argv[0]);
        return 2;
    }
    ws_model_config c = {.arch = WS_ARCH_LLAMA, .vocab_size = VOCAB, .dim = 64, .hidden_dim = 128, .n_layers = 2,
                         .n_heads = 4, .n_kv_heads = 2, .head_dim = 16, .max_pos = 512, .norm_eps = 1e-5f,
                         .rope_theta = 10000, .tied = true, .bos_id = -1, .eos_ids = {2}, .n_eos = 1};
    ws_model *m = ws_model_new(&c, argc > 2 ? strtoull(argv[2], NULL, 10) : 1);
    int rc = write_gguf(m, WS_QT_Q8_0, argv[1], NULL);
    ws_model_free(m);
    return rc ? 1 : 0;
}
