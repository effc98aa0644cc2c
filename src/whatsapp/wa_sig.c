/* The webhook signature (whatsapp.h): HMAC-SHA256 of the raw body under the app secret,
 * sent as "X-Hub-Signature-256: sha256=<hex>", checked in constant time. */
#include "whatsapp/whatsapp.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "core/hex.h"

static void mac(const void *secret, size_t secret_len, const void *body, size_t len, unsigned char out[32])
{
    unsigned int ol = 32;
    static const unsigned char empty = 0;
    HMAC(EVP_sha256(), secret, (int)secret_len, len ? body : &empty, len, out, &ol);
}

void ws_wa_signature_make(const void *secret, size_t secret_len, const void *body, size_t len, char out[72])
{
    unsigned char d[32];
    mac(secret, secret_len, body, len, d);
    memcpy(out, "sha256=", 7);
    ws_hex_encode(d, sizeof d, out + 7);
}

int ws_wa_signature_check(const void *secret, size_t secret_len, const void *body, size_t len,
                          const char *header)
{
    if (!header || strncmp(header, "sha256=", 7) != 0 || strlen(header + 7) != 64)
        return WS_EINVAL;
    unsigned char want[32], got[32];
    for (int i = 0; i < 32; i++) {
        int hi = ws_hex_digit(header[7 + 2 * i]), lo = ws_hex_digit(header[8 + 2 * i]);
        if (hi < 0 || lo < 0)
            return WS_EINVAL;
        got[i] = (unsigned char)(hi << 4 | lo);
    }
    mac(secret, secret_len, body, len, want);
    return CRYPTO_memcmp(want, got, sizeof want) == 0 ? 0 : WS_EPERM;
}
