/* `whatstyle profile FILE --as NAME`: builds the training pairs of one person from a WhatsApp
 * export (with personal data masked) and prints their style profile, as a readable summary or
 * as JSON (--json). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"
#include "style/mask.h"
#include "style/pairs.h"
#include "style/profile.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: whatstyle profile FILE --as NAME [--json] [--rules FILE] [--set all|train|heldout]\n\n"
               "Builds NAME's training pairs from a WhatsApp export (.txt or .zip): turns, sessions,\n"
               "examples and the held-out 10%%, with phone numbers, e-mail addresses and links masked\n"
               "(--rules FILE: '<name> <phone|email|url> <replacement>' per line), and prints NAME's\n"
               "style profile: lengths, emoji, punctuation, casing, languages, response times, active\n"
               "hours and signature phrases. --json prints {\"pairs\": {...}, \"profile\": {...}}.\n");
}

int ws_cmd_profile(int argc, char **argv)
{
    const char *file = NULL, *persona = NULL, *rules_path = NULL, *set = "all";
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--as") && i + 1 < argc) {
            persona = argv[++i];
        } else if (!strcmp(argv[i], "--rules") && i + 1 < argc) {
            rules_path = argv[++i];
        } else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            set = argv[++i];
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (argv[i][0] != '-' && !file) {
            file = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    ws_profile_set which = !strcmp(set, "train")     ? WS_PROFILE_TRAIN
                           : !strcmp(set, "heldout") ? WS_PROFILE_HELDOUT
                                                     : WS_PROFILE_ALL;
    if (!file || !persona || (which == WS_PROFILE_ALL && strcmp(set, "all"))) {
        usage(stderr);
        return 2;
    }
    ws_error err = {0};
    ws_mask_rules rules;
    ws_pairs_options opt = {0};
    if (rules_path) {
        if (ws_mask_rules_load(rules_path, &rules, &err) != 0) {
            fprintf(stderr, "whatstyle profile: %s\n", err.msg);
            return 1;
        }
        opt.mask = &rules;
    }
    ws_pairs *p = NULL;
    if (ws_pairs_from_file(file, persona, &opt, &p, &err) != 0) {
        fprintf(stderr, "whatstyle profile: %s\n", err.msg);
        return 1;
    }
    ws_profile *pf = ws_profile_from_pairs(p, which);
    ws_buf out = WS_BUF_INIT;
    if (json) {
        ws_buf_printf(&out,
                      "{\"pairs\":{\"messages\":%llu,\"system_dropped\":%llu,\"media\":%llu,\"deleted\":%llu,"
                      "\"masked\":%llu,\"participants\":%zu,\"turns\":%zu,\"sessions\":%zu,\"examples\":%zu,"
                      "\"heldout\":%zu},\"profile\":",
                      (unsigned long long)p->n_messages, (unsigned long long)p->n_system_dropped,
                      (unsigned long long)p->n_media, (unsigned long long)p->n_deleted,
                      (unsigned long long)p->n_masked, p->n_participants, p->n_turns, p->n_sessions,
                      p->n_examples, p->n_heldout);
        ws_profile_to_json(pf, &out);
        ws_buf_puts(&out, "}\n");
    } else {
        ws_buf_printf(&out,
                      "Chat: %llu messages, %zu participants, %zu turns in %zu sessions; %zu examples "
                      "(%zu held out); %llu personal-data items masked\n",
                      (unsigned long long)p->n_messages, p->n_participants, p->n_turns, p->n_sessions,
                      p->n_examples, p->n_heldout, (unsigned long long)p->n_masked);
        ws_profile_summary(pf, &out);
    }
    fwrite(out.data, 1, out.len, stdout);
    ws_buf_free(&out);
    ws_profile_free(pf);
    ws_pairs_free(p);
    return 0;
}
