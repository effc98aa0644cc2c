/* libFuzzer target: the WhatsApp export reader (text and zip, detected by content) must never
 * crash, hang or leak, whatever the bytes. The first byte picks the date order. */
#include <stddef.h>
#include <stdint.h>

#include "chat/chat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    ws_chat_options opt = {.date_order = (ws_date_order)(data[0] % 4), .max_message_bytes = 1 << 16,
                           .max_file_bytes = 1 << 22};
    ws_chat_reader *r = NULL;
    ws_error err = {0};
    if (ws_chat_open_memory(data + 1, size - 1, &opt, &r, &err) != 0)
        return 0;
    ws_message m;
    while (ws_chat_next(r, &m, &err) == 1) {
        if (m.author && m.author_len == 0)
            __builtin_trap();
    }
    ws_chat_close(r);
    return 0;
}
