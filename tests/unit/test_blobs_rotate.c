/* Master-key rotation of the blobs: the keyring (current + retired keys, chosen by the header's
 * key id, from files or from WS_MASTER_KEY / WS_MASTER_KEYS_RETIRED), reload when another
 * process replaces DATA/master.key (also from several threads), the backend listing, rotation
 * of a populated store (several sizes, nested keys, models and exports), interruption then
 * `reseal`, per-object errors that keep the object's bytes and the retired key, env mode, the
 * rotation lock. With WS_TEST_S3_URL set (tests/cli/blobs_s3.sh starts SeaweedFS), listing and
 * rotation run on S3 too; WS_TEST_REQUIRE_S3=1 makes a missing URL a failure. */
#include "blobs_settings.h"
#include "harness.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blobs/blobs.h"
#include "blobs/blobs_crypt.h"
#include "blobs/blobs_rotate.h"
#include "core/file.h"
#include "core/mem.h"

static char dir[256];

static void mkdata(void)
{
    t_blobs_keys(NULL, NULL);
    snprintf(dir, sizeof dir, "/tmp/ws-test-rotate-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

static void rmdata(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

static char *pathf(const char *fmt, const char *a)
{
    ws_buf b = WS_BUF_INIT;
    ws_buf_printf(&b, fmt, dir, a);
    return ws_buf_take(&b);
}

static bool exists(const char *name)
{
    char *p = pathf("%s/%s", name);
    bool e = access(p, F_OK) == 0;
    free(p);
    return e;
}

/* The key id in the header of the object as stored, as 8 hex digits ("" if unreadable). */
static void stored_id(ws_blobs *b, const char *key, char hex[9])
{
    ws_buf raw = WS_BUF_INIT;
    ws_blob_header h;
    hex[0] = '\0';
    if (ws_blobs_get_raw(b, key, 1 << 24, &raw, NULL) == 0 &&
        ws_blob_header_parse(raw.data, raw.len, &h, NULL) == 0)
        snprintf(hex, 9, "%02x%02x%02x%02x", h.key_id[0], h.key_id[1], h.key_id[2], h.key_id[3]);
    ws_buf_free(&raw);
}

static ws_blobs *open_blobs(const char *url)
{
    ws_blobs *b = NULL;
    ws_error err = {0};
    int rc = ws_blobs_open(url, dir, &b, &err);
    if (rc)
        fprintf(stderr, "open: %s\n", err.msg);
    CHECK_EQ_INT(rc, 0);
    return b;
}

/* A populated store: exports and models of two users, nested keys, several sizes. */
static const char *const obj_keys[] = {
    "users/usr_a/exports/exp_1.txt",
    "users/usr_a/exports/exp_2.zip",
    "users/usr_a/models/v1/manifest.json",
    "users/usr_a/models/v1/model.safetensors",
    "users/usr_a/models/v1/index/vectors.bin",
    "users/usr_a/models/current",
    "users/usr_b/exports/exp_3.txt",
    "users/usr_b/models/current",
    "empty",
};
enum { N_OBJ = sizeof obj_keys / sizeof obj_keys[0] };

static size_t obj_size(size_t i)
{
    static const size_t sizes[] = {40, 1, 1000, 300000, 17, 60, 4096, 70, 0};
    return sizes[i];
}

static char *obj_data(size_t i)
{
    size_t n = obj_size(i);
    char *d = ws_xmalloc(n + 1);
    for (size_t j = 0; j < n; j++)
        d[j] = (char)(j * 31 + i * 7 + 1);
    return d;
}

static void populate(ws_blobs *b, const char *root)
{
    for (size_t i = 0; i < N_OBJ; i++) {
        char k[300], *d = obj_data(i);
        snprintf(k, sizeof k, "%s%s", root, obj_keys[i]);
        ws_error err = {0};
        CHECK_EQ_INT(ws_blobs_put(b, k, d, obj_size(i), &err), 0);
        free(d);
    }
}

/* Every object reads back whole; each is under want_id when it is not NULL. */
static void check_all(ws_blobs *b, const char *root, const char *want_id)
{
    for (size_t i = 0; i < N_OBJ; i++) {
        char k[300], *d = obj_data(i);
        snprintf(k, sizeof k, "%s%s", root, obj_keys[i]);
        ws_buf out = WS_BUF_INIT;
        ws_error err = {0};
        int rc = ws_blobs_get(b, k, 1 << 24, &out, &err);
        if (rc)
            fprintf(stderr, "%s: %s\n", k, err.msg);
        CHECK_EQ_INT(rc, 0);
        CHECK(out.len == obj_size(i) && (!out.len || !memcmp(out.data, d, out.len)));
        if (want_id) {
            char id[9];
            stored_id(b, k, id);
            CHECK_EQ_STR(id, want_id);
        }
        ws_buf_free(&out);
        free(d);
    }
}

static void retired_name(const char *id, char name[64])
{
    snprintf(name, 64, "%s%s", WS_BLOB_RETIRED_PREFIX, id);
}

static void keyring_current_and_retired_keys_from_files(void)
{
    mkdata();
    ws_blobs *b = open_blobs(NULL);
    if (!b)
        return;
    ws_error err = {0};
    CHECK_EQ_INT(ws_blobs_put(b, "users/u/exports/a.txt", "old words", 9, &err), 0);
    char id1[9], old_id[9], new_id[9], got[9];
    ws_blobs_current_key_id(b, id1);
    stored_id(b, "users/u/exports/a.txt", got);
    CHECK_EQ_STR(got, id1);
    CHECK_EQ_INT(ws_blobs_replace_master_key(dir, old_id, new_id, &err), 0);
    CHECK_EQ_STR(old_id, id1);
    CHECK(strcmp(new_id, old_id) != 0);
    char name[64];
    retired_name(old_id, name);
    char *rp = pathf("%s/%s", name), *mp = pathf("%s/%s", "master.key");
    struct stat st;
    CHECK_EQ_INT(stat(rp, &st), 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    CHECK_EQ_INT(stat(mp, &st), 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    CHECK_EQ_INT(st.st_size, 32);
    ws_blobs_close(b);

    /* a fresh handle: the new key seals, the retired one opens, picked by the header */
    b = open_blobs(NULL);
    ws_blobs_current_key_id(b, got);
    CHECK_EQ_STR(got, new_id);
    char ids[4][9];
    CHECK_EQ_INT(ws_blobs_retired_key_ids(b, ids, 4), 1);
    CHECK_EQ_STR(ids[0], old_id);
    ws_buf out = WS_BUF_INIT;
    CHECK_EQ_INT(ws_blobs_get(b, "users/u/exports/a.txt", 100, &out, &err), 0);
    CHECK_EQ_STR(out.data, "old words");
    CHECK_EQ_INT(ws_blobs_put(b, "users/u/exports/b.txt", "new words", 9, &err), 0);
    stored_id(b, "users/u/exports/b.txt", got);
    CHECK_EQ_STR(got, new_id);
    ws_blobs_close(b);

    /* the retired key must be as safe as master.key, and hold the key its name says */
    chmod(rp, 0640);
    CHECK_EQ_INT(ws_blobs_open(NULL, dir, &b, &err), WS_EUNSAFE);
    CHECK(strstr(err.msg, "readable by others") != NULL);
    chmod(rp, 0600);
    char *wrong = pathf("%s/%s", WS_BLOB_RETIRED_PREFIX "00000000");
    CHECK_EQ_INT(link(rp, wrong), 0);
    CHECK_EQ_INT(ws_blobs_open(NULL, dir, &b, &err), WS_EFORMAT);
    CHECK(strstr(err.msg, "not 00000000") != NULL);
    unlink(wrong);
    free(wrong);

    /* without the retired key: an object under it fails, naming its key id */
    CHECK_EQ_INT(unlink(rp), 0);
    b = open_blobs(NULL);
    ws_buf_reset(&out);
    CHECK_EQ_INT(ws_blobs_get(b, "users/u/exports/a.txt", 100, &out, &err), WS_EPERM);
    CHECK(strstr(err.msg, old_id) != NULL);
    CHECK(strstr(err.msg, "different master key") != NULL);
    CHECK_EQ_INT(out.len, 0);
    ws_blobs_close(b);
    ws_buf_free(&out);
    free(rp);
    free(mp);
    rmdata();
}

static void a_running_handle_follows_a_rotation_by_another_process(void)
{
    mkdata();
    ws_blobs *srv = open_blobs(NULL); /* the "server": opened before the rotation */
    ws_blobs *other = open_blobs(NULL);
    if (!srv || !other)
        return;
    ws_error err = {0};
    CHECK_EQ_INT(ws_blobs_put(srv, "users/u/a", "before", 6, &err), 0);
    char old_id[9], new_id[9], got[9];
    CHECK_EQ_INT(ws_blobs_replace_master_key(dir, old_id, new_id, &err), 0);
    /* the other handle writes under the new key (it noticed before sealing) */
    CHECK_EQ_INT(ws_blobs_put(other, "users/u/b", "by other", 8, &err), 0);
    stored_id(other, "users/u/b", got);
    CHECK_EQ_STR(got, new_id);
    /* the server has not written since: it meets an unknown key id, reloads once, reads it */
    ws_buf out = WS_BUF_INIT;
    CHECK_EQ_INT(ws_blobs_get(srv, "users/u/b", 100, &out, &err), 0);
    CHECK_EQ_STR(out.data, "by other");
    ws_blobs_current_key_id(srv, got);
    CHECK_EQ_STR(got, new_id);
    /* a second rotation: the server's next put is sealed under the newest key */
    char id3[9];
    CHECK_EQ_INT(ws_blobs_replace_master_key(dir, NULL, id3, &err), 0);
    CHECK_EQ_INT(ws_blobs_put(srv, "users/u/c", "after", 5, &err), 0);
    stored_id(srv, "users/u/c", got);
    CHECK_EQ_STR(got, id3);
    /* and it still opens what was sealed under the first key (retired file) */
    ws_buf_reset(&out);
    CHECK_EQ_INT(ws_blobs_get(srv, "users/u/a", 100, &out, &err), 0);
    CHECK_EQ_STR(out.data, "before");
    ws_buf_free(&out);
    ws_blobs_close(srv);
    ws_blobs_close(other);
    rmdata();
}

typedef struct worker_arg {
    ws_blobs *b;
    int id, failures;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    for (int i = 0; i < 40; i++) {
        char k[64], v[64];
        snprintf(k, sizeof k, "users/t%d/o%d", a->id, i);
        snprintf(v, sizeof v, "value %d/%d", a->id, i);
        ws_error err = {0};
        ws_buf out = WS_BUF_INIT;
        if (ws_blobs_put(a->b, k, v, strlen(v), &err) != 0 || ws_blobs_get(a->b, k, 100, &out, &err) != 0 ||
            !out.data || strcmp(out.data, v) != 0) {
            fprintf(stderr, "thread %d: %s\n", a->id, err.msg);
            a->failures++;
        }
        /* an object of another thread, maybe sealed under another key */
        snprintf(k, sizeof k, "users/t%d/o%d", (a->id + 1) % 4, i / 2);
        ws_buf_reset(&out);
        int rc = ws_blobs_get(a->b, k, 100, &out, &err);
        if (rc != 0 && rc != WS_ENOENT) {
            fprintf(stderr, "thread %d: %s\n", a->id, err.msg);
            a->failures++;
        }
        ws_buf_free(&out);
    }
    return NULL;
}

static void one_handle_from_several_threads_while_keys_rotate(void)
{
    mkdata();
    ws_blobs *b = open_blobs(NULL);
    if (!b)
        return;
    pthread_t t[4];
    worker_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (worker_arg){b, i, 0};
        pthread_create(&t[i], NULL, worker, &a[i]);
    }
    ws_error err = {0};
    for (int r = 0; r < 3; r++) {
        usleep(2000);
        CHECK_EQ_INT(ws_blobs_replace_master_key(dir, NULL, NULL, &err), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_INT(a[i].failures, 0);
    }
    /* what was written after the last rotation is under the newest key */
    char cur[9], got[9];
    CHECK_EQ_INT(ws_blobs_put(b, "users/t0/last", "x", 1, &err), 0);
    ws_blobs_current_key_id(b, cur);
    stored_id(b, "users/t0/last", got);
    CHECK_EQ_STR(got, cur);
    ws_blobs_close(b);
    rmdata();
}

static int add_key(void *arg, const char *key)
{
    ws_buf *b = arg;
    ws_buf_printf(b, "%s\n", key);
    return 0;
}

static int stop_at_two(void *arg, const char *key)
{
    int *n = arg;
    return ++*n == 2 ? WS_ECONFLICT : 0;
}

/* The listing lines of prefix, sorted (the backend lists in no set order). */
static char *listing(ws_blobs *b, const char *prefix, int *rc)
{
    ws_buf out = WS_BUF_INIT;
    ws_error err = {0};
    *rc = ws_blobs_list(b, prefix, add_key, &out, &err);
    char *text = ws_buf_take(&out);
    char *lines[64];
    size_t n = 0;
    for (char *s = strtok(text, "\n"); s && n < 64; s = strtok(NULL, "\n"))
        lines[n++] = s;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(lines[j - 1], lines[j]) > 0; j--) {
            char *x = lines[j];
            lines[j] = lines[j - 1];
            lines[j - 1] = x;
        }
    ws_buf sorted = WS_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        ws_buf_printf(&sorted, "%s;", lines[i]);
    free(text);
    return ws_buf_take(&sorted);
}

static void list_suite(ws_blobs *b, const char *root)
{
    char k[300], pfx[300], want[4096] = "";
    populate(b, root);
    int rc;
    snprintf(pfx, sizeof pfx, "%susers/usr_a/", root);
    char *got = listing(b, pfx, &rc);
    CHECK_EQ_INT(rc, 0);
    static const char *const usr_a[] = {
        "exports/exp_1.txt",           "exports/exp_2.zip",       "models/current",
        "models/v1/index/vectors.bin", "models/v1/manifest.json", "models/v1/model.safetensors"}; /* sorted */
    for (size_t i = 0; i < sizeof usr_a / sizeof usr_a[0]; i++) {
        snprintf(k, sizeof k, "%susers/usr_a/%s;", root, usr_a[i]);
        strcat(want, k);
    }
    CHECK_EQ_STR(got, want);
    free(got);
    snprintf(pfx, sizeof pfx, "%susers/usr_b/models/", root);
    got = listing(b, pfx, &rc);
    snprintf(want, sizeof want, "%susers/usr_b/models/current;", root);
    CHECK_EQ_STR(got, want);
    free(got);
    snprintf(pfx, sizeof pfx, "%susers/nobody/", root);
    got = listing(b, pfx, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(got, "");
    free(got);
    ws_error err = {0};
    /* the first bytes only: what the header check reads */
    snprintf(k, sizeof k, "%susers/usr_a/models/v1/model.safetensors", root);
    ws_buf raw = WS_BUF_INIT, head = WS_BUF_INIT;
    CHECK_EQ_INT(ws_blobs_get_raw(b, k, 1 << 24, &raw, &err), 0);
    CHECK_EQ_INT(raw.len, 300000 + WS_BLOB_OVERHEAD);
    CHECK_EQ_INT(ws_blobs_get_head(b, k, WS_BLOB_OVERHEAD, &head, &err), 0);
    CHECK(head.len == WS_BLOB_OVERHEAD && !memcmp(head.data, raw.data, WS_BLOB_OVERHEAD));
    snprintf(k, sizeof k, "%sempty", root);
    ws_buf_reset(&head);
    CHECK_EQ_INT(ws_blobs_get_head(b, k, 1000, &head, &err), 0);
    CHECK_EQ_INT(head.len, WS_BLOB_OVERHEAD); /* shorter than asked: all of it */
    snprintf(k, sizeof k, "%susers/none", root);
    CHECK_EQ_INT(ws_blobs_get_head(b, k, 10, &head, &err), WS_ENOENT);
    ws_buf_free(&raw);
    ws_buf_free(&head);
    CHECK_EQ_INT(ws_blobs_list(b, "users", add_key, NULL, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_blobs_list(b, "../", add_key, NULL, &err), WS_EINVAL);
    int n = 0;
    snprintf(pfx, sizeof pfx, "%susers/", root);
    CHECK_EQ_INT(ws_blobs_list(b, pfx, stop_at_two, &n, &err), WS_ECONFLICT);
    CHECK_EQ_INT(n, 2);
}

static void list_on_the_local_backend(void)
{
    mkdata();
    ws_blobs *b = open_blobs(NULL);
    if (!b)
        return;
    list_suite(b, "");
    /* leftovers of interrupted puts, links and odd names are not objects */
    char *p = pathf("%s/blobs/%s", "users/usr_a/exports/exp_1.txt.tmp.Ab12Cd");
    CHECK_EQ_INT(ws_file_write_atomic(p, "junk", 4, NULL), 0);
    free(p);
    p = pathf("%s/blobs/%s", "users/usr_a/link");
    CHECK_EQ_INT(symlink("/etc/passwd", p), 0);
    free(p);
    p = pathf("%s/blobs/%s", "users/usr_a/bad name");
    CHECK_EQ_INT(ws_file_write_atomic(p, "junk", 4, NULL), 0);
    free(p);
    int rc;
    char *all = listing(b, "", &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(
        all, "empty;users/usr_a/exports/exp_1.txt;users/usr_a/exports/exp_2.zip;users/usr_a/models/"
             "current;users/usr_a/models/v1/index/vectors.bin;users/usr_a/models/v1/manifest.json;users/"
             "usr_a/models/v1/model.safetensors;users/usr_b/exports/exp_3.txt;users/usr_b/models/current;");
    free(all);
    ws_blobs_close(b);
    rmdata();
}

typedef struct hook_log {
    size_t progress_calls, last_done, last_total;
    ws_buf errors;
} hook_log;

static void log_progress(void *arg, const char *phase, size_t done, size_t total)
{
    hook_log *l = arg;
    l->progress_calls++;
    l->last_done = done;
    l->last_total = total;
}

static void log_error(void *arg, const char *key, const ws_error *e)
{
    hook_log *l = arg;
    ws_buf_printf(&l->errors, "%s: %s\n", key, e->msg);
}

static const ws_blobs_key_count *count_of(const ws_blobs_reseal_report *r, const char *id)
{
    for (size_t i = 0; i < r->n_ids; i++)
        if (!strcmp(r->ids[i].id, id))
            return &r->ids[i];
    return NULL;
}

/* Rotation of a populated store (url NULL = DATA/blobs; else S3): everything re-sealed under
 * the new key, the retired key file deleted, every object intact. */
static void rotation_suite(const char *url, const char *root)
{
    ws_blobs *b = open_blobs(url);
    if (!b)
        return;
    populate(b, root);
    char old_id[9];
    ws_blobs_current_key_id(b, old_id);
    check_all(b, root, old_id);
    hook_log log = {.errors = WS_BUF_INIT};
    ws_blobs_reseal_hooks hooks = {log_progress, log_error, &log};
    ws_blobs_reseal_report rep;
    ws_error err = {0};
    int rc = ws_blobs_rotate_master(url, dir, &hooks, &rep, &err);
    if (rc)
        fprintf(stderr, "rotate: %s\n", err.msg);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(rep.objects, N_OBJ);
    CHECK_EQ_INT(rep.resealed, N_OBJ);
    CHECK_EQ_INT(rep.failed + rep.final_failed + rep.changed + rep.current, 0);
    CHECK_EQ_INT(rep.final_objects, N_OBJ);
    CHECK(strcmp(rep.current_id, old_id) != 0);
    const ws_blobs_key_count *c = count_of(&rep, old_id);
    CHECK(c && c->n == 0 && c->removed);
    CHECK_EQ_INT(rep.key_files_removed, 1);
    CHECK_EQ_INT(log.errors.len, 0);
    CHECK_EQ_INT(log.last_done, N_OBJ);
    CHECK(log.progress_calls >= 2 * N_OBJ);
    char name[64];
    retired_name(old_id, name);
    CHECK(!exists(name));
    /* the running handle reads everything (it follows the new key) and so does a fresh one */
    check_all(b, root, rep.current_id);
    ws_blobs_close(b);
    b = open_blobs(url);
    check_all(b, root, rep.current_id);
    char ids[4][9];
    CHECK_EQ_INT(ws_blobs_retired_key_ids(b, ids, 4), 0);
    /* a second rotation in a row works the same */
    char second_old[9];
    snprintf(second_old, sizeof second_old, "%s", rep.current_id);
    CHECK_EQ_INT(ws_blobs_rotate_master(url, dir, &hooks, &rep, &err), 0);
    CHECK_EQ_INT(rep.resealed, N_OBJ);
    CHECK(strcmp(rep.current_id, second_old) != 0);
    check_all(b, root, rep.current_id);
    ws_blobs_close(b);
    ws_buf_free(&log.errors);
}

static void rotation_of_a_populated_local_store(void)
{
    mkdata();
    rotation_suite(NULL, "");
    char *p = pathf("%s/%s", "master.key");
    struct stat st;
    CHECK_EQ_INT(stat(p, &st), 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    free(p);
    rmdata();
}

static void interrupted_rotation_then_reseal(void)
{
    mkdata();
    ws_blobs *b = open_blobs(NULL);
    if (!b)
        return;
    populate(b, "");
    ws_error err = {0};
    /* interrupted after the key files, with some objects re-sealed */
    char old_id[9], new_id[9], name[64];
    CHECK_EQ_INT(ws_blobs_replace_master_key(dir, old_id, new_id, &err), 0);
    for (size_t i = 0; i < N_OBJ; i += 2) {
        ws_blobs_reseal_outcome oc;
        char was[9];
        CHECK_EQ_INT(ws_blobs_reseal_object(b, obj_keys[i], 1 << 24, &oc, was, &err), 0);
        CHECK_EQ_INT(oc, WS_BLOBS_RESEAL_DONE);
        CHECK_EQ_STR(was, old_id);
        CHECK_EQ_INT(ws_blobs_reseal_object(b, obj_keys[i], 1 << 24, &oc, was, &err), 0);
        CHECK_EQ_INT(oc, WS_BLOBS_RESEAL_CURRENT);
    }
    ws_blobs_close(b);
    /* meanwhile everything still reads, under either key */
    b = open_blobs(NULL);
    check_all(b, "", NULL);
    retired_name(old_id, name);
    CHECK(exists(name));
    /* reseal finishes the job */
    hook_log log = {.errors = WS_BUF_INIT};
    ws_blobs_reseal_hooks hooks = {log_progress, log_error, &log};
    ws_blobs_reseal_report rep;
    CHECK_EQ_INT(ws_blobs_reseal_store(NULL, dir, &hooks, &rep, &err), 0);
    CHECK_EQ_INT(rep.objects, N_OBJ);
    CHECK_EQ_INT(rep.resealed, N_OBJ / 2);
    CHECK_EQ_INT(rep.current, N_OBJ - N_OBJ / 2);
    CHECK_EQ_STR(rep.current_id, new_id);
    CHECK(!exists(name));
    check_all(b, "", new_id);

    /* interrupted between the two key files: a retired copy of the current key is redundant */
    char *mp = pathf("%s/%s", "master.key");
    retired_name(new_id, name);
    char *rp = pathf("%s/%s", name);
    CHECK_EQ_INT(link(mp, rp), 0);
    CHECK_EQ_INT(ws_blobs_reseal_store(NULL, dir, &hooks, &rep, &err), 0);
    CHECK_EQ_INT(rep.resealed, 0);
    CHECK_EQ_INT(rep.key_files_removed, 1);
    CHECK(!exists(name));

    /* interrupted again, then rotate-master run again: a newer key, both old ones emptied */
    char id2[9], id3[9];
    CHECK_EQ_INT(ws_blobs_replace_master_key(dir, id2, id3, &err), 0);
    CHECK_EQ_STR(id2, new_id);
    CHECK_EQ_INT(ws_blobs_rotate_master(NULL, dir, &hooks, &rep, &err), 0);
    CHECK_EQ_INT(rep.resealed, N_OBJ);
    CHECK_EQ_INT(rep.key_files_removed, 2);
    CHECK(count_of(&rep, id2) && count_of(&rep, id3) && count_of(&rep, id2)->removed &&
          count_of(&rep, id3)->removed);
    check_all(b, "", rep.current_id);
    CHECK_EQ_INT(log.errors.len, 0);
    ws_blobs_close(b);
    free(mp);
    free(rp);
    ws_buf_free(&log.errors);
    rmdata();
}

static void failures_are_reported_and_keep_the_old_bytes_and_key(void)
{
    mkdata();
    ws_blobs *b = open_blobs(NULL);
    if (!b)
        return;
    populate(b, "");
    ws_error err = {0};
    char old_id[9], name[64];
    ws_blobs_current_key_id(b, old_id);
    /* one object altered on disk, one sealed under a key nobody has */
    char *bad = pathf("%s/blobs/%s", "users/usr_a/exports/exp_1.txt");
    char *raw = NULL;
    size_t rl = 0;
    CHECK_EQ_INT(ws_file_read(bad, 1 << 20, &raw, &rl, &err), 0);
    raw[WS_BLOB_HDR_LEN + 2] ^= 1;
    CHECK_EQ_INT(ws_file_write_atomic(bad, raw, rl, &err), 0);
    static const unsigned char stranger[32] = {9, 9, 9};
    unsigned char sid[4];
    char stranger_id[9];
    ws_blob_key_id(stranger, sid);
    snprintf(stranger_id, sizeof stranger_id, "%02x%02x%02x%02x", sid[0], sid[1], sid[2], sid[3]);
    ws_buf sealed = WS_BUF_INIT;
    CHECK_EQ_INT(ws_blob_seal(stranger, "users/usr_c/x", "?", 1, &sealed, &err), 0);
    char *sp = pathf("%s/blobs/%s", "users/usr_c/x");
    char *sdir = pathf("%s/blobs/%s", "users/usr_c");
    mkdir(sdir, 0700);
    CHECK_EQ_INT(ws_file_write_atomic(sp, sealed.data, sealed.len, &err), 0);

    hook_log log = {.errors = WS_BUF_INIT};
    ws_blobs_reseal_hooks hooks = {log_progress, log_error, &log};
    ws_blobs_reseal_report rep;
    CHECK_EQ_INT(ws_blobs_rotate_master(NULL, dir, &hooks, &rep, &err), 0);
    CHECK_EQ_INT(rep.objects, N_OBJ + 1);
    CHECK_EQ_INT(rep.failed, 2);
    CHECK_EQ_INT(rep.resealed, N_OBJ - 1);
    CHECK(log.errors.data && strstr(log.errors.data, "users/usr_a/exports/exp_1.txt: ") &&
          strstr(log.errors.data, "failed authentication"));
    CHECK(log.errors.data && strstr(log.errors.data, "users/usr_c/x: ") &&
          strstr(log.errors.data, stranger_id));
    /* the altered object keeps its bytes; its retired key is kept, and so is the count */
    char *now = NULL;
    size_t nl = 0;
    CHECK_EQ_INT(ws_file_read(bad, 1 << 20, &now, &nl, &err), 0);
    CHECK(nl == rl && !memcmp(now, raw, rl));
    const ws_blobs_key_count *c = count_of(&rep, old_id), *s = count_of(&rep, stranger_id);
    CHECK(c && c->n == 1 && !c->removed);
    CHECK(s && s->n == 1);
    retired_name(old_id, name);
    CHECK(exists(name));
    /* once the bad objects are dealt with (here: deleted), reseal removes the retired key */
    CHECK_EQ_INT(ws_blobs_delete(b, "users/usr_a/exports/exp_1.txt", &err), 0);
    CHECK_EQ_INT(ws_blobs_delete(b, "users/usr_c/x", &err), 0);
    CHECK_EQ_INT(ws_blobs_reseal_store(NULL, dir, &hooks, &rep, &err), 0);
    CHECK_EQ_INT(rep.failed + rep.final_failed, 0);
    CHECK_EQ_INT(rep.key_files_removed, 1);
    CHECK(!exists(name));
    ws_blobs_close(b);
    free(now);
    free(raw);
    free(bad);
    free(sp);
    free(sdir);
    ws_buf_free(&sealed);
    ws_buf_free(&log.errors);
    rmdata();
}

static void empty_store_keeps_the_retired_key_and_the_lock_excludes(void)
{
    mkdata();
    ws_blobs_reseal_report rep;
    ws_error err = {0};
    CHECK_EQ_INT(ws_blobs_rotate_master(NULL, dir, NULL, &rep, &err), 0);
    CHECK_EQ_INT(rep.objects, 0);
    CHECK(rep.kept_empty_store);
    CHECK_EQ_INT(rep.key_files_removed, 0);
    CHECK_EQ_INT(rep.n_ids, 1);
    char name[64];
    retired_name(rep.ids[0].id, name);
    CHECK(exists(name));
    /* one rotation at a time */
    char *lp = pathf("%s/%s", "master.key.lock");
    int fd = open(lp, O_RDWR | O_CREAT, 0600);
    CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0);
    CHECK_EQ_INT(ws_blobs_reseal_store(NULL, dir, NULL, &rep, &err), WS_ECONFLICT);
    CHECK(strstr(err.msg, "another key rotation") != NULL);
    CHECK_EQ_INT(ws_blobs_rotate_master(NULL, dir, NULL, &rep, &err), WS_ECONFLICT);
    close(fd);
    CHECK_EQ_INT(ws_blobs_reseal_store(NULL, dir, NULL, &rep, &err), 0);
    CHECK_EQ_INT(ws_blobs_reseal_store(NULL, NULL, NULL, &rep, &err), WS_EINVAL);
    free(lp);
    rmdata();
}

static void env_mode_current_and_retired_keys(void)
{
    mkdata();
    const char *k1 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const char *k2 = "A0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF";
    t_blobs_keys(k1, NULL);
    ws_blobs *b = open_blobs(NULL);
    if (!b)
        return;
    populate(b, "");
    char id1[9], id2[9];
    ws_blobs_current_key_id(b, id1);
    ws_blobs_close(b);
    /* the operator's rotation: a new WS_MASTER_KEY, the old one retired */
    t_blobs_keys(k2, NULL);
    b = open_blobs(NULL);
    ws_buf out = WS_BUF_INIT;
    ws_error err = {0};
    CHECK_EQ_INT(ws_blobs_get(b, obj_keys[0], 100, &out, &err), WS_EPERM);
    CHECK(strstr(err.msg, id1) != NULL);
    ws_blobs_close(b);
    char list[200];
    snprintf(list, sizeof list, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff, %s", k1);
    t_blobs_keys(k2, list);
    b = open_blobs(NULL);
    ws_blobs_current_key_id(b, id2);
    CHECK(strcmp(id1, id2) != 0);
    char ids[4][9];
    CHECK_EQ_INT(ws_blobs_retired_key_ids(b, ids, 4), 2);
    check_all(b, "", id1);
    CHECK_EQ_INT(ws_blobs_put(b, "users/usr_b/exports/new.txt", "n", 1, &err), 0);
    char got[9];
    stored_id(b, "users/usr_b/exports/new.txt", got);
    CHECK_EQ_STR(got, id2);
    /* rotate-master refuses and says what to do; reseal does the rest */
    ws_blobs_reseal_report rep;
    CHECK_EQ_INT(ws_blobs_rotate_master(NULL, dir, NULL, &rep, &err), WS_EUNSUPPORTED);
    CHECK(strstr(err.msg, "openssl rand -hex 32") && strstr(err.msg, "WS_MASTER_KEYS_RETIRED") &&
          strstr(err.msg, "keys reseal"));
    CHECK_EQ_INT(ws_blobs_reseal_store(NULL, dir, NULL, &rep, &err), 0);
    CHECK_EQ_INT(rep.resealed, N_OBJ);
    CHECK_EQ_INT(rep.current, 1);
    CHECK(count_of(&rep, id1) && count_of(&rep, id1)->n == 0);
    check_all(b, "", id2);
    ws_blobs_close(b);
    /* bad retired lists are refused */
    t_blobs_keys(k2, "abcd");
    CHECK_EQ_INT(ws_blobs_open(NULL, dir, &b, &err), WS_EINVAL);
    CHECK(strstr(err.msg, "WS_MASTER_KEYS_RETIRED") != NULL);
    t_blobs_keys(NULL, NULL);
    ws_buf_free(&out);
    rmdata();
}

/* The same on S3 (a real S3-compatible server, started by tests/cli/blobs_s3.sh). */
static void list_and_rotation_on_s3(void)
{
    const char *url = getenv("WS_TEST_S3_URL");
    const char *require = getenv("WS_TEST_REQUIRE_S3");
    if (!url || !*url) {
        if (require && *require == '1')
            CHECK(!"WS_TEST_S3_URL is set (an S3-compatible server is running)");
        else
            printf("  (no WS_TEST_S3_URL: S3 not exercised in this run; tests/cli/blobs_s3.sh runs it)\n");
        return;
    }
    mkdata();
    ws_blobs *b = open_blobs(url);
    if (!b) {
        rmdata();
        return;
    }
    char root[64];
    snprintf(root, sizeof root, "list%d/", (int)getpid());
    list_suite(b, root);
    /* more than one listing page */
    enum { MANY = 1050 };
    char k[128];
    ws_error err = {0};
    for (int i = 0; i < MANY; i++) {
        snprintf(k, sizeof k, "%smany/o%04d", root, i);
        CHECK_EQ_INT(ws_blobs_put(b, k, "x", 1, &err), 0);
    }
    snprintf(k, sizeof k, "%smany/", root);
    int n = 0;
    CHECK_EQ_INT(ws_blobs_list(b, k, stop_at_two, &n, &err), WS_ECONFLICT);
    ws_buf all = WS_BUF_INIT;
    CHECK_EQ_INT(ws_blobs_list(b, k, add_key, &all, &err), 0);
    size_t lines = 0;
    for (size_t i = 0; i < all.len; i++)
        lines += all.data[i] == '\n';
    CHECK_EQ_INT(lines, MANY);
    ws_buf_free(&all);
    /* clear the bucket, then rotate a populated store on it */
    size_t del = 0;
    snprintf(k, sizeof k, "%s", root);
    CHECK_EQ_INT(ws_blobs_delete_prefix(b, k, &del, &err), 0);
    CHECK_EQ_INT(del, N_OBJ + MANY);
    ws_blobs_close(b);
    rotation_suite(url, root);
    b = open_blobs(url);
    if (b) {
        CHECK_EQ_INT(ws_blobs_delete_prefix(b, root, &del, &err), 0);
        ws_blobs_close(b);
    }
    rmdata();
}

WS_TEST_MAIN(T(keyring_current_and_retired_keys_from_files),
             T(a_running_handle_follows_a_rotation_by_another_process),
             T(one_handle_from_several_threads_while_keys_rotate), T(list_on_the_local_backend),
             T(rotation_of_a_populated_local_store), T(interrupted_rotation_then_reseal),
             T(failures_are_reported_and_keep_the_old_bytes_and_key),
             T(empty_store_keeps_the_retired_key_and_the_lock_excludes), T(env_mode_current_and_retired_keys),
             T(list_and_rotation_on_s3))
