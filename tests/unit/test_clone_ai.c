/* Tests of the in-process AI (src/ai/ai_local.h): train through the ws_ai interface, reply,
 * style profile, reload while a reference is held, forget, and bad user ids; with blobs, models
 * stored encrypted only, read back by another instance, legacy directories moved in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ai/ai_local.h"
#include "blobs/blobs.h"
#include "clone/clone_int.h"
#include "harness.h"

static char *write_chat(const char *dir)
{
    char *path = ws__clone_path(dir, "chat.txt");
    FILE *f = fopen(path, "w");
    static const char *const cai[] = {"jajaja vamos!!", "claro que sí!!", "dale amigo 🔥", "qué bueno!!!"};
    static const char *const dee[] = {"Are we meeting today?", "What time works?", "Who is coming?"};
    for (int d = 0; d < 10; d++)
        for (int k = 0; k < 6; k++) {
            fprintf(f, "%02d/03/2024, %02d:00 - Dee: %s\n", d + 1, 9 + k, dee[(d + k) % 3]);
            fprintf(f, "%02d/03/2024, %02d:04 - Cai: %s\n", d + 1, 9 + k, cai[(d * 7 + k) % 4]);
        }
    fclose(f);
    return path;
}

static int phases;
static int on_progress(void *arg, double fraction, const char *phase, uint64_t samples)
{
    (void)arg;
    (void)samples;
    phases++;
    return fraction < 0 || fraction > 1; /* never cancels; checks the range */
}

static void local_ai(void)
{
    char tmpl[] = "/tmp/ws_test_clone_ai_XXXXXX";
    char *dir = mkdtemp(tmpl);
    char *chat = write_chat(dir), *root = ws__clone_path(dir, "models");
    ws_ai *ai = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_ai_local_new(root, NULL, &ai, &err), 0);
    ws_ai_reply r = {0};
    CHECK_EQ_INT(ai->ops->generate(ai, "u1", "hola", NULL, 0, &r, &err), WS_ENOENT);
    CHECK_EQ_INT(ai->ops->generate(ai, "../etc", "hola", NULL, 0, &r, &err), WS_EINVAL);

    ws_ai_train_request req = {.user_id = "u1", .export_path = chat, .persona = "Cai", .budget_s = 4};
    ws_ai_train_result tr = {0};
    int rc = ai->ops->train(ai, &req, on_progress, NULL, &tr, &err);
    CHECK_EQ_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "train: %s\n", err.msg);
        goto out;
    }
    CHECK(tr.model_version && strstr(tr.model_version, "cai-") == tr.model_version);
    CHECK(tr.metrics_json && strstr(tr.metrics_json, "\"beats_baselines\""));
    CHECK(tr.samples_processed > 0);
    CHECK(phases > 0);
    ws_ai_train_result_clear(&tr);

    ws_ai_turn ctx[] = {{"Dee", "Who is coming?"}};
    CHECK_EQ_INT(ai->ops->generate(ai, "u1", "are you free tonight", ctx, 1, &r, &err), 0);
    CHECK(r.reply && *r.reply && r.confidence >= 0 && r.confidence <= 1);
    CHECK(r.model_version && strstr(r.model_version, "cai-"));
    CHECK(strchr(r.reply, '!') || strstr(r.reply, "🔥") || strstr(r.reply, "jaja"));
    ws_ai_reply_clear(&r);
    char *json = NULL;
    CHECK_EQ_INT(ai->ops->style_profile(ai, "u1", &json, &err), 0);
    CHECK(json && json[0] == '{');
    free(json);
    /* a raised cancel flag stops the reply (the gRPC service's deadlines and RST_STREAM) */
    volatile int cancel = 1;
    CHECK_EQ_INT(ai->ops->generate_cancellable(ai, "u1", "hey", NULL, 0, &cancel, &r, &err), WS_EAGAIN);
    CHECK(!r.reply);
    cancel = 0;
    CHECK_EQ_INT(ai->ops->generate_cancellable(ai, "u1", "hey", NULL, 0, &cancel, &r, &err), 0);
    ws_ai_reply_clear(&r);
    ws_ai_status st0;
    CHECK_EQ_INT(ai->ops->status(ai, &st0, &err), 0);
    CHECK(st0.n_resident == 1 && !strcmp(st0.resident[0].user_id, "u1") && st0.resident[0].bytes >= 64 << 10);
    CHECK(st0.loads == 1 && st0.evictions == 0 && st0.resident_bytes == st0.resident[0].bytes);
    ws_ai_status_clear(&st0);
    CHECK_EQ_INT(ai->ops->reload(ai, "u1", &err), 0);
    CHECK_EQ_INT(ai->ops->status(ai, &st0, &err), 0);
    CHECK(st0.n_resident == 0 && st0.resident_bytes == 0);
    ws_ai_status_clear(&st0);
    CHECK_EQ_INT(ai->ops->generate(ai, "u1", "hey", NULL, 0, &r, &err), 0);
    ws_ai_reply_clear(&r);
    /* a failed training leaves the installed model alone */
    req.persona = "Nobody";
    CHECK_EQ_INT(ai->ops->train(ai, &req, NULL, NULL, &tr, &err), WS_EINVAL);
    CHECK_EQ_INT(ai->ops->generate(ai, "u1", "hey", NULL, 0, &r, &err), 0);
    ws_ai_reply_clear(&r);
    CHECK_EQ_INT(ai->ops->forget(ai, "u1", &err), 0);
    CHECK_EQ_INT(ai->ops->generate(ai, "u1", "hey", NULL, 0, &r, &err), WS_ENOENT);
    char *ud = ws__clone_path(root, "u1");
    struct stat st;
    CHECK(stat(ud, &st) != 0);
    free(ud);
