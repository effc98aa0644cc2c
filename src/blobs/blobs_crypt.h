/* The encrypted-blob format (AES-256-GCM, OpenSSL EVP) used for every object at rest:
 *
 *   offset  size  field
 *        0     4  magic "WSBL"
 *        4     1  format version (1)
 *        5     1  algorithm (1 = AES-256-GCM)
 *        6     1  nonce length (12)
 *        7     1  tag length (16)
 *        8     4  key id: the first 4 bytes of SHA-256("whatstyle-blob-key-id" || master key),
 *                 so a blob sealed under another master key is named as such
 *       12    12  nonce (random per object)
 *       24     n  ciphertext
 *     24+n    16  GCM tag
 *
 * The associated data is the 24-byte header followed by the object's key: changing any
 * header byte, the ciphertext, the tag, or moving the object to another key makes
 * authentication fail. Functions are thread-safe (no shared state). */
#ifndef WS_BLOBS_BLOBS_CRYPT_H
#define WS_BLOBS_BLOBS_CRYPT_H

#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"

#define WS_BLOB_MAGIC "WSBL"
#define WS_BLOB_VERSION 1
#define WS_BLOB_ALG_AES256GCM 1
#define WS_BLOB_HDR_LEN 24
#define WS_BLOB_NONCE_LEN 12
#define WS_BLOB_TAG_LEN 16
#define WS_BLOB_OVERHEAD (WS_BLOB_HDR_LEN + WS_BLOB_TAG_LEN)

typedef struct ws_blob_header {
    unsigned version, alg;
    unsigned char key_id[4];
    unsigned char nonce[WS_BLOB_NONCE_LEN];
} ws_blob_header;

/* Parses the header of a sealed object of len bytes (reads at most WS_BLOB_HDR_LEN bytes;
 * never crashes). WS_EFORMAT: too short, wrong magic, unknown version / algorithm, or
 * nonce / tag lengths that are not the format's. */
int ws_blob_header_parse(const void *data, size_t len, ws_blob_header *h, ws_error *err);

/* The 4-byte id of a master key (see above). */
void ws_blob_key_id(const unsigned char key[32], unsigned char id[4]);

/* Appends the sealed form of plain[0..len) under obj_key to out (len + WS_BLOB_OVERHEAD
 * bytes). WS_EIO if the random source or the cipher fails. */
int ws_blob_seal(const unsigned char key[32], const char *obj_key, const void *plain, size_t len, ws_buf *out,
                 ws_error *err);

/* Checks and decrypts a sealed object, appending the plaintext to out (nothing is appended
 * unless it authenticates). WS_EFORMAT (bad header), WS_EPERM (other master key),
 * WS_EUNSAFE (authentication failed), WS_ETOOBIG (out's limit). */
int ws_blob_unseal(const unsigned char key[32], const char *obj_key, const void *sealed, size_t len,
                   ws_buf *out, ws_error *err);

#endif
