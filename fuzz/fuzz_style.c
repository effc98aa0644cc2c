/* libFuzzer target: pairs, profile (JSON, summary) and stylometric distance on any message
 * texts, and the profile.json reader (inputs starting with '{'). Input lines become messages of
 * two people a minute apart; a line starting with '#' is a media message, '!' a deleted one,
 * '@' a 2-hour gap. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "style/pairs.h"
#include "style/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    if (size && s[0] == '{') { /* a stored profile.json */
        ws_profile *pf = NULL;
        if (ws_profile_from_json(s, size, &pf, NULL) == 0) {
            ws_buf out = WS_BUF_INIT;
            ws_profile_to_json(pf, &out);
            ws_profile_summary(pf, &out);
            ws_buf_free(&out);
            ws_profile_free(pf);
        }
        return 0;
    }
    ws_pairs_builder *b = ws_pairs_builder_new("A", NULL);
    size_t pos = 0, i = 0;
    int minute = 0;
    while (pos < size) {
        const char *nl = memchr(s + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (s + pos)) : size - pos;
        ws_message m = {0};
        m.kind = WS_MSG_TEXT;
        if (len && s[pos] == '#')
            m.kind = WS_MSG_MEDIA;
        if (len && s[pos] == '!')
            m.kind = WS_MSG_DELETED;
        if (len && s[pos] == '@')
            minute += 120;
        minute += 1;
        m.ts = (ws_datetime){2024, 1, 1 + (minute / 1440) % 28, (minute / 60) % 24, minute % 60, 0};
        m.author = (i % 3) ? "A" : "B";
        m.author_len = 1;
        m.text = s + pos;
        m.text_len = len;
        ws_pairs_builder_add(b, &m);
        pos += len + 1;
        i++;
    }
    ws_pairs *p = NULL;
    if (ws_pairs_builder_finish(b, &p, NULL) == 0) {
        ws_profile *a = ws_profile_from_pairs(p, WS_PROFILE_ALL);
        ws_profile *h = ws_profile_from_pairs(p, WS_PROFILE_HELDOUT);
        ws_buf out = WS_BUF_INIT;
        ws_profile_to_json(a, &out);
        ws_profile_summary(a, &out);
        ws_style_distance d;
        ws_profile_distance(a, h, &d);
        if (!(d.total >= 0 && d.total <= 1))
            __builtin_trap();
        ws_buf_free(&out);
        ws_profile_free(a);
        ws_profile_free(h);
        ws_pairs_free(p);
    }
    return 0;
}