out:
    ws_ai_free(ai);
    free(chat);
    free(root);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

/* 1 when some file under dir holds needle in plain bytes */
static int tree_contains(const char *dir, const char *needle)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "grep -rqF -- '%s' '%s' 2>/dev/null", needle, dir);
    return system(cmd) == 0;
}

static void blobs_ai(void)
{
    char tmpl[] = "/tmp/ws_test_clone_blobs_XXXXXX";
    char *dir = mkdtemp(tmpl);
    char *chat = write_chat(dir), *root = ws__clone_path(dir, "models"), *bdir = ws__clone_path(dir, "blobs");
    char url[300];
    snprintf(url, sizeof url, "file:%s", bdir);
    ws_blobs *blobs = NULL;
    ws_ai *ai = NULL, *ai2 = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_blobs_open(url, dir, &blobs, &err), 0);
    ws_ai_local_opts opts = {.blobs = blobs};
    CHECK_EQ_INT(ws_ai_local_new(root, &opts, &ai, &err), 0);
    ws_ai_train_request req = {.user_id = "u2", .export_path = chat, .persona = "Cai", .budget_s = 3};
    ws_ai_train_result tr = {0};
    int rc = ai->ops->train(ai, &req, NULL, NULL, &tr, &err);
    CHECK_EQ_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "train: %s\n", err.msg);
        goto out;
    }
    ws_ai_train_result_clear(&tr);
    /* nothing of the model is left in plaintext: no user directory, an empty scratch, and the
     * persona's real replies (kept by the clone for retrieval) appear nowhere on disk */
    char *ud = ws__clone_path(root, "u2");
    struct stat st;
    CHECK(stat(ud, &st) != 0);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s/.scratch')\"", root);
    CHECK_EQ_INT(system(cmd), 0);
    CHECK(!tree_contains(bdir, "claro que"));
    CHECK(!tree_contains(root, "claro que"));
    CHECK(tree_contains(dir, "claro que")); /* the export itself: the check can find it */

    /* another instance (a restarted server, another pod) replies from the blobs */
    CHECK_EQ_INT(ws_ai_local_new(root, &opts, &ai2, &err), 0);
    ws_ai_reply r = {0};
    CHECK_EQ_INT(ai2->ops->generate(ai2, "u2", "are you free tonight", NULL, 0, &r, &err), 0);
    CHECK(r.model_version && strstr(r.model_version, "cai-"));
    ws_ai_reply_clear(&r);

    /* a plaintext model of an older version is moved into the blobs on first use */
    ws_ai *plain = NULL;
    CHECK_EQ_INT(ws_ai_local_new(root, NULL, &plain, &err), 0);
    req.user_id = "u3";
    CHECK_EQ_INT(plain->ops->train(plain, &req, NULL, NULL, &tr, &err), 0);
    ws_ai_train_result_clear(&tr);
    ws_ai_free(plain);
    char *u3 = ws__clone_path(root, "u3");
    CHECK(stat(u3, &st) == 0);
    CHECK_EQ_INT(ai->ops->generate(ai, "u3", "hola", NULL, 0, &r, &err), 0);
    ws_ai_reply_clear(&r);
    CHECK(stat(u3, &st) != 0);
    CHECK(!tree_contains(bdir, "claro que"));
    CHECK_EQ_INT(ai2->ops->generate(ai2, "u3", "hola", NULL, 0, &r, &err), 0);
    ws_ai_reply_clear(&r);
    free(u3);

    /* an altered object is refused, not loaded */
    ws_buf b = WS_BUF_INIT;
    CHECK_EQ_INT(ws_blobs_get(blobs, "users/u2/models/current", 4096, &b, &err), 0);
    ws_buf_free(&b);
    CHECK_EQ_INT(ai2->ops->reload(ai2, "u2", &err), 0);
    snprintf(cmd, sizeof cmd,
             "f=$(find '%s/users/u2/models' -path '*model.safetensors*' | head -1); "
             "printf 'X' | dd of=\"$f\" bs=1 seek=100 conv=notrunc status=none",
             bdir);
    CHECK_EQ_INT(system(cmd), 0);
    CHECK(ai2->ops->generate(ai2, "u2", "hola", NULL, 0, &r, &err) == WS_EUNSAFE);
    ws_ai_reply_clear(&r);

    /* forget removes the user's objects */
    CHECK_EQ_INT(ai->ops->forget(ai, "u2", &err), 0);
    CHECK_EQ_INT(ai2->ops->reload(ai2, "u2", &err), 0);
    CHECK_EQ_INT(ai2->ops->generate(ai2, "u2", "hey", NULL, 0, &r, &err), WS_ENOENT);
    ws_buf_free(&b);
    CHECK_EQ_INT(ws_blobs_get(blobs, "users/u2/models/current", 4096, &b, &err), WS_ENOENT);
    ws_buf_free(&b);
    free(ud);
out:
    ws_ai_free(ai);
    ws_ai_free(ai2);
    ws_blobs_close(blobs);
    free(chat);
    free(root);
    free(bdir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

WS_TEST_MAIN(T(local_ai), T(blobs_ai))
