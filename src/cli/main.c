/* Entry point of `whatstyle`: dispatches to one subcommand from a table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"

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
    {"migrate", ws_cmd_migrate, "apply the database migrations (--data DIR or --store URL)"},
    {"keys", ws_cmd_keys, "create, list and revoke API keys; rotate the blobs' master key"},
    {"train", ws_cmd_train, "learn a person's chat style from an export (--as NAME -o DIR)"},
    {"reply", ws_cmd_reply, "reply to a message as the person trained into DIR"},
    {"chat", ws_cmd_chat, "chat in the terminal with the clone in DIR"},
    {"demo", ws_cmd_demo, "train a clone on the sample chat (or EXPORT --as NAME), report, chat"},
    {"profile", ws_cmd_profile, "print one person's style profile from a WhatsApp export"},
    {"generate", ws_cmd_generate, "continue a prompt with a language model (and LoRA adapter)"},
    {"config", ws_cmd_config, "the options of every command (--list) and where settings come from (show)"},
};

/* Every option table, in the order of docs/configuration.md (`whatstyle config --list`). */
const ws_cli_spec *const ws_cli_specs[] = {
    &ws_cli_spec_serve,       &ws_cli_spec_ai,        &ws_cli_spec_worker,      &ws_cli_spec_migrate,
    &ws_cli_spec_keys_create, &ws_cli_spec_keys_list, &ws_cli_spec_keys_revoke, &ws_cli_spec_keys_rotate,
    &ws_cli_spec_keys_reseal, &ws_cli_spec_train,     &ws_cli_spec_demo,        &ws_cli_spec_reply,
    &ws_cli_spec_chat,        &ws_cli_spec_profile,   &ws_cli_spec_parse,       &ws_cli_spec_generate,
    &ws_cli_spec_version,     &ws_cli_spec_config,
};
const size_t ws_cli_n_specs = sizeof ws_cli_specs / sizeof ws_cli_specs[0];

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
    ws_cli_process_setup();
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name))
            return subcommands[i].run(argc - 1, argv + 1); /* options and logger: cli/opts.h */
    fprintf(stderr, "whatstyle: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
