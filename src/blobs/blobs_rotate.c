/* Master-key rotation: the key files, re-sealing every object, the final scan and the removal
 * of retired key files no object needs (blobs_rotate.h). */
#include "blobs/blobs_rotate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blobs/blobs_crypt.h"
#include "core/fanout.h"
#include "core/file.h"
#include "core/hex.h"
#include "core/mem.h"

const char ws_blobs_env_rotation_help[] =
    "WS_MASTER_KEY is set: the master key lives in the environment, so rotate it there:\n"
    "  1. make a new key:   openssl rand -hex 32\n"
    "  2. set WS_MASTER_KEY to the new key and move the old one into WS_MASTER_KEYS_RETIRED\n"
    "     (comma-separated 64-hex keys), for every service (serve, worker, ai) and this shell\n"
    "  3. restart the services (they then seal under the new key and still open the old objects)\n"
    "  4. run:  whatstyle keys reseal [--data DIR] [--blobs URL]\n"
    "  5. when it reports 0 objects under the old key id, drop that key from WS_MASTER_KEYS_RETIRED\n";

static void hex_of(const unsigned char id[4], char hex[9])
{
    ws_hex_encode(id, 4, hex);
}

/* ---- key files ------------------------------------------------------------------------ */

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = ws_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Writes key to a new private file (mkstemp: O_EXCL, 0600) in dir, fsync'd; *tmp gets its
 * path (the caller links or renames it into place and frees the string). */
static int write_key_temp(const char *dir, const unsigned char key[WS_BLOB_MASTER_KEY_LEN], char **tmp,
                          ws_error *err)
{
    *tmp = path_in(dir, ".master.key.XXXXXX");
    int fd = mkstemp(*tmp);
    if (fd < 0) {
        int rc = ws_error_set(err, WS_EIO, "cannot create %s: %s", *tmp, strerror(errno));
        free(*tmp);
        *tmp = NULL;
        return rc;
    }
    bool ok = fchmod(fd, 0600) == 0 && write(fd, key, WS_BLOB_MASTER_KEY_LEN) == WS_BLOB_MASTER_KEY_LEN &&
              fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        int rc = ws_error_set(err, WS_EIO, "cannot write %s: %s", *tmp, strerror(errno));
        unlink(*tmp);
        free(*tmp);
        *tmp = NULL;
        return rc;
    }
    return 0;
}

int ws_blobs_replace_master_key(const char *data_dir, char old_id[9], char new_id[9], ws_error *err)
{
    if (ws_blobs_env_mode())
        return ws_error_set(err, WS_EUNSUPPORTED,
                            "WS_MASTER_KEY is set: the key is not in a file to replace");
    unsigned char old[WS_BLOB_MASTER_KEY_LEN], fresh[WS_BLOB_MASTER_KEY_LEN], id[4];
    char hex[9], name[64];
    char *tmp = NULL, *retired = NULL, *master = path_in(data_dir, "master.key");
    char *existing = NULL;
    size_t elen = 0;
    int rc = ws_blobs_master_key(data_dir, old, err);
    if (rc < 0)
        goto out;
    ws_blob_key_id(old, id);
    hex_of(id, hex);
    if (old_id)
        snprintf(old_id, 9, "%s", hex);
    snprintf(name, sizeof name, "%s%s", WS_BLOB_RETIRED_PREFIX, hex);
    retired = path_in(data_dir, name);
    /* 1. the old key as a retired key file (kept if an interrupted run already wrote it) */
    if ((rc = write_key_temp(data_dir, old, &tmp, err)) < 0)
        goto out;
    if (link(tmp, retired) != 0) {
        int e = errno;
        if (e != EEXIST) {
            rc = ws_error_set(err, WS_EIO, "cannot create %s: %s", retired, strerror(e));
            goto out;
        }
        rc = ws_file_read(retired, 64, &existing, &elen, err);
        if (rc == 0 && (elen != WS_BLOB_MASTER_KEY_LEN || CRYPTO_memcmp(existing, old, elen) != 0))
            rc = ws_error_set(err, WS_ECONFLICT, "%s exists and holds another key: move it away first",
                              retired);
        if (rc < 0)
            goto out;
    }
    unlink(tmp);
    free(tmp);
    tmp = NULL;
    if (fsync_dir(data_dir) != 0) {
        rc = ws_error_set(err, WS_EIO, "cannot sync %s: %s", data_dir, strerror(errno));
        goto out;
    }
    /* 2. a fresh key replaces master.key in one rename */
    if (RAND_bytes(fresh, sizeof fresh) != 1) {
        rc = ws_error_set(err, WS_EIO, "no random source for the new master key");
        goto out;
    }
    if ((rc = write_key_temp(data_dir, fresh, &tmp, err)) < 0)
        goto out;
    if (rename(tmp, master) != 0) {
        rc = ws_error_set(err, WS_EIO, "cannot replace %s: %s", master, strerror(errno));
        unlink(tmp);
        goto out;
    }
    free(tmp);
    tmp = NULL;
    if (fsync_dir(data_dir) != 0) {
        rc = ws_error_set(err, WS_EIO, "cannot sync %s: %s", data_dir, strerror(errno));
        goto out;
    }
    if (new_id) {
        ws_blob_key_id(fresh, id);
        hex_of(id, new_id);
    }
out:
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    if (existing)
        OPENSSL_cleanse(existing, elen);
    free(existing);
    free(retired);
    free(master);
    OPENSSL_cleanse(old, sizeof old);
    OPENSSL_cleanse(fresh, sizeof fresh);
    return rc;
}

