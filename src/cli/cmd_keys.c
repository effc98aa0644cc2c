/* `whatstyle keys`: creates, lists and revokes API keys (rotate-master and reseal, for the
 * blobs' master key, are in cmd_keys_master.c). A new key is printed once, alone
 * on standard output (so it is the last line of the output; the details go to standard
 * error, so `key=$(whatstyle keys create ...)` captures just the key); only its SHA-256 is
 * stored. The store's schema is migrated first when it is behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "cli/commands.h"
#include "store/store.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: whatstyle keys create (--data DIR | --database-url URL) --user NAME\n"
            "                             [--role user|admin|system] [--rate-limit N]\n"
            "                             [--client LABEL] [--expires-days N]\n"
            "       whatstyle keys list   (--data DIR | --database-url URL) [--user NAME]\n"
            "       whatstyle keys revoke (--data DIR | --database-url URL) PREFIX\n"
            "       whatstyle keys rotate-master --data DIR [--blobs URL]\n"
            "       whatstyle keys reseal        [--data DIR] [--blobs URL]\n"
            "create makes the user if needed and prints the key on standard output, once.\n"
            "--store URL is an alias of --database-url; WS_STORE_URL is used when set.\n"
            "--rate-limit is requests per minute (0 = the server's default).\n"
            "PREFIX is the visible start of a key, e.g. ws_live_3fa9c2d1.\n"
            "rotate-master / reseal change the master key of the encrypted blobs: see\n"
            "`whatstyle keys rotate-master --help`.\n");
}

static int parse_nonneg(const char *s, const char *what, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 1000000000L) {
        fprintf(stderr, "whatstyle keys: bad %s '%s'\n", what, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Opens the store and brings its schema up to date (migrations are idempotent and safe to
 * run concurrently, so `keys create` works on a fresh data directory or database). */
static int open_store(const char *data, const char *url, ws_store **s)
{
    ws_error err = {0};
    int version = 0, latest = 0;
    int rc = ws_store_open_for(data, url, NULL, s, &err);
    if (rc == 0)
        rc = ws_store_migrate(*s, NULL, &err);
    if (rc == 0)
        rc = ws_store_schema_version(*s, &version, &latest, &err);
    if (rc == 0 && version != latest)
        rc = ws_error_set(&err, WS_ECONFLICT,
                          "database schema is at version %d, this binary needs %d:"
                          " run whatstyle migrate", version, latest);
    if (rc < 0) {
        fprintf(stderr, "whatstyle keys: %s\n", err.msg);
        ws_store_close(*s);
        *s = NULL;
    }
    return rc;
}

