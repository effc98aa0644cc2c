/* Blobs: WhatStyle's large objects (uploaded exports, model artifacts) behind one small
 * interface with two backends — a local directory (embedded default, DATA/blobs) and an
 * S3-compatible object store (cluster; libcurl with our own SigV4 signing, path-style URLs).
 *
 * Every object is encrypted at rest with AES-256-GCM by this layer, above the backend: a
 * random 96-bit nonce per object, the object's key as associated data (an object copied to
 * another key does not decrypt), and a versioned header (blobs_crypt.h). The 256-bit master
 * key comes from WS_MASTER_KEY (64 hex digits) or from DATA/master.key (32 random bytes,
 * created mode 0600 on first use). A handle holds a keyring: the current master key (seals)
 * and retired ones (open only), picked by the key id in an object's header; retired keys come
 * from DATA/master.key.retired-<8 hex key id> files or WS_MASTER_KEYS_RETIRED. In file mode
 * the handle notices a rotation done by another process (blobs_rotate.h): before sealing it
 * stats DATA/master.key and reloads the keyring when the file changed, and an object under an
 * unknown key id makes it reload once before failing.
 *
 * Keys: 1..WS_BLOB_KEY_MAX bytes of [A-Za-z0-9._-] in '/'-separated segments, none empty,
 * none "." or ".."; no leading or trailing '/'. By convention a user's objects live under
 * "users/<user id>/" so erasure is one ws_blobs_delete_prefix.
 *
 * Errors: 0 or a negative WS_E* code with details in err: WS_EINVAL (bad key or URL),
 * WS_ENOENT (no such object), WS_ETOOBIG (object larger than the caller's cap), WS_EFORMAT
 * (not an encrypted blob, or an unknown header version), WS_EPERM (sealed under a master
 * key that is neither the current one nor a retired one; err names its key id), WS_EUNSAFE (authentication
 * failed: the object or its header was altered, or it was stored under another name), WS_EIO (disk or network
 * failure; err says which).
 *
 * Thread-safety: a ws_blobs handle may be used from several threads at once. */
#ifndef WS_BLOBS_BLOBS_H
#define WS_BLOBS_BLOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

#define WS_BLOB_KEY_MAX 512
#define WS_BLOB_MASTER_KEY_LEN 32

typedef struct ws_blobs ws_blobs;

/* The backend interface: stores and returns raw (already encrypted) bytes. */
typedef struct ws_blobs_ops {
    const char *name; /* "local" / "s3" */
    int (*put)(ws_blobs *b, const char *key, const void *data, size_t len, ws_error *err);
    /* Appends the object to out; WS_ETOOBIG when it is larger than max bytes. */
    int (*get)(ws_blobs *b, const char *key, size_t max, ws_buf *out, ws_error *err);
    /* Appends at most the first n bytes of the object to out (fewer when it is shorter). */
    int (*head)(ws_blobs *b, const char *key, size_t n, ws_buf *out, ws_error *err);
    /* Deleting an absent object is not an error. */
    int (*del)(ws_blobs *b, const char *key, ws_error *err);
    /* Deletes every object whose key starts with prefix; *n (may be NULL) gets how many. */
    int (*del_prefix)(ws_blobs *b, const char *prefix, size_t *n, ws_error *err);
    /* Calls fn(arg, key) for every object whose key starts with prefix ("" or a folder
     * "a/b/"), in no set order; a negative return from fn stops the walk and is returned.
     * Local leftovers of interrupted puts ("<key>.tmp.XXXXXX") are not objects. */
    int (*list)(ws_blobs *b, const char *prefix, int (*fn)(void *arg, const char *key), void *arg,
                ws_error *err);
    void (*close)(ws_blobs *b);
} ws_blobs_ops;

typedef struct ws_blobs_keyring ws_blobs_keyring; /* private to blobs.c */

/* Backends embed this as their first member and set ops; the layer above sets ring. */
struct ws_blobs {
    const ws_blobs_ops *ops;
    ws_blobs_keyring *ring;
};

