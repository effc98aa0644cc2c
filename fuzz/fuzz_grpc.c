/* libFuzzer target: the gRPC message framing (length prefixes across DATA frames split
 * anywhere), the protobuf decoding of every request message the AI service accepts, the
 * reflection responder and the grpc-timeout / grpc-message parsers must never crash, leak or
 * read out of bounds, and framing must give back exactly the messages that were framed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "grpc/grpc_reflect.h"
#include "grpc/grpc_wire.h"
#include "grpc/health/v1/health.pb-c.h"
#include "whatstyle/ai/v1/ai.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_msg(void *arg, const uint8_t *m, size_t n)
{
    size_t *count = arg;
    (*count)++;
    Whatstyle__Ai__V1__GenerateRequest *g = whatstyle__ai__v1__generate_request__unpack(NULL, n, m);
    if (g) {
        for (size_t i = 0; i < g->n_context; i++)
            if (!g->context[i]->text || !g->context[i]->author)
                abort();
        whatstyle__ai__v1__generate_request__free_unpacked(g, NULL);
    }
    Whatstyle__Ai__V1__UserRequest *u = whatstyle__ai__v1__user_request__unpack(NULL, n, m);
    if (u)
        whatstyle__ai__v1__user_request__free_unpacked(u, NULL);
    Grpc__Health__V1__HealthCheckRequest *h = grpc__health__v1__health_check_request__unpack(NULL, n, m);
    if (h)
        grpc__health__v1__health_check_request__free_unpacked(h, NULL);
    ws_buf out = WS_BUF_INIT, msg = WS_BUF_INIT;
    ws_grpc_reflect_answer(m, n, &out, &msg);
    ws_buf_free(&out);
    ws_buf_free(&msg);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    /* first byte: how the stream is cut into DATA frames; the rest: the stream */
    size_t step = (size_t)data[0] % 17 + 1;
    data++, size--;
    double t;
    ws_grpc_parse_timeout((const char *)data, size < 12 ? size : 12, &t);
    ws_buf dec = WS_BUF_INIT;
    ws_grpc_percent_decode(&dec, (const char *)data, size < 64 ? size : 64);
    ws_buf_free(&dec);

    ws_grpc_deframer d;
    ws_grpc_deframer_init(&d, 1 << 16);
    size_t count = 0;
    for (size_t off = 0; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        if (ws_grpc_deframe(&d, data + off, n, on_msg, &count, NULL) != 0)
            break;
    }
    ws_grpc_deframer_free(&d);

    /* round trip: the input framed as one message comes back whole, in any split */
    ws_buf f = WS_BUF_INIT;
    ws_grpc_frame(&f, data, size);
    ws_grpc_deframer_init(&d, size);
    count = 0;
    for (size_t off = 0; off < f.len; off += step) {
        size_t n = f.len - off < step ? f.len - off : step;
        if (ws_grpc_deframe(&d, (const uint8_t *)f.data + off, n, on_msg, &count, NULL) != 0)
            abort();
    }
    if (count != 1 || !ws_grpc_deframer_idle(&d))
        abort();
    ws_grpc_deframer_free(&d);
    ws_buf_free(&f);
    return 0;
}
