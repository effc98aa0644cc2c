/* libFuzzer target: the masking-rules parser and the phone/e-mail/link scanners on any bytes.
 * The first byte picks the mode: rules file, or text to mask with the default rules. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "style/mask.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    ws_mask_rules r;
    if (data[0] & 1) {
        if (ws_mask_rules_parse(s, n, &r, NULL) != 0)
            return 0;
        if (r.n > WS_MASK_MAX_RULES)
            abort();
    } else {
        ws_mask_rules_default(&r);
    }
    ws_buf out = WS_BUF_INIT;
    size_t count = ws_mask_apply(&r, s, n, &out);
    if (count == 0 && (out.len != n || (n && memcmp(out.data, s, n) != 0)))
        abort(); /* nothing masked: the text must come back unchanged */
    ws_buf_free(&out);
    for (size_t i = 0; i < n && i < 64; i++)
        for (int k = 0; k < 3; k++)
            if (ws_mask_match((ws_mask_kind)k, s, n, i) > n - i)
                abort();
    return 0;
}
