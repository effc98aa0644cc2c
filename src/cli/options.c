/* Option parsing and start-up steps shared by the subcommands. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/log.h"
#include "core/trace_export.h"

const char *ws_cli_opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

int ws_cli_tracing_start(const char *cmd, const char *endpoint, const char *ratio, const char *service_name)
{
    if (!endpoint || !*endpoint)
        endpoint = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    if (!ratio || !*ratio)
        ratio = getenv("WS_TRACE_RATIO");
    if (!endpoint || !*endpoint)
        return 0;
    char *end = NULL;
    ws_error err = {0};
    ws_trace_export_opts to = {.endpoint = endpoint, .service_name = service_name, .ratio = 0.01};
    if (ratio && *ratio)
        to.ratio = strtod(ratio, &end);
    if ((ratio && *ratio && (end == ratio || *end)) || ws_trace_export_start(&to, &err) != 0) {
        fprintf(stderr, "whatstyle %s: tracing: %s\n", cmd, err.msg[0] ? err.msg : "--trace-ratio must be a number in 0..1");
        return -1;
    }
    WS_LOG(WS_LOG_INFO, "trace.exporter_started", NULL, WS_LF_D("trace.ratio", to.ratio));
    return 1;
}

int ws_cli_read_config(const char *path, const char *cmd, int (*set)(void *arg, const char *key, const char *value),
                       void *arg)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "whatstyle %s: cannot open config %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\0')
            continue;
        char *eq = strchr(p, '=');
        if (!eq) {
            fprintf(stderr, "whatstyle %s: %s:%d: expected key = value\n", cmd, path, lineno);
            rc = -1;
            break;
        }
        char *kend = eq;
        while (kend > p && (kend[-1] == ' ' || kend[-1] == '\t'))
            kend--;
        *kend = '\0';
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == '\n' || v[vl - 1] == '\r' || v[vl - 1] == ' '))
            v[--vl] = '\0';
        if (set(arg, p, v) != 0) {
            fprintf(stderr, "whatstyle %s: %s:%d: unknown setting '%s'\n", cmd, path, lineno, p);
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}
