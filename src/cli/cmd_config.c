/* `whatstyle config`: the configuration reference and where each setting comes from.
 *   whatstyle config --list              every option of every command as Markdown (the
 *                                        reference in docs/configuration.md is this output)
 *   whatstyle config show CMD [ARGS...]  the settings CMD would run with, given the same
 *                                        arguments, config file and environment: value and
 *                                        source (default, file:line, env, flag); secrets masked */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "core/mem.h"

typedef struct config_cli {
    bool list;
} config_cli;

static const ws_opt rows[] = {
    {.name = "list",
     .kind = WS_OPT_FLAG,
     .off = offsetof(config_cli, list),
     .help = "print every option of every command (Markdown: docs/configuration.md)"},
};

const ws_cli_spec ws_cli_spec_config = {
    .name = "config",
    .synopsis = "--list | show COMMAND [ARGS...]",
    .about = "show COMMAND [ARGS...] prints the settings COMMAND would run with (same arguments,\n"
             "config file and environment) and where each comes from; secrets are masked.\n",
    WS_CLI_SPEC_ROWS(rows),
};

static const ws_cli_spec *find_spec(const char *name)
{
    for (size_t i = 0; i < ws_cli_n_specs; i++)
        if (!strcmp(ws_cli_specs[i]->name, name))
            return ws_cli_specs[i];
    return NULL;
}

static int show(int argc, char **argv)
{
    if (argc < 1)
        return ws_cli_fail(&ws_cli_spec_config, "show wants a command, e.g. config show serve --data DIR");
    /* "keys create" is two words */
    char name[64];
    snprintf(name, sizeof name, "%s%s%s", argv[0], argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
    int skip = 1;
    const ws_cli_spec *spec = argc > 1 ? find_spec(name) : NULL;
    if (spec)
        skip = 2;
    else
        spec = find_spec(argv[0]);
    if (!spec)
        return ws_cli_fail(&ws_cli_spec_config, "no command '%s'", argv[0]);
    /* a scratch options struct, as large as any field a row points at */
    size_t size = 64;
    for (size_t i = 0; i < spec->n_rows; i++)
        if (spec->rows[i].off + sizeof(ws_cli_list) > size)
            size = spec->rows[i].off + sizeof(ws_cli_list);
    void *scratch = ws_xcalloc(1, size);
    ws_cli_trace *trace = ws_xcalloc(spec->n_rows ? spec->n_rows : 1, sizeof *trace);
    ws_cli_pos pos;
    int pr = ws_cli_parse(spec, argc - skip + 1, argv + skip - 1, scratch, &pos, trace);
    static const char *const src[] = {"unset", "default", "file", "env", "flag"};
    for (size_t i = 0; pr == 0 && i < spec->n_rows; i++) {
        const ws_cli_trace *t = &trace[i];
        if (t->src == WS_SRC_UNSET)
            continue;
        printf("%-28s %-8s %s%s%s\n", t->row->name, src[t->src],
               t->row->flags & WS_OPTF_SECRET ? "(set)" : t->value, t->from ? "  # " : "",
               t->from ? t->from : "");
    }
    free(trace);
    free(scratch);
    return pr == 1 ? 0 : pr;
}

int ws_cmd_config(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "show"))
        return show(argc - 2, argv + 2);
    config_cli o = {0};
    int pr = ws_cli_parse(&ws_cli_spec_config, argc, argv, &o, NULL, NULL);
    if (pr)
        return pr == 1 ? 0 : 2;
    if (!o.list)
        return ws_cli_fail(&ws_cli_spec_config, "say --list or show COMMAND");
    ws_cli_markdown(ws_cli_specs, ws_cli_n_specs, stdout);
    return 0;
}
