/* `whatstyle demo [EXPORT --as NAME]`: the main job in one command: parse the export, train a
 * clone within the budget, show the style profile and the fidelity report, then chat. With no
 * export it uses samples/group_chat.txt and Maya. When stdin is not a terminal it sends a few
 * scripted messages instead of chatting, and exits. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "core/buf.h"
#include "core/mem.h"

#define SAMPLE_EXPORT "samples/group_chat.txt"
#define SAMPLE_PERSONA "Maya"
#define DEMO_BUDGET_S 60.0       /* a small model from scratch */
#define DEMO_BASE_BUDGET_S 180.0 /* a LoRA adapter on the pretrained base (2 cores) */

static volatile int interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* samples/ next to the working directory, else next to the binary (build/whatstyle -> ../samples). */
static char *find_sample(void)
{
    if (access(SAMPLE_EXPORT, R_OK) == 0)
        return ws_xstrdup(SAMPLE_EXPORT);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash)
            break;
        *slash = '\0';
        ws_buf b = WS_BUF_INIT;
        ws_buf_printf(&b, "%s/%s", exe, SAMPLE_EXPORT);
        if (access(b.data, R_OK) == 0)
            return ws_buf_take(&b);
        ws_buf_free(&b);
    }
    return NULL;
}

static const char *const scripted[] = {
    "are we still on for tonight?",
    "I just got tickets for the concert next week!!",
    "what do you think about the new place near the station",
    "sorry I'm running late, start without me",
};

int ws_cmd_demo(int argc, char **argv)
{
    ws_clone_train_opts o = {.show_progress = true, .cancel = &interrupted};
    const char *tmp = NULL;
    int pr = ws_cli_train_opts(&ws_cli_spec_demo, argc, argv, &o, &tmp);
    if (pr)
        return pr == 1 ? 0 : 2;
    if (o.budget_s <= 0)
        o.budget_s = o.base_model ? DEMO_BASE_BUDGET_S : DEMO_BUDGET_S;
    char *sample = NULL, *out = NULL;
    if (!o.export_path) {
        sample = find_sample();
        if (!sample) {
            fprintf(stderr, "whatstyle demo: no export given and %s not found\n", SAMPLE_EXPORT);
            return 1;
        }
        o.export_path = sample;
        if (!o.persona)
            o.persona = SAMPLE_PERSONA;
    }
    if (!o.persona) {
        fprintf(stderr, "whatstyle demo: --as NAME is required with an export\n");
        free(sample);
        return 2;
    }
    if (!o.out_dir) {
        ws_buf b = WS_BUF_INIT;
        ws_buf_printf(&b, "%s/whatstyle-demo-%ld/", tmp, (long)getuid());
        for (const char *p = o.persona; *p; p++)
            ws_buf_putc(&b, (*p == '/' || *p == ' ') ? '_' : *p);
        out = ws_buf_take(&b);
        o.out_dir = out;
    }
    printf("== whatstyle demo: learning how %s writes, from %s ==\n", o.persona, o.export_path);
    fflush(stdout);
    signal(SIGINT, on_sigint);
    ws_clone_train_result res;
    ws_error err = {0};
    int rc = ws_clone_train(&o, &res, &err);
    signal(SIGINT, SIG_DFL);
    if (rc) {
        fprintf(stderr, "whatstyle demo: %s\n", err.msg);
        ws_clone_train_result_clear(&res);
        free(sample);
        free(out);
        return rc == WS_EAGAIN ? 3 : 1;
    }
    printf("\n== style profile ==\n%s\n== fidelity ==\n%s\n", res.profile_summary, res.fidelity_summary);
    printf("clone saved in %s (model %s); talk to it later with: whatstyle chat %s\n\n", o.out_dir,
           res.model_version, o.out_dir);
    fflush(stdout);
    ws_clone_train_result_clear(&res);
    ws_clone *c = NULL;
    if ((rc = ws_clone_open(o.out_dir, &c, &err))) {
        fprintf(stderr, "whatstyle demo: %s\n", err.msg);
        free(sample);
        free(out);
        return 1;
    }
    if (isatty(STDIN_FILENO)) {
        printf("== chat ==\n");
        rc = ws_cli_chat_loop(c, stdin, true);
    } else {
        printf("== chat (scripted: stdin is not a terminal) ==\n");
        rc = ws_cli_chat_scripted(c, scripted, sizeof scripted / sizeof scripted[0]);
    }
    ws_clone_free(c);
    free(sample);
    free(out);
    return rc;
}
