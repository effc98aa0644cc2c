/* AES-256-GCM sealing of blobs with a versioned header (format in blobs_crypt.h). */
#include "blobs/blobs_crypt.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

int ws_blob_header_parse(const void *data, size_t len, ws_blob_header *h, ws_error *err)
{
    const unsigned char *p = data;
    if (len < WS_BLOB_OVERHEAD)
        return ws_error_set(err, WS_EFORMAT,
                            "not an encrypted blob: %zu bytes is shorter than the header and tag", len);
    if (memcmp(p, WS_BLOB_MAGIC, 4) != 0)
        return ws_error_set(err, WS_EFORMAT, "not an encrypted blob (no WSBL header)");
    if (p[4] != WS_BLOB_VERSION)
        return ws_error_set(err, WS_EFORMAT,
                            "encrypted blob format version %u is not supported (this build reads %d)", p[4],
                            WS_BLOB_VERSION);
    if (p[5] != WS_BLOB_ALG_AES256GCM)
        return ws_error_set(err, WS_EFORMAT, "encrypted blob uses unknown algorithm %u", p[5]);
    if (p[6] != WS_BLOB_NONCE_LEN || p[7] != WS_BLOB_TAG_LEN)
        return ws_error_set(err, WS_EFORMAT,
                            "encrypted blob header has nonce/tag lengths %u/%u (expected %d/%d)", p[6], p[7],
                            WS_BLOB_NONCE_LEN, WS_BLOB_TAG_LEN);
    h->version = p[4];
    h->alg = p[5];
    memcpy(h->key_id, p + 8, 4);
    memcpy(h->nonce, p + 12, WS_BLOB_NONCE_LEN);
    return 0;
}

void ws_blob_key_id(const unsigned char key[32], unsigned char id[4])
{
    static const char label[] = "whatstyle-blob-key-id";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdl = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c)
        abort(); /* out of memory: the project's policy is to abort */
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    EVP_DigestUpdate(c, label, sizeof label - 1);
    EVP_DigestUpdate(c, key, 32);
    EVP_DigestFinal_ex(c, md, &mdl);
    EVP_MD_CTX_free(c);
    memcpy(id, md, 4);
}

/* The cipher works on int lengths: large inputs go through in pieces. */
#define PIECE (1 << 30)

static int crypt_update(EVP_CIPHER_CTX *c, bool enc, unsigned char *out, const unsigned char *in, size_t len)
{
    size_t done = 0;
    while (done < len) {
        int n = (int)(len - done > PIECE ? PIECE : len - done), w = 0;
        int ok = enc ? EVP_EncryptUpdate(c, out + done, &w, in + done, n)
                     : EVP_DecryptUpdate(c, out + done, &w, in + done, n);
        if (!ok || w != n)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

static int set_aad(EVP_CIPHER_CTX *c, bool enc, const unsigned char *hdr, const char *obj_key)
{
    int w = 0;
    size_t kl = strlen(obj_key);
    if (kl > INT_MAX)
        return -1;
    if (enc)
        return EVP_EncryptUpdate(c, NULL, &w, hdr, WS_BLOB_HDR_LEN) &&
                       EVP_EncryptUpdate(c, NULL, &w, (const unsigned char *)obj_key, (int)kl)
                   ? 0
                   : -1;
    return EVP_DecryptUpdate(c, NULL, &w, hdr, WS_BLOB_HDR_LEN) &&
                   EVP_DecryptUpdate(c, NULL, &w, (const unsigned char *)obj_key, (int)kl)
               ? 0
               : -1;
}

int ws_blob_seal(const unsigned char key[32], const char *obj_key, const void *plain, size_t len, ws_buf *out,
                 ws_error *err)
{
    unsigned char hdr[WS_BLOB_HDR_LEN];
    memcpy(hdr, WS_BLOB_MAGIC, 4);
    hdr[4] = WS_BLOB_VERSION;
    hdr[5] = WS_BLOB_ALG_AES256GCM;
    hdr[6] = WS_BLOB_NONCE_LEN;
    hdr[7] = WS_BLOB_TAG_LEN;
    ws_blob_key_id(key, hdr + 8);
    if (RAND_bytes(hdr + 12, WS_BLOB_NONCE_LEN) != 1)
        return ws_error_set(err, WS_EIO, "blob encryption: no random nonce");
    if (len > SIZE_MAX - WS_BLOB_OVERHEAD - 1)
        return ws_error_set(err, WS_ETOOBIG, "blob too large");
    size_t start = out->len;
    char *dst = ws_buf_reserve(out, len + WS_BLOB_OVERHEAD);
    if (!dst)
        return ws_error_set(err, WS_ETOOBIG, "blob larger than the buffer's limit");
    int rc = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c)
        abort(); /* out of memory */
    unsigned char *o = (unsigned char *)dst;
    memcpy(o, hdr, WS_BLOB_HDR_LEN);
    int w = 0;
    if (!EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) ||
        !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, WS_BLOB_NONCE_LEN, NULL) ||
        !EVP_EncryptInit_ex(c, NULL, NULL, key, hdr + 12) || set_aad(c, true, hdr, obj_key) < 0 ||
        crypt_update(c, true, o + WS_BLOB_HDR_LEN, plain, len) < 0 ||
        !EVP_EncryptFinal_ex(c, o + WS_BLOB_HDR_LEN + len, &w) ||
        !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, WS_BLOB_TAG_LEN, o + WS_BLOB_HDR_LEN + len)) {
        rc = ws_error_set(err, WS_EIO, "blob encryption failed (OpenSSL)");
        goto out;
    }
    out->len = start + len + WS_BLOB_OVERHEAD;
    out->data[out->len] = '\0';