/* One rotation or re-seal per data directory at a time. */
static int lock_rotation(const char *data_dir, int *fd, ws_error *err)
{
    *fd = -1;
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST)
        return ws_error_set(err, WS_EIO, "cannot create %s: %s", data_dir, strerror(errno));
    char *p = path_in(data_dir, "master.key.lock");
    int rc = 0;
    int f = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (f < 0) {
        rc = ws_error_set(err, WS_EIO, "cannot open %s: %s", p, strerror(errno));
    } else if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? ws_error_set(err, WS_ECONFLICT,
                                                 "another key rotation or re-seal is running on %s", data_dir)
                                  : ws_error_set(err, WS_EIO, "cannot lock %s: %s", p, strerror(errno));
        close(f);
    } else {
        *fd = f;
    }
    free(p);
    return rc;
}

static void unlock_rotation(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the lock */
}

/* ---- re-sealing ------------------------------------------------------------------------ */

typedef struct key_list {
    ws_buf keys; /* NUL-separated */
    size_t n;
} key_list;

static int collect(void *arg, const char *key)
{
    key_list *l = arg;
    ws_buf_append(&l->keys, key, strlen(key) + 1);
    l->n++;
    return 0;
}

/* The report's entry for id (added with n = 0 when absent); NULL when the table is full. */
static ws_blobs_key_count *id_entry(ws_blobs_reseal_report *rep, const char *id)
{
    for (size_t i = 0; i < rep->n_ids; i++)
        if (!strcmp(rep->ids[i].id, id))
            return &rep->ids[i];
    if (rep->n_ids == WS_BLOBS_MAX_KEY_IDS)
        return NULL;
    ws_blobs_key_count *c = &rep->ids[rep->n_ids++];
    memcpy(c->id, id, 8);
    c->id[8] = '\0';
    return c;
}

/* ---- a few threads over the listed keys (the handle is thread-safe; writes are fsync'd
 * or network round trips, so several in flight go faster); hooks and the report are updated
 * under one lock, so hooks are called one at a time */

typedef struct pass {
    ws_blobs *b;
    const ws_blobs_reseal_hooks *hooks;
    ws_blobs_reseal_report *rep;
    const char *phase;
    const char **keys;
    size_t n, next, done;
    pthread_mutex_t lock;
    void (*one)(struct pass *p, const char *key); /* called without the lock */
} pass;

static void object_failed(pass *p, const char *key, const ws_error *e)
{
    /* the lock is held */
    if (p->hooks && p->hooks->object_error)
        p->hooks->object_error(p->hooks->arg, key, e);
}

