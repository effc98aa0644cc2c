/* `whatstyle migrate`: applies the store's versioned migrations (src/store/migrations) to
 * the SQLite database in a data directory or to a PostgreSQL database, or shows the status. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "store/store.h"

typedef struct migrate_opts {
    const char *data, *store;
    bool status;
} migrate_opts;

static const ws_opt rows[] = {
    WS_CLI_ROW_DATA(migrate_opts, data, 0),
    WS_CLI_ROW_STORE(migrate_opts, store),
    {.name = "status",
     .kind = WS_OPT_FLAG,
     .off = offsetof(migrate_opts, status),
     .help = "show the schema version, change nothing (exit 3 if behind)"},
};

const ws_cli_spec ws_cli_spec_migrate = {
    .name = "migrate",
    .synopsis = "(--data DIR | --store URL) [--status]",
    .about = "Applies the migrations this binary carries to SQLite DIR/whatstyle.db (created if\n"
             "missing) or to PostgreSQL; safe to run concurrently and again.\n",
    WS_CLI_SPEC_ROWS(rows),
};

int ws_cmd_migrate(int argc, char **argv)
{
    migrate_opts o = {0};
    int pr = ws_cli_parse(&ws_cli_spec_migrate, argc, argv, &o, NULL, NULL);
    if (pr)
        return pr == 1 ? 0 : 2;
    ws_error err = {0};
    ws_store *s = NULL;
    int rc = ws_store_open_for(o.data, o.store, NULL, &s, &err);
    if (rc < 0) {
        fprintf(stderr, "whatstyle migrate: %s\n", err.msg);
        return rc == WS_EINVAL ? 2 : 1;
    }
    int version = 0, latest = 0, applied = 0;
    if (!o.status)
        rc = ws_store_migrate(s, &applied, &err);
    if (rc == 0)
        rc = ws_store_schema_version(s, &version, &latest, &err);
    if (rc < 0) {
        fprintf(stderr, "whatstyle migrate: %s\n", err.msg);
    } else if (o.status) {
        printf("%s: schema version %d of %d%s\n", ws_store_backend(s), version, latest,
               version == latest ? " (up to date)" : " (run whatstyle migrate)");
    } else {
        printf("%s: applied %d migration%s; schema version %d\n", ws_store_backend(s), applied,
               applied == 1 ? "" : "s", version);
    }
    ws_store_close(s);
    return rc < 0 ? 1 : (o.status && version != latest ? 3 : 0);
}
