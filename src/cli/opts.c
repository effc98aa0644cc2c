/* The table-driven option parser of the subcommands (cli/opts.h): defaults < config file <
 * environment < command line, one pass each, then typed into the command's options struct. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "blobs/blobs.h"
#include "clone/clone.h"
#include "cli/opts.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/trace_export.h"
#include "nn/blas_lib.h"
#include "nn/ops.h"
#include "style/embed.h"

/* The options every command takes (their values live here, not in the command's struct). */
typedef struct common_opts {
    bool help;
    const char *config, *log_level, *log_format;
} common_opts;
static common_opts common;

static const ws_opt common_rows[] = {
    {.name = "help",
     .short_name = 'h',
     .kind = WS_OPT_FLAG,
     .off = offsetof(common_opts, help),
     .flags = WS_OPTF_NOFILE,
     .help = "print the options of the command and exit"},
    {.name = "config",
     .kind = WS_OPT_STR,
     .off = offsetof(common_opts, config),
     .arg = "FILE",
     .flags = WS_OPTF_NOFILE,
     .help = "read settings from FILE: \"key = value\" lines (keys as the long options, '-' or '_'), "
             "'#' comments; the environment and the command line win over it"},
    {.name = "log-level",
     .kind = WS_OPT_STR,
     .off = offsetof(common_opts, log_level),
     .env = "WS_LOG_LEVEL",
     .dflt = "info",
     .choices = "debug|info|warn|error|off",
     .arg = "LEVEL",
     .help = "lowest level of log lines written"},
    {.name = "log-format",
     .kind = WS_OPT_STR,
     .off = offsetof(common_opts, log_format),
     .env = "WS_LOG_FORMAT",
     .dflt = "auto",
     .choices = "auto|json|text",
     .arg = "FORMAT",
     .help = "log lines as JSON (for a collector) or text; auto: text on a terminal"},
};
#define N_COMMON (sizeof common_rows / sizeof common_rows[0])

/* Config-file values live until exit (reachable from here, so not leaks). */
static struct kept {
    struct kept *next;
    char s[];
} * kept;

static const char *keep(const char *s)
{
    size_t n = strlen(s);
    struct kept *k = ws_xmalloc(sizeof *k + n + 1);
    memcpy(k->s, s, n + 1);
    k->next = kept;
    kept = k;
    return k->s;
}

typedef struct slot {
    const char *v;
    ws_cli_source src;
    const char *from;
} slot;

typedef struct parse_ctx {
    const ws_cli_spec *spec;
    void *dst;
    slot *slots; /* spec rows, then the common rows */
    size_t n;
} parse_ctx;

static const ws_opt *row_at(const parse_ctx *c, size_t i)
{
    return i < c->spec->n_rows ? &c->spec->rows[i] : &common_rows[i - c->spec->n_rows];
}

static void *field(const parse_ctx *c, size_t i)
{
    return (char *)(i < c->spec->n_rows ? c->dst : (void *)&common) + row_at(c, i)->off;
}

int ws_cli_fail(const ws_cli_spec *spec, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "whatstyle %s: ", spec->name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'whatstyle %s --help')\n", spec->name);
    va_end(ap);
    return 2;
}

/* name[0..len) as a long option or config key ('_' = '-'); SIZE_MAX when none. */
static size_t find_row(const parse_ctx *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->n; i++) {
        const ws_opt *r = row_at(c, i);
        for (const char *cand = r->name; cand; cand = cand == r->name ? r->alias : NULL) {
            if (strlen(cand) != len)
                continue;
            size_t k = 0;
            while (k < len && (cand[k] == name[k] || (cand[k] == '-' && name[k] == '_')))
                k++;
            if (k == len)
                return i;
        }
    }
    return (size_t)-1;
}

static size_t find_short(const parse_ctx *c, char s)
{
    for (size_t i = 0; i < c->n; i++)
        if (row_at(c, i)->short_name == s)
            return i;
    return (size_t)-1;
}

