/* libFuzzer target: the JWT verifier and claim decoder read untrusted cookies and bearer
 * tokens, and the JWKS reader a key file (`whatstyle ai --gateway-jwks`); they must never
 * crash, read past the input, or accept a token that was not signed by the key. The key is fixed so the seed
 * corpus holds tokens that verify. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "core/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char key_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MC4CAQAwBQYDK2VwBCIEIIkrX3QYXwPNvvZ8ZyU+/z71pt9swq9Ob3ujJD+aR8dH\n"
                              "-----END PRIVATE KEY-----\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ws_jwt_key *key;
    if (!key && ws_jwt_key_from_pem(key_pem, sizeof key_pem - 1, &key, NULL) != 0)
        abort();
    char *buf = malloc(size ? size : 1); /* no terminator: ASan sees any over-read */
    memcpy(buf, data, size);
    ws_jwt_claims c;
    ws_jwt_expect x = {.now = 1800000000, .leeway_s = 0};
    if (ws_jwt_verify(key, buf, size, &x, &c, NULL) == 0) {
        /* whatever verified must carry the required claims and be in date */
        if (!c.sub[0] || c.exp <= x.now)
            abort();
    }
    ws_jwt_decode_unverified(buf, size, &c, NULL);
    ws_jwt_key *jk = NULL;
    if (ws_jwt_key_from_jwks(buf, size, &jk, NULL) == 0) {
        if (!jk || strlen(ws_jwt_key_id(jk)) != 43)
            abort();
        ws_jwt_key_free(jk);
    } else if (jk) {
        abort();
    }
    unsigned char out[4096];
    ws_base64url_decode(buf, size, out, sizeof out);
    free(buf);
    return 0;
}