/* The process-wide settings of the blobs. The library reads no environment: the CLI resolves
 * these from its options (config file, WS_MASTER_KEY, WS_MASTER_KEYS_RETIRED, WS_S3_REGION,
 * WS_S3_ACCESS_KEY / AWS_ACCESS_KEY_ID, WS_S3_SECRET_KEY / AWS_SECRET_ACCESS_KEY, WS_S3_PART_SIZE:
 * docs/configuration.md) and calls ws_blobs_configure once, before any blobs are opened and
 * before threads start (not thread-safe). The strings are copied (and wiped when replaced);
 * NULL or "" = not set; ws_blobs_configure(NULL) resets all. */
typedef struct ws_blobs_settings {
    const char *master_key;   /* 64 hex digits: "env mode" (below); NULL: DATA/master.key */
    const char *retired_keys; /* env mode: earlier master keys, comma-separated 64-hex */
    const char *s3_region;    /* default us-east-1 */
    const char *s3_access_key, *s3_secret_key;
    size_t s3_part_size; /* bytes; 0 = the default (ws_s3_config.part_size) */
} ws_blobs_settings;
void ws_blobs_configure(const ws_blobs_settings *s);

/* Opens the blobs the way every subcommand picks them: url if not NULL or "", else the local
 * directory DATA/blobs (data_dir is then required).
 *   "file:DIR" or "local:DIR"                     -> a local directory (created 0700)
 *   "s3://HOST[:PORT]/BUCKET" (https) or
 *   "s3+http://HOST[:PORT]/BUCKET" (plain http)   -> S3-compatible, path-style
 * S3 region and keys from ws_blobs_configure. The bucket is created when it does not exist.
 * The master key: see ws_blobs_master_key (data_dir may be NULL only in env mode). *out
 * belongs to the caller: ws_blobs_close. */
int ws_blobs_open(const char *url, const char *data_dir, ws_blobs **out, ws_error *err);
void ws_blobs_close(ws_blobs *b); /* NULL is a no-op */
/* Tests only: *b (open, owned) becomes a handle whose backend calls fail with WS_EIO when f
 * says so (core/fault.h; borrowed, must outlive the handle); ws_blobs_close closes both. */
struct ws_fault;
void ws_blobs_fault_wrap(ws_blobs **b, struct ws_fault *f);
const char *ws_blobs_backend(const ws_blobs *b);

/* The master key: the configured one (WS_MASTER_KEY, 64 hex digits) if set, else DATA/master.key, created
 * with 32 random bytes, mode 0600, on first use (atomically: two processes agree on one key). A key file that
 * others can read, or of the wrong size, is refused. */
int ws_blobs_master_key(const char *data_dir, unsigned char key[WS_BLOB_MASTER_KEY_LEN], ws_error *err);

/* Where the keyring comes from. File mode: DATA/master.key (current) and every
 * DATA/master.key.retired-<id> (each checked like master.key: a regular file, mode 0600 or
 * stricter, 32 bytes, and its key id must be the one in its name). Env mode (a master key given
 * to ws_blobs_configure, from WS_MASTER_KEY): that key (current) and the retired ones
 * (WS_MASTER_KEYS_RETIRED, comma-separated 64-hex keys). */
#define WS_BLOB_RETIRED_PREFIX "master.key.retired-"
bool ws_blobs_env_mode(void); /* a master key was configured (WS_MASTER_KEY) */
/* 0 when name (a file name in DATA) is WS_BLOB_RETIRED_PREFIX + 8 hex digits; id gets them. */
int ws_blobs_retired_key_file(const char *name, unsigned char id[4]);

/* The key id of the current master key as 8 lowercase hex digits (+ NUL) into hex. */
void ws_blobs_current_key_id(ws_blobs *b, char hex[9]);
/* The retired key ids the handle knows (8 hex digits each), at most max of them; returns how
 * many there are (may exceed max). Thread-safe. */
size_t ws_blobs_retired_key_ids(ws_blobs *b, char (*hex)[9], size_t max);
/* File mode: reloads the keyring from the data directory now if DATA/master.key changed
 * (force: always). Env mode: nothing to do. Errors as ws_blobs_master_key's. */
