/* Writes a synthetic WhatsApp export of N messages (Android en-GB layout) for benchmarks and
 * prints its checksum. Usage: bench_gen_export N OUT.txt */
#include <stdio.h>
#include <stdlib.h>

#include "chat/synth.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s N OUT.txt\n", argv[0]);
        return 2;
    }
    unsigned long long n = strtoull(argv[1], NULL, 10);
    FILE *f = fopen(argv[2], "wb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    ws_chat_synth s;
    ws_chat_synth_init(&s, 42);
    ws_buf b = WS_BUF_INIT;
    uint64_t sum = 1469598103934665603ull;
    for (unsigned long long i = 0; i < n; i++) {
        ws_chat_synth_next(&s, &b, &sum);
        if (b.len > (1u << 20)) {
            fwrite(b.data, 1, b.len, f);
            ws_buf_reset(&b);
        }
    }
    fwrite(b.data, 1, b.len, f);
    ws_buf_free(&b);
    if (fclose(f) != 0) {
        perror(argv[2]);
        return 1;
    }
    printf("%llu messages, checksum %016llx\n", n, (unsigned long long)sum);
    return 0;
}
