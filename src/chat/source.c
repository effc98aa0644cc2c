/* The byte sources of the chat reader: a file, memory, or the chat entry of a zip (picked,
 * checked for unsafe names, encryption and bombs, then read through libzip). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>
#include <zip.h>

#include "chat/chat_int.h"

void ws__chat_source_close(chat_source *s)
{
    if (s->zf)
        zip_fclose(s->zf);
    if (s->zip)
        zip_discard(s->zip);
    if (s->fd >= 0)
        close(s->fd);
    free(s->path);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

/* Reads up to n bytes; returns the count, 0 at the end, or a negative code. */
long ws__chat_source_read(chat_source *s, char *buf, size_t n, ws_error *err)
{
    long got = 0;
    switch (s->kind) {
    case SRC_FILE: {
        ssize_t r;
        do
            r = read(s->fd, buf, n);
        while (r < 0 && errno == EINTR);
        if (r < 0)
            return ws_error_set(err, WS_EIO, "%s: read failed: %s", s->path, strerror(errno));
        got = r;
        break;
    }
    case SRC_MEM: {
        size_t left = s->mem_len - s->mem_pos;
        got = (long)(n < left ? n : left);
        memcpy(buf, s->mem + s->mem_pos, (size_t)got);
        s->mem_pos += (size_t)got;
        break;
    }
    case SRC_ZIP: {
        zip_int64_t r = zip_fread(s->zf, buf, n);
        if (r < 0)
            return ws_error_set(err, WS_EFORMAT, "%s: broken zip archive: %s", s->path, zip_strerror(s->zip));
        got = (long)r;
        break;
    }
    }
    s->read_total += (uint64_t)got;
    if (s->read_total > s->cap)
        return ws_error_set(err, WS_ETOOBIG, "%s: more than %llu bytes of chat text (the size cap)", s->path,
                            (unsigned long long)s->cap);
    return got;
}

int ws__chat_source_rewind(chat_source *s, ws_error *err)
{
    s->read_total = 0;
    switch (s->kind) {
    case SRC_FILE:
        if (lseek(s->fd, 0, SEEK_SET) < 0)
            return ws_error_set(err, WS_EIO, "%s: cannot seek: %s", s->path, strerror(errno));
        return 0;
    case SRC_MEM: s->mem_pos = 0; return 0;
    case SRC_ZIP:
        if (s->zf)
            zip_fclose(s->zf);
        s->zf = zip_fopen_index(s->zip, s->entry, 0);
        if (!s->zf)
            return ws_error_set(err, WS_EFORMAT, "%s: cannot open the chat inside the zip: %s", s->path,
                                zip_strerror(s->zip));
        return 0;
    }
    return WS_EINTERNAL;
}

static bool ends_with_txt(const char *name)
{
    size_t n = strlen(name);
    return n >= 4 && strcasecmp(name + n - 4, ".txt") == 0;
}

static bool unsafe_name(const char *name)
{
    if (name[0] == '/' || name[0] == '\\' || (name[0] && name[1] == ':'))
        return true;
    for (const char *p = name; *p; p++)
        if (p[0] == '.' && p[1] == '.' && (p == name || p[-1] == '/' || p[-1] == '\\') &&
            (p[2] == '\0' || p[2] == '/' || p[2] == '\\'))
            return true;
    return false;
}

/* Opens the zip in s (from s->fd's file or s->mem) and picks the chat entry. */
int ws__chat_source_open_zip(chat_source *s, uint64_t cap, ws_error *err)
{
    zip_error_t zerr;
    zip_error_init(&zerr);
    zip_source_t *zs = s->kind == SRC_MEM ? zip_source_buffer_create(s->mem, s->mem_len, 0, &zerr)
                                          : zip_source_filep_create(fdopen(dup(s->fd), "rb"), 0, -1, &zerr);
    int rc = 0;
    if (!zs) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: cannot read zip: %s", s->path, zip_error_strerror(&zerr));
        goto out;
    }
    s->zip = zip_open_from_source(zs, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (!s->zip) {
        zip_source_free(zs);
        rc = ws_error_set(err, WS_EFORMAT, "%s: broken zip archive: %s", s->path, zip_error_strerror(&zerr));
        goto out;
    }
    zip_int64_t count = zip_get_num_entries(s->zip, 0);
    zip_int64_t best = -1;
    zip_uint64_t best_size = 0;
    bool best_is_chat = false;
    for (zip_int64_t i = 0; i < count; i++) {
        zip_stat_t st;
        if (zip_stat_index(s->zip, (zip_uint64_t)i, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME))
            continue;
        if (unsafe_name(st.name)) {
            rc = ws_error_set(err, WS_EUNSAFE, "%s: refusing a zip with an unsafe entry name '%s'", s->path,
                              st.name);
            goto out;
        }
        if (!ends_with_txt(st.name))
            continue;
        const char *base = strrchr(st.name, '/');
        base = base ? base + 1 : st.name;
        bool is_chat = strcmp(base, "_chat.txt") == 0;
        if (best < 0 || (is_chat && !best_is_chat) || (is_chat == best_is_chat && st.size > best_size)) {
            best = i;
            best_size = st.size;
            best_is_chat = is_chat;
        }
    }
    if (best < 0) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: the zip holds no chat text file (_chat.txt or *.txt)",
                          s->path);
        goto out;
    }
    zip_stat_t st;
    zip_stat_index(s->zip, (zip_uint64_t)best, 0, &st);
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE) {
        rc = ws_error_set(err, WS_EUNSUPPORTED,
                          "%s: '%s' in the zip is encrypted; export it without a password", s->path, st.name);
        goto out;
    }
    if (st.size > cap) {
        rc = ws_error_set(err, WS_ETOOBIG, "%s: '%s' unpacks to %llu bytes, above the cap of %llu", s->path,
                          st.name, (unsigned long long)st.size, (unsigned long long)cap);
        goto out;
    }
    if (st.size > (1u << 20) && st.comp_size > 0 && st.size / st.comp_size > WS_CHAT_MAX_ZIP_RATIO) {
        rc = ws_error_set(err, WS_EUNSAFE, "%s: '%s' compresses %llu:1, which only a zip bomb does", s->path,
                          st.name, (unsigned long long)(st.size / st.comp_size));
        goto out;
    }
    s->entry = (zip_uint64_t)best;
    s->size = st.size;
    s->kind = SRC_ZIP;
    rc = ws__chat_source_rewind(s, err);
out:
    zip_error_fini(&zerr);
    return rc;
}