static void pass_worker(void *arg)
{
    pass *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        size_t i = p->next < p->n ? p->next++ : p->n;
        pthread_mutex_unlock(&p->lock);
        if (i == p->n)
            return;
        p->one(p, p->keys[i]);
        pthread_mutex_lock(&p->lock);
        p->done++;
        if (p->hooks && p->hooks->progress)
            p->hooks->progress(p->hooks->arg, p->phase, p->done, p->n);
        pthread_mutex_unlock(&p->lock);
    }
}

/* Lists every object, then runs one() on each from WS_BLOBS_RESEAL_THREADS threads. */
static int run_pass(pass *p, ws_error *err)
{
    key_list l = {WS_BUF_INIT, 0};
    int rc = ws_blobs_list(p->b, "", collect, &l, err);
    if (rc < 0) {
        ws_buf_free(&l.keys);
        return rc;
    }
    p->keys = ws_xcalloc(l.n ? l.n : 1, sizeof *p->keys);
    const char *k = l.keys.data;
    for (size_t i = 0; i < l.n; i++, k += strlen(k) + 1)
        p->keys[i] = k;
    p->n = l.n;
    p->next = p->done = 0;
    pthread_mutex_init(&p->lock, NULL);
    /* the workers take keys from p->next in turn: as many as there are keys, at most the cap */
    ws_fanout(l.n < WS_BLOBS_RESEAL_THREADS ? (l.n ? l.n : 1) : WS_BLOBS_RESEAL_THREADS, pass_worker, p, 0);
    pthread_mutex_destroy(&p->lock);
    free(p->keys);
    p->keys = NULL;
    ws_buf_free(&l.keys);
    return 0;
}

static void reseal_one(pass *p, const char *key)
{
    ws_error e = {0};
    ws_blobs_reseal_outcome oc;
    int rc = ws_blobs_reseal_object(p->b, key, WS_BLOBS_RESEAL_MAX, &oc, NULL, &e);
    pthread_mutex_lock(&p->lock);
    if (rc != WS_ENOENT) { /* deleted since the listing: nothing to re-seal */
        p->rep->objects++;
        if (rc < 0) {
            p->rep->failed++;
            object_failed(p, key, &e);
        } else if (oc == WS_BLOBS_RESEAL_DONE) {
            p->rep->resealed++;
        } else if (oc == WS_BLOBS_RESEAL_CURRENT) {
            p->rep->current++;
        } else {
            p->rep->changed++;
        }
    }
    pthread_mutex_unlock(&p->lock);
}

/* The final scan: counts the objects under each key id other than the current one. */
static void check_one(pass *p, const char *key)
{
    ws_error e = {0};
    ws_blob_header h;
    ws_buf raw = WS_BUF_INIT;
    int rc = ws_blobs_get_head(p->b, key, WS_BLOB_OVERHEAD, &raw, &e);
    if (rc == 0)
        rc = ws_blob_header_parse(raw.data, raw.len, &h, &e);
    ws_buf_free(&raw);
    pthread_mutex_lock(&p->lock);
    if (rc == WS_ENOENT) { /* deleted meanwhile */
        pthread_mutex_unlock(&p->lock);
        return;
    }
    ws_blobs_reseal_report *rep = p->rep;
    rep->final_objects++;
    if (rc < 0) {
        rep->final_failed++;
        object_failed(p, key, &e);
    } else {
        char hex[9];
        hex_of(h.key_id, hex);
        if (strcmp(hex, rep->current_id) != 0) {
            ws_blobs_key_count *c = id_entry(rep, hex);
            if (c) {
                c->n++;
            } else {
                rep->final_failed++;
                ws_error_set(&e, WS_ETOOBIG, "more than %d master key ids in use", WS_BLOBS_MAX_KEY_IDS);
                object_failed(p, key, &e);
            }
        }
    }
    pthread_mutex_unlock(&p->lock);
}

