/* The subcommands of the `whatstyle` binary: one file each (cmd_<name>.c), listed in the
 * table in main.c. Each takes argc/argv after the subcommand name and returns the exit code. */
#ifndef WS_CLI_COMMANDS_H
#define WS_CLI_COMMANDS_H

int ws_cmd_parse(int argc, char **argv);
int ws_cmd_serve(int argc, char **argv);
int ws_cmd_version(int argc, char **argv);
int ws_cmd_migrate(int argc, char **argv);
int ws_cmd_keys(int argc, char **argv);
int ws_cmd_profile(int argc, char **argv);
int ws_cmd_generate(int argc, char **argv);

#endif
