/* Loading a pretrained base (GGUF file or Hugging Face directory) with its tokenizer, chat
 * template and identity hash. */
#include "nn/base.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "core/file.h"
#include "core/hex.h"
#include "core/json.h"
#include "core/mem.h"
#include "nn/gguf.h"

static int load_gguf(ws_base *b, int flags, ws_error *err)
{
    ws_gguf *g = NULL;
    const char *s;
    size_t n;
    int rc;
    if ((rc = ws_gguf_open(b->path, &g, err)))
        return rc;
    if ((rc = ws_tokenizer_load_gguf(g, b->path, &b->tok, err))) {
        ws_gguf_close(g);
        return rc;
    }
    rc = ws_gguf_get_str(g, "tokenizer.chat_template", &s, &n, err);
    if (!rc) {
        if ((rc = ws_chat_template_detect(s, n, &b->tpl, err))) {
            ws_gguf_close(g);
            return rc;
        }
        b->has_template = true;
    } else if (rc != WS_ENOENT) {
        ws_gguf_close(g);
        return rc;
    }
    b->gguf = true;
    if ((rc = ws_model_load_gguf(g, b->path, flags, &b->model, err))) /* takes g */
        return rc;
    return ws_file_sha256(b->path, b->id, err);
}

/* SHA-256 over the names and SHA-256s of config.json and the weight files (single file or the
 * shard index) present in the directory. */
static int dir_id(const char *dir, char hex[65], ws_error *err)
{
    static const char *const names[] = {"config.json", "model.safetensors", "model.safetensors.index.json"};
    ws_buf all = WS_BUF_INIT;
    char path[4096], h[65];
    int rc = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st))
            continue;
        if ((rc = ws_file_sha256(path, h, err)))
            goto out;
        ws_buf_printf(&all, "%s %s\n", names[i], h);
    }
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_Digest(all.data ? all.data : "", all.len, d, &dl, EVP_sha256(), NULL);
    ws_hex_encode(d, 32, hex);
out:
    ws_buf_free(&all);
    return rc;
}

static int load_dir(ws_base *b, int flags, ws_error *err)
{
    char path[4096];
    char *data = NULL;
    size_t len = 0;
    ws_json_doc *doc = NULL;
    int rc;
    snprintf(path, sizeof path, "%s/tokenizer.json", b->path);
    if ((rc = ws_tokenizer_load(path, &b->tok, err)) || (rc = ws_model_load(b->path, flags, &b->model, err)))
        return rc;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", b->path);
    if (!ws_file_read(path, 16u << 20, &data, &len, err) && !ws_json_parse(data, len, &doc, err)) {
        const char *tpl = ws_json_get_str(ws_json_root(doc), "chat_template");
        if (tpl && (rc = ws_chat_template_detect(tpl, strlen(tpl), &b->tpl, err)))
            goto out;
        b->has_template = tpl != NULL;
    }
    rc = dir_id(b->path, b->id, err);
out:
    ws_json_doc_free(doc);
    free(data);
    return rc;
}

int ws_base_load(const char *path, int flags, ws_base **out, ws_error *err)
{
    struct stat st;
    int rc;
    *out = NULL;
    if (stat(path, &st)) {
        if (!strcmp(path, WS_BASE_DEFAULT_PATH))
            return ws_error_set(err, WS_ENOENT,
                                "base model %s not found: it is not installed (run "
                                "tools/setup-base-model.sh)",
                                path);
        return ws_error_set(err, WS_ENOENT, "base model %s not found (%s)", path, strerror(errno));
    }
    ws_base *b = ws_xcalloc(1, sizeof *b);
    b->path = ws_xstrdup(path);
    rc = S_ISDIR(st.st_mode) ? load_dir(b, flags, err) : load_gguf(b, flags, err);
    if (rc) {
        ws_base_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

void ws_base_free(ws_base *b)
{
    if (!b)
        return;
    ws_model_free(b->model);
    ws_tokenizer_free(b->tok);
    free(b->path);
    free(b);
}

/* ---- the shared bases of this process ---- */
#define MAX_SHARED 8
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static ws_base *shared[MAX_SHARED];

int ws_base_acquire(const char *path, ws_base **out, ws_error *err)
{
    int rc = 0;
    *out = NULL;
    pthread_mutex_lock(&shared_mu);
    for (int i = 0; i < MAX_SHARED && !*out; i++)
        if (shared[i] && !strcmp(shared[i]->path, path))
            *out = shared[i];
    if (!*out) {
        int slot = -1;
        for (int i = 0; i < MAX_SHARED && slot < 0; i++)
            if (!shared[i])
                slot = i;
        if (slot < 0)
            rc =
                ws_error_set(err, WS_EAGAIN, "more than %d different base models in one process", MAX_SHARED);
        else if (!(rc = ws_base_load(path, 0, &shared[slot], err)))
            *out = shared[slot];
    }
    if (*out)
        (*out)->refs++;
    pthread_mutex_unlock(&shared_mu);
    return rc;
}

void ws_base_release(ws_base *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&shared_mu);
    if (--b->refs == 0) {
        for (int i = 0; i < MAX_SHARED; i++)
            if (shared[i] == b)
                shared[i] = NULL;
        ws_base_free(b);
    }
    pthread_mutex_unlock(&shared_mu);
}

int ws_base_encode_chat(const ws_base *b, const ws_chat_msg *msgs, size_t n, bool add_generation_prompt,
                        int32_t **ids, size_t *n_ids, ws_error *err)
{
    ws_buf text = WS_BUF_INIT;
    if (b->has_template) {
        ws_chat_template_render(&b->tpl, msgs, n, add_generation_prompt, &text);
    } else {
        for (size_t i = 0; i < n; i++)
            ws_buf_printf(&text, "%s%s", i ? "\n" : "", msgs[i].content);
    }
    int rc = ws_tokenizer_encode(b->tok, text.data ? text.data : "", text.len, false, ids, n_ids, err);
    ws_buf_free(&text);
    return rc;
}