static void set_slot(parse_ctx *c, size_t i, const char *v, ws_cli_source src, const char *from)
{
    const ws_opt *r = row_at(c, i);
    if (r->kind == WS_OPT_LIST && src == WS_SRC_FLAG) { /* repeated on the command line */
        ws_cli_list *l = field(c, i);
        if (c->slots[i].src != WS_SRC_FLAG)
            l->n = 0;
        if (l->n < WS_CLI_LIST_MAX)
            l->v[l->n++] = v;
    }
    if (c->slots[i].src <= src)
        c->slots[i] = (slot){v, src, from};
}

/* One command-line option at argv[*i]; 0 or 2 (message printed). */
static int take_option(parse_ctx *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *eq = NULL;
    size_t idx;
    if (a[1] == '-') {
        eq = strchr(a + 2, '=');
        idx = find_row(c, a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
    } else {
        idx = a[2] ? (size_t)-1 : find_short(c, a[1]);
    }
    if (idx == (size_t)-1)
        return ws_cli_fail(c->spec, "unknown option '%s'", a);
    const ws_opt *r = row_at(c, idx);
    if (r->flags & WS_OPTF_SECRET)
        return ws_cli_fail(c->spec,
                           "--%s is a secret: give it in the environment (%s) or the config file, "
                           "not on the command line",
                           r->name, r->env ? r->env : "none");
    if (r->kind == WS_OPT_LIST && c->slots[idx].src == WS_SRC_FLAG &&
        ((ws_cli_list *)field(c, idx))->n == WS_CLI_LIST_MAX)
        return ws_cli_fail(c->spec, "--%s is given more than %d times", r->name, WS_CLI_LIST_MAX);
    const char *v = eq ? eq + 1 : "1";
    if (r->kind != WS_OPT_FLAG && !eq) {
        if (*i + 1 >= argc)
            return ws_cli_fail(c->spec, "option '%s' needs a value (%s)", a, r->arg ? r->arg : "VALUE");
        v = argv[++*i];
    }
    set_slot(c, idx, v, WS_SRC_FLAG, NULL);
    return 0;
}

static int parse_argv(parse_ctx *c, int argc, char **argv, ws_cli_pos *pos)
{
    bool opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && !strcmp(a, "--")) {
            opts_done = true;
        } else if (!opts_done && a[0] == '-' && a[1]) {
            if (take_option(c, argc, argv, &i))
                return 2;
        } else if (!pos || pos->n >= c->spec->max_pos || pos->n >= (int)(sizeof pos->v / sizeof pos->v[0])) {
            return ws_cli_fail(c->spec, "unexpected argument '%s'", a);
        } else {
            pos->v[pos->n++] = a;
        }
    }
    return 0;
}

static char *trim(char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strlen(p);
    while (n && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
        p[--n] = '\0';
    return p;
}

/* "key = value" lines into the slots (below env and flags). */
static int read_config(parse_ctx *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "whatstyle %s: cannot open config %s: %s\n", c->spec->name, path, strerror(errno));
        return 2;
    }
    char line[4096], where[512];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = trim(line);
        if (*p == '#' || !*p)
            continue;
        char *eq = strchr(p, '=');
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (!eq) {
            rc = ws_cli_fail(c->spec, "%s: expected key = value", where);
            break;
        }
        *eq = '\0';
        char *key = trim(p), *v = trim(eq + 1);
        size_t idx = find_row(c, key, strlen(key));
        if (idx == (size_t)-1 || (row_at(c, idx)->flags & WS_OPTF_NOFILE)) {
            rc = ws_cli_fail(c->spec, "%s: unknown setting '%s'", where, key);
            break;
        }
        set_slot(c, idx, keep(v), WS_SRC_FILE, keep(where));
    }
    fclose(f);
    return rc;
}