int ws_blobs_reseal_all(ws_blobs *b, const ws_blobs_reseal_hooks *hooks, ws_blobs_reseal_report *rep,
                        ws_error *err)
{
    memset(rep, 0, sizeof *rep);
    int rc = ws_blobs_reload_keys(b, false, err);
    if (rc < 0)
        return rc;
    ws_blobs_current_key_id(b, rep->current_id);
    char retired[WS_BLOBS_MAX_KEY_IDS][9];
    size_t nr = ws_blobs_retired_key_ids(b, retired, WS_BLOBS_MAX_KEY_IDS);
    for (size_t i = 0; i < nr && i < WS_BLOBS_MAX_KEY_IDS; i++)
        id_entry(rep, retired[i]);
    pass p = {.b = b, .hooks = hooks, .rep = rep, .phase = "reseal", .one = reseal_one};
    rc = run_pass(&p, err);
    if (rc == 0) {
        p.phase = "check";
        p.one = check_one;
        rc = run_pass(&p, err);
    }
    return rc;
}

/* File mode, after the final scan: deletes each retired key file no object needs. */
static int remove_unused_key_files(const char *data_dir, ws_blobs_reseal_report *rep, ws_error *err)
{
    if (rep->final_failed)
        return 0; /* an object we could not read may need any of them */
    DIR *d = opendir(data_dir);
    if (!d)
        return ws_error_set(err, WS_EIO, "cannot list %s: %s", data_dir, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned char id[4];
        if (ws_blobs_retired_key_file(e->d_name, id) < 0)
            continue;
        char hex[9];
        hex_of(id, hex);
        bool same_as_current = !strcmp(hex, rep->current_id); /* master.key holds it too */
        ws_blobs_key_count *c = same_as_current ? NULL : id_entry(rep, hex);
        if (!same_as_current && (!c || c->n > 0))
            continue;
        if (!same_as_current && rep->final_objects == 0) {
            rep->kept_empty_store = true; /* maybe the wrong store: keep the key */
            continue;
        }
        char *p = path_in(data_dir, e->d_name);
        if (unlink(p) == 0) {
            rep->key_files_removed++;
            if (c)
                c->removed = true;
        } else if (errno != ENOENT && rc == 0) {
            rc = ws_error_set(err, WS_EIO, "cannot delete %s: %s", p, strerror(errno));
        }
        free(p);
    }
    closedir(d);
    fsync_dir(data_dir);
    return rc;
}

static int run_reseal(const char *url, const char *data_dir, const ws_blobs_reseal_hooks *hooks,
                      ws_blobs_reseal_report *rep, ws_error *err)
{
    ws_blobs *b = NULL;
    int rc = ws_blobs_open(url, data_dir, &b, err);
    if (rc == 0)
        rc = ws_blobs_reseal_all(b, hooks, rep, err);
    if (rc == 0 && !ws_blobs_env_mode())
        rc = remove_unused_key_files(data_dir, rep, err);
    ws_blobs_close(b);
    return rc;
}

int ws_blobs_reseal_store(const char *url, const char *data_dir, const ws_blobs_reseal_hooks *hooks,
                          ws_blobs_reseal_report *rep, ws_error *err)
{
    memset(rep, 0, sizeof *rep);
    bool have_dir = data_dir && *data_dir;
    if (!ws_blobs_env_mode() && !have_dir)
        return ws_error_set(err, WS_EINVAL, "a data directory is needed: the master keys live in DATA");
    int fd = -1, rc = have_dir ? lock_rotation(data_dir, &fd, err) : 0;
    if (rc == 0)
        rc = run_reseal(url, data_dir, hooks, rep, err);
    unlock_rotation(fd);
    return rc;
}

int ws_blobs_rotate_master(const char *url, const char *data_dir, const ws_blobs_reseal_hooks *hooks,
                           ws_blobs_reseal_report *rep, ws_error *err)
{
    memset(rep, 0, sizeof *rep);
    if (ws_blobs_env_mode())
        return ws_error_set(err, WS_EUNSUPPORTED, "%s", ws_blobs_env_rotation_help);
    if (!data_dir || !*data_dir)
        return ws_error_set(err, WS_EINVAL, "a data directory is needed: the master key is DATA/master.key");
    int fd = -1;
    int rc = lock_rotation(data_dir, &fd, err);
    if (rc == 0)
        rc = ws_blobs_replace_master_key(data_dir, NULL, NULL, err);
    if (rc == 0)
        rc = run_reseal(url, data_dir, hooks, rep, err);
    unlock_rotation(fd);
    return rc;
}
