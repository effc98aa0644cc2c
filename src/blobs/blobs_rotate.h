/* Master-key rotation for the blobs (`whatstyle keys rotate-master` / `keys reseal`):
 * replacing DATA/master.key while the old key stays as a retired key file, re-sealing every
 * object under the new key, and deleting a retired key file once a final scan finds no object
 * under it. Every step leaves the store readable: interrupted anywhere, running either command
 * again finishes the job (docs/blobs.md, "Rotation").
 *
 * Concurrency: one rotation or re-seal per data directory at a time (an exclusive lock on
 * DATA/master.key.lock; a second one gets WS_ECONFLICT). Servers may keep running: their
 * handles notice the new key before sealing (blobs.h), and an object a server rewrites while
 * it is being re-sealed is left as the server wrote it. Objects are re-sealed and checked by
 * WS_BLOBS_RESEAL_THREADS threads; the hooks are called from them, one call at a time. */
#ifndef WS_BLOBS_BLOBS_ROTATE_H
#define WS_BLOBS_BLOBS_ROTATE_H

#include <stdbool.h>
#include <stddef.h>

#include "blobs/blobs.h"

/* Largest sealed object a re-seal reads (objects are held in memory while re-sealed). */
#define WS_BLOBS_RESEAL_MAX ((size_t)4 << 30)
#define WS_BLOBS_MAX_KEY_IDS 64
#define WS_BLOBS_RESEAL_THREADS 4

typedef struct ws_blobs_reseal_hooks {
    /* phase "reseal" then "check"; done of total objects. May be NULL. */
    void (*progress)(void *arg, const char *phase, size_t done, size_t total);
    /* an object that could not be read, opened or re-sealed (it keeps its old bytes). May be NULL. */
    void (*object_error)(void *arg, const char *key, const ws_error *e);
    void *arg;
} ws_blobs_reseal_hooks;

typedef struct ws_blobs_key_count {
    char id[9];   /* 8 hex digits */
    size_t n;     /* objects under it in the final scan */
    bool removed; /* its retired key file was deleted */
} ws_blobs_key_count;

typedef struct ws_blobs_reseal_report {
    char current_id[9];                 /* the key everything is re-sealed under */
    size_t objects;                     /* objects seen by the re-seal pass */
    size_t resealed;                    /* moved to the current key */
    size_t current;                     /* already under the current key */
    size_t changed;                     /* rewritten by someone else meanwhile: left alone */
    size_t failed;                      /* reported through object_error; they keep their old bytes */
    size_t final_objects, final_failed; /* the final scan */
    size_t n_ids;                       /* retired (or unknown) key ids and the objects still under each */
    ws_blobs_key_count ids[WS_BLOBS_MAX_KEY_IDS];
    size_t key_files_removed;
    bool kept_empty_store; /* retired key files kept because the store held no object */
} ws_blobs_reseal_report;

/* Re-seals every object of b that is not under b's current key, then scans the store again
 * and counts the objects under each other key id (into rep, zeroed here). Returns 0 when the
 * listing worked, even if some objects failed (rep->failed, rep->final_failed); a listing
 * failure returns its error. Deletes no key file. */
int ws_blobs_reseal_all(ws_blobs *b, const ws_blobs_reseal_hooks *hooks, ws_blobs_reseal_report *rep,
                        ws_error *err);

/* `keys reseal`: opens the blobs (url as ws_blobs_open; data_dir required in file mode),
 * takes the rotation lock, runs ws_blobs_reseal_all and then, in file mode, deletes each
 * DATA/master.key.retired-<id> whose id no object uses — only when the final scan read every
 * object and found at least one (an empty listing may mean the wrong store). Env mode: the
 * same re-seal; WS_MASTER_KEYS_RETIRED is the operator's to trim. WS_ECONFLICT when another
 * rotation holds the lock. */
int ws_blobs_reseal_store(const char *url, const char *data_dir, const ws_blobs_reseal_hooks *hooks,
                          ws_blobs_reseal_report *rep, ws_error *err);

/* `keys rotate-master` (file mode only): under the rotation lock, ws_blobs_replace_master_key
 * then what ws_blobs_reseal_store does. Env mode: WS_EUNSUPPORTED with instructions in err. */
int ws_blobs_rotate_master(const char *url, const char *data_dir, const ws_blobs_reseal_hooks *hooks,
                           ws_blobs_reseal_report *rep, ws_error *err);

/* The key-file step of a rotation, exposed for tests of interruption: writes the current key
 * to DATA/master.key.retired-<its id> (0600, fsync'd; an existing one must hold the same key),
 * then a fresh random key to DATA/master.key (temporary file, fsync, rename: a reader sees the
 * old or the new key, never a partial one). old_id / new_id (may be NULL) get the ids. The
 * caller holds the rotation lock or knows nothing else rotates. */
int ws_blobs_replace_master_key(const char *data_dir, char old_id[9], char new_id[9], ws_error *err);

/* The instructions printed when a rotation is asked for in env mode. */
extern const char ws_blobs_env_rotation_help[];

#endif
