/* The blobs layer above the backends: choosing a backend from a URL, the master keyring
 * (current key + retired keys, reloaded when another process rotates DATA/master.key), key
 * validation, and encryption of every object (see blobs.h). */
#include "blobs/blobs.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blobs/blobs_crypt.h"
#include "core/hex.h"
#include "core/mem.h"

int ws_blobs_check_key(const char *key, ws_error *err)
{
    if (!key || !*key)
        return ws_error_set(err, WS_EINVAL, "blob key is empty");
    size_t n = strnlen(key, WS_BLOB_KEY_MAX + 1);
    if (n > WS_BLOB_KEY_MAX)
        return ws_error_set(err, WS_EINVAL, "blob key is longer than %d bytes", WS_BLOB_KEY_MAX);
    size_t seg = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = key[i];
        if (c == '/' || c == '\0') {
            if (seg == 0)
                return ws_error_set(err, WS_EINVAL, "blob key '%s' has an empty segment", key);
            if ((seg == 1 && key[i - 1] == '.') || (seg == 2 && key[i - 1] == '.' && key[i - 2] == '.'))
                return ws_error_set(err, WS_EINVAL, "blob key '%s' has a '.' or '..' segment", key);
            seg = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return ws_error_set(err, WS_EINVAL, "blob key '%s' has a character outside [A-Za-z0-9._-/]", key);
        seg++;
    }
    return 0;
}

/* Reads a 32-byte key file, refusing one others may read; *st_out (may be NULL) gets its
 * fstat (so what was read and the file's identity agree). */
