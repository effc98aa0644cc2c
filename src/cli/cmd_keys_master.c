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
#include "cli/opts.h"
#include "core/progress.h"

typedef struct master_opts {
    const char *data;
    ws_cli_blobs blobs;
} master_opts;

static const ws_opt rows[] = {
    WS_CLI_ROW_DATA(master_opts, data, 0),
    WS_CLI_ROWS_BLOBS(master_opts, blobs),
};

#define MASTER_ABOUT                                                                                         \
    "rotate-master (master key in DIR/master.key): writes a new master key, keeps the old\n"                 \
    "  one as DIR/master.key.retired-<key id>, re-seals every object under the new key and,\n"               \
    "  when a final scan finds no object left under the old key, deletes the retired key\n"                  \
    "  file. Running servers keep working (they pick up the new key on their next write).\n"                 \
    "  Interrupted, run it again or run `keys reseal`: nothing is lost.\n"                                   \
    "reseal: re-seals every object that is not under the current master key and reports\n"                   \
    "  how many objects remain under each retired key id (file mode: deletes the retired\n"                  \
    "  key files no object needs).\n"                                                                        \
    "With WS_MASTER_KEY set (keys in the environment), rotate by hand: set WS_MASTER_KEY to a\n"             \
    "new key (openssl rand -hex 32), put the old one in WS_MASTER_KEYS_RETIRED (comma-\n"                    \
    "separated), restart the services, then run `whatstyle keys reseal`.\n"                                  \
    "Exit status: 0 done, 1 some object failed or the store could not be read, 2 bad usage.\n"

const ws_cli_spec ws_cli_spec_keys_rotate = {.name = "keys rotate-master",
                                             .synopsis = "--data DIR [--blobs URL]",
                                             .about = MASTER_ABOUT,
                                             WS_CLI_SPEC_ROWS(rows)};
const ws_cli_spec ws_cli_spec_keys_reseal = {.name = "keys reseal",
                                             .synopsis = "[--data DIR] [--blobs URL]",
                                             .about = MASTER_ABOUT,
                                             WS_CLI_SPEC_ROWS(rows)};

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
        printf("retired key id %s: %zu object%s left%s\n", r->ids[i].id, r->ids[i].n,
               r->ids[i].n == 1 ? "" : "s", r->ids[i].removed ? " (key file deleted)" : "");
    if (r->kept_empty_store)
        printf("the store holds no object: retired key files are kept in case this is not the store they\n"
               "were used with (check --blobs / WS_BLOBS_URL; delete them yourself if it is)\n");
    if (file_mode && r->final_failed)
        printf("retired key files are kept: some objects could not be read (see above)\n");
}

int ws_cli_keys_master(const char *action, int argc, char **argv)
{
    bool rotate = !strcmp(action, "rotate-master");
    const ws_cli_spec *spec = rotate ? &ws_cli_spec_keys_rotate : &ws_cli_spec_keys_reseal;
    master_opts o = {0};
    int pr = ws_cli_parse(spec, argc, argv, &o, NULL, NULL);
    if (pr)
        return pr == 1 ? 0 : 2;
    ws_cli_blobs_apply(&o.blobs);
    const char *data = o.data, *blobs = o.blobs.url;
    bool env = ws_blobs_env_mode();
    if (rotate && env) {
        fprintf(stderr, "whatstyle keys rotate-master: %s", ws_blobs_env_rotation_help);
        return 2;
    }
    if (!env && !data) {
        return ws_cli_fail(spec, "--data DIR is needed (the master key is DIR/master.key)");
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
