/* The one option parser of the `whatstyle` subcommands: each command describes its options in a
 * table (one ws_opt row per option) and ws_cli_parse fills the command's options struct from, in
 * this order of precedence (later wins): the row's default, the config file (--config FILE),
 * the environment, the command line. The same table prints --help and the reference in
 * docs/configuration.md (`whatstyle config --list`; tests/cli/config.sh checks they match), so
 * help, docs and behaviour cannot drift apart. Library code reads no environment: the CLI
 * resolves everything here and hands structs (or the few process-wide setters) down.
 *
 * HOW TO ADD AN OPTION (one row):
 *   1. Add a field to the command's options struct: `const char *` (WS_OPT_STR), `bool`
 *      (WS_OPT_FLAG), `int` (WS_OPT_INT), `double` (WS_OPT_NUM) or `ws_cli_list` (WS_OPT_LIST,
 *      a repeatable option).
 *   2. Add one row to the command's table, e.g. in cmd_serve.c:
 *        {.name = "keepalive-ms", .kind = WS_OPT_INT, .off = offsetof(serve_opts, keepalive_ms),
 *         .lo = 1, .hi = 86400000, .dflt = "120000", .arg = "N", .help = "idle keep-alive timeout"},
 *      .name is the long flag without "--" and the config-file key ('_' also accepted there);
 *      .env the environment variable, if any ("A,B": the first one set wins); .dflt the default
 *      as text (parsed like a given value; NULL leaves the struct's initial value); .lo/.hi the
 *      range of INT and NUM; .choices "a|b|c" for a closed set of words; .alias an old
 *      spelling still accepted (on the command line and in config files); .flags WS_OPTF_SECRET
 *      for a value that must not appear on a command line (only env or config file; `config
 *      show` prints "(set)").
 *   3. Use the same name (and env variable) as other commands use for the same thing: grep the
 *      tables (src/cli/cmd_*.c, WS_CLI_ROW_* below) first; a thing several commands share is a
 *      WS_CLI_ROW_* macro here.
 *   4. Regenerate the reference: tools/gen-config-doc.sh (it puts `whatstyle config --list`
 *      between the markers of docs/configuration.md; tests/cli/config.sh fails until you do).
 *   5. Settings a library needs travel in its config struct (ws_server_config, ws_ai_local_opts,
 *      ...) or, for the few process-wide ones, its setter (ws_blobs_configure); never getenv
 *      in src/ outside this parser (tests/cli/config.sh greps for it).
 * HOW TO ADD A SUBCOMMAND: write cmd_<name>.c with an options struct, a row table and a
 * ws_cli_spec (see cmd_migrate.c, the smallest), call ws_cli_parse first thing (0: go on,
 * 1: return 0, 2: return 2), declare the spec in commands.h and list it in main.c (the
 * subcommand table and ws_cli_specs, which `config --list` walks).
 * CONVERTING A HAND-PARSED COMMAND (branches written before this parser, e.g. `worker`, or new
 * flags such as TLS on `ai`): one row per flag, reusing the names above when the thing is the
 * same (`--tls-cert PEM` / `--tls-key PEM` as in serve's table, `--data`, `--store`, `--blobs`
 * via WS_CLI_ROW_* / WS_CLI_ROWS_BLOBS, `--otlp-endpoint` / `--trace-ratio` as in serve); every
 * key of the config files the command is given (deploy/k8s/base/configmap.yaml: worker.conf has
 * data, metrics_listen, otlp_endpoint, trace_ratio) must be a row, or the file is refused; a
 * getenv in the command becomes the row's .env.
 *
 * Every command gets --help/-h, --config FILE, --log-level and --log-format (WS_LOG_LEVEL,
 * WS_LOG_FORMAT) without listing them. Unknown options, missing or bad values: a message naming
 * the option (and where the value came from) on stderr, exit code 2. */
#ifndef WS_CLI_OPTS_H
#define WS_CLI_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum { WS_OPT_STR, WS_OPT_FLAG, WS_OPT_INT, WS_OPT_NUM, WS_OPT_LIST } ws_opt_kind;

