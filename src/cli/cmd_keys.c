/* `whatstyle keys`: manages API keys in the store of a data directory (or --store URL).
 *
 *   whatstyle keys create --data DIR --user NAME [--role user|admin|system]
 *                         [--rate-limit N] [--client LABEL]   -> prints the new key once
 *   whatstyle keys list   --data DIR [--user NAME]
 *   whatstyle keys revoke --data DIR KEY_ID */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "cli/commands.h"
#include "store/store.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: whatstyle keys create --data DIR --user NAME [--role user|admin|system]\n"
               "                             [--rate-limit N] [--client LABEL]\n"
               "       whatstyle keys list   --data DIR [--user NAME]\n"
               "       whatstyle keys revoke --data DIR KEY_ID\n"
               "  --store URL instead of --data uses that store (e.g. postgres://...)\n");
}

int ws_cmd_keys(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *action = argv[1], *data = NULL, *store_url = getenv("WS_STORE_URL"), *user = NULL;
    const char *role_s = "user", *client = NULL, *key_id = NULL;
    int rate = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--data") && v) { data = v; i++; }
        else if (!strcmp(a, "--store") && v) { store_url = v; i++; }
        else if (!strcmp(a, "--user") && v) { user = v; i++; }
        else if (!strcmp(a, "--role") && v) { role_s = v; i++; }
        else if (!strcmp(a, "--client") && v) { client = v; i++; }
        else if (!strcmp(a, "--rate-limit") && v) { rate = atoi(v); i++; }
        else if (a[0] != '-' && !key_id) key_id = a;
        else {
            fprintf(stderr, "whatstyle keys: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    ws_error err = {0};
    char *url = NULL;
    if (!store_url || !*store_url) {
        if (!data) {
            fprintf(stderr, "whatstyle keys: --data DIR or --store URL is required\n");
            return 2;
        }
        url = ws_store_url_for_data_dir(data, &err);
        if (!url) {
            fprintf(stderr, "whatstyle keys: %s\n", err.msg);
            return 1;
        }
        store_url = url;
    }
    ws_store_config sc = {.url = store_url};
    ws_store *st = NULL;
    int ret = 1;
    if (ws_store_open(&sc, &st, &err) != 0 || ws_store_migrate(st, NULL, &err) != 0) {
        fprintf(stderr, "whatstyle keys: %s\n", err.msg);
        goto out;
    }
    if (!strcmp(action, "create")) {
        ws_role role;
        if (!user || ws_role_parse(role_s, &role) != 0 || rate < 0) {
            fprintf(stderr, "whatstyle keys create: --user NAME is required; --role is user, admin or system\n");
            ret = 2;
            goto out;
        }
        char key[WS_KEY_LEN + 1];
        ws_principal p;
        if (ws_auth_key_create(st, user, role, rate, client, 0, key, &p, &err) != 0) {
            fprintf(stderr, "whatstyle keys: %s\n", err.msg);
            goto out;
        }
        printf("%s\n", key);
        fprintf(stderr, "created key %s for user %s (%s), role %s; it is shown only once\n",
                p.key_id, p.user_name, p.user_id, ws_role_name(p.role));
        ret = 0;
    } else if (!strcmp(action, "list")) {
        ws_arena *a = ws_arena_new(4096);
        const char *uid = NULL;
        ws_user u;
        if (user) {
            if (ws_store_user_get_by_name(st, a, user, &u, &err) != 0) {
                fprintf(stderr, "whatstyle keys: %s\n", err.msg);
                ws_arena_free(a);
                goto out;
            }
            uid = u.id;
        }
        ws_api_key *keys = NULL;
        size_t n = 0;
        if (ws_store_key_list(st, a, uid, &keys, &n, &err) != 0) {
            fprintf(stderr, "whatstyle keys: %s\n", err.msg);
            ws_arena_free(a);
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            printf("%s\t%s\t%s\t%d/min\t%s\n", keys[i].key_id, keys[i].user_id, keys[i].role,
                   keys[i].rate_limit, keys[i].is_active ? "active" : "revoked");
        ws_arena_free(a);
        ret = 0;
    } else if (!strcmp(action, "revoke")) {
        if (!key_id) {
            usage(stderr);
            ret = 2;
            goto out;
        }
        if (ws_store_key_revoke(st, key_id, NULL, &err) != 0) {
            fprintf(stderr, "whatstyle keys: %s\n", err.msg);
            goto out;
        }
        ret = 0;
    } else {
        fprintf(stderr, "whatstyle keys: unknown action '%s'\n", action);
        usage(stderr);
        ret = 2;
    }
out:
    ws_store_close(st);
    free(url);
    return ret;
}
