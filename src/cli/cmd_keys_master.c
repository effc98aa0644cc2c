/* `whatstyle keys rotate-master` and `whatstyle keys reseal`: the master key of the encrypted
 * blobs (blobs/blobs_rotate.h). rotate-master makes a new DATA/master.key, keeps the old one
 * as a retired key file, re-seals every object and deletes the retired key once no object
 * needs it; reseal finishes an interrupted rotation (or one done by hand in env mode). A
 * progress bar on a terminal, one line per object that fails, counts at the end; the exit
 * status is 1 when any object failed. */
#include <stdio.h>
#include <string.h>

#include "blobs/blobs_rotate.h"
#include "cli/commands.h"
#include "core/progress.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: whatstyle keys rotate-master --data DIR [--blobs URL]\n"
            "       whatstyle keys reseal        [--data DIR] [--blobs URL]\n"
            "rotate-master (master key in DIR/master.key): writes a new master key, keeps the old\n"
            "  one as DIR/master.key.retired-<key id>, re-seals every object under the new key and,\n"
            "  when a final scan finds no object left under the old key, deletes the retired key\n"
            "  file. Running servers keep working (they pick up the new key on their next write).\n"
            "  Interrupted, run it again or run `keys reseal`: nothing is lost.\n"
            "reseal: re-seals every object that is not under the current master key and reports\n"
            "  how many objects remain under each retired key id (file mode: deletes the retired\n"
            "  key files no object needs).\n"
            "With WS_MASTER_KEY set (keys in the environment), rotate by hand: set WS_MASTER_KEY to a\n"
            "new key (openssl rand -hex 32), put the old one in WS_MASTER_KEYS_RETIRED (comma-\n"
            "separated), restart the services, then run `whatstyle keys reseal`.\n"
            "--blobs URL: file:DIR, s3://HOST/BUCKET or s3+http://HOST:PORT/BUCKET (default: the\n"
            "  WS_BLOBS_URL environment variable, else DIR/blobs) - the same store the server uses.\n"
            "Exit status: 0 done, 1 some object failed or the store could not be read, 2 bad usage.\n");
}

typedef struct cli_state {
    ws_progress bar;
    const char *phase;
    size_t errors;
} cli_state;

static void on_progress(void *arg, const char *phase, size_t done, size_t total)
{
    cli_state *st = arg;
    if (!st->phase || strcmp(st->phase, phase) != 0) {
        if (st->phase)
            ws_progress_finish(&st->bar, NULL);
        st->phase = phase;
        ws_progress_start(&st->bar, phase, total);
    }
    ws_progress_update(&st->bar, done, NULL);
}

static void on_object_error(void *arg, const char *key, const ws_error *e)
{
    cli_state *st = arg;
    st->errors++;
    fprintf(stderr, "%swhatstyle keys: %s: %s\n", st->bar.enabled ? "\r\033[K" : "", key, e->msg);
}

static void print_report(const ws_blobs_reseal_report *r, bool file_mode)
{
    printf("objects: %zu, re-sealed: %zu, already under the current key: %zu, rewritten meanwhile: %zu, "
           "failed: %zu\n",
           r->objects, r->resealed, r->current, r->changed, r->failed);
    printf("current master key id: %s\n", r->current_id);
    printf("final scan: %zu objects, %zu unreadable\n", r->final_objects, r->final_failed);
    for (size_t i = 0; i < r->n_ids; i++)
        printf("retired key id %s: %zu object%s left%s\n", r->ids[i].id, r->ids[i].n, r->ids[i].n == 1 ? "" : "s",
               r->ids[i].removed ? " (key file deleted)" : "");
    if (r->kept_empty_store)
        printf("the store holds no object: retired key files are kept in case this is not the store they\n"
               "were used with (check --blobs / WS_BLOBS_URL; delete them yourself if it is)\n");
    if (file_mode && r->final_failed)
        printf("retired key files are kept: some objects could not be read (see above)\n");
}

int ws_cli_keys_master(const char *action, int argc, char **argv)
{
    const char *data = NULL, *blobs = NULL;
    for (int i = 2; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--data"))) {
            data = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--blobs"))) {
            blobs = v;
        } else {
            fprintf(stderr, "whatstyle keys %s: unknown option '%s'\n", action, argv[i]);
            usage(stderr);
            return 2;
        }
    }
    bool rotate = !strcmp(action, "rotate-master");
    bool env = ws_blobs_env_mode();
    if (rotate && env) {
        fprintf(stderr, "whatstyle keys rotate-master: %s", ws_blobs_env_rotation_help);
        return 2;
    }
    if (!env && !data) {
        fprintf(stderr, "whatstyle keys %s: --data DIR is needed (the master key is DIR/master.key)\n", action);
        usage(stderr);
        return 2;
    }
    cli_state st = {0};
    ws_blobs_reseal_hooks hooks = {on_progress, on_object_error, &st};
    ws_blobs_reseal_report rep;
    ws_error err = {0};
    int rc = rotate ? ws_blobs_rotate_master(blobs, data, &hooks, &rep, &err)
                    : ws_blobs_reseal_store(blobs, data, &hooks, &rep, &err);
    if (st.phase)
        ws_progress_finish(&st.bar, NULL);
    if (rc < 0) {
        fprintf(stderr, "whatstyle keys %s: %s\n", action, err.msg);
        if (rep.current_id[0])
            print_report(&rep, !env);
        return 1;
    }
    print_report(&rep, !env);
    if (rep.failed || rep.final_failed) {
        fprintf(stderr,
                "whatstyle keys %s: %zu object(s) failed the re-seal and %zu the final scan (listed above); "
                "they keep their old sealed bytes and the retired keys are kept\n",
                action, rep.failed, rep.final_failed);
        return 1;
    }
    return 0;
}