enum {
    WS_OPTF_SECRET = 1, /* no command-line flag: env or config file only; never printed */
    WS_OPTF_REQUIRED = 2,
    WS_OPTF_NOFILE = 4, /* not a config-file key (--help, --config) */
};

#define WS_CLI_LIST_MAX 16
typedef struct ws_cli_list {
    const char *v[WS_CLI_LIST_MAX];
    int n;
} ws_cli_list;

typedef struct ws_opt {
    const char *name; /* long option without "--"; also the config key */
    char short_name;  /* 'o' for -o; 0 = none */
    ws_opt_kind kind;
    size_t off;          /* offset of the field in the command's options struct */
    const char *env;     /* environment variable(s), comma-separated; NULL = none */
    const char *dflt;    /* default, as text; NULL = the struct's initial value */
    double lo, hi;       /* range of WS_OPT_INT / WS_OPT_NUM */
    const char *choices; /* "a|b|c": the accepted words of a WS_OPT_STR; NULL = any */
    const char *alias;   /* another long spelling accepted (kept for old scripts), or NULL */
    const char *arg;     /* placeholder in --help ("URL"); NULL for flags */
    const char *help;    /* one line; the default and env variable are added when printed */
    int flags;           /* WS_OPTF_* */
} ws_opt;

typedef struct ws_cli_spec {
    const char *name;     /* "serve", "keys create": the words after `whatstyle` */
    const char *synopsis; /* the usage line after "whatstyle NAME " */
    const char *about;    /* text printed after the options in --help, or NULL */
    int min_pos, max_pos; /* positional arguments accepted */
    const ws_opt *rows;
    size_t n_rows;
} ws_cli_spec;

#define WS_CLI_SPEC_ROWS(r) .rows = (r), .n_rows = (sizeof(r) / sizeof((r)[0]))

/* Positional arguments, in order (borrowed from argv). */
typedef struct ws_cli_pos {
    const char *v[8];
    int n;
} ws_cli_pos;

/* Where each value came from, for `whatstyle config show` (value borrowed until exit). */
typedef enum { WS_SRC_UNSET, WS_SRC_DEFAULT, WS_SRC_FILE, WS_SRC_ENV, WS_SRC_FLAG } ws_cli_source;
typedef struct ws_cli_trace {
    const ws_opt *row;
    const char *value;
    ws_cli_source src;
    const char *from; /* the env variable, or "FILE:LINE" */
} ws_cli_trace;

/* Parses argv (argv[0] is the command word) into dst, an instance of the struct the rows of
 * spec point into (fields without a value keep what the caller put there), and the positional
 * arguments into pos (may be NULL when max_pos is 0). String fields are borrowed: they point
 * into argv, the environment or this module's copy of the config file, all valid until exit
 * (the environment: as long as nobody changes that variable). trace (NULL, or spec->n_rows entries)
 * gets each row's value and source. Sets the logger from --log-level/--log-format.
 * Returns 0 to go on, 1 when --help was printed (exit 0), 2 on bad usage (message printed:
 * exit 2). */
int ws_cli_parse(const ws_cli_spec *spec, int argc, char **argv, void *dst, ws_cli_pos *pos,
                 ws_cli_trace *trace);