static void read_env(parse_ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const char *list = row_at(c, i)->env;
        while (list && *list) {
            char name[64];
            size_t len = strcspn(list, ",");
            snprintf(name, sizeof name, "%.*s", (int)len, list);
            list += len + (list[len] == ',');
            const char *v = getenv(name);
            if (v && *v) {
                set_slot(c, i, v, WS_SRC_ENV, keep(name));
                break;
            }
        }
    }
}

/* Where a bad value came from, for the message. */
static void describe(const ws_opt *r, const slot *s, char *out, size_t cap)
{
    if (s->src == WS_SRC_ENV)
        snprintf(out, cap, "%s (for --%s)", s->from, r->name);
    else if (s->src == WS_SRC_FILE)
        snprintf(out, cap, "%s: %s", s->from, r->name);
    else
        snprintf(out, cap, "--%s", r->name);
}

static bool word_in(const char *v, const char *choices)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        size_t len = strcspn(p, "|");
        if (len == n && !strncmp(p, v, n))
            return true;
        p += len + (p[len] == '|');
    }
    return false;
}

/* Types slot i into its field; 0 or 2 (message printed). */
static int store(parse_ctx *c, size_t i)
{
    const ws_opt *r = row_at(c, i);
    const slot *s = &c->slots[i];
    void *f = field(c, i);
    char what[600];
    describe(r, s, what, sizeof what);
    char *end = NULL;
    double d = 0;
    switch (r->kind) {
    case WS_OPT_STR:
        if (r->choices && !word_in(s->v, r->choices))
            return ws_cli_fail(c->spec, "%s must be one of %s, not '%s'", what, r->choices, s->v);
        *(const char **)f = s->v;
        return 0;
    case WS_OPT_LIST:
        if (s->src != WS_SRC_FLAG) {
            ((ws_cli_list *)f)->v[0] = s->v;
            ((ws_cli_list *)f)->n = 1;
        }
        return 0;
    case WS_OPT_FLAG:
        if (word_in(s->v, "1|true|yes|on"))
            *(bool *)f = true;
        else if (word_in(s->v, "0|false|no|off"))
            *(bool *)f = false;
        else
            return ws_cli_fail(c->spec, "%s is a switch: 1/true/yes/on or 0/false/no/off, not '%s'", what,
                               s->v);
        return 0;
    case WS_OPT_INT:
    case WS_OPT_NUM:
        errno = 0;
        d = r->kind == WS_OPT_INT ? (double)strtoll(s->v, &end, 10) : strtod(s->v, &end);
        if (end == s->v || *end || errno || !isfinite(d) || d < r->lo || d > r->hi)
            return ws_cli_fail(c->spec, "%s must be %s in %g..%g, not '%s'", what,
                               r->kind == WS_OPT_INT ? "an integer" : "a number", r->lo, r->hi, s->v);
        if (r->kind == WS_OPT_INT)
            *(int *)f = (int)d;
        else
            *(double *)f = d;
        return 0;
    }
    return 0;
}

/* The logger: the roles that run long (serve, ai, worker) log to stdout (JSON lines for the
 * collector, or text on a terminal); one-shot commands to stderr, so stdout stays their output. */
