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
#include "cli/opts.h"
#include "store/store.h"

typedef struct keys_opts {
    const char *data, *store, *user, *role, *client;
    int rate_limit, expires_days;
} keys_opts;

#define KEY_STORE_ROWS WS_CLI_ROW_DATA(keys_opts, data, 0), WS_CLI_ROW_STORE(keys_opts, store)
static const ws_opt create_rows[] = {
    KEY_STORE_ROWS,
    {.name = "user",
     .kind = WS_OPT_STR,
     .off = offsetof(keys_opts, user),
     .arg = "NAME",
     .flags = WS_OPTF_REQUIRED,
     .help = "the key's user (created if needed)"},
    {.name = "role",
     .kind = WS_OPT_STR,
     .off = offsetof(keys_opts, role),
     .dflt = "user",
     .choices = "user|admin|system",
     .arg = "ROLE",
     .help = "what the key may do"},
    {.name = "rate-limit",
     .kind = WS_OPT_INT,
     .off = offsetof(keys_opts, rate_limit),
     .lo = 0,
     .hi = 1e9,
     .dflt = "0",
     .arg = "N",
     .help = "requests per minute (0 = the server's default)"},
    {.name = "client",
     .kind = WS_OPT_STR,
     .off = offsetof(keys_opts, client),
     .arg = "LABEL",
     .help = "a label for the client holding the key"},
    {.name = "expires-days",
     .kind = WS_OPT_INT,
     .off = offsetof(keys_opts, expires_days),
     .lo = 0,
     .hi = 1e9,
     .dflt = "0",
     .arg = "N",
     .help = "the key expires after N days (0 = never)"},
};
static const ws_opt list_rows[] = {
    KEY_STORE_ROWS,
    {.name = "user",
     .kind = WS_OPT_STR,
     .off = offsetof(keys_opts, user),
     .arg = "NAME",
     .help = "only this user's keys"},
};
static const ws_opt revoke_rows[] = {KEY_STORE_ROWS};

const ws_cli_spec ws_cli_spec_keys_create = {
    .name = "keys create",
    .synopsis = "(--data DIR | --store URL) --user NAME [--role ROLE] [--rate-limit N] [--client LABEL]\n"
                "       [--expires-days N]",
    .about = "Makes the user if needed and prints the new key on standard output, once (the details\n"
             "go to standard error, so key=$(whatstyle keys create ...) captures just the key).\n",
    WS_CLI_SPEC_ROWS(create_rows),
};
const ws_cli_spec ws_cli_spec_keys_list = {
    .name = "keys list", .synopsis = "(--data DIR | --store URL) [--user NAME]", WS_CLI_SPEC_ROWS(list_rows)};
const ws_cli_spec ws_cli_spec_keys_revoke = {
    .name = "keys revoke",
    .synopsis = "(--data DIR | --store URL) PREFIX",
    .about = "PREFIX is the visible start of a key, e.g. ws_live_3fa9c2d1 (or the whole key).\n",
    .min_pos = 1,
    .max_pos = 1,
    WS_CLI_SPEC_ROWS(revoke_rows),
};

static void usage(FILE *f)
{
    fprintf(f, "usage: whatstyle keys create (--data DIR | --store URL) --user NAME [options]\n"
               "       whatstyle keys list   (--data DIR | --store URL) [--user NAME]\n"
               "       whatstyle keys revoke (--data DIR | --store URL) PREFIX\n"
               "       whatstyle keys rotate-master --data DIR [--blobs URL]\n"
               "       whatstyle keys reseal        [--data DIR] [--blobs URL]\n"
               "Run 'whatstyle keys ACTION --help' for the options of one action.\n");
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
                          " run whatstyle migrate",
                          version, latest);
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

static int keys_create(ws_store *s, const char *user, const char *role_name, long rate, const char *client,
                       long expires_days)
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
    fprintf(stderr, "rate limit: %d/min%s\n", p.rate_limit, p.rate_limit ? "" : " (server default)");
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
    printf("%-18s %-20s %-7s %-6s %-8s %-21s %s\n", "KEY ID", "USER", "ROLE", "RATE", "STATUS", "CREATED",
           "LAST USED");
    for (size_t i = 0; i < n; i++) {
        const char *name = keys[i].user_name ? keys[i].user_name : "?";
        char created[32], used[32];
        fmt_time(keys[i].created_at, created, sizeof created);
        fmt_time(keys[i].last_used_at, used, sizeof used);
        const char *status = !keys[i].is_active                                                ? "revoked"
                             : (keys[i].expires_at && keys[i].expires_at <= ws_store_now_ms()) ? "expired"
                                                                                               : "active";
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
        fprintf(stderr, "whatstyle keys: '%s' is not a key prefix (like ws_live_3fa9c2d1)\n", prefix);
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
        return ws_cli_keys_master(action, argc - 1, argv + 1);
    const ws_cli_spec *spec = !strcmp(action, "create")   ? &ws_cli_spec_keys_create
                              : !strcmp(action, "list")   ? &ws_cli_spec_keys_list
                              : !strcmp(action, "revoke") ? &ws_cli_spec_keys_revoke
                                                          : NULL;
    if (!spec) {
        fprintf(stderr, "whatstyle keys: unknown action '%s'\n", action);
        usage(stderr);
        return 2;
    }
    keys_opts o = {0};
    ws_cli_pos pos;
    int pr = ws_cli_parse(spec, argc - 1, argv + 1, &o, &pos, NULL);
    if (pr)
        return pr == 1 ? 0 : 2;
    ws_store *s = NULL;
    if (open_store(o.data, o.store, &s) < 0)
        return 1;
    int rc = spec == &ws_cli_spec_keys_create
                 ? keys_create(s, o.user, o.role, o.rate_limit, o.client, o.expires_days)
             : spec == &ws_cli_spec_keys_list ? keys_list(s, o.user)
                                              : keys_revoke(s, pos.v[0]);
    ws_store_close(s);
    return rc;
}
