/* The subcommands of the `whatstyle` binary: one file each (cmd_<name>.c), listed in the
 * table in main.c. Each takes argc/argv after the subcommand name and returns the exit code.
 * Also the few helpers the clone commands (train, reply, chat, demo) share. */
#ifndef WS_CLI_COMMANDS_H
#define WS_CLI_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "clone/clone.h"

int ws_cmd_parse(int argc, char **argv);
int ws_cmd_serve(int argc, char **argv);
int ws_cmd_ai(int argc, char **argv);
int ws_cmd_version(int argc, char **argv);
int ws_cmd_migrate(int argc, char **argv);
int ws_cmd_keys(int argc, char **argv);
int ws_cmd_profile(int argc, char **argv);
int ws_cmd_generate(int argc, char **argv);
int ws_cmd_train(int argc, char **argv);
int ws_cmd_reply(int argc, char **argv);
int ws_cmd_chat(int argc, char **argv);
int ws_cmd_demo(int argc, char **argv);
int ws_cmd_worker(int argc, char **argv);

/* Options shared by train and demo (cmd_train.c): 0, 1 (bad usage, message printed), 2 (--help). */
int ws_cli_train_opts(int argc, char **argv, ws_clone_train_opts *o, const char *cmd, bool need_export);
/* The base model a clone is trained on: "none" = none (a small model from scratch); NULL = the
 * default, $WS_BASE_MODEL or WS_BASE_DEFAULT_PATH when installed (else none, with a note on
 * stderr saying how to install it unless quiet); anything else as given. */
const char *ws_cli_resolve_base(const char *given, bool quiet);
/* Chat loop over lines of in (cmd_chat.c); interactive shows a prompt and the confidence. */
int ws_cli_chat_loop(ws_clone *c, FILE *in, bool interactive);
/* Sends fixed messages and prints both sides. */
int ws_cli_chat_scripted(ws_clone *c, const char *const *lines, size_t n);
/* --context-file reader (cmd_reply.c). */
int ws_cli_read_context(const char *path, ws_clone_turn **out, size_t *n_out);
void ws_cli_free_context(ws_clone_turn *t, size_t n);

/* `keys rotate-master` / `keys reseal` (cmd_keys_master.c); argv[1] is the action. */
int ws_cli_keys_master(const char *action, int argc, char **argv);

/* Matches argv[*i] as "--name VALUE" or "--name=VALUE" and returns the value (advancing *i
 * past a separate one), or NULL. */
const char *ws_cli_opt_value(int argc, char **argv, int *i, const char *name);

/* Starts the OTLP/HTTP span exporter (core/trace_export.h) for a long-running role when an
 * endpoint is given (else $OTEL_EXPORTER_OTLP_ENDPOINT) with the ratio (else $WS_TRACE_RATIO,
 * else 0.01) under service_name. Returns 1 started (ws_trace_export_stop at exit), 0 no
 * endpoint, -1 bad settings (message printed, prefixed "whatstyle <cmd>: "). */
int ws_cli_tracing_start(const char *cmd, const char *endpoint, const char *ratio, const char *service_name);
/* Reads a config file of "key = value" lines ('#' comments) and calls set(arg, key, value)
 * for each; set returns non-zero for an unknown key. 0, or -1 with a message on stderr
 * naming cmd, the file and the line. */
int ws_cli_read_config(const char *path, const char *cmd, int (*set)(void *arg, const char *key, const char *value),
                       void *arg);

#endif
