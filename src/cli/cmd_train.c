/* `whatstyle train EXPORT --as NAME -o DIR [--base-model DIR] [--budget SECONDS]` (and the options
 * `demo` shares with it): learns how
 * NAME writes and saves their clone (model, tokenizer, profile, index, fidelity report,
 * manifest) to DIR. Ctrl-C saves a checkpoint; running the same command again resumes. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "clone/clone.h"
#include "nn/base.h"

static volatile int interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

typedef struct train_cli {
    const char *as, *out, *base, *mask_rules, *fallback, *embed_dir, *minilm_dir, *tmp_dir;
    double budget, seed;
    int bpe_merges, nn_threads;
    bool quiet;
} train_cli;

#define F(field) offsetof(train_cli, field)
#define TRAIN_ROWS                                                                                           \
    {.name = "as",                                                                                           \
     .kind = WS_OPT_STR,                                                                                     \
     .off = F(as),                                                                                           \
     .arg = "NAME",                                                                                          \
     .help = "the person to learn (as written in the export)"},                                              \
        {.name = "out",                                                                                      \
         .short_name = 'o',                                                                                  \
         .kind = WS_OPT_STR,                                                                                 \
         .off = F(out),                                                                                      \
         .arg = "DIR",                                                                                       \
         .help = "where the clone goes (created; rerun to resume)"},                                         \
        WS_CLI_ROW_BASE_MODEL(train_cli, base),                                                              \
        {.name = "budget",                                                                                   \
         .kind = WS_OPT_NUM,                                                                                 \
         .off = F(budget),                                                                                   \
         .lo = 0.001,                                                                                        \
         .hi = 7 * 86400,                                                                                    \
         .arg = "SECONDS",                                                                                   \
         .help = "time for the whole run (train: 90; demo: 180 on the base, 60 from scratch)"},              \
        {.name = "mask-rules",                                                                               \
         .kind = WS_OPT_STR,                                                                                 \
         .off = F(mask_rules),                                                                               \
         .arg = "FILE",                                                                                      \
         .alias = "rules",                                                                                   \
         .help = "personal-data masking rules (default: phone, e-mail, links)"},                             \
        {.name = "fallback",                                                                                 \
         .kind = WS_OPT_STR,                                                                                 \
         .off = F(fallback),                                                                                 \
         .arg = "TEXT",                                                                                      \
         .help = "reply when unsure (default: their most typical short reply)"},                             \
        {.name = "embed-dir",                                                                                \
         .kind = WS_OPT_STR,                                                                                 \
         .off = F(embed_dir),                                                                                \
         .arg = "DIR|none",                                                                                  \
         .help = "MiniLM directory for retrieval, or none: hashed character n-grams (default: --minilm-dir " \
                 "if installed, else n-grams)"},                                                             \
        WS_CLI_ROW_MINILM_DIR(train_cli, minilm_dir), WS_CLI_ROW_NN_THREADS(train_cli, nn_threads),          \
        {.name = "seed",                                                                                     \
         .kind = WS_OPT_NUM,                                                                                 \
         .off = F(seed),                                                                                     \
         .lo = 0,                                                                                            \
         .hi = 1.8e19,                                                                                       \
         .dflt = "1",                                                                                        \
         .arg = "N",                                                                                         \
         .help = "random seed"},                                                                             \
        {.name = "bpe-merges",                                                                               \
         .kind = WS_OPT_INT,                                                                                 \
         .off = F(bpe_merges),                                                                               \
         .lo = 0,                                                                                            \
         .hi = 1000000,                                                                                      \
         .arg = "N",                                                                                         \
         .help = "small model: byte-pair merges learned from the chat (default 1024; 0 = bytes only)"},      \
    {                                                                                                        \
        .name = "quiet", .kind = WS_OPT_FLAG, .off = F(quiet), .help = "only errors on stderr"               \
    }

static const ws_opt train_rows[] = {TRAIN_ROWS};
static const ws_opt demo_rows[] = {
    TRAIN_ROWS,
    {.name = "tmp-dir",
     .kind = WS_OPT_STR,
     .off = F(tmp_dir),
     .env = "TMPDIR",
     .dflt = "/tmp",
     .arg = "DIR",
     .help = "without -o the clone goes to DIR/whatstyle-demo-UID/NAME"},
};
#undef F

const ws_cli_spec ws_cli_spec_train = {
    .name = "train",
    .synopsis = "EXPORT --as NAME -o DIR [options]",
    .about = "Learns how NAME writes and saves their clone to DIR. Ctrl-C saves a checkpoint; the same\n"
             "command again resumes. The base model: tools/setup-base-model.sh installs\n"
             "" WS_BASE_DEFAULT_PATH ".\n",
    .min_pos = 1,
    .max_pos = 1,
    WS_CLI_SPEC_ROWS(train_rows),
};

const ws_cli_spec ws_cli_spec_demo = {
    .name = "demo",
    .synopsis = "[EXPORT --as NAME] [-o DIR] [--budget SECONDS] [--base-model PATH]",
    .about = "Trains a clone (default: samples/group_chat.txt as Maya), shows the profile and the\n"
             "fidelity report, then chats (scripted messages when stdin is not a terminal).\n",
    .max_pos = 1,
    WS_CLI_SPEC_ROWS(demo_rows),
};

const char *ws_cli_resolve_base(const char *given, bool quiet)
{
    if (given && *given)
        return strcmp(given, "none") ? given : NULL;
    if (access(WS_BASE_DEFAULT_PATH, R_OK) == 0)
        return WS_BASE_DEFAULT_PATH;
    if (!quiet)
        fprintf(stderr,
                "note: the pretrained base model is not installed (run tools/setup-base-model.sh); the clone "
                "is a small model trained from scratch, which imitates the style but does not understand "
                "messages\n");
    return NULL;
}

int ws_cli_train_opts(const ws_cli_spec *spec, int argc, char **argv, ws_clone_train_opts *o,
                      const char **tmp_dir)
{
    train_cli t = {.bpe_merges = -1, .nn_threads = -1};
    ws_cli_pos pos;
    int pr = ws_cli_parse(spec, argc, argv, &t, &pos, NULL);
    if (pr)
        return pr;
    ws_cli_engine_apply(t.nn_threads, t.minilm_dir);
    o->export_path = pos.n ? pos.v[0] : NULL;
    o->persona = t.as;
    o->out_dir = t.out;
    o->budget_s = t.budget;
    o->mask_rules = t.mask_rules;
    o->fallback_text = t.fallback;
    o->embed_dir = t.embed_dir;
    o->seed = (uint64_t)t.seed;
    o->bpe_merges = t.bpe_merges < 0 ? 0 : t.bpe_merges > 0 ? t.bpe_merges : -1;
    o->quiet = t.quiet;
    o->base_model = ws_cli_resolve_base(t.base, o->quiet);
    if (tmp_dir)
        *tmp_dir = t.tmp_dir;
    if (spec == &ws_cli_spec_train && (!o->persona || !o->out_dir))
        return ws_cli_fail(spec, "EXPORT, --as NAME and -o DIR are required");
    return 0;
}

int ws_cmd_train(int argc, char **argv)
{
    ws_clone_train_opts o = {.show_progress = true, .cancel = &interrupted};
    int pr = ws_cli_train_opts(&ws_cli_spec_train, argc, argv, &o, NULL);
    if (pr)
        return pr == 1 ? 0 : 2;
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
