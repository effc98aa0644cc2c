/* libFuzzer target: the S3 ListObjectsV2 response parser (the server's XML is untrusted)
 * must never crash or read out of bounds, and every key it reports fits the stated cap. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blobs/s3_sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_key(void *arg, const char *key)
{
    if (strlen(key) > WS_S3_LIST_KEY_MAX)
        abort();
    (*(size_t *)arg)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *xml = malloc(size + 1);
    if (!xml)
        return 0;
    memcpy(xml, data, size);
    xml[size] = '\0';
    size_t n = 0;
    char next[64];
    if (ws_s3_parse_list(xml, on_key, &n, next, sizeof next) == 1 &&
        (!next[0] || strlen(next) >= sizeof next))
        abort();
    free(xml);
    return 0;
}