static void fmt_time(int64_t ms, char *out, size_t n)
{
    if (ms <= 0) {
        snprintf(out, n, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int keys_create(ws_store *s, const char *user, const char *role_name, long rate,
                       const char *client, long expires_days)
{
    ws_role role;
    if (ws_role_parse(role_name, &role) < 0) {
        fprintf(stderr, "whatstyle keys: unknown role '%s' (user, admin or system)\n", role_name);
        return 2;
    }
    char key[WS_KEY_LEN + 1];
    ws_principal p;
    ws_error err = {0};
    int64_t expires = expires_days > 0 ? ws_store_now_ms() + expires_days * 86400000LL : 0;
    if (ws_auth_key_create(s, user, role, (int)rate, client, expires, key, &p, &err) < 0) {
        fprintf(stderr, "whatstyle keys: %s\n", err.msg);
        return 1;
    }
    char exp[32];
    fmt_time(expires, exp, sizeof exp);
    fprintf(stderr, "user:       %s (%s)\n", p.user_name, p.user_id);
    fprintf(stderr, "role:       %s\n", ws_role_name(p.role));
    fprintf(stderr, "rate limit: %d/min%s\n", p.rate_limit,
            p.rate_limit ? "" : " (server default)");
    fprintf(stderr, "expires:    %s\n", expires ? exp : "never");
    fprintf(stderr, "key id:     %s\n", p.key_id);
    fprintf(stderr, "The key (shown once; store it now):\n");
    fflush(stderr);
    printf("%s\n", key);
    return 0;
}

static int keys_list(ws_store *s, const char *user)
{
    ws_arena *a = ws_arena_new(0);
    ws_error err = {0};
    ws_api_key *keys = NULL;
    size_t n = 0;
    int rc = 0;
    const char *uid = NULL;
    if (user) {
        ws_user u;
        if ((rc = ws_store_user_get_by_name(s, a, user, &u, &err)) < 0)
            goto out;
        uid = u.id;
    }
    if ((rc = ws_store_key_list(s, a, uid, &keys, &n, &err)) < 0)
        goto out;
    printf("%-18s %-20s %-7s %-6s %-8s %-21s %s\n", "KEY ID", "USER", "ROLE", "RATE", "STATUS",
           "CREATED", "LAST USED");
    for (size_t i = 0; i < n; i++) {
        const char *name = keys[i].user_name ? keys[i].user_name : "?";
        char created[32], used[32];
        fmt_time(keys[i].created_at, created, sizeof created);
        fmt_time(keys[i].last_used_at, used, sizeof used);
        const char *status = !keys[i].is_active ? "revoked"
                             : (keys[i].expires_at && keys[i].expires_at <= ws_store_now_ms())
                                 ? "expired" : "active";
        printf("%-18s %-20s %-7s %-6d %-8s %-21s %s\n", keys[i].key_id, name, keys[i].role,
               keys[i].rate_limit, status, created, used);
    }
out:
    if (rc < 0)
        fprintf(stderr, "whatstyle keys: %s\n", err.msg);
    ws_arena_free(a);
    return rc < 0 ? 1 : 0;
}

static int keys_revoke(ws_store *s, const char *prefix)
{
    char id[WS_KEY_ID_LEN + 1];
    /* accept the prefix itself or a whole key (whose first WS_KEY_ID_LEN chars it is) */
    size_t n = strlen(prefix);
    if (n < WS_KEY_ID_LEN || strncmp(prefix, WS_KEY_PREFIX, strlen(WS_KEY_PREFIX)) != 0) {
        fprintf(stderr, "whatstyle keys: '%s' is not a key prefix (like ws_live_3fa9c2d1)\n",
                prefix);
        return 2;
    }
    memcpy(id, prefix, WS_KEY_ID_LEN);
    id[WS_KEY_ID_LEN] = '\0';
    ws_error err = {0};
    if (ws_store_key_revoke(s, id, NULL, &err) < 0) {
        fprintf(stderr, "whatstyle keys: %s\n", err.msg);
        return 1;
    }
    printf("revoked %s\n", id);
    return 0;
}

int ws_cmd_keys(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *action = argv[1];
    if (!strcmp(action, "rotate-master") || !strcmp(action, "reseal"))
        return ws_cli_keys_master(action, argc, argv);
    const char *data = NULL, *url = NULL, *user = NULL, *role = "user", *client = NULL;
    const char *positional = NULL;
    long rate = 0, expires_days = 0;
    for (int i = 2; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--data"))) {
            data = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--database-url")) ||
                   (v = ws_cli_opt_value(argc, argv, &i, "--store"))) {
            url = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--user"))) {
            user = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--role"))) {
            role = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--client"))) {
            client = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--rate-limit"))) {
            if (parse_nonneg(v, "rate limit", &rate) < 0)
                return 2;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--expires-days"))) {
            if (parse_nonneg(v, "expiry", &expires_days) < 0)
                return 2;
        } else if (argv[i][0] != '-' && !positional) {
            positional = argv[i];
        } else {
            fprintf(stderr, "whatstyle keys: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    bool create = !strcmp(action, "create"), list = !strcmp(action, "list"),
         revoke = !strcmp(action, "revoke");
    if (!create && !list && !revoke) {
        fprintf(stderr, "whatstyle keys: unknown action '%s'\n", action);
        usage(stderr);
        return 2;
    }
    if ((create && !user) || (revoke && !positional) || (!revoke && positional)) {
        usage(stderr);
        return 2;
    }
    ws_store *s = NULL;
    if (open_store(data, url, &s) < 0)
        return 1;
    int rc = create ? keys_create(s, user, role, rate, client, expires_days)
             : list ? keys_list(s, user)
                    : keys_revoke(s, positional);
    ws_store_close(s);
    return rc;
}