/* --help text of a spec. */
void ws_cli_usage(const ws_cli_spec *spec, FILE *f);
/* The reference of all specs as Markdown (docs/configuration.md between its markers). */
void ws_cli_markdown(const ws_cli_spec *const *specs, size_t n, FILE *f);
/* "whatstyle NAME: " + message on stderr, and returns 2 (bad usage). */
int ws_cli_fail(const ws_cli_spec *spec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Rows several commands share: the same name, env variable and meaning everywhere. */
#define WS_CLI_ROW_DATA(T, f, req)                                                                           \
    {                                                                                                        \
        .name = "data", .kind = WS_OPT_STR, .off = offsetof(T, f), .arg = "DIR", .flags = (req),             \
        .help = "data directory: SQLite DIR/whatstyle.db, blobs DIR/blobs, master key DIR/master.key"        \
    }
#define WS_CLI_ROW_STORE(T, f)                                                                               \
    {                                                                                                        \
        .name = "store", .kind = WS_OPT_STR, .off = offsetof(T, f), .env = "WS_STORE_URL",                   \
        .alias = "database-url", .arg = "URL",                                                               \
        .help = "postgres://user@host:port/db or sqlite:PATH (default: SQLite in the data directory)"        \
    }
#define WS_CLI_ROW_BASE_MODEL(T, f)                                                                          \
    {                                                                                                        \
        .name = "base-model", .kind = WS_OPT_STR, .off = offsetof(T, f), .env = "WS_BASE_MODEL",             \
        .arg = "PATH",                                                                                       \
        .help = "base model for LoRA clones: GGUF file or model directory; none: small models from "         \
                "scratch (default: the installed SmolLM2 base)"                                              \
    }
#define WS_CLI_ROW_NN_THREADS(T, f)                                                                          \
    {                                                                                                        \
        .name = "nn-threads", .kind = WS_OPT_INT, .off = offsetof(T, f), .env = "WS_NN_THREADS", .lo = 0,    \
        .hi = 256, .arg = "N",                                                                               \
        .help = "threads of the neural engine, 0 = all cores (default: one for small models, all "           \
                "cores on the base)"                                                                         \
    }
#define WS_CLI_ROW_MINILM_DIR(T, f)                                                                          \
    {                                                                                                        \
        .name = "minilm-dir", .kind = WS_OPT_STR, .off = offsetof(T, f), .env = "WS_MINILM_DIR",             \
        .dflt = "models/minilm", .arg = "DIR",                                                               \
        .help = "where the all-MiniLM-L6-v2 retrieval embedder is installed (tools/setup-minilm.sh)"         \
    }

#define WS_CLI_ROW_KAFKA_PARTITIONS(T, f)                                                                    \
    {                                                                                                        \
        .name = "kafka-partitions", .kind = WS_OPT_INT, .off = offsetof(T, f), .alias = "partitions",        \
        .lo = 1, .hi = 1024, .dflt = "3", .arg = "N", .help = "partitions of the Kafka topics it creates"    \
    }
#define WS_CLI_ROW_TRAIN_BUDGET(T, f)                                                                        \
    {                                                                                                        \
        .name = "train-budget", .kind = WS_OPT_NUM, .off = offsetof(T, f), .lo = 0, .hi = 7 * 86400,         \
        .arg = "S", .help = "seconds per training job when the job gives none (default 90)"                  \
    }

/* The blobs: where, and their keys (blobs/blobs.h ws_blobs_settings). */
typedef struct ws_cli_blobs {
    const char *url, *master_key, *retired_keys, *s3_region, *s3_access_key, *s3_secret_key;
    int s3_part_size; /* bytes; 0 = the default */
} ws_cli_blobs;
#define WS_CLI_ROWS_BLOBS(T, f)                                                                              \
    {.name = "blobs",                                                                                        \
     .kind = WS_OPT_STR,                                                                                     \
     .off = offsetof(T, f.url),                                                                              \
     .env = "WS_BLOBS_URL",                                                                                  \
     .arg = "URL",                                                                                           \
     .help = "file:DIR, s3://HOST/BUCKET or s3+http://HOST:PORT/BUCKET (default: DIR/blobs)"},               \
        {.name = "master-key",                                                                               \
         .kind = WS_OPT_STR,                                                                                 \
         .off = offsetof(T, f.master_key),                                                                   \
         .env = "WS_MASTER_KEY",                                                                             \
         .flags = WS_OPTF_SECRET,                                                                            \
         .arg = "HEX",                                                                                       \
         .help = "the blobs' master key, 64 hex digits (default: DIR/master.key, created on first use)"},    \
        {.name = "master-keys-retired",                                                                      \
         .kind = WS_OPT_STR,                                                                                 \
         .off = offsetof(T, f.retired_keys),                                                                 \
         .env = "WS_MASTER_KEYS_RETIRED",                                                                    \
         .flags = WS_OPTF_SECRET,                                                                            \
         .arg = "HEX,...",                                                                                   \
         .help = "earlier master keys still accepted for reading (with master-key)"},                        \
        {.name = "s3-region",                                                                                \
         .kind = WS_OPT_STR,                                                                                 \
         .off = offsetof(T, f.s3_region),                                                                    \
         .env = "WS_S3_REGION",                                                                              \
         .dflt = "us-east-1",                                                                                \
         .arg = "REGION",                                                                                    \
         .help = "region of the S3 requests' signatures"},                                                   \
        {.name = "s3-access-key",                                                                            \
         .kind = WS_OPT_STR,                                                                                 \
         .off = offsetof(T, f.s3_access_key),                                                                \
         .env = "WS_S3_ACCESS_KEY,AWS_ACCESS_KEY_ID",                                                        \
         .flags = WS_OPTF_SECRET,                                                                            \
         .arg = "ID",                                                                                        \
         .help = "S3 access key id"},                                                                        \
        {.name = "s3-part-size",                                                                             \
         .kind = WS_OPT_INT,                                                                                 \
         .off = offsetof(T, f.s3_part_size),                                                                 \
         .env = "WS_S3_PART_SIZE",                                                                           \
         .lo = 0,                                                                                            \
         .hi = 2147483647,                                                                                   \
         .arg = "BYTES",                                                                                     \
         .help = "S3 objects above this size go up as multipart uploads in parts of it, at least 5 MiB "     \
                 "(default 0: 8 MiB)"},                                                                      \
    {                                                                                                        \
        .name = "s3-secret-key", .kind = WS_OPT_STR, .off = offsetof(T, f.s3_secret_key),                    \
        .env = "WS_S3_SECRET_KEY,AWS_SECRET_ACCESS_KEY", .flags = WS_OPTF_SECRET, .arg = "KEY",              \
        .help = "S3 secret access key"                                                                       \
    }

/* Trace export of a long-running role: the OTLP endpoint and the share of new traces recorded. */
#define WS_CLI_ROWS_TRACING(T, endpoint_field, ratio_field)                                                  \
    {.name = "otlp-endpoint",                                                                                \
     .kind = WS_OPT_STR,                                                                                     \
     .off = offsetof(T, endpoint_field),                                                                     \
     .env = "OTEL_EXPORTER_OTLP_ENDPOINT",                                                                   \
     .arg = "URL",                                                                                           \
     .help = "export traces over OTLP/HTTP to URL, e.g. http://jaeger:4318 (default: no export)"},           \
    {                                                                                                        \
        .name = "trace-ratio", .kind = WS_OPT_NUM, .off = offsetof(T, ratio_field), .lo = 0, .hi = 1,        \
        .env = "WS_TRACE_RATIO", .dflt = "0.01", .arg = "R",                                                 \
        .help = "share of new traces recorded; a caller's sampled traceparent is kept"                       \
    }
/* Starts the OTLP/HTTP span exporter (core/trace_export.h) when endpoint is not NULL or "".
 * Returns 1 started (ws_trace_export_stop at exit), 0 no endpoint, -1 failed (message printed,
 * prefixed "whatstyle <cmd>: "). */
int ws_cli_tracing_start(const char *cmd, const char *endpoint, double ratio, const char *service_name);

/* Once at start-up, single-threaded (main): the environment the libraries loaded later read
 * (OPENBLAS_CORETYPE from the CPU's features, unless set: nn/blas_lib.h). */
void ws_cli_process_setup(void);

/* Hands the blobs' settings to the library (ws_blobs_configure) before any blobs are opened. */
void ws_cli_blobs_apply(const ws_cli_blobs *b);
/* Hands the engine's settings down: nn_threads (-1 = automatic) and the MiniLM directory. */
void ws_cli_engine_apply(int nn_threads, const char *minilm_dir);

#endif