static void setup_log(const ws_cli_spec *spec)
{
    char role[32];
    snprintf(role, sizeof role, "%.*s", (int)strcspn(spec->name, " "), spec->name);
    bool daemon = !strcmp(role, "serve") || !strcmp(role, "ai") || !strcmp(role, "worker");
    ws_log_setup(role, (ws_log_level)ws_log_level_parse(common.log_level),
                 (ws_log_format)ws_log_format_parse(common.log_format), daemon ? stdout : stderr);
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

int ws_cli_parse(const ws_cli_spec *spec, int argc, char **argv, void *dst, ws_cli_pos *pos,
                 ws_cli_trace *trace)
{
    if (wants_help(argc, argv)) {
        ws_cli_usage(spec, stdout);
        return 1;
    }
    memset(&common, 0, sizeof common);
    if (pos)
        pos->n = 0;
    parse_ctx c = {.spec = spec, .dst = dst, .n = spec->n_rows + N_COMMON};
    c.slots = ws_xcalloc(c.n, sizeof *c.slots);
    int rc = parse_argv(&c, argc, argv, pos);
    size_t cfg = spec->n_rows + 1;
    if (rc == 0 && c.slots[cfg].v)
        rc = read_config(&c, c.slots[cfg].v);
    if (rc == 0)
        read_env(&c);
    for (size_t i = 0; rc == 0 && i < c.n; i++) {
        const ws_opt *r = row_at(&c, i);
        if (!c.slots[i].v && r->dflt)
            c.slots[i] = (slot){r->dflt, WS_SRC_DEFAULT, NULL};
        if (!c.slots[i].v && (r->flags & WS_OPTF_REQUIRED))
            rc = ws_cli_fail(spec, "--%s %s is required", r->name, r->arg ? r->arg : "");
        else if (c.slots[i].v)
            rc = store(&c, i);
        if (trace && i < spec->n_rows)
            trace[i] = (ws_cli_trace){r, c.slots[i].v, c.slots[i].src, c.slots[i].from};
    }
    if (rc == 0 && pos && pos->n < spec->min_pos)
        rc = ws_cli_fail(spec, "missing arguments: whatstyle %s %s", spec->name, spec->synopsis);
    if (rc == 0)
        setup_log(spec);
    free(c.slots);
    return rc;
}

/* "--name ARG, -o (alias --old)" */
static void opt_label(const ws_opt *r, char *out, size_t cap)
{
    if (r->flags & WS_OPTF_SECRET) {
        snprintf(out, cap, "%s (env/file only)", r->name);
        return;
    }
    int n = snprintf(out, cap, "--%s%s%s", r->name, r->arg ? " " : "", r->arg ? r->arg : "");
    if (r->short_name && n > 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, ", -%c", r->short_name);
    if (r->alias && n > 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, " (or --%s)", r->alias);
}

static void usage_row(const ws_opt *r, FILE *f)
{
    char label[128];
    opt_label(r, label, sizeof label);
    if (strlen(label) > 26)
        fprintf(f, "  %s\n  %-26s %s", label, "", r->help);
    else
        fprintf(f, "  %-26s %s", label, r->help);
    if (r->choices)
        fprintf(f, " [%s]", r->choices);
    if (r->flags & WS_OPTF_REQUIRED)
        fprintf(f, " (required)");
    if (r->dflt || r->env) {
        fprintf(f, " (");
        if (r->dflt)
            fprintf(f, "default %s%s", r->dflt, r->env ? "; " : "");
        if (r->env)
            fprintf(f, "env %s", r->env);
        fprintf(f, ")");
    }
    fprintf(f, "\n");
}

void ws_cli_usage(const ws_cli_spec *spec, FILE *f)
{
    fprintf(f, "usage: whatstyle %s %s\n", spec->name, spec->synopsis);
    if (spec->n_rows)
        fprintf(f, "options:\n");
    for (size_t i = 0; i < spec->n_rows; i++)
        usage_row(&spec->rows[i], f);
    fprintf(f, "common options:\n");
    for (size_t i = 0; i < N_COMMON; i++)
        usage_row(&common_rows[i], f);
    if (spec->about)
        fprintf(f, "%s", spec->about);
}

/* s for Markdown: line breaks (and the indent after them) as one space; in a table cell, '|'
 * escaped. */
static void md_put(const char *s, bool cell, FILE *f)
{
    for (; *s; s++) {
        if (*s == '|' && cell)
            fputs("\\|", f);
        else if (*s == '\n')
            for (fputc(' ', f); s[1] == ' '; s++)
                ;
        else
            fputc(*s, f);
    }
}

static void md_row(const ws_opt *r, FILE *f)
{
    char label[160] = "(no flag: a secret)";
    if (!(r->flags & WS_OPTF_SECRET)) {
        int n = snprintf(label, sizeof label, "`--%s%s%s`", r->name, r->arg ? " " : "", r->arg ? r->arg : "");
        if (r->short_name)
            n += snprintf(label + n, sizeof label - (size_t)n, ", `-%c`", r->short_name);
        if (r->alias)
            snprintf(label + n, sizeof label - (size_t)n, " (alias `--%s`)", r->alias);
    }
    fputs("| ", f);
    md_put(label, true, f);
    fputs(" | ", f);
    if (!r->env)
        fprintf(f, "—");
    for (const char *p = r->env; p && *p;) {
        size_t len = strcspn(p, ",");
        fprintf(f, "%s`%.*s`", p == r->env ? "" : ", ", (int)len, p);
        p += len + (p[len] == ',');
    }
    char key[96] = "—", dflt[96] = "—";
    if (!(r->flags & WS_OPTF_NOFILE))
        snprintf(key, sizeof key, "`%s`", r->name);
    if (r->dflt)
        snprintf(dflt, sizeof dflt, "`%s`", r->dflt);
    fprintf(f, " | %s | %s | %s", key, dflt, r->flags & WS_OPTF_REQUIRED ? "**required**: " : "");
    md_put(r->help, true, f);
    for (const char *p = r->choices; p && *p;) { /* '|' would split the Markdown table */
        size_t len = strcspn(p, "|");
        fprintf(f, "%s`%.*s`", p == r->choices ? ": " : ", ", (int)len, p);
        p += len + (p[len] == '|');
    }
    fprintf(f, " |\n");
}

static void md_table(const ws_opt *rows, size_t n, FILE *f)
{
    fprintf(f, "| Option | Environment | Config key | Default | Meaning |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < n; i++)
        md_row(&rows[i], f);
}

void ws_cli_markdown(const ws_cli_spec *const *specs, size_t n, FILE *f)
{
    fprintf(
        f,
        "<!-- generated by `whatstyle config --list`: edit the option tables in src/cli/, not this -->\n\n");
    fprintf(f, "### Every command\n\n");
    md_table(common_rows, N_COMMON, f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "\n### `whatstyle %s`\n\n`whatstyle %s ", specs[i]->name, specs[i]->name);
        md_put(specs[i]->synopsis, false, f);
        fprintf(f, "`\n\n");
        if (specs[i]->n_rows)
            md_table(specs[i]->rows, specs[i]->n_rows, f);
        else
            fprintf(f, "Only the options every command takes.\n");
    }
}

void ws_cli_blobs_apply(const ws_cli_blobs *b)
{
    ws_blobs_configure(&(ws_blobs_settings){.master_key = b->master_key,
                                            .retired_keys = b->retired_keys,
                                            .s3_region = b->s3_region,
                                            .s3_access_key = b->s3_access_key,
                                            .s3_secret_key = b->s3_secret_key,
                                            .s3_part_size = (size_t)b->s3_part_size});
}

void ws_cli_engine_apply(int nn_threads, const char *minilm_dir)
{
    if (nn_threads >= 0)
        ws_nn_set_threads(nn_threads);
    ws_clone_set_threads(nn_threads);
    ws_embed_minilm_set_default_dir(minilm_dir);
}

int ws_cli_tracing_start(const char *cmd, const char *endpoint, double ratio, const char *service_name)
{
    if (!endpoint || !*endpoint)
        return 0;
    ws_error err = {0};
    ws_trace_export_opts to = {.endpoint = endpoint, .service_name = service_name, .ratio = ratio};
    if (ws_trace_export_start(&to, &err) != 0) {
        fprintf(stderr, "whatstyle %s: tracing: %s\n", cmd, err.msg);
        return -1;
    }
    WS_LOG(WS_LOG_INFO, "trace.exporter_started", NULL, WS_LF_D("trace.ratio", to.ratio));
    return 1;
}

void ws_cli_process_setup(void)
{
    const char *core = ws_nn_blas_coretype();
    if (core)
        setenv("OPENBLAS_CORETYPE", core, 0); /* the user's choice, if any, stays */
}
