/* The local-directory blobs backend (embedded default): one file per object at DIR/<key>,
 * folders created 0700, files written atomically with mode 0600 (a crash in the middle of a
 * put may leave a "<key>.tmp.XXXXXX" file beside it; listing skips it, erasure of the folder
 * removes it). Keys are validated by
 * blobs.c before they reach this file, so a key never leaves DIR. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blobs/blobs.h"
#include "core/file.h"
#include "core/mem.h"

typedef struct local_blobs {
    ws_blobs base;
    char *dir;
} local_blobs;

static char *path_of(const local_blobs *l, const char *key)
{
    size_t n = strlen(l->dir) + strlen(key) + 2;
    char *p = ws_xmalloc(n);
    snprintf(p, n, "%s/%s", l->dir, key);
    return p;
}

/* Writes the object atomically: a unique temporary file beside it (mkstemp: O_EXCL, mode
 * 0600, so concurrent puts never share one), fsync, rename over the key's file. */
static int local_put(ws_blobs *b, const char *key, const void *data, size_t len, ws_error *err)
{
    local_blobs *l = (local_blobs *)b;
    char *p = path_of(l, key);
    size_t tn = strlen(p) + 16;
    char *tmp = ws_xmalloc(tn);
    snprintf(tmp, tn, "%s.tmp.XXXXXX", p);
    int rc = ws_file_make_parents(p, strlen(l->dir), err);
    int fd = rc == 0 ? mkstemp(tmp) : -1;
    if (rc == 0 && fd < 0)
        rc = ws_error_set(err, WS_EIO, "cannot create %s: %s", tmp, strerror(errno));
    if (fd >= 0) {
        size_t done = 0;
        while (done < len) {
            ssize_t w = write(fd, (const char *)data + done, len - done);
            if (w <= 0)
                break;
            done += (size_t)w;
        }
        bool ok = done == len && fsync(fd) == 0;
        ok = close(fd) == 0 && ok;
        if (!ok || rename(tmp, p) != 0) {
            rc = ws_error_set(err, WS_EIO, "cannot write %s: %s", p, strerror(errno));
            unlink(tmp);
        }
    }
    free(tmp);
    free(p);
    return rc;
}

static int local_get(ws_blobs *b, const char *key, size_t max, ws_buf *out, ws_error *err)
{
    local_blobs *l = (local_blobs *)b;
    char *p = path_of(l, key);
    char *data = NULL;
    size_t len = 0;
    int rc = ws_file_read(p, max, &data, &len, err);
    if (rc == WS_ENOENT)
        rc = ws_error_set(err, WS_ENOENT, "no blob %s", key);
    if (rc == 0 && ws_buf_append(out, data, len) != 0)
        rc = ws_error_set(err, WS_ETOOBIG, "blob %s is larger than the buffer's limit", key);
    free(data);
    free(p);
    return rc;
}

static int local_head(ws_blobs *b, const char *key, size_t n, ws_buf *out, ws_error *err)
{
    local_blobs *l = (local_blobs *)b;
    char *p = path_of(l, key);
    int rc = 0;
    int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    char *dst = NULL;
    if (fd < 0) {
        rc = errno == ENOENT ? ws_error_set(err, WS_ENOENT, "no blob %s", key)
                             : ws_error_set(err, WS_EIO, "cannot open %s: %s", p, strerror(errno));
    } else if (n && !(dst = ws_buf_reserve(out, n))) {
        rc = ws_error_set(err, WS_ETOOBIG, "blob %s is larger than the buffer's limit", key);
    } else {
        size_t got = 0;
        while (got < n) {
            ssize_t r = read(fd, dst + got, n - got);
            if (r < 0) {
                rc = ws_error_set(err, WS_EIO, "cannot read %s: %s", p, strerror(errno));
                break;
            }
            if (r == 0)
                break;
            got += (size_t)r;
        }
        if (rc == 0 && got) {
            out->len += got;
            out->data[out->len] = '\0';
        }
    }
    if (fd >= 0)
        close(fd);
    free(p);
    return rc;
}

static int local_del(ws_blobs *b, const char *key, ws_error *err)
{
    local_blobs *l = (local_blobs *)b;
    char *p = path_of(l, key);
    int rc = 0;
    if (unlink(p) != 0 && errno != ENOENT)
        rc = ws_error_set(err, WS_EIO, "cannot delete %s: %s", p, strerror(errno));
    free(p);
    return rc;
}

