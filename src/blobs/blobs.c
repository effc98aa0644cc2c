/* The blobs layer above the backends: choosing a backend from a URL, the master key, key
 * validation, and encryption of every object (see blobs.h). */
#include "blobs/blobs.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blobs/blobs_crypt.h"
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

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int read_key_file(const char *path, unsigned char key[WS_BLOB_MASTER_KEY_LEN], ws_error *err)
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
    }
    close(fd);
    return rc;
}

int ws_blobs_master_key(const char *data_dir, unsigned char key[WS_BLOB_MASTER_KEY_LEN], ws_error *err)
{
    const char *env = getenv("WS_MASTER_KEY");
    if (env && *env) {
        if (strlen(env) != 2 * WS_BLOB_MASTER_KEY_LEN)
            return ws_error_set(err, WS_EINVAL, "WS_MASTER_KEY must be %d hex digits (a 256-bit key)",
                                2 * WS_BLOB_MASTER_KEY_LEN);
        for (int i = 0; i < WS_BLOB_MASTER_KEY_LEN; i++) {
            int hi = hexval(env[2 * i]), lo = hexval(env[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return ws_error_set(err, WS_EINVAL, "WS_MASTER_KEY is not hexadecimal");
            key[i] = (unsigned char)(hi * 16 + lo);
        }
        return 0;
    }
    if (!data_dir || !*data_dir)
        return ws_error_set(err, WS_EINVAL, "no master key: set WS_MASTER_KEY or give a data directory");
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST)
        return ws_error_set(err, WS_EIO, "cannot create %s: %s", data_dir, strerror(errno));
    size_t n = strlen(data_dir) + 64;
    char *path = ws_xmalloc(n), *tmp = ws_xmalloc(n);
    snprintf(path, n, "%s/master.key", data_dir);
    int rc = read_key_file(path, key, err);
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
    rc = read_key_file(path, key, err);
out:
    free(path);
    free(tmp);
    return rc;
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
    const char *region = getenv("WS_S3_REGION");
    const char *ak = getenv("WS_S3_ACCESS_KEY"), *sk = getenv("WS_S3_SECRET_KEY");
    if (!ak || !*ak)
        ak = getenv("AWS_ACCESS_KEY_ID");
    if (!sk || !*sk)
        sk = getenv("AWS_SECRET_ACCESS_KEY");
    ws_s3_config c = {.endpoint = endpoint,
                      .bucket = slash + 1,
                      .region = region && *region ? region : "us-east-1",
                      .access_key = ak,
                      .secret_key = sk};
    int rc = ws_blobs_s3_open(&c, out, err);
    free(endpoint);
    return rc;
}

int ws_blobs_open(const char *url, const char *data_dir, ws_blobs **out, ws_error *err)
{
    *out = NULL;
    if (!url || !*url)
        url = getenv("WS_BLOBS_URL");
    unsigned char key[WS_BLOB_MASTER_KEY_LEN];
    int rc = ws_blobs_master_key(data_dir, key, err);
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
    if (rc == 0)
        memcpy((*out)->master, key, sizeof key);
out:
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

void ws_blobs_close(ws_blobs *b)
{
    if (!b)
        return;
    OPENSSL_cleanse(b->master, sizeof b->master);
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
    ws_buf sealed = WS_BUF_INIT;
    rc = ws_blob_seal(b->master, key, data, len, &sealed, err);
    if (rc == 0)
        rc = b->ops->put(b, key, sealed.data, sealed.len, err);
    ws_buf_free(&sealed);
    return rc;
}

int ws_blobs_get(ws_blobs *b, const char *key, size_t max, ws_buf *out, ws_error *err)
{
    int rc = ws_blobs_check_key(key, err);
    if (rc < 0)
        return rc;
    ws_buf sealed = WS_BUF_INIT;
    rc = b->ops->get(b, key, max > SIZE_MAX - WS_BLOB_OVERHEAD ? SIZE_MAX : max + WS_BLOB_OVERHEAD, &sealed,
                     err);
    if (rc == 0) {
        size_t limit = out->limit;
        if (!limit || limit > out->len + max)
            out->limit = out->len + max;
        rc = ws_blob_unseal(b->master, key, sealed.data, sealed.len, out, err);
        out->limit = limit;
    }
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

int ws_blobs_get_to_temp(ws_blobs *b, const char *key, size_t max, const char *dir, char **path,
                         ws_error *err)
{
    *path = NULL;
    ws_buf plain = WS_BUF_INIT;
    int rc = ws_blobs_get(b, key, max, &plain, err);
    if (rc < 0)
        goto out;
    if (!dir || !*dir)
        dir = getenv("TMPDIR");
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
