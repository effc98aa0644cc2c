/* Capped whole-file reads and atomic writes. */
#include "core/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/buf.h"
#include "core/hex.h"
#include "core/mem.h"

int ws_file_read(const char *path, size_t cap, char **data, size_t *len, ws_error *err)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ws_error_set(err, errno == ENOENT ? WS_ENOENT : WS_EIO, "%s: %s", path, strerror(errno));
    ws_buf b = WS_BUF_INIT;
    char chunk[65536];
    int rc = 0;
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = ws_error_set(err, WS_EIO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (got == 0)
            break;
        if (b.len + (size_t)got > cap) {
            rc = ws_error_set(err, WS_ETOOBIG, "%s: larger than %zu bytes", path, cap);
            break;
        }
        ws_buf_append(&b, chunk, (size_t)got);
    }
    close(fd);
    if (rc) {
        ws_buf_free(&b);
        return rc;
    }
    *len = b.len;
    *data = ws_buf_take(&b); /* NUL-terminated: ws_buf always is */
    return 0;
}

int ws_file_write_atomic(const char *path, const void *data, size_t len, ws_error *err)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    int fd = -1, rc = 0;
    if (!tmp)
        return ws_error_set(err, WS_ENOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = ws_error_set(err, WS_EIO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = ws_error_set(err, WS_EIO, "%s: write failed: %s", tmp, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        rc = ws_error_set(err, WS_EIO, "%s: fsync failed: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = ws_error_set(err, WS_EIO, "%s: close failed: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        rc = ws_error_set(err, WS_EIO, "%s: %s", path, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}

int ws_file_make_parents(const char *path, size_t skip, ws_error *err)
{
    char *p = ws_xstrdup(path);
    int rc = 0;
    size_t n = strlen(p), start = skip < n ? skip + 1 : n;
    for (char *s = strchr(p + start, '/'); rc == 0 && s; s = strchr(s + 1, '/')) {
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            rc = ws_error_set(err, WS_EIO, "cannot create folder %s: %s", p, strerror(errno));
        *s = '/';
    }
    free(p);
    return rc;
}

int ws_file_make_dirs(const char *path, ws_error *err)
{
    int rc = ws_file_make_parents(path, 0, err);
    if (rc)
        return rc;
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return ws_error_set(err, WS_EIO, "cannot create folder %s: %s", path, strerror(errno));
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return ws_error_set(err, WS_EIO, "%s is not a folder", path);
    return 0;
}

static int remove_tree(const char *path, size_t *n, int depth, ws_error *err)
{
    if (depth > 64)
        return ws_error_set(err, WS_EIO, "%s: folders nested too deep", path);
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : ws_error_set(err, WS_EIO, "cannot open %s: %s", path, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        ws_buf child = WS_BUF_INIT;
        ws_buf_printf(&child, "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(child.data, &st) != 0) {
            if (errno != ENOENT)
                rc = ws_error_set(err, WS_EIO, "cannot stat %s: %s", child.data, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            rc = remove_tree(child.data, n, depth + 1, err);
        } else if (unlink(child.data) == 0) {
            (*n)++;
        } else if (errno != ENOENT) {
            rc = ws_error_set(err, WS_EIO, "cannot delete %s: %s", child.data, strerror(errno));
        }
        ws_buf_free(&child);
    }
    closedir(d);
    if (rc == 0 && rmdir(path) != 0 && errno != ENOENT)
        rc = ws_error_set(err, WS_EIO, "cannot remove %s: %s", path, strerror(errno));
    return rc;
}

int ws_file_remove_tree(const char *path, size_t *n_files, ws_error *err)
{
    size_t n = 0;
    int rc = remove_tree(path, &n, 0, err);
    if (n_files)
        *n_files = n;
    return rc;
}

int ws_file_sha256(const char *path, char hex[65], ws_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ws_error_set(err, errno == ENOENT ? WS_ENOENT : WS_EIO, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        EVP_DigestUpdate(md, chunk, k);
    int bad = ferror(f);
    fclose(f);
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    if (bad)
        return ws_error_set(err, WS_EIO, "%s: read error", path);
    ws_hex_encode(d, 32, hex);
    return 0;
}