static int local_del_prefix(ws_blobs *b, const char *prefix, size_t *n, ws_error *err)
{
    /* blobs.c passes folder prefixes only ("a/b/"): the folder is the whole set */
    local_blobs *l = (local_blobs *)b;
    char *p = path_of(l, prefix);
    p[strlen(p) - 1] = '\0';
    int rc = ws_file_remove_tree(p, n, err);
    free(p);
    return rc;
}

/* "<key>.tmp.XXXXXX": what an interrupted put leaves beside its object (mkstemp's suffix). */
static bool is_put_leftover(const char *name)
{
    size_t n = strlen(name);
    if (n < 12 || memcmp(name + n - 11, ".tmp.", 5) != 0)
        return false;
    for (size_t i = n - 6; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
              (name[i] >= '0' && name[i] <= '9')))
            return false;
    return true;
}

/* Calls fn for every regular file under path (key = rel, the path below the root), never
 * following symbolic links. rel is a buffer of WS_BLOB_KEY_MAX + 1 bytes holding rel_len. */
static int walk(const char *path, char *rel, size_t rel_len, int depth, int (*fn)(void *, const char *),
                void *arg, ws_error *err)
{
    if (depth > 64)
        return ws_error_set(err, WS_EIO, "%s: folders nested too deep", path);
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : ws_error_set(err, WS_EIO, "cannot open %s: %s", path, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        size_t nl = strlen(e->d_name);
        if (rel_len + (rel_len ? 1 : 0) + nl > WS_BLOB_KEY_MAX)
            continue; /* no key can name it */
        size_t len = strlen(path) + nl + 2;
        char *child = ws_xmalloc(len);
        snprintf(child, len, "%s/%s", path, e->d_name);
        size_t cl = rel_len;
        if (cl)
            rel[cl++] = '/';
        memcpy(rel + cl, e->d_name, nl + 1);
        cl += nl;
        struct stat st;
        if (lstat(child, &st) != 0) {
            if (errno != ENOENT)
                rc = ws_error_set(err, WS_EIO, "cannot stat %s: %s", child, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk(child, rel, cl, depth + 1, fn, arg, err);
        } else if (S_ISREG(st.st_mode) && !is_put_leftover(e->d_name)) {
            rc = fn(arg, rel);
        }
        rel[rel_len] = '\0';
        free(child);
    }
    closedir(d);
    return rc;
}

static int local_list(ws_blobs *b, const char *prefix, int (*fn)(void *arg, const char *key), void *arg,
                      ws_error *err)
{
    /* blobs.c passes "" or folder prefixes ("a/b/"): walk that folder */
    local_blobs *l = (local_blobs *)b;
    char rel[WS_BLOB_KEY_MAX + 1];
    size_t pl = strlen(prefix);
    char *p;
    if (pl) {
        p = path_of(l, prefix);
        p[strlen(p) - 1] = '\0';
        memcpy(rel, prefix, pl - 1);
        rel[--pl] = '\0';
    } else {
        p = ws_xstrdup(l->dir);
        rel[0] = '\0';
    }
    int rc = walk(p, rel, pl, 0, fn, arg, err);
    free(p);
    return rc;
}

static void local_close(ws_blobs *b)
{
    local_blobs *l = (local_blobs *)b;
    free(l->dir);
    free(l);
}

static const ws_blobs_ops local_ops = {
    .name = "local",
    .put = local_put,
    .get = local_get,
    .head = local_head,
    .del = local_del,
    .del_prefix = local_del_prefix,
    .list = local_list,
    .close = local_close,
};

int ws_blobs_local_open(const char *dir, ws_blobs **out, ws_error *err)
{
    *out = NULL;
    if (!dir || !*dir)
        return ws_error_set(err, WS_EINVAL, "blobs: empty directory");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return ws_error_set(err, WS_EIO, "cannot create blobs directory %s: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ws_error_set(err, WS_EIO, "blobs directory %s is not a directory", dir);
    local_blobs *l = ws_xcalloc(1, sizeof *l);
    l->base.ops = &local_ops;
    l->dir = ws_xstrdup(dir);
    size_t n = strlen(l->dir);
    while (n > 1 && l->dir[n - 1] == '/')
        l->dir[--n] = '\0';
    *out = &l->base;
    return 0;
}