out:
    EVP_CIPHER_CTX_free(c);
    if (rc) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}

int ws_blob_unseal(const unsigned char key[32], const char *obj_key, const void *sealed, size_t len,
                   ws_buf *out, ws_error *err)
{
    ws_blob_header h;
    int rc = ws_blob_header_parse(sealed, len, &h, err);
    if (rc < 0)
        return rc;
    unsigned char id[4];
    ws_blob_key_id(key, id);
    if (memcmp(id, h.key_id, 4) != 0)
        return ws_error_set(
            err, WS_EPERM,
            "blob %s was encrypted with a different master key (check WS_MASTER_KEY / master.key)", obj_key);
    const unsigned char *in = sealed;
    size_t n = len - WS_BLOB_OVERHEAD;
    size_t start = out->len;
    char *dst = ws_buf_reserve(out, n);
    if (!dst)
        return ws_error_set(err, WS_ETOOBIG, "blob %s: %zu bytes is over the limit", obj_key, n);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c)
        abort(); /* out of memory */
    unsigned char tag[WS_BLOB_TAG_LEN];
    memcpy(tag, in + WS_BLOB_HDR_LEN + n, WS_BLOB_TAG_LEN);
    int w = 0;
    if (!EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) ||
        !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, WS_BLOB_NONCE_LEN, NULL) ||
        !EVP_DecryptInit_ex(c, NULL, NULL, key, h.nonce) || set_aad(c, false, in, obj_key) < 0 ||
        crypt_update(c, false, (unsigned char *)dst, in + WS_BLOB_HDR_LEN, n) < 0 ||
        !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, WS_BLOB_TAG_LEN, tag)) {
        rc = ws_error_set(err, WS_EIO, "blob decryption failed (OpenSSL)");
        goto out;
    }
    if (EVP_DecryptFinal_ex(c, (unsigned char *)dst + n, &w) != 1) {
        rc = ws_error_set(err, WS_EUNSAFE,
                          "blob %s failed authentication: it was altered or stored under another name",
                          obj_key);
        goto out;
    }
    out->len = start + n;
    out->data[out->len] = '\0';
out:
    EVP_CIPHER_CTX_free(c);
    if (rc) {
        /* never leave unauthenticated plaintext behind */
        OPENSSL_cleanse(dst, n);
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}
