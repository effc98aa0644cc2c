/* libFuzzer target: the HTTP request head parser and the chunked body decoder must never
 * crash, read out of bounds or report more bytes than they were given, on any input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/buf.h"
#include "server/http_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    ws_http_request req;
    int n = ws_http_parse_request(s, size, &req);
    if (n > (int)size || n < -2 || n == 0)
        abort();
    if (n > 0) {
        for (size_t i = 0; i < req.num_headers; i++)
            ws_http_find_header(&req, "content-length");
        ws_http_slice v;
        char dec[256];
        if (ws_http_query_get(req.query, "persona", &v) && v.len < sizeof dec)
            ws_http_url_decode(v.p, v.len, dec, sizeof dec, true);
        /* the rest of the input as a chunked body, fed in two pieces */
        ws_http_chunked d = {0};
        ws_buf out = {.limit = 1 << 16};
        size_t rest = size - (size_t)n, half = rest / 2, used = 0;
        int r = ws_http_decode_chunked(&d, s + n, half, &out, &used);
        if (used > half)
            abort();
        if (r == 0) {
            r = ws_http_decode_chunked(&d, s + n + half, rest - half, &out, &used);
            if (used > rest - half)
                abort();
        }
        ws_buf_free(&out);
    }
    return 0;
}