int ws_blobs_reload_keys(ws_blobs *b, bool force, ws_error *err);

/* 0 when key is a valid object key (see above), else WS_EINVAL with the reason. */
int ws_blobs_check_key(const char *key, ws_error *err);

/* Encrypts and stores len bytes under key (replacing an existing object). */
int ws_blobs_put(ws_blobs *b, const char *key, const void *data, size_t len, ws_error *err);
/* Fetches and decrypts the object into out (appended); max caps the plaintext size. */
int ws_blobs_get(ws_blobs *b, const char *key, size_t max, ws_buf *out, ws_error *err);
int ws_blobs_delete(ws_blobs *b, const char *key, ws_error *err);
/* prefix: a key prefix ending in '/' (a "folder"), e.g. "users/usr_123/". */
int ws_blobs_delete_prefix(ws_blobs *b, const char *prefix, size_t *n, ws_error *err);

/* Calls fn(arg, key) for every object under prefix ("" = all, else a folder "a/b/"); see
 * ws_blobs_ops.list. fn runs on the calling thread; it may get and put objects (also the one
 * it is called for). WS_EINVAL for a bad prefix. */
int ws_blobs_list(ws_blobs *b, const char *prefix, int (*fn)(void *arg, const char *key), void *arg,
                  ws_error *err);
/* The object's sealed bytes as stored (header, ciphertext, tag), appended to out; max caps
 * them. For checks of the header (ws_blob_header_parse) without decrypting. */
int ws_blobs_get_raw(ws_blobs *b, const char *key, size_t max, ws_buf *out, ws_error *err);
/* The first n sealed bytes only (fewer when the object is shorter), e.g. n = WS_BLOB_HDR_LEN
 * (blobs_crypt.h) to read the key id of an object without fetching all of it. */
int ws_blobs_get_head(ws_blobs *b, const char *key, size_t n, ws_buf *out, ws_error *err);

/* Re-seals one object under the current master key if it is under a retired one (the
 * keyring is reloaded first when DATA/master.key changed). *outcome: DONE (re-sealed),
 * CURRENT (already under the current key: untouched), CHANGED (rewritten or deleted by
 * someone else between our read and our write: left as it is), FAILED (with rc < 0). key_id
 * (may be NULL) gets the id the object was under, "" when unknown. The object's old sealed
 * bytes stay unless the new ones were written whole (the backend's put is atomic). max caps
 * the sealed size. Errors: as ws_blobs_get. */
typedef enum {
    WS_BLOBS_RESEAL_FAILED,
    WS_BLOBS_RESEAL_DONE,
    WS_BLOBS_RESEAL_CURRENT,
    WS_BLOBS_RESEAL_CHANGED,
} ws_blobs_reseal_outcome;
int ws_blobs_reseal_object(ws_blobs *b, const char *key, size_t max, ws_blobs_reseal_outcome *outcome,
                           char key_id[9], ws_error *err);

/* Fetches and decrypts the object into a new private file (mode 0600, O_EXCL) under dir
 * (NULL = /tmp); *path (malloc'd, the caller frees and unlinks) gets its name. */
int ws_blobs_get_to_temp(ws_blobs *b, const char *key, size_t max, const char *dir, char **path,
                         ws_error *err);

/* Backends (blobs_local.c, blobs_s3.c): each fills *out with its ops set and its state. */
int ws_blobs_local_open(const char *dir, ws_blobs **out, ws_error *err);
typedef struct ws_s3_config {
    const char *endpoint; /* "http://127.0.0.1:9000" or "https://s3.example.com" */
    const char *bucket;
    const char *region; /* "us-east-1" */
    const char *access_key;
    const char *secret_key;
    long timeout_ms; /* per request; 0 = 30 s */
    /* objects larger than this go up as a multipart upload in parts of this size; 0 = 8 MiB,
     * at least 5 MiB (S3's smallest part); at most 10,000 parts (WS_ETOOBIG beyond) */
    size_t part_size;
} ws_s3_config;
int ws_blobs_s3_open(const ws_s3_config *cfg, ws_blobs **out, ws_error *err);

#endif