static int read_key_file(const char *path, unsigned char key[WS_BLOB_MASTER_KEY_LEN], struct stat *st_out,
                         ws_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return ws_error_set(err, errno == ENOENT ? WS_ENOENT : WS_EIO, "cannot open master key %s: %s", path,
                            strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = ws_error_set(err, WS_EIO, "master key %s is not a regular file", path);
    } else if (st.st_mode & 077) {
        rc = ws_error_set(err, WS_EUNSAFE, "master key %s is readable by others (mode %03o): chmod 600 it",
                          path, (unsigned)(st.st_mode & 0777));
    } else if (st.st_size != WS_BLOB_MASTER_KEY_LEN) {
        rc = ws_error_set(err, WS_EFORMAT, "master key %s holds %lld bytes, not %d", path,
                          (long long)st.st_size, WS_BLOB_MASTER_KEY_LEN);
    } else {
        size_t got = 0;
        while (got < WS_BLOB_MASTER_KEY_LEN) {
            ssize_t r = read(fd, key + got, WS_BLOB_MASTER_KEY_LEN - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got != WS_BLOB_MASTER_KEY_LEN)
            rc = ws_error_set(err, WS_EIO, "cannot read master key %s", path);
        else if (st_out)
            *st_out = st;
    }
    close(fd);
    return rc;
}

/* n hex digits of s (n = 64) into key; what names the source in errors. */
static int parse_hex_key(const char *s, size_t n, unsigned char key[WS_BLOB_MASTER_KEY_LEN], const char *what,
                         ws_error *err)
{
    if (n != 2 * WS_BLOB_MASTER_KEY_LEN)
        return ws_error_set(err, WS_EINVAL, "%s must be %d hex digits (a 256-bit key)", what,
                            2 * WS_BLOB_MASTER_KEY_LEN);
    for (int i = 0; i < WS_BLOB_MASTER_KEY_LEN; i++) {
        int hi = ws_hex_digit(s[2 * i]), lo = ws_hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return ws_error_set(err, WS_EINVAL, "%s is not hexadecimal", what);
        key[i] = (unsigned char)(hi * 16 + lo);
    }
    return 0;
}

/* The process-wide settings (ws_blobs_configure): private copies, wiped when replaced. */
static struct {
    char *master_key, *retired_keys, *s3_region, *s3_access_key, *s3_secret_key;
    size_t s3_part_size;
} settings;

static void put_setting(char **slot, const char *v)
{
    if (*slot) {
        OPENSSL_cleanse(*slot, strlen(*slot));
        free(*slot);
    }
    *slot = v && *v ? ws_xstrdup(v) : NULL;
}

void ws_blobs_configure(const ws_blobs_settings *s)
{
    static const ws_blobs_settings none = {0};
    if (!s)
        s = &none;
    put_setting(&settings.master_key, s->master_key);
    put_setting(&settings.retired_keys, s->retired_keys);
    put_setting(&settings.s3_region, s->s3_region);
    put_setting(&settings.s3_access_key, s->s3_access_key);
    put_setting(&settings.s3_secret_key, s->s3_secret_key);
    settings.s3_part_size = s->s3_part_size;
}

bool ws_blobs_env_mode(void)
{
    return settings.master_key != NULL;
}

int ws_blobs_master_key(const char *data_dir, unsigned char key[WS_BLOB_MASTER_KEY_LEN], ws_error *err)
{
    const char *env = settings.master_key;
    if (env)
        return parse_hex_key(env, strlen(env), key, "WS_MASTER_KEY", err);
    if (!data_dir || !*data_dir)
        return ws_error_set(err, WS_EINVAL, "no master key: set WS_MASTER_KEY or give a data directory");
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST)
        return ws_error_set(err, WS_EIO, "cannot create %s: %s", data_dir, strerror(errno));
    size_t n = strlen(data_dir) + 64;
    char *path = ws_xmalloc(n), *tmp = ws_xmalloc(n);
    snprintf(path, n, "%s/master.key", data_dir);
    int rc = read_key_file(path, key, NULL, err);
    if (rc != WS_ENOENT)
        goto out;
    /* first use: write a fresh key to a private temporary file and link it into place, so
     * two processes starting at once agree on one key (the loser reads the winner's) */
    unsigned char fresh[WS_BLOB_MASTER_KEY_LEN];
    if (RAND_bytes(fresh, sizeof fresh) != 1) {
        rc = ws_error_set(err, WS_EIO, "no random source for the master key");
        goto out;
    }
    snprintf(tmp, n, "%s/.master.key.XXXXXX", data_dir);
    int fd = mkstemp(tmp); /* mode 0600 */
    if (fd < 0) {
        rc = ws_error_set(err, WS_EIO, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    bool ok =
        fchmod(fd, 0600) == 0 && write(fd, fresh, sizeof fresh) == (ssize_t)sizeof fresh && fsync(fd) == 0;
    close(fd);
    OPENSSL_cleanse(fresh, sizeof fresh);
    if (!ok) {
        unlink(tmp);
        rc = ws_error_set(err, WS_EIO, "cannot write the master key %s", tmp);
        goto out;
    }
    if (link(tmp, path) != 0 && errno != EEXIST) {
        rc = ws_error_set(err, WS_EIO, "cannot create %s: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    unlink(tmp);
    rc = read_key_file(path, key, NULL, err);
out:
    free(path);
    free(tmp);
    return rc;
}

/* ---- the keyring ----------------------------------------------------------------------- */

typedef struct ring_key {
    unsigned char id[4];
    unsigned char key[WS_BLOB_MASTER_KEY_LEN];
} ring_key;

/* The identity of DATA/master.key when it was read: a rotation replaces the file (rename), so
 * its inode changes; mtime, ctime and size catch an edit in place. */
typedef struct key_sig {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
} key_sig;

#define RING_MAX_RETIRED 64

struct ws_blobs_keyring {
    pthread_mutex_t lock;
    char *data_dir; /* file mode; NULL in env mode */
    ring_key cur;
    ring_key *retired; /* open-only: from files / env, and keys a reload replaced */
    size_t n_retired;
    key_sig sig; /* file mode: DATA/master.key when cur was read */
};

static key_sig sig_of(const struct stat *st)
{
    key_sig s = {.dev = st->st_dev,
                 .ino = st->st_ino,
                 .size = st->st_size,
                 .mtime = st->st_mtim,
                 .ctime = st->st_ctim};
    return s;
}

static bool sig_eq(const key_sig *a, const key_sig *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static void id_hex(const unsigned char id[4], char hex[9])
{
    ws_hex_encode(id, 4, hex);
}

static void make_ring_key(const unsigned char key[WS_BLOB_MASTER_KEY_LEN], ring_key *k)
{
    memcpy(k->key, key, WS_BLOB_MASTER_KEY_LEN);
    ws_blob_key_id(key, k->id);
}

/* Adds k to the retired list unless its id is the current one or already there. */
static int add_retired(ring_key **list, size_t *n, const ring_key *cur, const ring_key *k, ws_error *err)
{
    if (!memcmp(k->id, cur->id, 4))
        return 0;
    for (size_t i = 0; i < *n; i++)
        if (!memcmp((*list)[i].id, k->id, 4))
            return 0;
    if (*n >= RING_MAX_RETIRED)
        return ws_error_set(err, WS_ETOOBIG, "more than %d retired master keys", RING_MAX_RETIRED);
    *list = ws_xrealloc(*list, (*n + 1) * sizeof **list);
    (*list)[(*n)++] = *k;
    return 0;
}

static void free_keys(ring_key *list, size_t n)
{
    if (list)
        OPENSSL_cleanse(list, n * sizeof *list);
    free(list);
}

/* Env mode: WS_MASTER_KEY and WS_MASTER_KEYS_RETIRED. */
static int load_env(ring_key *cur, ring_key **retired, size_t *n, ws_error *err)
{
    unsigned char key[WS_BLOB_MASTER_KEY_LEN];
    int rc = ws_blobs_master_key(NULL, key, err);
    if (rc < 0)
        return rc;
    make_ring_key(key, cur);
    const char *list = settings.retired_keys;
    for (const char *p = list ? list : ""; rc == 0 && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) /* tolerate "k1, k2" */
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len) {
            ring_key k;
            rc = parse_hex_key(p, len, key, "each key in WS_MASTER_KEYS_RETIRED", err);
            if (rc == 0) {
                make_ring_key(key, &k);
                rc = add_retired(retired, n, cur, &k, err);
                OPENSSL_cleanse(&k, sizeof k);
            }
        }
        p = comma ? comma + 1 : p + len;
    }
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

int ws_blobs_retired_key_file(const char *name, unsigned char id[4])
{
    size_t pl = strlen(WS_BLOB_RETIRED_PREFIX);
    if (strncmp(name, WS_BLOB_RETIRED_PREFIX, pl) != 0 || strlen(name) != pl + 8)
        return -1;
    for (int i = 0; i < 4; i++) {
        int hi = ws_hex_digit(name[pl + 2 * i]), lo = ws_hex_digit(name[pl + 2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        id[i] = (unsigned char)(hi * 16 + lo);
    }
    return 0;
}

/* File mode: DATA/master.key (with its identity) and every DATA/master.key.retired-<id>. */
static int load_files(const char *data_dir, ring_key *cur, key_sig *sig, ring_key **retired, size_t *n,
                      ws_error *err)
{
    size_t pn = strlen(data_dir) + 64;
    char *path = ws_xmalloc(pn);
    unsigned char key[WS_BLOB_MASTER_KEY_LEN];
    struct stat st;
    snprintf(path, pn, "%s/master.key", data_dir);
    int rc = read_key_file(path, key, &st, err);
    DIR *d = NULL;
    if (rc < 0)
        goto out;
    make_ring_key(key, cur);
    *sig = sig_of(&st);
    if (!(d = opendir(data_dir))) {
        rc = ws_error_set(err, WS_EIO, "cannot list %s: %s", data_dir, strerror(errno));
        goto out;
    }
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        unsigned char id[4];
        if (ws_blobs_retired_key_file(e->d_name, id) < 0)
            continue;
        snprintf(path, pn, "%s/%s", data_dir, e->d_name);
        ring_key k;
        if ((rc = read_key_file(path, key, NULL, err)) < 0)
            break;
        make_ring_key(key, &k);
        if (memcmp(k.id, id, 4) != 0) {
            char want[9], got[9];
            id_hex(id, want);
            id_hex(k.id, got);
            rc = ws_error_set(err, WS_EFORMAT, "retired master key %s holds the key with id %s, not %s", path,
                              got, want);
        } else {
            rc = add_retired(retired, n, cur, &k, err);
        }
        OPENSSL_cleanse(&k, sizeof k);
    }
out:
    if (d)
        closedir(d);
    OPENSSL_cleanse(key, sizeof key);
    free(path);
    return rc;
}

static int ring_new(const char *data_dir, ws_blobs_keyring **out, ws_error *err)
{
    *out = NULL;
    ws_blobs_keyring *r = ws_xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    int rc;
    if (ws_blobs_env_mode()) {
        rc = load_env(&r->cur, &r->retired, &r->n_retired, err);
    } else {
        unsigned char key[WS_BLOB_MASTER_KEY_LEN];
        rc = ws_blobs_master_key(data_dir, key, err); /* creates it on first use */
        OPENSSL_cleanse(key, sizeof key);
        if (rc == 0) {
            r->data_dir = ws_xstrdup(data_dir);
            rc = load_files(data_dir, &r->cur, &r->sig, &r->retired, &r->n_retired, err);
        }
    }
    if (rc < 0) {
        free_keys(r->retired, r->n_retired);
        free(r->data_dir);
        pthread_mutex_destroy(&r->lock);
        OPENSSL_cleanse(r, sizeof *r);
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

static void ring_free(ws_blobs_keyring *r)
{
    if (!r)
        return;
    free_keys(r->retired, r->n_retired);
    free(r->data_dir);
    pthread_mutex_destroy(&r->lock);
    OPENSSL_cleanse(r, sizeof *r);
    free(r);
}

/* File mode: true when DATA/master.key is no longer the file the keyring was read from. */
static bool ring_changed(ws_blobs_keyring *r, const key_sig *seen)
{
    size_t pn = strlen(r->data_dir) + 16;
    char *path = ws_xmalloc(pn);
    snprintf(path, pn, "%s/master.key", r->data_dir);
    struct stat st;
    bool changed = stat(path, &st) != 0; /* gone: let the reload say so */
    if (!changed) {
        key_sig now = sig_of(&st);
        changed = !sig_eq(&now, seen);
    }
    free(path);
    return changed;
}

static int ring_reload(ws_blobs_keyring *r, bool force, ws_error *err)
{
    if (!r->data_dir)
        return 0;
    pthread_mutex_lock(&r->lock);
    key_sig seen = r->sig;
    pthread_mutex_unlock(&r->lock);
    if (!force && !ring_changed(r, &seen))
        return 0;
    ring_key cur;
    key_sig sig;
    ring_key *retired = NULL;
    size_t n = 0;
    int rc = load_files(r->data_dir, &cur, &sig, &retired, &n, err);
    if (rc == 0) {
        pthread_mutex_lock(&r->lock);
        /* keys the handle knew stay usable for opening (another process may still be
         * re-sealing objects under them); the files decide the current key */
        rc = add_retired(&retired, &n, &cur, &r->cur, err);
        for (size_t i = 0; rc == 0 && i < r->n_retired; i++)
            rc = add_retired(&retired, &n, &cur, &r->retired[i], err);
        if (rc == 0) {
            free_keys(r->retired, r->n_retired);
            r->retired = retired;
            r->n_retired = n;
            r->cur = cur;
            r->sig = sig;
            retired = NULL;
            n = 0;
        }
        pthread_mutex_unlock(&r->lock);
    }
    free_keys(retired, n);
    OPENSSL_cleanse(&cur, sizeof cur);
    return rc;
}

/* Copies the key whose id is id into k; false when the ring has none. */
static bool ring_find(ws_blobs_keyring *r, const unsigned char id[4], ring_key *k)
{
    bool found = false;
    pthread_mutex_lock(&r->lock);
    if (!memcmp(r->cur.id, id, 4)) {
        *k = r->cur;
        found = true;
    }
    for (size_t i = 0; !found && i < r->n_retired; i++)
        if (!memcmp(r->retired[i].id, id, 4)) {
            *k = r->retired[i];
            found = true;
        }
    pthread_mutex_unlock(&r->lock);
    return found;
}

void ws_blobs_current_key_id(ws_blobs *b, char hex[9])
{
    pthread_mutex_lock(&b->ring->lock);
    id_hex(b->ring->cur.id, hex);
    pthread_mutex_unlock(&b->ring->lock);
}

size_t ws_blobs_retired_key_ids(ws_blobs *b, char (*hex)[9], size_t max)
{
    pthread_mutex_lock(&b->ring->lock);
    size_t n = b->ring->n_retired;
    for (size_t i = 0; i < n && i < max; i++)
        id_hex(b->ring->retired[i].id, hex[i]);
    pthread_mutex_unlock(&b->ring->lock);
    return n;
}

int ws_blobs_reload_keys(ws_blobs *b, bool force, ws_error *err)
{
    return ring_reload(b->ring, force, err);
}

/* "s3://host[:port]/bucket" or "s3+http://host[:port]/bucket" */
static int open_s3(const char *url, ws_blobs **out, ws_error *err)
{
    bool plain = !strncmp(url, "s3+http://", 10);
    const char *rest = url + (plain ? 10 : 5);
    const char *slash = strchr(rest, '/');
    if (!slash || slash == rest || !slash[1] || strchr(slash + 1, '/'))
        return ws_error_set(err, WS_EINVAL, "blobs URL %s: expected s3://HOST[:PORT]/BUCKET", url);
    size_t hl = (size_t)(slash - rest);
    char *endpoint = ws_xmalloc(hl + 16);
    snprintf(endpoint, hl + 16, "%s://%.*s", plain ? "http" : "https", (int)hl, rest);
    ws_s3_config c = {.endpoint = endpoint,
                      .bucket = slash + 1,
                      .region = settings.s3_region ? settings.s3_region : "us-east-1",
                      .access_key = settings.s3_access_key,
                      .secret_key = settings.s3_secret_key,
                      .part_size = settings.s3_part_size};
    int rc = ws_blobs_s3_open(&c, out, err);
    free(endpoint);
    return rc;
}

int ws_blobs_open(const char *url, const char *data_dir, ws_blobs **out, ws_error *err)
{
    *out = NULL;
    ws_blobs_keyring *ring = NULL;
    int rc = ring_new(data_dir, &ring, err);
    if (rc < 0)
        return rc;
    if (!url || !*url) {
        if (!data_dir || !*data_dir) {
            rc = ws_error_set(err, WS_EINVAL, "no blobs URL and no data directory");
            goto out;
        }
        size_t n = strlen(data_dir) + 8;
        char *dir = ws_xmalloc(n);
        snprintf(dir, n, "%s/blobs", data_dir);
        rc = ws_blobs_local_open(dir, out, err);
        free(dir);
    } else if (!strncmp(url, "file:", 5) || !strncmp(url, "local:", 6)) {
        rc = ws_blobs_local_open(strchr(url, ':') + 1, out, err);
    } else if (!strncmp(url, "s3://", 5) || !strncmp(url, "s3+http://", 10)) {
        rc = open_s3(url, out, err);
    } else {
        rc = ws_error_set(err, WS_EINVAL,
                          "blobs URL %s: expected file:DIR, s3://HOST/BUCKET or s3+http://HOST/BUCKET", url);
    }
    if (rc == 0) {
        (*out)->ring = ring;
        ring = NULL;
    }
out:
    ring_free(ring);
    return rc;
}

void ws_blobs_close(ws_blobs *b)
{
    if (!b)
        return;
    ring_free(b->ring);
    b->ring = NULL;
    b->ops->close(b);
}

const char *ws_blobs_backend(const ws_blobs *b)
{
    return b->ops->name;
}

int ws_blobs_put(ws_blobs *b, const char *key, const void *data, size_t len, ws_error *err)
{
    int rc = ws_blobs_check_key(key, err);
    if (rc < 0)
        return rc;
    ws_blobs_keyring *r = b->ring;
    ws_buf sealed = WS_BUF_INIT;
    ring_key k;
    key_sig used;
    /* Seal under the current key (reloaded first when DATA/master.key changed). Should a
     * rotation replace the key between that check and the write, the object is sealed again
     * under the new one, so a rotation's final scan cannot miss it for long. */
    for (int attempt = 0; attempt < 3; attempt++) {
        if ((rc = ring_reload(r, false, err)) < 0)
            break;
        pthread_mutex_lock(&r->lock);
        k = r->cur;
        used = r->sig;
        pthread_mutex_unlock(&r->lock);
        ws_buf_reset(&sealed);
        rc = ws_blob_seal(k.key, key, data, len, &sealed, err);
        if (rc == 0)
            rc = b->ops->put(b, key, sealed.data, sealed.len, err);
        if (rc < 0 || !r->data_dir || !ring_changed(r, &used))
            break;
    }
    OPENSSL_cleanse(&k, sizeof k);
    ws_buf_free(&sealed);
    return rc;
}

int ws_blobs_get_raw(ws_blobs *b, const char *key, size_t max, ws_buf *out, ws_error *err)
{
    int rc = ws_blobs_check_key(key, err);
    return rc < 0 ? rc : b->ops->get(b, key, max, out, err);
}

int ws_blobs_get_head(ws_blobs *b, const char *key, size_t n, ws_buf *out, ws_error *err)
{
    int rc = ws_blobs_check_key(key, err);
    return rc < 0 ? rc : b->ops->head(b, key, n, out, err);
}

int ws_blobs_get(ws_blobs *b, const char *key, size_t max, ws_buf *out, ws_error *err)
{
    int rc = ws_blobs_check_key(key, err);
    if (rc < 0)
        return rc;
    ws_buf sealed = WS_BUF_INIT;
    ring_key k;
    rc = b->ops->get(b, key, max > SIZE_MAX - WS_BLOB_OVERHEAD ? SIZE_MAX : max + WS_BLOB_OVERHEAD, &sealed,
                     err);
    ws_blob_header h;
    if (rc == 0)
        rc = ws_blob_header_parse(sealed.data, sealed.len, &h, err);
    if (rc == 0 && !ring_find(b->ring, h.key_id, &k)) {
        /* another process may have rotated the key: look at the files again, once */
        rc = ring_reload(b->ring, true, err);
        if (rc == 0 && !ring_find(b->ring, h.key_id, &k)) {
            char hex[9], cur[9];
            id_hex(h.key_id, hex);
            ws_blobs_current_key_id(b, cur);
            rc = ws_error_set(
                err, WS_EPERM,
                "blob %s was encrypted with a different master key (key id %s; the current key is "
                "%s and no retired key has that id: check WS_MASTER_KEY / master.key and the "
                "retired keys)",
                key, hex, cur);
        }
    }
    if (rc == 0) {
        size_t limit = out->limit;
        if (!limit || limit > out->len + max)
            out->limit = out->len + max;
        rc = ws_blob_unseal(k.key, key, sealed.data, sealed.len, out, err);
        out->limit = limit;
    }
    OPENSSL_cleanse(&k, sizeof k);
    ws_buf_free(&sealed);
    return rc;
}

int ws_blobs_delete(ws_blobs *b, const char *key, ws_error *err)
{
    int rc = ws_blobs_check_key(key, err);
    return rc < 0 ? rc : b->ops->del(b, key, err);
}

int ws_blobs_delete_prefix(ws_blobs *b, const char *prefix, size_t *n, ws_error *err)
{
    if (n)
        *n = 0;
    size_t pl = prefix ? strlen(prefix) : 0;
    if (pl < 2 || prefix[pl - 1] != '/')
        return ws_error_set(err, WS_EINVAL, "blob prefix must be a folder ending in '/'");
    char folder[WS_BLOB_KEY_MAX + 1];
    if (pl > WS_BLOB_KEY_MAX)
        return ws_error_set(err, WS_EINVAL, "blob prefix too long");
    memcpy(folder, prefix, pl - 1);
    folder[pl - 1] = '\0';
    int rc = ws_blobs_check_key(folder, err);
    return rc < 0 ? rc : b->ops->del_prefix(b, prefix, n, err);
}

int ws_blobs_reseal_object(ws_blobs *b, const char *key, size_t max, ws_blobs_reseal_outcome *outcome,
                           char key_id[9], ws_error *err)
{
    *outcome = WS_BLOBS_RESEAL_FAILED;
    if (key_id)
        key_id[0] = '\0';
    int rc = ws_blobs_check_key(key, err);
    if (rc < 0)
        return rc;
    ws_blobs_keyring *r = b->ring;
    ws_buf sealed = WS_BUF_INIT, plain = WS_BUF_INIT, again = WS_BUF_INIT, fresh = WS_BUF_INIT;
    ring_key old, cur;
    ws_blob_header h;
    if ((rc = ring_reload(r, false, err)) < 0)
        goto out;
    pthread_mutex_lock(&r->lock);
    cur = r->cur;
    pthread_mutex_unlock(&r->lock);
    /* the header first: an object already under the current key is not fetched whole */
    for (int whole = 0; whole < 2; whole++) {
        ws_buf_reset(&sealed);
        rc = whole ? b->ops->get(b, key, max, &sealed, err)
                   : b->ops->head(b, key, WS_BLOB_OVERHEAD, &sealed, err);
        if (rc < 0 || (rc = ws_blob_header_parse(sealed.data, sealed.len, &h, err)) < 0)
            goto out;
        if (key_id)
            id_hex(h.key_id, key_id);
        if (!memcmp(h.key_id, cur.id, 4)) {
            *outcome = WS_BLOBS_RESEAL_CURRENT;
            goto out;
        }
    }
    if (!ring_find(r, h.key_id, &old) &&
        ((rc = ring_reload(r, true, err)) < 0 || !ring_find(r, h.key_id, &old))) {
        char hex[9];
        id_hex(h.key_id, hex);
        rc = rc < 0 ? rc
                    : ws_error_set(
                          err, WS_EPERM,
                          "blob %s is sealed under master key id %s, which is neither the current key nor "
                          "a retired one",
                          key, hex);
        goto out;
    }
    if ((rc = ws_blob_unseal(old.key, key, sealed.data, sealed.len, &plain, err)) < 0)
        goto out;
    if ((rc = ws_blob_seal(cur.key, key, plain.data ? plain.data : "", plain.len, &fresh, err)) < 0)
        goto out;
    /* Replace it only if nobody rewrote it meanwhile (a writer seals under the new key, so a
     * changed object needs nothing from us): the nonce is new on every seal. */
    if ((rc = b->ops->head(b, key, WS_BLOB_HDR_LEN, &again, err)) < 0) {
        if (rc == WS_ENOENT) { /* deleted meanwhile */
            *outcome = WS_BLOBS_RESEAL_CHANGED;
            rc = 0;
        }
        goto out;
    }
    if (again.len != WS_BLOB_HDR_LEN || memcmp(again.data, sealed.data, WS_BLOB_HDR_LEN) != 0) {
        *outcome = WS_BLOBS_RESEAL_CHANGED;
        goto out;
    }
    if ((rc = b->ops->put(b, key, fresh.data, fresh.len, err)) == 0)
        *outcome = WS_BLOBS_RESEAL_DONE;
out:
    if (plain.data)
        OPENSSL_cleanse(plain.data, plain.len);
    OPENSSL_cleanse(&old, sizeof old);
    OPENSSL_cleanse(&cur, sizeof cur);
    ws_buf_free(&plain);
    ws_buf_free(&sealed);
    ws_buf_free(&again);
    ws_buf_free(&fresh);
    return rc;
}

typedef struct list_ctx {
    int (*fn)(void *arg, const char *key);
    void *arg;
} list_ctx;

static int list_valid(void *arg, const char *key)
{
    list_ctx *c = arg;
    /* a foreign object in a shared bucket that no blob key can name is not ours */
    return ws_blobs_check_key(key, NULL) == 0 ? c->fn(c->arg, key) : 0;
}

int ws_blobs_list(ws_blobs *b, const char *prefix, int (*fn)(void *arg, const char *key), void *arg,
                  ws_error *err)
{
    if (!prefix)
        prefix = "";
    size_t pl = strlen(prefix);
    if (pl) {
        char folder[WS_BLOB_KEY_MAX + 1];
        if (pl < 2 || prefix[pl - 1] != '/' || pl > WS_BLOB_KEY_MAX)
            return ws_error_set(err, WS_EINVAL, "blob prefix must be empty or a folder ending in '/'");
        memcpy(folder, prefix, pl - 1);
        folder[pl - 1] = '\0';
        int rc = ws_blobs_check_key(folder, err);
        if (rc < 0)
            return rc;
    }
    list_ctx c = {fn, arg};
    return b->ops->list(b, prefix, list_valid, &c, err);
}

int ws_blobs_get_to_temp(ws_blobs *b, const char *key, size_t max, const char *dir, char **path,
                         ws_error *err)
{
    *path = NULL;
    ws_buf plain = WS_BUF_INIT;
    int rc = ws_blobs_get(b, key, max, &plain, err);
    if (rc < 0)
        goto out;
    if (!dir || !*dir)
        dir = "/tmp";
    const char *base = strrchr(key, '/') ? strrchr(key, '/') + 1 : key;
    const char *dot = strrchr(base, '.');
    size_t n = strlen(dir) + 40;
    char *p = ws_xmalloc(n);
    int suffix = dot ? (int)strlen(dot) : 0;
    snprintf(p, n, "%s/ws-blob-XXXXXX%.*s", dir, suffix > 8 ? 0 : suffix, dot ? dot : "");
    int fd = mkstemps(p, suffix > 8 ? 0 : suffix); /* O_EXCL, mode 0600 */
    if (fd < 0) {
        rc = ws_error_set(err, WS_EIO, "cannot create a temporary file in %s: %s", dir, strerror(errno));
        free(p);
        goto out;
    }
    size_t done = 0;
    while (done < plain.len) {
        ssize_t w = write(fd, plain.data + done, plain.len - done);
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    if (close(fd) != 0 || done != plain.len) {
        rc = ws_error_set(err, WS_EIO, "cannot write %s", p);
        unlink(p);
        free(p);
        goto out;
    }
    *path = p;
out:
    if (plain.data)
        OPENSSL_cleanse(plain.data, plain.len);
    ws_buf_free(&plain);
    return rc;
}
