/* Entry point of `whatstyle`: dispatches to one subcommand from a table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/log.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand subcommands[] = {
    {"parse", ws_cmd_parse, "read a WhatsApp export (.txt or .zip) and print its messages"},
    {"serve", ws_cmd_serve, "run the API server (REST, MCP, metrics)"},
    {"ai", ws_cmd_ai, "run the AI service over gRPC (--listen HOST:PORT)"},
    {"worker", ws_cmd_worker, "train the jobs of the Kafka topic training-jobs (--config FILE)"},
    {"version", ws_cmd_version, "print the version"},
    {"migrate", ws_cmd_migrate, "apply the database migrations (--data DIR or --database-url)"},
    {"keys", ws_cmd_keys, "create, list and revoke API keys; rotate the blobs' master key"},
    {"train", ws_cmd_train, "learn a person's chat style from an export (--as NAME -o DIR)"},
    {"reply", ws_cmd_reply, "reply to a message as the person trained into DIR"},
    {"chat", ws_cmd_chat, "chat in the terminal with the clone in DIR"},
    {"demo", ws_cmd_demo, "train a clone on the sample chat (or EXPORT --as NAME), report, chat"},
    {"profile", ws_cmd_profile, "print one person's style profile from a WhatsApp export"},
    {"generate", ws_cmd_generate, "continue a prompt with a language model (and LoRA adapter)"},
};

/* The logger: the roles that run long (serve, ai, worker) log to stdout (JSON lines for the
 * collector, or the human format on a terminal); one-shot commands log to stderr so their
 * stdout stays their output. WS_LOG_LEVEL (debug|info|warn|error|off) and WS_LOG_FORMAT
 * (auto|json|text) override. */
static int setup_log(const char *cmd)
{
    bool role = !strcmp(cmd, "serve") || !strcmp(cmd, "ai") || !strcmp(cmd, "worker");
    const char *lv = getenv("WS_LOG_LEVEL"), *fm = getenv("WS_LOG_FORMAT");
    int level = lv && *lv ? ws_log_level_parse(lv) : WS_LOG_INFO;
    int format = fm && *fm ? ws_log_format_parse(fm) : WS_LOG_AUTO;
    if (level < 0 || format < 0) {
        fprintf(stderr, "whatstyle: WS_LOG_LEVEL is debug|info|warn|error|off, WS_LOG_FORMAT auto|json|text\n");
        return -1;
    }
    ws_log_setup(cmd, (ws_log_level)level, (ws_log_format)format, role ? stdout : stderr);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: whatstyle <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(f, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(f, "\nRun 'whatstyle <command> --help' for the options of one command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name))
            return setup_log(argv[1]) ? 2 : subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "whatstyle: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
