/* The subcommands of the `whatstyle` binary: one file each (cmd_<name>.c), listed in the
 * table in main.c. Each takes argc/argv after the subcommand name and returns the exit code.
 * Also the few helpers the clone commands (train, reply, chat, demo) share. */
#ifndef WS_CLI_COMMANDS_H
#define WS_CLI_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cli/opts.h"
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
int ws_cmd_config(int argc, char **argv);

/* The options train and demo share (cmd_train.c), parsed with spec (ws_cli_spec_train or
 * ws_cli_spec_demo) into o; *tmp_dir (may be NULL) gets demo's --tmp-dir. Returns as
 * ws_cli_parse: 0, 1 (--help printed) or 2 (bad usage, message printed). */
int ws_cli_train_opts(const ws_cli_spec *spec, int argc, char **argv, ws_clone_train_opts *o,
                      const char **tmp_dir);
/* The base model a clone is trained on: "none" = none (a small model from scratch); NULL or ""
 * = the default, WS_BASE_DEFAULT_PATH when installed (else none, with a note on stderr saying
 * how to install it unless quiet); anything else as given. (--base-model / WS_BASE_MODEL are
 * resolved by the option tables before.) */
const char *ws_cli_resolve_base(const char *given, bool quiet);
/* Chat loop over lines of in (cmd_chat.c); interactive shows a prompt and the confidence. */
int ws_cli_chat_loop(ws_clone *c, FILE *in, bool interactive);
/* Sends fixed messages and prints both sides. */
int ws_cli_chat_scripted(ws_clone *c, const char *const *lines, size_t n);
/* --context-file reader (cmd_reply.c). */
int ws_cli_read_context(const char *path, ws_clone_turn **out, size_t *n_out);
void ws_cli_free_context(ws_clone_turn *t, size_t n);

/* `keys rotate-master` / `keys reseal` (cmd_keys_master.c); argv[0] is the action. */
int ws_cli_keys_master(const char *action, int argc, char **argv);

/* The option tables of the commands (one spec per command or action), in cmd_<name>.c, and
 * the list of all of them (main.c) that `whatstyle config --list` prints. */
extern const ws_cli_spec ws_cli_spec_parse, ws_cli_spec_serve, ws_cli_spec_ai, ws_cli_spec_version,
    ws_cli_spec_migrate, ws_cli_spec_keys_create, ws_cli_spec_keys_list, ws_cli_spec_keys_revoke,
    ws_cli_spec_keys_rotate, ws_cli_spec_keys_reseal, ws_cli_spec_train, ws_cli_spec_reply, ws_cli_spec_chat,
    ws_cli_spec_demo, ws_cli_spec_profile, ws_cli_spec_generate, ws_cli_spec_config, ws_cli_spec_worker;
extern const ws_cli_spec *const ws_cli_specs[];
extern const size_t ws_cli_n_specs;

#endif
