/* `whatstyle train EXPORT --as NAME -o DIR [--base-model DIR] [--budget SECONDS]`: learns how
 * NAME writes and saves their clone (model, tokenizer, profile, index, fidelity report,
 * manifest) to DIR. Ctrl-C saves a checkpoint; running the same command again resumes. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "clone/clone.h"
#include "nn/base.h"

static volatile int interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: whatstyle train EXPORT --as NAME -o DIR [options]\n"
               "  --as NAME            the person to learn (as written in the export)\n"
               "  -o, --out DIR        where the clone goes (created; rerun to resume)\n"
               "  --base-model PATH    train a LoRA adapter on this base: a GGUF file or a model\n"
               "                       directory (config.json, safetensors, tokenizer.json); default:\n"
               "                       " WS_BASE_DEFAULT_PATH "\n"
               "                       when installed (tools/setup-base-model.sh); 'none': a small\n"
               "                       model trained from scratch\n"
               "  --budget SECONDS     time for the whole run (default %.0f)\n"
               "  --mask-rules FILE    personal-data masking rules (default: phone, e-mail, links)\n"
               "  --fallback TEXT      reply when unsure (default: their most typical short reply)\n"
               "  --embed-dir DIR|none MiniLM directory for retrieval (default models/minilm if\n"
               "                       installed, else hashed character n-grams)\n"
               "  --seed N             random seed (default 1)\n"
               "  --bpe-merges N       small model: byte-pair merges learned from the chat (default %d;\n"
               "                       0 = bytes only)\n"
               "  --quiet              only errors on stderr\n",
            WS_CLONE_DEFAULT_BUDGET_S, WS_CLONE_DEFAULT_MERGES);
}


const char *ws_cli_resolve_base(const char *given, bool quiet)
{
    if (!given) {
        const char *env = getenv("WS_BASE_MODEL");
        given = env && *env ? env : NULL;
    }
    if (given)
        return strcmp(given, "none") ? given : NULL;
    if (access(WS_BASE_DEFAULT_PATH, R_OK) == 0)
        return WS_BASE_DEFAULT_PATH;
    if (!quiet)
        fprintf(stderr, "note: the pretrained base model is not installed (run tools/setup-base-model.sh); the clone "
                        "is a small model trained from scratch, which imitates the style but does not understand "
                        "messages\n");
    return NULL;
}

/* Parses the options train and demo share; returns 0, 1 (bad usage) or 2 (--help). */
int ws_cli_train_opts(int argc, char **argv, ws_clone_train_opts *o, const char *cmd, bool need_export)
{
    static const char *const with_value[] = {"--as", "-o", "--out", "--base-model", "--budget", "--mask-rules",
                                             "--fallback", "--embed-dir", "--seed", "--bpe-merges"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return 2;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            if (!strcmp(a, with_value[k])) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "whatstyle %s: %s needs a value\n", cmd, a);
                    return 1;
                }
                v = argv[++i];
            }
        if (!strcmp(a, "--as"))
            o->persona = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--out"))
            o->out_dir = v;
        else if (!strcmp(a, "--base-model"))
            o->base_model = v;
        else if (!strcmp(a, "--budget")) {
            char *end;
            o->budget_s = strtod(v, &end);
            if (*end || o->budget_s <= 0 || o->budget_s > 7 * 86400) {
                fprintf(stderr, "whatstyle %s: --budget wants seconds (> 0)\n", cmd);
                return 1;
            }
        } else if (!strcmp(a, "--mask-rules"))
            o->mask_rules = v;
        else if (!strcmp(a, "--fallback"))
            o->fallback_text = v;
        else if (!strcmp(a, "--embed-dir"))
            o->embed_dir = v;
        else if (!strcmp(a, "--bpe-merges"))
            o->bpe_merges = atoi(v) > 0 ? atoi(v) : -1;
        else if (!strcmp(a, "--seed"))
            o->seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--quiet"))
            o->quiet = true;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "whatstyle %s: unknown option %s\n", cmd, a);
            return 1;
        } else if (!o->export_path)
            o->export_path = a;
        else {
            fprintf(stderr, "whatstyle %s: unexpected argument %s\n", cmd, a);
            return 1;
        }
    }
    o->base_model = ws_cli_resolve_base(o->base_model, o->quiet);
    if (need_export && (!o->export_path || !o->persona || !o->out_dir)) {
        fprintf(stderr, "whatstyle %s: EXPORT, --as NAME and -o DIR are required\n", cmd);
        return 1;
    }
    return 0;
}

int ws_cmd_train(int argc, char **argv)
{
    ws_clone_train_opts o = {.show_progress = true, .cancel = &interrupted};
    int pr = ws_cli_train_opts(argc, argv, &o, "train", true);
    if (pr) {
        usage(pr == 2 ? stdout : stderr);
        return pr == 2 ? 0 : 2;
    }
    signal(SIGINT, on_sigint);
    ws_clone_train_result res;
    ws_error err = {0};
    int rc = ws_clone_train(&o, &res, &err);
    signal(SIGINT, SIG_DFL);
    if (rc) {
        fprintf(stderr, "whatstyle train: %s\n", err.msg[0] ? err.msg : ws_strerror(rc));
        ws_clone_train_result_clear(&res);
        return rc == WS_EAGAIN ? 3 : 1;
    }
    if (!o.quiet) {
        printf("%s\n%s", res.profile_summary, res.fidelity_summary);
        printf("model %s in %s (%llu steps, %.1f s)\n", res.model_version, o.out_dir,
               (unsigned long long)res.steps, res.total_s);
    }
    ws_clone_train_result_clear(&res);
    return 0;
}
