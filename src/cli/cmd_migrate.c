/* `whatstyle migrate`: applies the store's versioned migrations (src/store/migrations) to
 * the SQLite database in a data directory or to a PostgreSQL database, or shows the status. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "store/store.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: whatstyle migrate (--data DIR | --database-url URL) [--status]\n"
               "  --data DIR          SQLite database DIR/whatstyle.db (created if missing)\n"
               "  --database-url URL  PostgreSQL (postgres://user@host:port/db); alias --store\n"
               "  --status            show the schema version, change nothing (exit 3 if behind)\n"
               "WS_STORE_URL, when set, is used unless --database-url is given.\n");
}

int ws_cmd_migrate(int argc, char **argv)
{
    const char *data = NULL, *url = NULL;
    int status_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--data"))) {
            data = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--database-url")) ||
                   (v = ws_cli_opt_value(argc, argv, &i, "--store"))) {
            url = v;
        } else if (!strcmp(argv[i], "--status")) {
            status_only = 1;
        } else {
            fprintf(stderr, "whatstyle migrate: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    ws_error err = {0};
    ws_store *s = NULL;
    int rc = ws_store_open_for(data, url, NULL, &s, &err);
    if (rc < 0) {
        fprintf(stderr, "whatstyle migrate: %s\n", err.msg);
        return rc == WS_EINVAL ? 2 : 1;
    }
    int version = 0, latest = 0, applied = 0;
    if (!status_only)
        rc = ws_store_migrate(s, &applied, &err);
    if (rc == 0)
        rc = ws_store_schema_version(s, &version, &latest, &err);
    if (rc < 0) {
        fprintf(stderr, "whatstyle migrate: %s\n", err.msg);
    } else if (status_only) {
        printf("%s: schema version %d of %d%s\n", ws_store_backend(s), version, latest,
               version == latest ? " (up to date)" : " (run whatstyle migrate)");
    } else {
        printf("%s: applied %d migration%s; schema version %d\n", ws_store_backend(s), applied,
               applied == 1 ? "" : "s", version);
    }
    ws_store_close(s);
    return rc < 0 ? 1 : (status_only && version != latest ? 3 : 0);
}
