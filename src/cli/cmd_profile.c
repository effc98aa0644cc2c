/* `whatstyle profile FILE --as NAME`: builds the training pairs of one person from a WhatsApp
 * export (with personal data masked) and prints their style profile, as a readable summary or
 * as JSON (--json). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "core/buf.h"
#include "core/json.h"
#include "style/mask.h"
#include "style/pairs.h"
#include "style/profile.h"

typedef struct profile_cli {
    const char *as, *rules, *set;
    bool json;
} profile_cli;

static const ws_opt rows[] = {
    {.name = "as",
     .kind = WS_OPT_STR,
     .off = offsetof(profile_cli, as),
     .arg = "NAME",
     .flags = WS_OPTF_REQUIRED,
     .help = "the person (as written in the export)"},
    {.name = "mask-rules",
     .kind = WS_OPT_STR,
     .off = offsetof(profile_cli, rules),
     .arg = "FILE",
     .alias = "rules",
     .help =
         "masking rules, '<name> <phone|email|url> <replacement>' per line (default: phone, e-mail, links)"},
    {.name = "set",
     .kind = WS_OPT_STR,
     .off = offsetof(profile_cli, set),
     .dflt = "all",
     .choices = "all|train|heldout",
     .arg = "SET",
     .help = "which examples the profile describes"},
    {.name = "json",
     .kind = WS_OPT_FLAG,
     .off = offsetof(profile_cli, json),
     .help = "print {\"pairs\": {...}, \"profile\": {...}}"},
};

const ws_cli_spec ws_cli_spec_profile = {
    .name = "profile",
    .synopsis = "FILE --as NAME [--json] [--mask-rules FILE] [--set all|train|heldout]",
    .about = "Builds NAME's training pairs from a WhatsApp export (.txt or .zip): turns, sessions,\n"
             "examples and the held-out 10%, with phone numbers, e-mail addresses and links masked,\n"
             "and prints NAME's style profile: lengths, emoji, punctuation, casing, languages,\n"
             "response times, active hours and signature phrases.\n",
    .min_pos = 1,
    .max_pos = 1,
    WS_CLI_SPEC_ROWS(rows),
};

int ws_cmd_profile(int argc, char **argv)
{
    profile_cli o = {0};
    ws_cli_pos pos;
    int pr = ws_cli_parse(&ws_cli_spec_profile, argc, argv, &o, &pos, NULL);
    if (pr)
        return pr == 1 ? 0 : 2;
    const char *file = pos.v[0], *persona = o.as, *rules_path = o.rules;
    bool json = o.json;
    ws_profile_set which = !strcmp(o.set, "train")     ? WS_PROFILE_TRAIN
                           : !strcmp(o.set, "heldout") ? WS_PROFILE_HELDOUT
                                                       : WS_PROFILE_ALL;
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
